import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Package } from '../../../agent/package/reader.js';
import { latencyGraph } from '../../../agent/profile/latency-graphs.js';
import {
  defaultGrid,
  type LatencyEntry,
  type LatencyPoint,
  latencyStatistic,
  type LatencyTable,
  measureLatencyTable,
  timeBlock,
  timedRun,
} from '../../../agent/profile/latency-table.js';
import { collectDeviceProfile } from '../../../agent/profile/profile.js';
import { Model } from '../../../agent/runtime/model.js';
import { DeviceClassError } from '../../../optimize/latency/device-classes.js';
import {
  costFeatures,
  costModel,
  fitCost,
  LatencyPredictionError,
  perModelTerm,
  predictLatency,
} from '../../../optimize/latency/predictor.js';
import { tableEstimator } from '../../../optimize/plan/estimator.js';
import { deviceTarget } from '../../../optimize/plan/target.js';

/** A grid point's fp32 3x3 conv, as the tests below price and measure it. */
const conv: LatencyPoint = { op: 'conv2d', format: 'f32', kernel: 3, stride: 1, size: 14, inC: 16, outC: 16 };

/** A table of `entries` (synthetic: no measurement behind it). */
const syntheticTable = (isa: string, entries: LatencyEntry[]): LatencyTable => ({
  table_version: 3,
  build_hash: 'x',
  isa,
  threads: 1,
  grid_id: 'g',
  complete: true,
  measured_at: 0,
  conditions: { before: { temps_c: [], freq_khz: [] }, after: { temps_c: [], freq_khz: [] } },
  entries,
});

/** Two tiny packages: a grid point's own graph (an fp32 conv and its fused ReLU) and an int8 one with its
 * edges, predicted from a table and then timed as the table's points are (a block each), within a loose
 * bound. */
test('the predictor is within a loose bound of the measured latency of tiny packages', async () => {
  // Large enough (0.5 M MACs) that a run is not mostly the per-call overhead, whose µs-scale noise made a
  // 16 k-MAC layer fail the bound on a loaded machine.
  const fc: LatencyPoint = { op: 'fully_connected', format: 'int8', inC: 2048, outC: 256 };
  const packages = [latencyGraph(conv), latencyGraph(fc)];
  const grid = {
    name: 'test',
    points: [
      conv,
      { ...conv, size: 7, inC: 32, outC: 32 },
      fc,
      { ...fc, inC: 4096 },
      ...defaultGrid(true).points.filter((p) => p.op === 'call' || p.op === 'ts_step'),
    ],
  };
  const table = await measureLatencyTable({ grid, rounds: 15, sampleMs: 0.05 });
  for (const [i, pkg] of packages.entries()) {
    const prediction = predictLatency(pkg, table);
    const timed = timedRun(Model.fromPackage(pkg, { batch: 1 }).inPlaceRunner(0), 0.05);
    timeBlock([timed], 15);
    const measured = latencyStatistic(timed.samples);
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
  const table = syntheticTable('avx2', []);
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

/** The cost model's fit: non-negative coefficients that recover a cost made of its own features, and a table
 * whose conv entries follow a GEMM kernel's tile padding is priced by that padding, not by MACs alone. */
test("the cost model's fit recovers costs made of its features and prices a kernel's tile padding", () => {
  // ms = 2e-6 * padded MACs + 1e-3 per call: recovered exactly (relative error 0), no coefficient negative.
  const points = [
    [1000, 1, 10, 5, 7],
    [5000, 1, 40, 9, 3],
    [20000, 1, 30, 50, 100],
    [80000, 1, 400, 20, 60],
    [3000, 1, 5, 700, 2],
    [40000, 1, 90, 80, 900],
  ].map((x) => ({ x, ms: 2e-6 * x[0]! + 1e-3 }));
  const fit = fitCost(points, 5);
  assert.ok(fit.every((c) => c >= 0));
  for (const p of points) {
    const ms = fit.reduce((s, c, j) => s + c * p.x[j]!, 0);
    assert.ok(Math.abs(ms - p.ms) / p.ms < 1e-3, `fitted ${ms} ms for ${p.ms} ms`);
  }
  // A cost that falls with a feature cannot be fitted with a negative coefficient: it is clamped at 0.
  const falling = [1, 2, 3, 4].map((v) => ({ x: [v, 1], ms: 10 - v }));
  assert.ok(fitCost(falling, 2).every((c) => c >= 0));
  assert.throws(() => fitCost([], 1), LatencyPredictionError);
});

test('a table of one GEMM kernel predicts the padding of its MR x NR tiles', () => {
  // A synthetic table: fp32 1x1 convs on a 6x32 GEMM microkernel, each timed as 1 ns per padded MAC plus
  // 0.5 us. A layer of 33 output channels pays for 64; one of 32 for 32.
  const kernel = 'native:conv2d_f32 f32_gemm_minmax_ukernel_6x32__avx512';
  const entry = (size: number, inC: number, outC: number): LatencyEntry => {
    const pixels = size * size;
    const padded = Math.ceil(pixels / 6) * 6 * Math.ceil(outC / 32) * 32 * inC;
    return {
      key: `conv2d/f32/k1s1/r${size}/c${inC}-${outC}`,
      op: 'conv2d+relu',
      format: 'f32',
      kernel,
      shape: { op: 'conv2d', format: 'f32', kernel: 1, stride: 1, size, inC, outC },
      macs: pixels * inC * outC,
      in_elements: pixels * inC,
      out_elements: pixels * outC,
      density: 1,
      weight_bytes: 4 * inC * outC,
      calls: 1,
      ms: 1e-6 * padded + 5e-4 + 1e-4,
      runs: 100,
    };
  };
  const table = syntheticTable('avx512', [
    entry(28, 8, 16),
    entry(14, 16, 32),
    entry(7, 32, 48),
    entry(4, 64, 96),
    entry(14, 24, 40),
    entry(7, 16, 8),
    {
      key: 'call/f32',
      op: 'clip',
      format: 'f32',
      kernel: 'native:clamp_f32',
      shape: { op: 'call', format: 'f32' },
      macs: 0,
      in_elements: 1,
      out_elements: 1,
      density: 1,
      weight_bytes: 0,
      calls: 1,
      ms: 1e-4,
      runs: 100,
    },
  ]);
  const model = costModel(table);
  const group = model.groups.get(`conv2d|f32|k1|s1|${kernel}`)!;
  assert.equal(group.length, 6);
  const fit = fitCost(
    group.map((p) => ({ x: p.x!, ms: p.ms })),
    3,
  );
  const price = (size: number, inC: number, outC: number): number => {
    const x = costFeatures({
      outH: size,
      outW: size,
      inC,
      outC,
      stride: 1,
      density: 1,
      kernel,
      macs: size * size * inC * outC,
      inElements: size * size * inC,
    });
    return fit.reduce((s, c, j) => s + c * x[j]!, 0);
  };
  for (const e of table.entries.slice(0, 6)) {
    const { size, inC, outC } = e.shape as { size: number; inC: number; outC: number };
    const want = e.ms - 1e-4;
    assert.ok(
      Math.abs(price(size, inC, outC) - want) / want < 0.02,
      `${e.key}: ${price(size, inC, outC)} ms`,
    );
  }
  // The same MACs, 33 output channels (two 32-wide tiles) against 32: about twice the time, not the same.
  assert.ok(price(4, 32, 33) > 1.6 * price(4, 33, 32), `${price(4, 32, 33)} vs ${price(4, 33, 32)}`);
});

/** The per-model term: a table's networks whose measured times are made (here, synthetically) of the layers'
 * predicted sum scaled by 1.3 plus the run's overhead give the scale, and a network not in the table is then
 * predicted by it; without networks (or with `perModel: false`) the layers' sum is the prediction. */
test('the per-model term is fitted on the table’s networks and used for other packages', async () => {
  const networks = [1, 2, 3, 4, 5, 6, 7, 8].map((seed): LatencyPoint => ({
    op: 'network',
    format: 'f32',
    seed,
  }));
  const grid = { name: 'test', points: [...defaultGrid(true).points, ...networks] };
  const measured = await measureLatencyTable({ grid, rounds: 1, sampleMs: 0.001, passes: 1 });
  const layersOnly: LatencyTable = {
    ...measured,
    entries: measured.entries.filter((e) => e.shape.op !== 'network'),
  };
  assert.equal(perModelTerm(layersOnly), undefined);
  // The synthetic truth of a network: from the layers-only table's prediction (no per-model term there). Its
  // sparse layers' weights are random (a graph's density varies a little from build to build): hence the
  // bounds below.
  const truth = (pkg: Package): number => {
    const base = predictLatency(pkg, layersOnly);
    return 1.3 * (base.ms - base.overhead_ms) + base.overhead_ms;
  };
  const table: LatencyTable = {
    ...measured,
    entries: measured.entries.map((e) =>
      e.shape.op === 'network' ? { ...e, ms: truth(latencyGraph(e.shape)) } : e,
    ),
  };
  assert.equal(table.entries.filter((e) => e.shape.op === 'network').length, 8);
  const scale = perModelTerm(table)!;
  assert.ok(Math.abs(scale - 1.3) < 0.03, `layers scaled by ${scale}`);
  for (const seed of [41, 42]) {
    const point: LatencyPoint = { op: 'network', format: 'f32', seed };
    // The same graph for the truth and the prediction: another build's sparse layers differ a little.
    const pkg = latencyGraph(point);
    const want = truth(pkg);
    const got = predictLatency(pkg, table);
    assert.ok(
      Math.abs(got.ms - want) / want < 0.03,
      `network ${seed}: predicted ${got.ms} ms, want ${want} ms`,
    );
    // Without the term (asked so, or a table without networks), the layers' sum: the term changed it.
    assert.ok(Math.abs(got.ms - predictLatency(pkg, layersOnly).ms) / want > 0.1);
    assert.equal(predictLatency(pkg, table, { perModel: false }).ms, predictLatency(pkg, layersOnly).ms);
    const sum = got.layers.reduce((s, l) => s + l.ms, 0) + got.overhead_ms;
    assert.ok(Math.abs(sum - got.ms) < 1e-9);
  }
});

test('a sparse conv is priced from its own plane’s entries, where time grows faster than the nonzeros', () => {
  // 7x7 k5 sparse entries: 1 ms at density 0.1 and 20 ms at 0.5 (20x the time for 5x the nonzeros).
  const macs = 7 * 7 * 48 * 64 * 25;
  const sparse = (density: number, ms: number): LatencyEntry => {
    const shape: LatencyPoint = {
      op: 'conv2d',
      format: 'sparse',
      kernel: 5,
      stride: 1,
      size: 7,
      inC: 48,
      outC: 64,
      sparsity: 1 - density,
    };
    return {
      key: `conv2d/sparse/k5s1/r7/c48-64/p${Math.round((1 - density) * 100)}`,
      op: 'conv2d+relu',
      format: 'sparse',
      kernel: 'native:sparse_conv2d avx2',
      shape,
      macs,
      in_elements: 7 * 7 * 48,
      out_elements: 7 * 7 * 64,
      density,
      weight_bytes: 0,
      calls: 0,
      ms,
      runs: 10,
    };
  };
  const call = { ...sparse(1, 1e-4), key: 'call/f32', shape: { op: 'call', format: 'f32' } as LatencyPoint };
  const table = syntheticTable('avx2', [sparse(0.1, 1), sparse(0.5, 20), call]);
  const pkg = latencyGraph({
    ...conv,
    format: 'sparse',
    kernel: 5,
    size: 7,
    inC: 64,
    outC: 64,
    sparsity: 0.5,
  });
  const layer = (options = {}): number =>
    predictLatency(pkg, table, options).layers.find((l) => l.op === 'conv2d')!.ms;
  const want = (20 / macs) * 7 * 7 * 64 * 64 * 25;
  assert.ok(Math.abs(layer() - want) / want < 0.15, `${layer()} ms`);
  // Entries of another plane (14x14, near-linear there) in the table do not move it.
  const coarse = syntheticTable('avx2', [
    sparse(0.1, 1),
    sparse(0.5, 20),
    {
      ...sparse(0.1, 1),
      key: 'conv2d/sparse/k5s1/r14/c48-64/p90',
      shape: { ...sparse(0.1, 1).shape, size: 14 },
      out_elements: 14 * 14 * 64,
      macs: 4 * macs,
      ms: 2,
    },
    call,
  ]);
  const plane = predictLatency(pkg, coarse).layers.find((l) => l.op === 'conv2d')!.ms;
  assert.ok(Math.abs(plane - want) / want < 0.15, `${plane} ms`);
});
