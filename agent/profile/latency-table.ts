// A device's latency table: its own kernels timed over a grid of layer shapes and number formats, as the
// runtime fuses and runs them (each grid point is a small runtime graph, latency-graphs.ts, loaded through
// the compile pass and the native execution plan at batch 1). The predictor (optimize/latency/) reads it to
// estimate a whole package's latency on the device; the manager stores it with the device's profile.
//
// How a table is measured: each grid point in a block of its own, one point alive at a time: its graph is
// built, warmed up (a sample's worth of runs), then timed in `rounds` samples of back-to-back runs lasting at
// least SAMPLE_MS each; each point is timed so in PASSES blocks spread over the measurement (blockSchedule),
// its graph built again for each, and its time is the median of its blocks' lower quartiles (latencyStatistic). So an entry is the
// point's warm run, as the agent times a frame (it warms the plan ahead of each frame), and the statistic
// repeats: a preempted or cold sample lands above the quartile. Whole packages are timed the same way
// (timeBlock, latencyStatistic: bench latency), so that table and packages are in one state. Interleaving
// every point with many others (the first version of this table) left each run's caches to its neighbours:
// two runtimes of the same package then disagreed by over 10 % for 30 % of packages (docs/benchmarks.md).
// Entries are reported as they are measured (onEntry), an abort returns what finished (`complete: false`),
// and `resume` skips the entries a partial table already holds.
// Temperatures and clocks (the device profile's) are read before and after, so a throttled measurement shows.
// The default grid also times NETWORKS whole small networks (latency-graphs.ts networkGraph) among the layers:
// the predictor fits its per-model term on them.
//
// A table belongs to one kernel build (build_hash, native addonBuildHash()) and one grid (grid_id, a hash of
// the grid's points): parseLatencyTable refuses one from another build or grid.
import { createHash } from 'node:crypto';

import { activeIsa, addonBuildHash, getThreads } from '../../native/index.js';
import { NUMBER_FORMATS, type NumberFormat } from '../package/manifest.js';
import { Model } from '../runtime/model.js';
import type { TensorData } from '../runtime/tensor.js';
import { latencyGraph, latencyKey, type LatencyPoint, weightDensity } from './latency-graphs.js';
import { collectDeviceProfile } from './profile.js';
import { searchSpaceConvPoints } from './search-space-layers.js';

export {
  LATENCY_OPS,
  latencyKey,
  type LatencyOp,
  type LatencyPoint,
  weightDensity,
} from './latency-graphs.js';

import {
  LATENCY_TABLE_VERSION,
  type LatencyEntry,
  type LatencyTable,
  LatencyTableError,
  parseLatencyTable,
} from './latency-table-schema.js';

export {
  LATENCY_TABLE_VERSION,
  type LatencyEntry,
  LatencyEntrySchema,
  type LatencyTable,
  LatencyTableError,
  LatencyTableSchema,
  parseLatencyTable,
} from './latency-table-schema.js';

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

/** Whole networks in the default grid (seeds 1..NETWORKS). */
export const NETWORKS = 32;

/** The default grid: conv k1/k3/k5 at several widths, resolutions and strides, depthwise k3/k5, fully
 * connected, pools, add / concat / channel shuffle, and the edges (input quantize, output dequantize and
 * softmax, a plan call, a TypeScript step), in every format the runtime runs each in; the NAS search space's
 * conv layers at their exact shapes (search-space-layers.ts) and whole networks (not in the quick grid). */
export function defaultGrid(quick = false): LatencyGrid {
  const points: LatencyPoint[] = [];
  // Small-device shapes: the resolutions a 28-32 px input goes through (28, 14, 7, 4), widths 8-96, each
  // stride; a one-channel stem.
  const convShapes: [size: number, inC: number, outC: number, stride: number][] = quick
    ? [
        [14, 8, 16, 1],
        [7, 32, 32, 2],
      ]
    : [
        [28, 1, 16, 1],
        [28, 8, 16, 1],
        [28, 16, 24, 2],
        [14, 24, 32, 1],
        [14, 32, 48, 2],
        [7, 48, 64, 1],
        [7, 64, 96, 2],
        [4, 96, 96, 1],
        // The smallest planes a 28 px input reaches (7 -> 3 -> 1 through 2x2 pools, 4 -> 2 through a stride),
        // narrow layers (a fire module's squeeze): there a kernel's fixed cost, not its MACs, is the time,
        // and no line through the larger shapes gives it.
        [7, 8, 6, 1],
        [7, 24, 48, 1],
        [4, 32, 48, 2],
        [3, 24, 12, 1],
        [2, 64, 96, 1],
        [1, 48, 24, 1],
        [28, 1, 8, 1],
        [28, 1, 24, 1],
        [28, 1, 8, 2],
        [28, 1, 16, 2],
        [28, 1, 24, 2],
        [14, 16, 8, 1],
        [7, 16, 32, 1],
        [7, 96, 24, 1],
        [4, 48, 64, 1],
        [4, 24, 12, 1],
        [3, 96, 24, 1],
        [2, 24, 48, 1],
        [1, 12, 24, 1],
        [1, 96, 96, 1],
      ];
  for (const kernel of quick ? [1, 3] : [1, 3, 5])
    for (const format of LAYER_FORMATS)
      for (const [size, inC, outC, stride] of convShapes) {
        points.push({ op: 'conv2d', format, kernel, stride, size, inC, outC });
        // The sparse kernels' time follows the nonzeros they read (and not linearly on small planes): the
        // densities pruning by half and by three quarters leave, besides SPARSITY's.
        if (format === 'sparse' && !quick)
          for (const sparsity of [0.5, 0.75])
            points.push({ op: 'conv2d', format, kernel, stride, size, inC, outC, sparsity });
      }
  const dwShapes: [size: number, c: number, stride: number][] = quick
    ? [[14, 16, 1]]
    : [
        [28, 16, 1],
        [28, 16, 2],
        [14, 32, 1],
        [14, 48, 2],
        [7, 64, 1],
        [7, 96, 2],
        [4, 96, 1],
        [4, 64, 2],
        [2, 96, 1],
        [1, 48, 1],
        [14, 24, 1],
        [14, 16, 2],
        [7, 24, 1],
        [7, 32, 2],
        [4, 32, 1],
        [2, 48, 1],
      ];
  for (const kernel of quick ? [3] : [3, 5])
    for (const format of LAYER_FORMATS)
      for (const [size, c, stride] of dwShapes)
        points.push({ op: 'conv2d', format, kernel, stride, size, inC: c, depthwise: true });
  // Grouped 1x1 convs of two channels per group (a ShuffleNet unit's channel split, as the importer builds
  // it): the kernels run once per group, so their time is the groups' calls, not their MACs.
  if (!quick)
    for (const format of ['f32', 'int8'] as const)
      for (const [size, inC] of [
        [14, 16],
        [14, 32],
        [7, 24],
        [7, 64],
        [4, 48],
        [4, 96],
        [2, 64],
        [2, 96],
      ] as const)
        points.push({
          op: 'conv2d',
          format,
          kernel: 1,
          stride: 1,
          size,
          inC,
          outC: inC / 2,
          groups: inC / 2,
        });
  // The search space's own conv layers at their exact shapes (search-space-layers.ts), those not above.
  if (!quick) {
    const keys = new Set(points.map(latencyKey));
    points.push(...searchSpaceConvPoints().filter((p) => !keys.has(latencyKey(p))));
  }
  const fcShapes: [inC: number, outC: number][] = quick
    ? [[256, 64]]
    : [
        [64, 10],
        [256, 64],
        [1024, 128],
        [2048, 512],
      ];
  for (const format of LAYER_FORMATS)
    for (const [inC, outC] of fcShapes) {
      points.push({ op: 'fully_connected', format, inC, outC });
      if (format === 'sparse' && !quick)
        points.push({ op: 'fully_connected', format, inC, outC, sparsity: 0.5 });
    }
  const poolShapes: [size: number, c: number][] = quick
    ? [[16, 16]]
    : [
        [32, 16],
        [16, 32],
        [8, 64],
        [7, 24],
        [3, 48],
      ];
  for (const format of ['f32', 'int8'] as const)
    for (const [size, inC] of poolShapes) {
      points.push({ op: 'max_pool', format, size, inC, kernel: 2, stride: 2 });
      points.push({ op: 'avg_pool', format, size, inC, kernel: 2, stride: 2 });
      points.push({ op: 'global_avgpool', format, size, inC });
    }
  const sizes = quick ? [4096] : [64, 256, 1024, 4096, 16384];
  for (const format of ['f32', 'int8'] as const)
    for (const elements of sizes)
      for (const op of ['add', 'concat', 'channel_shuffle'] as const) points.push({ op, format, elements });
  for (const format of ['f32', 'int8'] as const)
    for (const elements of quick ? [64, 4096] : [64, 1024, 4096, 16384])
      for (const op of ['clip', 'reshape'] as const) points.push({ op, format, elements });
  // The edges: quantize where an int8 part starts, dequantize where it ends (mid-network too), softmax.
  for (const elements of quick ? [64, 3072] : [64, 784, 3072, 12288]) {
    points.push({ op: 'quantize', format: 'int8', elements });
    points.push({ op: 'dequantize', format: 'int8', elements });
  }
  for (const elements of quick ? [10] : [10, 100, 1000])
    points.push({ op: 'softmax', format: 'f32', elements });
  points.push({ op: 'call', format: 'f32' }, { op: 'ts_step', format: 'f32' });
  if (quick) return { name: 'quick', points };
  // Whole small networks (the predictor's per-model term is fitted on them), spread over the grid so that
  // they are timed among layers of every kind, as a package runs among other work.
  const step = points.length / NETWORKS;
  for (let i = NETWORKS - 1; i >= 0; i--)
    points.splice(Math.round(i * step), 0, { op: 'network', format: 'f32', seed: i + 1 });
  return { name: 'default', points };
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

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Milliseconds a sample of one point lasts at least, and samples per point (their lower quartile is the
 * entry). */
export const SAMPLE_MS = 0.2;
export const ROUNDS = 15;
/** Blocks a point is timed in, spread over the measurement (blockSchedule); the entry is the median of their
 * statistics (two: their mean; the statistic of all their samples pooled leans to the faster block, 1.5 % low
 * against the packages). One block's entry moves by a median 3 %, p90 10 %, between two measurements a minute apart
 * (its memory placement, the machine's drift; docs/benchmarks.md): the packages it prices are timed over four
 * runtimes in two passes, and so is each point, over PASSES builds at different moments. */
export const PASSES = 2;

/** The order of a measurement's blocks: point i's block k at position i + k * lag (lag: the points over the
 * passes, rounded up), so that each point's blocks are spread over the run, and entries keep being finished
 * (reported) from the first lag on. */
export function blockSchedule(points: number, passes: number): { point: number; pass: number }[] {
  const lag = Math.ceil(points / passes);
  const order: { point: number; pass: number; at: number }[] = [];
  for (let pass = 0; pass < passes; pass++)
    for (let point = 0; point < points; point++) order.push({ point, pass, at: point + pass * lag });
  return order.sort((a, b) => a.at - b.at || b.pass - a.pass).map(({ point, pass }) => ({ point, pass }));
}

/** The quantile of a block's samples a latency is (latencyStatistic). */
export const LATENCY_QUANTILE = 0.25;

export interface MeasureOptions {
  grid?: LatencyGrid;
  /** Threads of the kernels' pool (default: the pool's current setting). */
  threads?: number;
  /** A partial table of the same grid and build: its entries are kept, not measured again. */
  resume?: LatencyTable;
  /** Called as each entry is measured (done counts the resumed ones too). */
  onEntry?: (entry: LatencyEntry, done: number, total: number) => void;
  signal?: AbortSignal;
  /** Samples per point (default ROUNDS). */
  rounds?: number;
  /** Milliseconds one sample of one point lasts at least (default SAMPLE_MS). */
  sampleMs?: number;
  /** Blocks per point (default PASSES). */
  passes?: number;
  /** Called after each block (passes per point: the measurement's progress in time). */
  onBlock?: () => void;
}

/** A run timed in rounds: `reps` runs per sample (timedRun sets it from a warm-up), ms per run in `samples`. */
export interface TimedRun {
  run: () => void;
  reps: number;
  samples: number[];
}

/** `run` warmed up, with enough runs per sample to last sampleMs. */
export function timedRun(run: () => void, sampleMs: number): TimedRun {
  const t0 = now();
  for (let i = 0; i < 3; i++) run();
  const one = Math.max((now() - t0) / 3, 1e-4);
  return { run, reps: Math.max(1, Math.min(10000, Math.ceil(sampleMs / one))), samples: [] };
}

/** One round: every run's sample, in `order` rotated by `round` so that no run is always first or last. */
export function timeRound(runs: readonly TimedRun[], round: number): void {
  for (let j = 0; j < runs.length; j++) {
    const t = runs[(j + round * 7) % runs.length]!;
    const t0 = now();
    for (let i = 0; i < t.reps; i++) t.run();
    t.samples.push((now() - t0) / t.reps);
  }
}

/** A block: `runs` (one point, or the runtimes of one package) warmed up by a sample's worth of runs each,
 * then timed in `rounds` rounds (timeRound), nothing else in between. */
export function timeBlock(runs: readonly TimedRun[], rounds: number): void {
  for (const t of runs) for (let i = 0; i < t.reps; i++) t.run();
  for (let r = 0; r < rounds; r++) timeRound(runs, r);
}

export const median = (values: readonly number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The p-quantile (nearest rank) of values. */
export function quantile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

/** A latency from a block's samples: their LATENCY_QUANTILE (the table's entries and the packages timed
 * against them take the same statistic). */
export const latencyStatistic = (samples: readonly number[]): number => quantile(samples, LATENCY_QUANTILE);

interface Prepared {
  entry: Omit<LatencyEntry, 'ms' | 'runs'>;
  run: () => void;
}

function fillRandom(view: TensorData): void {
  if (view instanceof Float32Array) for (let i = 0; i < view.length; i++) view[i] = Math.random() * 2 - 1;
  else for (let i = 0; i < view.length; i++) view[i] = Math.floor(Math.random() * 64) - 32;
}

/** Builds a point's graph through the compile pass and the native plan; describes it as the runtime runs it. */
function prepare(point: LatencyPoint, threads: number): Prepared {
  const pkg = latencyGraph(point);
  const model = Model.fromPackage(pkg, { batch: 1, threads });
  for (let k = 0; k < model.manifest.inputs.length; k++) fillRandom(model.inputView(k));
  const network = point.op === 'network';
  const layer = model.layers.find((l) => l.name === 'layer') ?? model.layers[0]!;
  const node = model.manifest.nodes.find((n) => n.name === layer.name)!;
  const fused = node.attrs.min === 0 && (node.op === 'conv2d' || node.op === 'fully_connected');
  const op = network ? 'network' : fused ? `${node.op}+relu` : node.op;
  const { specs } = model;
  const count = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
  const inElements = model.manifest.inputs.reduce((s, i) => s + count(specs[i.tensor]!.shape), 0);
  const outElements = model.manifest.outputs.reduce((s, o) => s + count(specs[o.tensor]!.shape), 0);
  const weights = pkg.manifest.nodes.find((n) => n.name === 'layer')?.inputs[1] ?? -1;
  const density =
    weights < 0 || network ? 1 : weightDensity(pkg.constants[weights], count(specs[weights]!.shape));
  return {
    entry: {
      key: latencyKey(point),
      op,
      format: point.format,
      kernel: network ? '' : layer.kernel,
      shape: { ...point },
      macs: network ? model.layers.reduce((s, l) => s + l.macs, 0) : layer.macs,
      in_elements: inElements,
      out_elements: outElements,
      density,
      weight_bytes: model.weightBytes + model.scratchBytes,
      calls: model.execution.nativeCalls + model.execution.typescriptNodes.length,
    },
    run: model.inPlaceRunner(0),
  };
}

/** Times the grid on this device's kernels (see the file comment). An aborted run returns the entries that
 * finished, `complete: false`. Throws LatencyTableError when `resume` is from another build or grid. */
export async function measureLatencyTable(options: MeasureOptions = {}): Promise<LatencyTable> {
  const grid = options.grid ?? defaultGrid();
  const id = gridId(grid);
  const buildHash = addonBuildHash();
  const threads = options.threads ?? getThreads();
  const rounds = options.rounds ?? ROUNDS;
  const sampleMs = options.sampleMs ?? SAMPLE_MS;
  const passes = options.passes ?? PASSES;
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
  // Each point is timed in `passes` blocks spread in the schedule (blockSchedule), its graph built again for
  // each (another placement in memory, another moment of the machine); an entry is final, and reported, after
  // its last block.
  const earlier = new Map<number, { samples: number[][]; runs: number }>();
  for (const { point, pass } of blockSchedule(todo.length, passes)) {
    if (aborted()) break;
    const prepared = prepare(todo[point]!, threads);
    const timed = timedRun(prepared.run, sampleMs);
    timeBlock([timed], rounds);
    const blocks = earlier.get(point) ?? { samples: [], runs: 0 };
    blocks.samples.push(timed.samples);
    blocks.runs += (timed.samples.length + 1) * timed.reps;
    earlier.set(point, blocks);
    if (pass === passes - 1) {
      const entry: LatencyEntry = {
        ...prepared.entry,
        ms: median(blocks.samples.map(latencyStatistic)),
        block_ms: blocks.samples.map(latencyStatistic),
        runs: blocks.runs,
      };
      earlier.delete(point);
      entries.push(entry);
      options.onEntry?.(entry, entries.length, total);
    }
    options.onBlock?.();
    // Lets an abort (a disconnect, a signal) be seen between blocks.
    await new Promise<void>((resolve) => setImmediate(resolve));
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
