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
import { collectDeviceProfile } from '../../../agent/profile/profile.js';
import { Model } from '../../../agent/runtime/model.js';
import { DeviceClassError } from '../../../optimize/latency/device-classes.js';
import { LatencyPredictionError, predictLatency } from '../../../optimize/latency/predictor.js';
import { tableEstimator } from '../../../optimize/plan/estimator.js';
import { deviceTarget } from '../../../optimize/plan/target.js';

/** A grid point's fp32 3x3 conv, as the tests below price and measure it. */
const conv: LatencyPoint = { op: 'conv2d', format: 'f32', kernel: 3, stride: 1, size: 14, inC: 16, outC: 16 };

/** Two tiny packages: a grid point's own graph (an fp32 conv and its fused ReLU) and an int8 one with its
 * edges, predicted from a table measured in the same run as they are, within a loose bound. */
test('the predictor is within a loose bound of the measured latency of tiny packages', async () => {
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

test("whittle optimize's targets price packages from a class's estimated table or a device's own table", async () => {
  const grid = {
    name: 'test',
    points: [
      conv,
      { ...conv, size: 7, inC: 32, outC: 32 },
      ...defaultGrid(true).points.filter((p) => p.op === 'call' || p.op === 'ts_step'),
    ],
  };
  const table = await measureLatencyTable({ grid, rounds: 5, sampleMs: 0.05 });
  const pkg = latencyGraph(conv);
  const here = tableEstimator(table, 'here').estimate([pkg])[0]!;
  const pi3 = deviceTarget({ className: 'raspberry-pi-3b', reference: table });
  assert.ok(pi3.table !== undefined && pi3.table.source.includes('raspberry-pi-3b'));
  assert.match(pi3.notes.join(' '), /estimated table/);
  const onPi3 = tableEstimator(pi3.table.table, pi3.table.source).estimate([pkg])[0]!;
  assert.ok(onPi3.ms > here.ms, `Pi 3 ${onPi3.ms} ms, here ${here.ms} ms`);
  assert.deepEqual(
    onPi3.layers.map((l) => l.op),
    here.layers.map((l) => l.op),
  );
  assert.throws(() => deviceTarget({ className: 'pdp-11', reference: table }), DeviceClassError);
  // A device's complete table is used; an incomplete one is not (latencies are then measured here).
  const profile = collectDeviceProfile();
  assert.equal(deviceTarget({ device: 'd1', profile, table }).table?.table, table);
  const partial = deviceTarget({ device: 'd1', profile, table: { ...table, complete: false } });
  assert.equal(partial.table, undefined);
  assert.match(partial.notes.join(' '), /measured on this machine/);
});
