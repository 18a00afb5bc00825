import assert from 'node:assert/strict';
import { test } from 'node:test';

import { latencyGraph } from '../../../agent/profile/latency-graphs.js';
import {
  defaultGrid,
  type LatencyPoint,
  type LatencyTable,
  measureLatencyTable,
  median,
  timedRun,
} from '../../../agent/profile/latency-table.js';
import { Model } from '../../../agent/runtime/model.js';
import { LatencyPredictionError, predictLatency } from '../../../optimize/latency/predictor.js';

/** Two tiny packages: a grid point's own graph (an fp32 conv and its fused ReLU) and an int8 one with its
 * edges, predicted from a table measured in the same run as they are, within a loose bound. */
test('the predictor is within a loose bound of the measured latency of tiny packages', async () => {
  const conv: LatencyPoint = {
    op: 'conv2d',
    format: 'f32',
    kernel: 3,
    stride: 1,
    size: 14,
    inC: 16,
    outC: 16,
  };
  const fc: LatencyPoint = { op: 'fully_connected', format: 'int8', inC: 256, outC: 64 };
  const packages = [latencyGraph(conv), latencyGraph(fc)];
  const runs = packages.map((pkg) => {
    const model = Model.fromPackage(pkg, { batch: 1 });
    return timedRun(model.inPlaceRunner(0), 0.05);
  });
  const grid = {
    name: 'test',
    points: [
      conv,
      { ...conv, size: 7, inC: 32, outC: 32 },
      fc,
      { ...fc, inC: 512 },
      ...defaultGrid(true).points.filter((p) => p.op === 'call' || p.op === 'ts_step'),
    ],
  };
  const table = await measureLatencyTable({ grid, alongside: runs, rounds: 15, sampleMs: 0.05 });
  for (const [i, pkg] of packages.entries()) {
    const prediction = predictLatency(pkg, table);
    const measured = median(runs[i]!.samples);
    assert.ok(
      prediction.ms > measured / 3 && prediction.ms < measured * 3,
      `package ${i}: predicted ${prediction.ms} ms, measured ${measured} ms`,
    );
    assert.ok(prediction.overhead_ms > 0);
    assert.equal(prediction.layers.length, Model.fromPackage(pkg, { batch: 1 }).manifest.nodes.length);
    const sum = prediction.layers.reduce((s, l) => s + l.ms, 0) + prediction.overhead_ms;
    assert.ok(Math.abs(sum - prediction.ms) < 1e-9);
  }
  // The conv's fused ReLU is one layer as the runtime runs it.
  assert.deepEqual(
    predictLatency(packages[0]!, table).layers.map((l) => l.op),
    ['conv2d'],
  );
  // A bigger layer of the same kind is predicted slower.
  const big = predictLatency(latencyGraph({ ...conv, outC: 64 }), table).ms;
  assert.ok(big > predictLatency(packages[0]!, table).ms);
});

test('a table without the plan-call entry is refused', () => {
  const table: LatencyTable = {
    table_version: 1,
    build_hash: 'x',
    isa: 'avx2',
    threads: 1,
    grid_id: 'g',
    complete: true,
    measured_at: 0,
    conditions: { before: { temps_c: [], freq_khz: [] }, after: { temps_c: [], freq_khz: [] } },
    entries: [],
  };
  assert.throws(
    () => predictLatency(latencyGraph({ op: 'call', format: 'f32' }), table),
    (e: Error) => e instanceof LatencyPredictionError && /"call" entry/.test(e.message),
  );
});
