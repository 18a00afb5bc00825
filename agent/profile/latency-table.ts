// A device's latency table: its own kernels timed over a grid of layer shapes and number formats, as the
// runtime fuses and runs them (each grid point is a small runtime graph, latency-graphs.ts, loaded through
// the compile pass and the native execution plan at batch 1). The predictor (optimize/latency/) reads it to
// estimate a whole package's latency on the device; the manager stores it with the device's profile.
//
// How a table is measured: the grid is cut into chunks; a chunk's graphs are built, warmed up, and then
// timed in rounds, every round visiting the chunk's points in a rotated order so that drift (another
// process, the clock) spreads over all of them; a point's time is the median of its rounds, each round
// timing enough runs to last SAMPLE_MS. Entries are reported as their chunk finishes (onEntry), an abort
// returns what finished (`complete: false`), and `resume` skips the entries a partial table already holds.
// Temperatures and clocks (the device profile's) are read before and after, so a throttled measurement shows.
//
// A table belongs to one kernel build (build_hash, native addonBuildHash()) and one grid (grid_id, a hash of
// the grid's points): parseLatencyTable refuses one from another build or grid.
import { createHash } from 'node:crypto';

import { z } from 'zod';

import { activeIsa, addonBuildHash, getThreads } from '../../native/index.js';
import { whittleError } from '../../native/whittle-error.js';
import { NUMBER_FORMATS, type NumberFormat } from '../package/manifest.js';
import { Model } from '../runtime/model.js';
import type { TensorData } from '../runtime/tensor.js';
import { LATENCY_OPS, latencyGraph, latencyKey, type LatencyPoint } from './latency-graphs.js';
import { collectDeviceProfile } from './profile.js';

export { LATENCY_OPS, latencyKey, type LatencyOp, type LatencyPoint } from './latency-graphs.js';

export const LATENCY_TABLE_VERSION = 1;

/** A latency table that cannot be used: malformed, another table_version, another kernel build, another grid. */
export class LatencyTableError extends whittleError('LatencyTableError', 'bad-latency-table') {}

const Count = z.number().int().min(0);
const Conditions = z
  .object({ temps_c: z.array(z.number().finite()), freq_khz: z.array(z.number().finite().min(0)) })
  .strict();

const PointSchema = z
  .object({
    op: z.enum(LATENCY_OPS),
    format: z.enum(NUMBER_FORMATS),
    size: Count.optional(),
    inC: Count.optional(),
    outC: Count.optional(),
    kernel: Count.optional(),
    stride: Count.optional(),
    depthwise: z.boolean().optional(),
    elements: Count.optional(),
  })
  .strict();

export const LatencyEntrySchema = z
  .object({
    /** latencyKey(shape): matches grid points and entries. */
    key: z.string().min(1).max(256),
    /** The op as the runtime ran it, after the compile pass: e.g. `conv2d+relu` (the clip fused), `qconv2d`. */
    op: z.string().min(1).max(64),
    format: z.enum(NUMBER_FORMATS),
    /** The kernel the runtime chose (LayerInfo.kernel), e.g. a microkernel name or `reference:conv2d_hashed`. */
    kernel: z.string().max(256),
    shape: PointSchema,
    /** Multiply-accumulates of the layer (0 for the elementwise and edge kinds). */
    macs: Count,
    /** Elements the layer reads (its inputs, activations only) and writes. */
    in_elements: Count,
    out_elements: Count,
    /** Bytes of its weights as the runtime holds them. */
    weight_bytes: Count,
    /** Calls a run makes: native plan calls plus TypeScript steps. */
    calls: Count,
    /** Median milliseconds of one batch-1 run of the graph (its call overhead included). */
    ms: z.number().finite().min(0),
    /** Runs timed in all (rounds × runs per round). */
    runs: z.number().int().min(1),
  })
  .strict();
export type LatencyEntry = z.infer<typeof LatencyEntrySchema>;

export const LatencyTableSchema = z
  .object({
    table_version: z.literal(LATENCY_TABLE_VERSION),
    build_hash: z.string().min(1).max(64),
    isa: z.string().min(1).max(64),
    threads: z.number().int().min(1).max(64),
    grid_id: z.string().min(1).max(64),
    complete: z.boolean(),
    /** ms since the epoch, when the measurement finished (or stopped). */
    measured_at: z.number().int().min(0),
    conditions: z.object({ before: Conditions, after: Conditions }).strict(),
    entries: z.array(LatencyEntrySchema).max(100000),
  })
  .strict();
export type LatencyTable = z.infer<typeof LatencyTableSchema>;

/** A grid: the points to time. Its id (gridId) is a hash of its points. */
export interface LatencyGrid {
  name: string;
  points: readonly LatencyPoint[];
}

/** The grid's id: the first 16 hex digits of the SHA-256 of its points' keys. */
export function gridId(grid: LatencyGrid): string {
  return createHash('sha256').update(grid.points.map(latencyKey).join('\n')).digest('hex').slice(0, 16);
}

/** The formats conv2d and fully_connected are timed in: every number format of the runtime. */
const LAYER_FORMATS: readonly NumberFormat[] = NUMBER_FORMATS;

/** The default grid: conv k1/k3/k5 at several widths, resolutions and strides, depthwise k3/k5, fully
 * connected, pools, add / concat / channel shuffle, and the edges (input quantize, output dequantize and
 * softmax, a plan call, a TypeScript step), in every format the runtime runs each in. */
export function defaultGrid(quick = false): LatencyGrid {
  const points: LatencyPoint[] = [];
  const convShapes: [size: number, inC: number, outC: number, stride: number][] = quick
    ? [
        [16, 8, 16, 1],
        [8, 32, 32, 1],
      ]
    : [
        [32, 8, 16, 1],
        [16, 16, 32, 1],
        [16, 32, 64, 2],
        [8, 32, 64, 1],
        [8, 64, 128, 1],
        [4, 128, 128, 1],
      ];
  for (const kernel of quick ? [1, 3] : [1, 3, 5])
    for (const format of LAYER_FORMATS)
      for (const [size, inC, outC, stride] of convShapes)
        points.push({ op: 'conv2d', format, kernel, stride, size, inC, outC });
  const dwShapes: [size: number, c: number, stride: number][] = quick
    ? [[16, 16, 1]]
    : [
        [32, 16, 1],
        [16, 32, 1],
        [16, 64, 2],
        [8, 128, 1],
      ];
  for (const kernel of quick ? [3] : [3, 5])
    for (const format of LAYER_FORMATS)
      for (const [size, c, stride] of dwShapes)
        points.push({ op: 'conv2d', format, kernel, stride, size, inC: c, depthwise: true });
  const fcShapes: [inC: number, outC: number][] = quick
    ? [[256, 64]]
    : [
        [64, 10],
        [256, 64],
        [1024, 128],
        [2048, 512],
      ];
  for (const format of LAYER_FORMATS)
    for (const [inC, outC] of fcShapes) points.push({ op: 'fully_connected', format, inC, outC });
  const poolShapes: [size: number, c: number][] = quick
    ? [[16, 16]]
    : [
        [32, 16],
        [16, 32],
        [8, 64],
      ];
  for (const format of ['f32', 'int8'] as const)
    for (const [size, inC] of poolShapes) {
      points.push({ op: 'max_pool', format, size, inC, kernel: 2, stride: 2 });
      points.push({ op: 'avg_pool', format, size, inC, kernel: 2, stride: 2 });
      points.push({ op: 'global_avgpool', format, size, inC });
    }
  const sizes = quick ? [4096] : [1024, 4096, 16384];
  for (const format of ['f32', 'int8'] as const)
    for (const elements of sizes)
      for (const op of ['add', 'concat', 'channel_shuffle'] as const) points.push({ op, format, elements });
  for (const elements of quick ? [3072] : [784, 3072, 12288])
    points.push({ op: 'quantize', format: 'int8', elements });
  for (const elements of quick ? [10] : [10, 100, 1000]) {
    points.push({ op: 'dequantize', format: 'int8', elements });
    points.push({ op: 'softmax', format: 'f32', elements });
  }
  points.push({ op: 'call', format: 'f32' }, { op: 'ts_step', format: 'f32' });
  return { name: quick ? 'quick' : 'default', points };
}

/** The device's temperatures (every thermal zone that reads) and current clocks (per CPU, from cpufreq;
 * empty where there is none), from its profile. */
export function conditionsNow(): LatencyTable['conditions']['before'] {
  const profile = collectDeviceProfile();
  return {
    temps_c: profile.thermal.flatMap((zone) => (zone.temp_c === null ? [] : [zone.temp_c])),
    freq_khz: profile.cpu.freq_khz.cur ?? [],
  };
}

export interface MeasureOptions {
  grid?: LatencyGrid;
  /** Threads of the kernels' pool (default: the pool's current setting). */
  threads?: number;
  /** A partial table of the same grid and build: its entries are kept, not measured again. */
  resume?: LatencyTable;
  /** Called as each entry is measured (done counts the resumed ones too). */
  onEntry?: (entry: LatencyEntry, done: number, total: number) => void;
  signal?: AbortSignal;
  /** Rounds per point (the median is taken over them; default 9). */
  rounds?: number;
  /** Milliseconds one round of one point lasts at least (default 1.5). */
  sampleMs?: number;
}

/** Points built, warmed up and timed together. */
const CHUNK = 24;

interface Timed {
  point: LatencyPoint;
  entry: Omit<LatencyEntry, 'ms' | 'runs'>;
  run: () => void;
  reps: number;
  samples: number[];
}

const median = (values: readonly number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function fillRandom(view: TensorData): void {
  if (view instanceof Float32Array) for (let i = 0; i < view.length; i++) view[i] = Math.random() * 2 - 1;
  else for (let i = 0; i < view.length; i++) view[i] = Math.floor(Math.random() * 64) - 32;
}

/** Builds a point's graph through the compile pass and the native plan; describes it as the runtime runs it. */
function prepare(point: LatencyPoint, threads: number): Timed {
  const model = Model.fromPackage(latencyGraph(point), { batch: 1, threads });
  for (let k = 0; k < model.manifest.inputs.length; k++) fillRandom(model.inputView(k));
  const layer = model.layers.find((l) => l.name === 'layer') ?? model.layers[0]!;
  const node = model.manifest.nodes.find((n) => n.name === layer.name)!;
  const fused = node.attrs.min === 0 && (node.op === 'conv2d' || node.op === 'fully_connected');
  const { specs } = model;
  const count = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
  const inElements = model.manifest.inputs.reduce((s, i) => s + count(specs[i.tensor]!.shape), 0);
  const outElements = model.manifest.outputs.reduce((s, o) => s + count(specs[o.tensor]!.shape), 0);
  return {
    point,
    entry: {
      key: latencyKey(point),
      op: fused ? `${node.op}+relu` : node.op,
      format: point.format,
      kernel: layer.kernel,
      shape: { ...point },
      macs: layer.macs,
      in_elements: inElements,
      out_elements: outElements,
      weight_bytes: model.weightBytes + model.scratchBytes,
      calls: model.execution.nativeCalls + model.execution.typescriptNodes.length,
    },
    run: model.inPlaceRunner(0),
    reps: 1,
    samples: [],
  };
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Times the grid on this device's kernels (see the file comment). An aborted run returns the entries that
 * finished, `complete: false`. Throws LatencyTableError when `resume` is from another build or grid. */
export async function measureLatencyTable(options: MeasureOptions = {}): Promise<LatencyTable> {
  const grid = options.grid ?? defaultGrid();
  const id = gridId(grid);
  const buildHash = addonBuildHash();
  const threads = options.threads ?? getThreads();
  const rounds = options.rounds ?? 9;
  const sampleMs = options.sampleMs ?? 1.5;
  const entries: LatencyEntry[] = [];
  if (options.resume !== undefined) {
    const resume = parseLatencyTable(options.resume, { buildHash, gridId: id });
    if (resume.threads !== threads)
      throw new LatencyTableError(
        `the table to resume was measured with ${resume.threads} thread(s); this measurement uses ${threads}`,
      );
    entries.push(...resume.entries);
  }
  const before = conditionsNow();
  const measured = new Set(entries.map((e) => e.key));
  const todo = grid.points.filter((p) => !measured.has(latencyKey(p)));
  const total = entries.length + todo.length;
  const aborted = (): boolean => options.signal?.aborted === true;
  for (let start = 0; start < todo.length && !aborted(); start += CHUNK) {
    const chunk = todo.slice(start, start + CHUNK).map((p) => prepare(p, threads));
    // Warm-up, then enough runs per sample to last sampleMs.
    for (const t of chunk) {
      const t0 = now();
      for (let i = 0; i < 3; i++) t.run();
      const one = Math.max((now() - t0) / 3, 1e-4);
      t.reps = Math.max(1, Math.min(10000, Math.ceil(sampleMs / one)));
    }
    for (let r = 0; r < rounds && !aborted(); r++) {
      for (let j = 0; j < chunk.length; j++) {
        const t = chunk[(j + r * 7) % chunk.length]!;
        const t0 = now();
        for (let i = 0; i < t.reps; i++) t.run();
        t.samples.push((now() - t0) / t.reps);
      }
      // Lets an abort (a disconnect, a signal) be seen between rounds.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (aborted()) break;
    for (const t of chunk) {
      const entry: LatencyEntry = { ...t.entry, ms: median(t.samples), runs: t.samples.length * t.reps };
      entries.push(entry);
      options.onEntry?.(entry, entries.length, total);
    }
  }
  return {
    table_version: LATENCY_TABLE_VERSION,
    build_hash: buildHash,
    isa: activeIsa(),
    threads,
    grid_id: id,
    complete: entries.length === total && !aborted(),
    measured_at: Date.now(),
    conditions: { before, after: conditionsNow() },
    entries,
  };
}

/** Decodes a stored or received table; refuses (LatencyTableError) one that is malformed, of another
 * table_version, measured with another kernel build (`expect.buildHash`) or over another grid
 * (`expect.gridId`), or whose entries repeat a key. */
export function parseLatencyTable(
  value: unknown,
  expect: { buildHash?: string; gridId?: string } = {},
): LatencyTable {
  if (typeof value === 'object' && value !== null && 'table_version' in value) {
    const version = value.table_version;
    if (version !== LATENCY_TABLE_VERSION)
      throw new LatencyTableError(
        `latency table version ${JSON.stringify(version)} cannot be read; this agent reads version ${LATENCY_TABLE_VERSION}`,
      );
  }
  const parsed = LatencyTableSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(table)'}: ${i.message}`)
      .join('; ');
    throw new LatencyTableError(`malformed latency table: ${issues}`);
  }
  const table = parsed.data;
  if (expect.buildHash !== undefined && table.build_hash !== expect.buildHash)
    throw new LatencyTableError(
      `the latency table was measured with kernel build ${table.build_hash}; this device runs build ${expect.buildHash}: measure it again`,
    );
  if (expect.gridId !== undefined && table.grid_id !== expect.gridId)
    throw new LatencyTableError(
      `the latency table is over grid ${table.grid_id}, not the expected grid ${expect.gridId}`,
    );
  const keys = new Set<string>();
  for (const entry of table.entries) {
    if (keys.has(entry.key))
      throw new LatencyTableError(`malformed latency table: entry ${entry.key} appears twice`);
    if (entry.key !== latencyKey(entry.shape))
      throw new LatencyTableError(`malformed latency table: entry ${entry.key} does not match its shape`);
    keys.add(entry.key);
  }
  return table;
}
