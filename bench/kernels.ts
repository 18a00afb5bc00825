// `npm run bench -- kernels [--json]`: Whittle's layer kernels against ONNX Runtime on the shapes of
// bench/shapes.json, per number format and thread count, in one run.
//
// Timing: each implementation of a (shape, threads) pair is warmed up and calibrated to a batch of calls
// lasting about `batchMs`; then `rounds` rounds time one batch of each implementation at each thread count in
// turn (ours and ONNX Runtime's, 1 and 2 threads, interleaved, so a noisy neighbour slows all alike), and each
// figure is the median per-call time over the rounds. A call includes what a user pays for it: the N-API call for ours, session.run (tensor
// wrapping, the promise) for ONNX Runtime. ONNX Runtime's kernel-only time comes from its own profiler.
//
// Formats: fp32 and int8 from native/index.ts, the compressed ones from native/formats.ts (built by
// bench/format-layers.ts from the same fp32 weights). A format whose kernel refuses a shape is listed in
// `skipped` with the kernel's message, never given a figure.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

import * as ort from 'onnxruntime-node';

import { packageRoot } from '../agent/package-root.js';
import {
  type Conv2dF32Args,
  type Conv2dInt8Args,
  type CpuFeatures,
  cpuFeatures,
  createConv2dF32,
  createConv2dInt8,
  createFullyConnectedF32,
  createFullyConnectedInt8,
  type FullyConnectedF32Args,
  type FullyConnectedInt8Args,
  getThreads,
  type PackedLayer,
  setThreads,
} from '../native/index.js';
import { WhittleError } from '../native/whittle-error.js';
import { type FormatBenchLayer, formatLayers } from './format-layers.js';
import { type BenchShape, conv2dDims, fullyConnectedDims, macs, readShapes } from './kernel-shapes.js';
import {
  fp32LayerModel,
  int8QdqLayerModel,
  onnxDims,
  openOrtLayer,
  type OrtLayer,
  ortSessionOptions,
  quantizedKernel,
  seededRandom,
} from './onnx-layers.js';
import {
  type CoreModel,
  coreModel,
  type Format,
  FORMATS,
  measureClockHz,
  opsPerCycle,
  PEAK_FORMULA,
} from './peak.js';
import {
  loadXnnpackPeer,
  xnnpackAgreement,
  type XnnpackLayer,
  type XnnpackPeer,
  XnnpackPeerError,
} from './xnnpack-peer.js';

export interface KernelBenchOptions {
  shapes: BenchShape[];
  /** Thread counts to run each shape with (ours: setThreads; ONNX Runtime: intraOpNumThreads). */
  threads: number[];
  /** Timed rounds per (shape, threads); figures are medians over them. */
  rounds: number;
  /** Milliseconds one timed batch of calls should last. */
  batchMs: number;
  /** Calls of ONNX Runtime profiled for its kernel-only time (0 = skip). */
  profileRuns: number;
  signal?: AbortSignal;
  onProgress?: (line: string) => void;
}

export interface KernelBenchRow {
  shape: string;
  format: Format;
  threads: number;
  /** The microkernel our layer dispatched to. */
  kernel: string | null;
  /** Median microseconds per call, call overhead included. */
  us: number;
  /** Operations per second / 1e9: 2 per multiply-accumulate (binary formats: binary operations). */
  gops: number;
  /** Our throughput / ONNX Runtime's on the same layer and thread count, same run. */
  vs_ort_int8: number;
  vs_ort_fp32: number;
  /** The same ratios against ONNX Runtime's kernel-only time (its profiler; no session.run overhead), ours
   * still with the N-API call: null when not profiled. */
  vs_ort_int8_kernel_only: number | null;
  vs_ort_fp32_kernel_only: number | null;
  /** XNNPACK's time / ours on the same layer, input and thread count, same run (fp32: its f32 operator; int8:
   * qc8, or qs8 for fully-connected layers), XNNPACK timed in a loop in C at one thread. null: the format has
   * no XNNPACK peer, threads > 1, the peer is not built (machine.xnnpack says why), or XNNPACK failed or
   * disagreed (its row in `xnnpack` has the error). */
  vs_xnnpack: number | null;
  /** gops / this core's peak for the format at `threads` cores. */
  peak_fraction: number;
}

export interface OrtRow {
  shape: string;
  threads: number;
  fp32_us: number;
  int8_us: number;
  fp32_gops: number;
  int8_gops: number;
  /** Kernel-only microseconds from ONNX Runtime's profiler (median over profileRuns), null if not profiled. */
  fp32_kernel_us: number | null;
  int8_kernel_us: number | null;
  /** What ONNX Runtime ran for the QDQ model: QLinearConv / QLinearMatMul, or null if it did not fuse. */
  int8_kernel: string | null;
  fp32_ops: string[];
  int8_ops: string[];
}

/** XNNPACK on one layer, precision and thread count: its time, or the error that kept it from being timed
 * (XNNPACK refused the layer, or its output disagreed with ours). */
export interface XnnpackRow {
  shape: string;
  format: 'fp32' | 'int8';
  threads: number;
  /** The XNNPACK operator, e.g. convolution2d_nhwc_qc8; null if it could not be created. */
  operator: string | null;
  /** Median microseconds per run (timed in a loop in C: no call overhead); null on error. */
  us: number | null;
  gops: number | null;
  /** Median microseconds per run when each run is its own Node-API call from JavaScript, as ours are timed
   * (a bare call: no arguments to check, no copies); us_js_call - us is about what a call costs. */
  us_js_call: number | null;
  /** Largest |XNNPACK - Whittle| over the layer's output, checked before timing; null if not compared. */
  max_abs_diff: number | null;
  error: string | null;
}

export interface TargetCheck {
  target: string;
  shape: string;
  format: Format;
  measured: number | null;
  required: number;
  met: boolean | null;
}

export interface KernelBenchReport {
  machine: {
    cpu: string;
    core: string;
    logical_cpus: number;
    isa: string;
    isas_supported: string[];
    features: string[];
    threads: number[];
    clock_ghz: number;
    commit: string;
    node: string;
    onnxruntime_node: string;
    /** The libxnnpack-dev version the peer runs, or why there is no XNNPACK peer in this report. */
    xnnpack: { built: true; version: string } | { built: false; reason: string };
  };
  peak: { formula: string; ops_per_cycle: Record<Format, number> };
  timing: { rounds: number; batch_ms: number; statistic: string };
  results: KernelBenchRow[];
  ort: OrtRow[];
  /** Empty when the XNNPACK peer is not built. */
  xnnpack: XnnpackRow[];
  /** Formats not measured on a shape, with the reason (never a made-up figure). */
  skipped: { format: Format; shape: string; reason: string }[];
  targets: TargetCheck[];
}

/** The benchmark was aborted through its AbortSignal. */
export class KernelBenchAbortedError extends WhittleError {
  override readonly name = 'KernelBenchAbortedError';
  readonly code = 'aborted';
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One implementation of a layer (or a model), timed as a batch of `reps` calls. */
export interface Contender {
  id: string;
  /** Runs `reps` calls and returns microseconds per call. */
  batch: (reps: number) => Promise<number>;
  reps: number;
  samplesUs: number[];
}

/** A contender whose calls are made from JavaScript, each timed with what a user pays for it: a synchronous
 * call (a native layer's `run`) is not awaited, since its caller would not await it either; an asynchronous one
 * (ONNX Runtime's `session.run`) is. */
export function jsContender(id: string, call: () => void | Promise<void>): Contender {
  return {
    id,
    batch: async (reps) => {
      const start = performance.now();
      for (let i = 0; i < reps; i++) {
        const pending = call();
        if (pending !== undefined) await pending;
      }
      return ((performance.now() - start) * 1000) / reps;
    },
    reps: 1,
    samplesUs: [],
  };
}

export async function timeBatch(c: Contender): Promise<number> {
  return c.batch(c.reps);
}

/** Warms up and finds how many calls fill one batch of `batchMs`. */
export async function calibrate(c: Contender, batchMs: number): Promise<void> {
  await c.batch(5);
  let reps = 1;
  for (;;) {
    const elapsed = ((await c.batch(reps)) * reps) / 1000;
    if (elapsed >= batchMs / 4 || reps >= 1 << 20) {
      c.reps = Math.max(1, Math.round((reps * batchMs) / Math.max(elapsed, 1e-3)));
      return;
    }
    reps *= 4;
  }
}

function commit(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=12'], {
      cwd: packageRoot(),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

function onnxruntimeVersion(): string {
  try {
    const manifest = execFileSync(
      process.execPath,
      [
        '-p',
        `require(${JSON.stringify(join(packageRoot(), 'node_modules/onnxruntime-node/package.json'))}).version`,
      ],
      { encoding: 'utf8' },
    );
    return manifest.trim();
  } catch {
    return 'unknown';
  }
}

/** The arguments of a shape's fp32 and int8 layers: Whittle's and XNNPACK's are built from the same ones. */
type LayerArgs =
  | { kind: 'conv2d'; fp32: Conv2dF32Args; int8: Conv2dInt8Args & { activations: 'int8' } }
  | {
      kind: 'fullyConnected';
      fp32: FullyConnectedF32Args;
      int8: FullyConnectedInt8Args & { activations: 'int8' };
    };

export interface OurLayers {
  args: LayerArgs;
  fp32: PackedLayer<Float32Array>;
  int8: PackedLayer<Int8Array>;
  f32Weights: Float32Array;
  fp32Input: Float32Array;
  fp32Output: Float32Array;
  int8Input: Int8Array;
  int8Output: Int8Array;
}

/** Our fp32 and int8 layers for a shape, with random weights (fixed seed) and NHWC buffers. */
export function ourLayers(shape: BenchShape, seed: number): OurLayers {
  const random = seededRandom(seed);
  const outChannels = shape.kind === 'fullyConnected' ? shape.outChannels : shape.outputChannels;
  const weightCount =
    shape.kind === 'fullyConnected'
      ? shape.inChannels * shape.outChannels
      : shape.outputChannels * shape.kernel * shape.kernel * (shape.inputChannels / shape.groups);
  const f32Weights = Float32Array.from({ length: weightCount }, () => random() - 0.5);
  const f32Bias = Float32Array.from({ length: outChannels }, () => random() - 0.5);
  const s8Weights = Int8Array.from({ length: weightCount }, () => Math.floor(random() * 255) - 127);
  const quantization = {
    activations: 'int8' as const,
    inputZeroPoint: 0,
    outputZeroPoint: 0,
    // A realistic requantization: acc × 0.5 × 2^-8 per channel.
    multipliers: new Int32Array(outChannels).fill(1 << 30),
    shifts: new Int32Array(outChannels).fill(-8),
    bias: Int32Array.from({ length: outChannels }, () => Math.floor(random() * 2000) - 1000),
  };
  let args: LayerArgs;
  let fp32: PackedLayer<Float32Array>;
  let int8: PackedLayer<Int8Array>;
  if (shape.kind === 'fullyConnected') {
    const dims = fullyConnectedDims(shape);
    args = {
      kind: shape.kind,
      fp32: { ...dims, weights: f32Weights, bias: f32Bias },
      int8: { ...dims, ...quantization, weights: s8Weights },
    };
    fp32 = createFullyConnectedF32(args.fp32);
    int8 = createFullyConnectedInt8(args.int8);
  } else {
    const dims = conv2dDims(shape);
    args = {
      kind: shape.kind,
      fp32: { ...dims, weights: f32Weights, bias: f32Bias },
      int8: { ...dims, ...quantization, weights: s8Weights },
    };
    fp32 = createConv2dF32(args.fp32);
    int8 = createConv2dInt8(args.int8);
  }
  const inputLength = fp32.inputLength;
  return {
    args,
    fp32,
    int8,
    f32Weights,
    fp32Input: Float32Array.from({ length: inputLength }, () => random() * 2 - 1),
    fp32Output: new Float32Array(fp32.outputLength),
    int8Input: Int8Array.from({ length: inputLength }, () => Math.floor(random() * 256) - 128),
    int8Output: new Int8Array(int8.outputLength),
  };
}

/** ONNX Runtime's own time for the layer's node(s), from its profiler: median over `runs` calls. */
async function ortKernelUs(
  modelBytes: Uint8Array,
  input: Float32Array | Uint8Array,
  dims: number[],
  threads: number,
  runs: number,
): Promise<number | null> {
  if (runs <= 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'whittle-ort-profile-'));
  try {
    const session = await ort.InferenceSession.create(modelBytes, {
      ...ortSessionOptions(threads),
      enableProfiling: true,
      profileFilePrefix: join(dir, 'profile'),
    });
    const feeds = { x: new ort.Tensor(input instanceof Float32Array ? 'float32' : 'uint8', input, dims) };
    for (let i = 0; i < runs + 5; i++) await session.run(feeds);
    session.endProfiling();
    await session.release();
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (file === undefined) return null;
    const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      cat?: string;
      name?: string;
      dur?: number;
    }[];
    // One "model_run" event per run; the node events of a run are its "<node>_kernel_time" entries.
    const runs_ = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
    const kernels = events.filter((e) => e.cat === 'Node' && (e.name ?? '').endsWith('_kernel_time'));
    if (runs_.length === 0 || kernels.length === 0) return null;
    const perRun = kernels.length / runs_.length;
    const totals: number[] = [];
    for (let r = 5; r < runs_.length; r++) {
      let sum = 0;
      for (let k = 0; k < perRun; k++) sum += kernels[r * perRun + k]?.dur ?? 0;
      totals.push(sum);
    }
    return median(totals);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** XNNPACK on one precision of a shape: the layer to time, or null with the error that kept it out. */
interface XnnpackSide {
  format: 'fp32' | 'int8';
  /** What the timing needs of the layer (its run was checked in xnnpackSides). */
  layer: Pick<XnnpackLayer<Float32Array>, 'time' | 'call' | 'dispose'> | null;
  operator: string | null;
  maxAbsDiff: number | null;
  error: string | null;
}

/** XNNPACK's fp32 and int8 layers for a shape, built from the arguments of ours and checked
 * against ours on the same input before any timing; a layer XNNPACK refuses, or whose output disagrees, is
 * kept as an error (and disposed). */
function xnnpackSides(peer: XnnpackPeer, ours: OurLayers): XnnpackSide[] {
  const side = <T extends Float32Array | Int8Array>(
    format: 'fp32' | 'int8',
    create: () => XnnpackLayer<T>,
    our: { run(input: T, output: T): void },
    input: T,
    output: T,
    makeOutput: (length: number) => T,
  ): XnnpackSide => {
    let layer: XnnpackLayer<T>;
    try {
      layer = create();
    } catch (error) {
      if (!(error instanceof XnnpackPeerError)) throw error;
      return { format, layer: null, operator: null, maxAbsDiff: null, error: error.message };
    }
    const theirs = makeOutput(layer.outputLength);
    layer.run(input, theirs);
    our.run(input, output);
    const { maxAbsDiff, mismatch } = xnnpackAgreement(output, theirs);
    if (mismatch !== null) layer.dispose();
    return {
      format,
      layer: mismatch === null ? layer : null,
      operator: layer.operator,
      maxAbsDiff: Number.isNaN(maxAbsDiff) ? null : maxAbsDiff,
      error: mismatch,
    };
  };
  const { args } = ours;
  return [
    side(
      'fp32',
      () => (args.kind === 'conv2d' ? peer.conv2dF32(args.fp32) : peer.fullyConnectedF32(args.fp32)),
      ours.fp32,
      ours.fp32Input,
      ours.fp32Output,
      (n) => new Float32Array(n),
    ),
    side(
      'int8',
      () => (args.kind === 'conv2d' ? peer.conv2dInt8(args.int8) : peer.fullyConnectedInt8(args.int8)),
      ours.int8,
      ours.int8Input,
      ours.int8Output,
      (n) => new Int8Array(n),
    ),
  ];
}

/** Runs the benchmark; see the header of this file. */
export async function runKernelBench(options: KernelBenchOptions): Promise<KernelBenchReport> {
  const log = options.onProgress ?? (() => undefined);
  const cpu: CpuFeatures = cpuFeatures();
  const model: CoreModel = coreModel(cpu);
  log('measuring the clock (bench/clock.c)');
  const clockHz = measureClockHz();
  const opsPerCycleByFormat = Object.fromEntries(FORMATS.map((f) => [f, opsPerCycle(model, f)])) as Record<
    Format,
    number
  >;
  const skipped: { format: Format; shape: string; reason: string }[] = [];

  const results: KernelBenchRow[] = [];
  const ortRows: OrtRow[] = [];
  const xnnpackRows: XnnpackRow[] = [];
  const xnnpackPeer = loadXnnpackPeer();
  if ('missing' in xnnpackPeer)
    log(`no XNNPACK peer (the vs_xnnpack column is left out): ${xnnpackPeer.missing}`);
  const savedThreads = getThreads();
  try {
    for (const [index, shape] of options.shapes.entries()) {
      const seed = 1000 + index;
      const ours = ourLayers(shape, seed);
      const dims = onnxDims(shape);
      const random = seededRandom(seed + 7);
      const ortF32Input = Float32Array.from({ length: ours.fp32Input.length }, () => random() * 2 - 1);
      const ortU8Input = Uint8Array.from({ length: ours.fp32Input.length }, () => Math.floor(random() * 256));
      const fp32Model = fp32LayerModel(shape, seed);
      const int8Model = int8QdqLayerModel(shape, seed);
      const opsPerRun = 2 * macs(shape);
      const formats: FormatBenchLayer[] = [];
      for (const build of formatLayers(shape, ours.f32Weights, seed + 13)) {
        if ('skipped' in build)
          skipped.push({ format: build.format, shape: shape.name, reason: build.skipped });
        else formats.push(build);
      }
      // Every thread count's contenders are timed in the same rounds (the thread count changes within a
      // round), so the 1- and 2-thread figures see the same neighbours on this shared machine and their ratio
      // is not skewed by a noisy minute that only one of them ran in.
      const perThreads: {
        threads: number;
        ortF32: OrtLayer;
        ortS8: OrtLayer;
        xnnpack: XnnpackSide[];
        contenders: Contender[];
      }[] = [];
      try {
        for (const threads of options.threads) {
          setThreads(threads);
          const ortF32: OrtLayer = await openOrtLayer(fp32Model, ortF32Input, dims.input, threads);
          const ortS8: OrtLayer = await openOrtLayer(int8Model, ortU8Input, dims.input, threads);
          // XNNPACK runs at one thread: with a thread pool of its own beside ours on a busy machine, its
          // 2-thread runs were mostly waits for a core.
          const xnnpack = 'missing' in xnnpackPeer || threads !== 1 ? [] : xnnpackSides(xnnpackPeer, ours);
          const contenders: Contender[] = [
            jsContender('fp32', () => ours.fp32.run(ours.fp32Input, ours.fp32Output)),
            jsContender('int8', () => ours.int8.run(ours.int8Input, ours.int8Output)),
            jsContender('ort-fp32', async () => {
              await ortF32.session.run(ortF32.feeds);
            }),
            jsContender('ort-int8', async () => {
              await ortS8.session.run(ortS8.feeds);
            }),
            ...formats.map((f) => jsContender(f.format, () => f.layer.run(f.input, f.output))),
            // XNNPACK's runs are looped in C (its own time, no call overhead), on the input it was checked on.
            ...xnnpack.flatMap(({ format, layer }): Contender[] =>
              layer === null
                ? []
                : [
                    {
                      id: `xnnpack-${format}`,
                      batch: (reps) => Promise.resolve(layer.time(reps)),
                      reps: 1,
                      samplesUs: [],
                    },
                    jsContender(`xnnpack-${format}-js-call`, () => layer.call()),
                  ],
            ),
          ];
          perThreads.push({ threads, ortF32, ortS8, xnnpack, contenders });
          for (const c of contenders) await calibrate(c, options.batchMs);
        }
        for (let round = 0; round < options.rounds; round++) {
          for (let t = 0; t < perThreads.length; t++) {
            if (options.signal?.aborted) throw new KernelBenchAbortedError('kernel benchmark aborted');
            // Rotate the thread counts and the contenders each round so no contender always runs right after
            // another's cache footprint or thread count.
            const { threads, contenders } = perThreads[(round + t) % perThreads.length]!;
            setThreads(threads);
            for (let k = 0; k < contenders.length; k++) {
              const c = contenders[(round + k) % contenders.length]!;
              c.samplesUs.push(await timeBatch(c));
            }
          }
        }
        for (const { threads, ortF32, ortS8, xnnpack, contenders } of perThreads) {
          setThreads(threads);
          const us = (id: string): number => median(contenders.find((c) => c.id === id)?.samplesUs ?? []);
          const ortFp32Us = us('ort-fp32');
          const ortInt8Us = us('ort-int8');
          const gopsOf = (micros: number): number => opsPerRun / (micros * 1e3);
          const ortFp32KernelUs = await ortKernelUs(
            fp32Model,
            ortF32Input,
            dims.input,
            threads,
            options.profileRuns,
          );
          const ortInt8KernelUs = await ortKernelUs(
            int8Model,
            ortU8Input,
            dims.input,
            threads,
            options.profileRuns,
          );
          for (const [format, layer] of [
            ['fp32', ours.fp32],
            ['int8', ours.int8],
            ...formats.map((f) => [f.format, f.layer]),
          ] as [Format, { readonly kernel: string | null }][]) {
            const micros = us(format);
            const gops = gopsOf(micros);
            const xnnpackUs =
              xnnpack.find((x) => x.format === format && x.layer !== null) === undefined
                ? null
                : us(`xnnpack-${format}`);
            results.push({
              shape: shape.name,
              format,
              threads,
              kernel: layer.kernel,
              us: micros,
              gops,
              vs_ort_int8: ortInt8Us / micros,
              vs_ort_fp32: ortFp32Us / micros,
              vs_ort_int8_kernel_only: ortInt8KernelUs === null ? null : ortInt8KernelUs / micros,
              vs_ort_fp32_kernel_only: ortFp32KernelUs === null ? null : ortFp32KernelUs / micros,
              vs_xnnpack: xnnpackUs === null ? null : xnnpackUs / micros,
              peak_fraction: (gops * 1e9) / (clockHz * opsPerCycleByFormat[format] * threads),
            });
          }
          ortRows.push({
            shape: shape.name,
            threads,
            fp32_us: ortFp32Us,
            int8_us: ortInt8Us,
            fp32_gops: gopsOf(ortFp32Us),
            int8_gops: gopsOf(ortInt8Us),
            fp32_kernel_us: ortFp32KernelUs,
            int8_kernel_us: ortInt8KernelUs,
            int8_kernel: quantizedKernel(ortS8.optimizedOps),
            fp32_ops: ortF32.optimizedOps,
            int8_ops: ortS8.optimizedOps,
          });
          for (const x of xnnpack) {
            const micros = x.layer === null ? null : us(`xnnpack-${x.format}`);
            xnnpackRows.push({
              shape: shape.name,
              format: x.format,
              threads,
              operator: x.operator,
              us: micros,
              gops: micros === null ? null : gopsOf(micros),
              us_js_call: x.layer === null ? null : us(`xnnpack-${x.format}-js-call`),
              max_abs_diff: x.maxAbsDiff,
              error: x.error,
            });
          }
        }
      } finally {
        for (const { ortF32, ortS8, xnnpack } of perThreads) {
          await ortF32.session.release();
          await ortS8.session.release();
          for (const x of xnnpack) x.layer?.dispose();
        }
      }
      log(`${shape.name}: threads ${options.threads.join(', ')} done`);
      ours.fp32.dispose();
      ours.int8.dispose();
      for (const f of formats) f.layer.dispose();
    }
  } finally {
    setThreads(savedThreads);
  }

  const features = Object.entries(cpu.features)
    .filter(([, on]) => on)
    .map(([name]) => name);
  return {
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      core: model.name,
      logical_cpus: cpus().length,
      isa: cpu.selected,
      isas_supported: cpu.supported,
      features,
      threads: options.threads,
      clock_ghz: clockHz / 1e9,
      commit: commit(),
      node: process.version,
      onnxruntime_node: onnxruntimeVersion(),
      xnnpack:
        'missing' in xnnpackPeer
          ? { built: false, reason: xnnpackPeer.missing }
          : { built: true, version: xnnpackPeer.version },
    },
    peak: { formula: PEAK_FORMULA, ops_per_cycle: opsPerCycleByFormat },
    timing: {
      rounds: options.rounds,
      batch_ms: options.batchMs,
      statistic:
        'median per-call time over rounds; ours and ONNX Runtime, and every thread count, interleaved in each round; call overhead included',
    },
    results,
    ort: ortRows,
    xnnpack: xnnpackRows,
    skipped,
    targets: checkTargets(results, options.shapes),
  };
}

/** The issue's figures, single thread unless stated; null = not measured in this run. */
export function checkTargets(results: KernelBenchRow[], shapes: BenchShape[]): TargetCheck[] {
  const row = (shape: string, format: Format, threads: number): KernelBenchRow | undefined =>
    results.find((r) => r.shape === shape && r.format === format && r.threads === threads);
  const check = (
    target: string,
    shape: string,
    format: Format,
    measured: number | undefined,
    required: number,
  ): TargetCheck => ({
    target,
    shape,
    format,
    measured: measured ?? null,
    required,
    met: measured === undefined ? null : measured >= required,
  });
  const checks: TargetCheck[] = [];
  for (const s of shapes) {
    checks.push(
      check('int8 >= 1.0x ONNX Runtime int8', s.name, 'int8', row(s.name, 'int8', 1)?.vs_ort_int8, 1),
    );
    checks.push(
      check('fp32 >= 0.5x ONNX Runtime fp32', s.name, 'fp32', row(s.name, 'fp32', 1)?.vs_ort_fp32, 0.5),
    );
  }
  for (const s of shapes)
    for (const format of ['fp32', 'int8'] as const)
      checks.push(
        check('>= 1.0x XNNPACK', s.name, format, row(s.name, format, 1)?.vs_xnnpack ?? undefined, 1),
      );
  for (const s of shapes) {
    // Dense 3x3 and 1x1 convolutions (depthwise ones have their own target below).
    if (s.kind !== 'conv2d' || s.groups !== 1 || (s.kernel !== 1 && s.kernel !== 3)) continue;
    const xnor = row(s.name, 'xnor', 1);
    const int8 = row(s.name, 'int8', 1);
    checks.push(
      check('xnor >= 3x our int8', s.name, 'xnor', xnor && int8 ? int8.us / xnor.us : undefined, 3),
    );
  }
  // Issue 15 item 9: XNOR depthwise (one channel per group, packed across the groups and counted bit-sliced,
  // xnor_conv2d_drive_single_bit) no slower than int8 depthwise.
  for (const s of shapes) {
    if (s.kind !== 'conv2d' || s.groups === 1 || s.groups !== s.inputChannels) continue;
    const xnor = row(s.name, 'xnor', 1);
    const int8 = row(s.name, 'int8', 1);
    checks.push(
      check(
        'xnor depthwise >= 1.0x our int8',
        s.name,
        'xnor',
        xnor && int8 ? int8.us / xnor.us : undefined,
        1,
      ),
    );
  }
  // Issue 15 item 9: the ternary and codebook layers of an int8 package run on the int8 operators over their
  // expanded weights, so they are as fast as int8 (the 5 % allowance is the timing noise of a shared machine).
  for (const s of shapes) {
    const int8 = row(s.name, 'int8', 1);
    for (const format of ['ternary-int8', 'codebook-int8'] as const) {
      const r = row(s.name, format, 1);
      checks.push(
        check(`${format} >= 0.95x our int8`, s.name, format, r && int8 ? int8.us / r.us : undefined, 0.95),
      );
    }
  }
  const vgg = shapes.find((s) => s.name.startsWith('vgg'));
  if (vgg)
    for (const format of ['fp32', 'int8'] as Format[]) {
      const one = row(vgg.name, format, 1);
      const two = row(vgg.name, format, 2);
      checks.push(
        check('2 threads >= 1.7x 1 thread', vgg.name, format, one && two ? one.us / two.us : undefined, 1.7),
      );
    }
  return checks;
}

const fixed = (n: number, digits: number): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/** The report as a plain-text table (what `npm run bench -- kernels` prints). */
export function formatKernelTable(report: KernelBenchReport): string {
  const m = report.machine;
  // Without the XNNPACK peer its column is left out, and the header says why.
  const xnnpackColumn = (cells: string[]): string[] => (m.xnnpack.built ? cells : []);
  const lines: string[] = [
    `kernels: ${m.cpu} (${m.core}), ${m.logical_cpus} logical CPUs, ISA ${m.isa}, clock ${m.clock_ghz.toFixed(2)} GHz (measured), threads ${m.threads.join(',')}, commit ${m.commit}, node ${m.node}, onnxruntime-node ${m.onnxruntime_node}`,
    `timing: ${report.timing.statistic}; ${report.timing.rounds} rounds of ~${report.timing.batch_ms} ms batches`,
    m.xnnpack.built
      ? `xnnpack: libxnnpack-dev ${m.xnnpack.version}, 1 thread, runs timed in a loop in C (no call overhead, unlike ours); x XNNPACK = its time / ours (int8: qc8 convolutions, qs8 per-tensor fully-connected)`
      : `xnnpack: no XNNPACK column: ${m.xnnpack.reason}`,
    `peak: ${report.peak.formula}`,
    `peak ops/cycle: ${Object.entries(report.peak.ops_per_cycle)
      .map(([f, n]) => `${f} ${n}`)
      .join(', ')}`,
    '',
  ];
  const header = [
    'shape',
    'format',
    'thr',
    'us/call',
    'GOPS',
    'x ORT int8',
    'x ORT fp32',
    'x ORT int8 kern',
    'x ORT fp32 kern',
    ...xnnpackColumn(['x XNNPACK']),
    'peak %',
    'kernel',
  ];
  const ratio = (n: number | null): string => (n === null ? '-' : fixed(n, 2));
  const rows = report.results.map((r) => [
    r.shape,
    r.format,
    String(r.threads),
    fixed(r.us, 1),
    fixed(r.gops, 2),
    fixed(r.vs_ort_int8, 2),
    fixed(r.vs_ort_fp32, 2),
    ratio(r.vs_ort_int8_kernel_only),
    ratio(r.vs_ort_fp32_kernel_only),
    ...xnnpackColumn([ratio(r.vs_xnnpack)]),
    fixed(100 * r.peak_fraction, 1),
    r.kernel ?? '-',
  ]);
  for (const o of report.ort)
    for (const [precision, us, gops, kernelUs, ops] of [
      ['fp32', o.fp32_us, o.fp32_gops, o.fp32_kernel_us, o.fp32_ops],
      ['int8', o.int8_us, o.int8_gops, o.int8_kernel_us, o.int8_ops],
    ] as const)
      rows.push([
        o.shape,
        `ORT ${precision}`,
        String(o.threads),
        fixed(us, 1),
        fixed(gops, 2),
        '',
        '',
        '',
        '',
        ...xnnpackColumn(['']),
        '',
        `kernel-only ${kernelUs === null ? '-' : fixed(kernelUs, 1)} us: ${ops.join('+')}`,
      ]);
  for (const x of report.xnnpack)
    rows.push([
      x.shape,
      `XNNPACK ${x.format}`,
      String(x.threads),
      x.us === null ? '-' : fixed(x.us, 1),
      x.gops === null ? '-' : fixed(x.gops, 2),
      '',
      '',
      '',
      '',
      '',
      '',
      x.error === null
        ? `${x.operator ?? '-'}, max |diff| from ours ${x.max_abs_diff ?? '-'}, ${x.us_js_call === null ? '-' : fixed(x.us_js_call, 2)} us per JS call`
        : `ERROR ${x.operator ?? ''}: ${x.error}`,
    ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ');
  lines.push(line(header), ...rows.map(line), '');
  for (const s of report.skipped) lines.push(`skipped ${s.format} on ${s.shape}: ${s.reason}`);
  lines.push('', 'targets:');
  for (const t of report.targets)
    lines.push(
      `  ${t.met === null ? 'NOT MEASURED' : t.met ? 'met   ' : 'MISSED'}  ${t.target} on ${t.shape} (${t.format}): ${t.measured === null ? '-' : `${t.measured.toFixed(2)}x`} (need ${t.required}x)`,
    );
  return lines.join('\n');
}

/** A bad command-line value (the CLI prints its message alone). */
export class BenchArgumentError extends WhittleError {
  override readonly name = 'BenchArgumentError';
  readonly code = 'usage';
}

/** A comma-separated list of integers in [1, max] (thread counts and batch sizes: max 64); throws
 * BenchArgumentError naming the flag. */
export function positiveIntegers(value: string, flag: string, max = 64, min = 1): number[] {
  return value.split(',').map((part) => {
    const n = Number(part);
    if (part.trim() === '' || !Number.isInteger(n) || n < min || n > max)
      throw new BenchArgumentError(
        `Expected integers in [${min}, ${max}] for ${flag} but received "${value}"`,
      );
    return n;
  });
}

/** One integer option in [min, max] (counts of rounds, images, seconds ...; min 1 unless given), or the
 * fallback when absent. */
export function positiveInteger(
  value: string | undefined,
  fallback: number,
  flag: string,
  max = 1_000_000_000,
  min = 1,
): number {
  if (value === undefined) return fallback;
  if (value.includes(','))
    throw new BenchArgumentError(
      `Expected one integer in [${min}, ${max}] for ${flag} but received "${value}"`,
    );
  return positiveIntegers(value, flag, max, min)[0]!;
}

/** The options of a bench subcommand: node's parseArgs of `options` plus --help / -h (a mistyped option throws
 * parseArgs' ERR_PARSE_ARGS error, which the CLI prints as one usage line, as it does BenchArgumentError).
 * Returns undefined when --help was given, after printing `help`: the subcommand then exits 0. */
export function benchOptions<const T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  help: string,
): ReturnType<typeof parseArgs<{ args: string[]; options: T }>>['values'] | undefined {
  if (parseArgs({ args, options: HELP_OPTION, strict: false }).values.help === true) {
    console.log(help);
    return undefined;
  }
  return parseArgs({ args, options }).values;
}

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/** Options that each take one string value (parseArgs' `{ type: 'string' }`), by name, for benchOptions. */
export function stringOptions<const K extends string>(...names: K[]): { [N in K]: { type: 'string' } } {
  return Object.fromEntries(names.map((name) => [name, { type: 'string' }])) as {
    [N in K]: { type: 'string' };
  };
}

export const KERNELS_HELP = `kernels options: --shapes FILE (default bench/shapes.json), --threads 1,2, --rounds 151, --batch-ms 2,
  --profile-runs 50 (ONNX Runtime profiler runs for its kernel-only time; 0 skips them), --json`;

/** `bench kernels [--json] [--shapes file] [--threads 1,2] [--rounds n] [--batch-ms n] [--profile-runs n]`;
 * the table or the JSON report goes to stdout, progress to stderr. Returns the exit code. */
export async function kernelsCommand(args: string[]): Promise<number> {
  const values = benchOptions(
    args,
    {
      json: { type: 'boolean' },
      ...stringOptions('shapes', 'threads', 'rounds', 'batch-ms', 'profile-runs'),
    },
    KERNELS_HELP,
  );
  if (values === undefined) return 0;
  const report = await runKernelBench({
    shapes: readShapes(values.shapes ?? join(packageRoot(), 'bench', 'shapes.json')),
    threads: positiveIntegers(values.threads ?? '1,2', '--threads'),
    rounds: positiveInteger(values.rounds, 151, '--rounds'),
    batchMs: positiveInteger(values['batch-ms'], 2, '--batch-ms'),
    profileRuns:
      values['profile-runs'] === '0' ? 0 : positiveInteger(values['profile-runs'], 50, '--profile-runs'),
    onProgress: (line) => process.stderr.write(`${line}\n`),
  });
  console.log(values.json ? JSON.stringify(report, null, 2) : formatKernelTable(report));
  return 0;
}
