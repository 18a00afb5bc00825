import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

import { NUMBER_FORMATS } from '../../../agent/package/manifest.js';
import { packageRoot } from '../../../agent/package-root.js';
import { latencyGraph } from '../../../agent/profile/latency-graphs.js';
import {
  blockSchedule,
  defaultGrid,
  gridId,
  type LatencyGrid,
  type LatencyPoint,
  type LatencyTable,
  LatencyTableError,
  measureLatencyTable,
  NETWORKS,
  parseLatencyTable,
  PASSES,
} from '../../../agent/profile/latency-table.js';
import { Model } from '../../../agent/runtime/model.js';
import { addonBuildHash } from '../../../native/index.js';

/** A few points of different kinds: a fused f32 conv, an int8 conv, a compressed fc, an edge and a plan call. */
const SMALL: LatencyGrid = {
  name: 'small',
  points: [
    { op: 'conv2d', format: 'f32', kernel: 3, stride: 1, size: 8, inC: 8, outC: 8 },
    { op: 'conv2d', format: 'int8', kernel: 1, stride: 1, size: 8, inC: 8, outC: 16 },
    { op: 'fully_connected', format: 'ternary', inC: 64, outC: 16 },
    { op: 'quantize', format: 'int8', elements: 784 },
    { op: 'call', format: 'f32' },
  ],
};
const FAST = { rounds: 3, sampleMs: 0.2 };

let measured: LatencyTable | undefined;
async function smallTable(): Promise<LatencyTable> {
  measured ??= await measureLatencyTable({ grid: SMALL, ...FAST });
  return measured;
}

const refuses = (value: unknown, pattern: RegExp, expect?: { buildHash?: string; gridId?: string }): void => {
  assert.throws(
    () => parseLatencyTable(value, expect),
    (e: Error) => e instanceof LatencyTableError && e.code === 'bad-latency-table' && pattern.test(e.message),
  );
};

test('a measured table describes each point as the runtime ran it, and round-trips through JSON', async () => {
  const table = await smallTable();
  assert.equal(table.complete, true);
  assert.equal(table.build_hash, addonBuildHash());
  assert.equal(table.entries.length, SMALL.points.length);
  const conv = table.entries.find((e) => e.key === 'conv2d/f32/k3s1/r8/c8-8')!;
  assert.equal(conv.op, 'conv2d+relu', 'the ReLU clip is fused by the compile pass');
  assert.equal(conv.macs, 8 * 8 * 8 * 9 * 8);
  assert.equal(conv.calls, 1);
  assert.equal(
    table.entries.find((e) => e.shape.format === 'int8' && e.shape.op === 'conv2d')!.op,
    'qconv2d',
  );
  for (const entry of table.entries) {
    assert.ok(entry.ms > 0 && entry.runs >= 3, `${entry.key}: ${entry.ms} ms over ${entry.runs} runs`);
    // The entry is the median of its PASSES blocks' statistics: between them.
    assert.equal(entry.block_ms?.length, PASSES, entry.key);
    const [low, high] = [Math.min(...entry.block_ms), Math.max(...entry.block_ms)];
    assert.ok(entry.ms >= low && entry.ms <= high, `${entry.key}: ${entry.ms} outside ${low}..${high}`);
  }
  const parsed = parseLatencyTable(JSON.parse(JSON.stringify(table)), {
    buildHash: addonBuildHash(),
    gridId: table.grid_id,
  });
  assert.deepEqual(parsed, table);
});

test('a malformed table, another version, another build and another grid are refused', async () => {
  const table = await smallTable();
  refuses(null, /malformed/);
  for (const version of [1, 2])
    refuses(
      { ...table, table_version: version },
      new RegExp(`version ${version} cannot be read; this agent reads version 3: measure the table again`),
    );
  refuses(
    { ...table, entries: [{ ...table.entries[0], ms: -1 }] },
    /malformed latency table: entries\.0\.ms/,
  );
  refuses({ ...table, extra: 1 }, /malformed/);
  refuses({ ...table, build_hash: undefined }, /build_hash/);
  refuses({ ...table, entries: [table.entries[0], table.entries[0]] }, /appears twice/);
  refuses(
    { ...table, entries: [{ ...table.entries[0]!, key: 'conv2d/f32/k5' }] },
    /does not match its shape/,
  );
  refuses(table, /kernel build .* this device runs build 0000/, { buildHash: '0000' });
  refuses(table, /not the expected grid ffff/, { gridId: 'ffff' });
  await assert.rejects(
    measureLatencyTable({ grid: defaultGrid(true), resume: table, ...FAST }),
    (e: Error) => e instanceof LatencyTableError && /grid/.test(e.message),
  );
});

test("a point's blocks are spread over the measurement, each entry finished after its last", () => {
  for (const [points, passes] of [
    [7, 2],
    [10, 3],
    [1, 2],
    [5, 1],
  ] as const) {
    const order = blockSchedule(points, passes);
    assert.equal(order.length, points * passes);
    for (let point = 0; point < points; point++) {
      const at = order.flatMap((b, i) => (b.point === point ? [i] : []));
      assert.deepEqual(
        at.map((i) => order[i]!.pass),
        Array.from({ length: passes }, (_, k) => k),
        `point ${point}: its blocks in pass order`,
      );
      // Consecutive blocks of a point are the points over the passes apart, or more.
      for (let k = 1; k < at.length; k++)
        assert.ok(
          at[k]! - at[k - 1]! >= Math.ceil(points / passes),
          `point ${point} of ${points}: ${at.join(', ')}`,
        );
    }
  }
});

test('an aborted measurement returns a partial table; resume measures only what is missing', async () => {
  const controller = new AbortController();
  const points = Array.from({ length: 30 }, (_, i) => ({
    op: 'fully_connected' as const,
    format: 'f32' as const,
    inC: 8 + i,
    outC: 4,
  }));
  const grid: LatencyGrid = { name: 'abort', points };
  const partial = await measureLatencyTable({
    grid,
    ...FAST,
    signal: controller.signal,
    onEntry: () => controller.abort(),
  });
  assert.equal(partial.complete, false);
  assert.ok(partial.entries.length > 0 && partial.entries.length < points.length);
  const seen: string[] = [];
  const done = await measureLatencyTable({
    grid,
    ...FAST,
    resume: JSON.parse(JSON.stringify(partial)) as LatencyTable,
    onEntry: (entry) => seen.push(entry.key),
  });
  assert.equal(done.complete, true);
  assert.equal(done.entries.length, points.length);
  assert.equal(seen.length, points.length - partial.entries.length);
  for (const entry of partial.entries) assert.ok(!seen.includes(entry.key), `${entry.key} measured again`);
  assert.deepEqual(done.entries.slice(0, partial.entries.length), partial.entries);
});

test('the grid id changes with the grid and the default grid covers every layer format', () => {
  const grid = defaultGrid();
  assert.notEqual(gridId(grid), gridId(defaultGrid(true)));
  assert.equal(gridId(grid), gridId(defaultGrid()));
  const formats = new Set(grid.points.filter((p) => p.op === 'conv2d').map((p) => p.format));
  for (const f of NUMBER_FORMATS) assert.ok(formats.has(f), f);
  for (const op of ['quantize', 'dequantize', 'softmax', 'call'])
    assert.ok(
      grid.points.some((p) => p.op === op),
      op,
    );
});

test('the default grid times whole networks among its layers; a network entry is the whole run', async () => {
  const points = defaultGrid().points;
  const at = points.flatMap((p, i) => (p.op === 'network' ? [i] : []));
  assert.equal(at.length, NETWORKS);
  assert.equal(new Set(at.map((i) => points[i]!.seed)).size, NETWORKS, 'each network its own seed');
  // Spread over the grid (timed among layers of every kind, over the whole measurement), not bunched.
  const step = points.length / NETWORKS;
  assert.ok(at[0]! < step && at[at.length - 1]! > points.length - 2 * step, `at ${at.join(',')}`);
  const point: LatencyPoint = { op: 'network', format: 'f32', seed: 3 };
  const table = await measureLatencyTable({ grid: { name: 'net', points: [point] }, ...FAST });
  const entry = table.entries[0]!;
  assert.equal(entry.key, 'network/f32/seed3');
  assert.equal(entry.op, 'network');
  const runtime = Model.fromPackage(latencyGraph(point), { batch: 1 });
  assert.ok(runtime.manifest.nodes.length >= 10, 'a stem, three stages and a classifier');
  assert.equal(
    entry.macs,
    runtime.layers.reduce((s, l) => s + l.macs, 0),
  );
  assert.equal(entry.calls, runtime.execution.nativeCalls + runtime.execution.typescriptNodes.length);
  // The same seed builds the same structure; another seed another one.
  const ops = (seed: number): string =>
    latencyGraph({ ...point, seed })
      .manifest.nodes.map((n) => `${n.op}/${n.format}`)
      .join(',');
  assert.equal(ops(3), ops(3));
  assert.notEqual(ops(3), ops(4));
  assert.deepEqual(parseLatencyTable(JSON.parse(JSON.stringify(table))), table);
});

test('whittle-agent latency-table --quick --json measures the small grid and prints a table that parses', () => {
  const run = spawnSync(
    process.execPath,
    [join(packageRoot(), 'bin', 'whittle-agent.js'), 'latency-table', '--quick', '--json'],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(run.status, 0, run.stderr);
  const table = parseLatencyTable(JSON.parse(run.stdout), { buildHash: addonBuildHash() });
  assert.equal(table.complete, true);
  assert.equal(table.entries.length, defaultGrid(true).points.length);
  const bad = spawnSync(
    process.execPath,
    [join(packageRoot(), 'bin', 'whittle-agent.js'), 'latency-table', '--threads', '0'],
    { encoding: 'utf8' },
  );
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--threads must be an integer/);
});
