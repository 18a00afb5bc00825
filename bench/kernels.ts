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
import { parseArgs } from 'node:util';

import * as ort from 'onnxruntime-node';

import { packageRoot } from '../agent/package-root.js';
import {
  type CpuFeatures,
  cpuFeatures,
  createConv2dF32,
  createConv2dInt8,
  createFullyConnectedF32,
  createFullyConnectedInt8,
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
  };
  peak: { formula: string; ops_per_cycle: Record<Format, number> };
  timing: { rounds: number; batch_ms: number; statistic: string };
  results: KernelBenchRow[];
  ort: OrtRow[];
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

/** One implementation of a layer (or a model): a call, timed as a batch of `reps` calls. */
export interface Contender {
  id: string;
  call: () => void | Promise<void>;
  reps: number;
  samplesUs: number[];
}

export async function timeBatch(c: Contender): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < c.reps; i++) await c.call();
  return ((performance.now() - start) * 1000) / c.reps;
}

/** Warms up and finds how many calls fill one batch of `batchMs`. */
export async function calibrate(c: Contender, batchMs: number): Promise<void> {
  for (let i = 0; i < 5; i++) await c.call();
  let reps = 1;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < reps; i++) await c.call();
    const elapsed = performance.now() - start;
    if (elapsed >= batchMs / 4 || reps >= 1 << 20) {
      c.reps = Math.max(1, Math.round((reps * batchMs) / Math.max(elapsed, 1e-3)));
      return;
    }
    reps *= 4;
  }
}

export function commit(): string {
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

interface OurLayers {
  fp32: PackedLayer<Float32Array>;
  int8: PackedLayer<Int8Array>;
  f32Weights: Float32Array;
  fp32Input: Float32Array;
  fp32Output: Float32Array;
  int8Input: Int8Array;
  int8Output: Int8Array;
}

/** Our fp32 and int8 layers for a shape, with random weights (fixed seed) and NHWC buffers. */
function ourLayers(shape: BenchShape, seed: number): OurLayers {
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
  let fp32: PackedLayer<Float32Array>;
  let int8: PackedLayer<Int8Array>;
  if (shape.kind === 'fullyConnected') {
    const dims = fullyConnectedDims(shape);
    fp32 = createFullyConnectedF32({ ...dims, weights: f32Weights, bias: f32Bias });
    int8 = createFullyConnectedInt8({ ...dims, ...quantization, weights: s8Weights });
  } else {
    const dims = conv2dDims(shape);
    fp32 = createConv2dF32({ ...dims, weights: f32Weights, bias: f32Bias });
    int8 = createConv2dInt8({ ...dims, ...quantization, weights: s8Weights });
  }
  const inputLength = fp32.inputLength;
  return {
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
      const perThreads: { threads: number; ortF32: OrtLayer; ortS8: OrtLayer; contenders: Contender[] }[] =
        [];
      try {
        for (const threads of options.threads) {
          setThreads(threads);
          const ortF32: OrtLayer = await openOrtLayer(fp32Model, ortF32Input, dims.input, threads);
          const ortS8: OrtLayer = await openOrtLayer(int8Model, ortU8Input, dims.input, threads);
          const contenders: Contender[] = [
            {
              id: 'fp32',
              call: () => ours.fp32.run(ours.fp32Input, ours.fp32Output),
              reps: 1,
              samplesUs: [],
            },
            {
              id: 'int8',
              call: () => ours.int8.run(ours.int8Input, ours.int8Output),
              reps: 1,
              samplesUs: [],
            },
            {
              id: 'ort-fp32',
              call: async () => {
                await ortF32.session.run(ortF32.feeds);
              },
              reps: 1,
              samplesUs: [],
            },
            {
              id: 'ort-int8',
              call: async () => {
                await ortS8.session.run(ortS8.feeds);
              },
              reps: 1,
              samplesUs: [],
            },
            ...formats.map((f): Contender => ({
              id: f.format,
              call: () => f.layer.run(f.input, f.output),
              reps: 1,
              samplesUs: [],
            })),
          ];
          perThreads.push({ threads, ortF32, ortS8, contenders });
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
        for (const { threads, ortF32, ortS8, contenders } of perThreads) {
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
        }
      } finally {
        for (const { ortF32, ortS8 } of perThreads) {
          await ortF32.session.release();
          await ortS8.session.release();
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
  for (const s of shapes) {
    // Dense 3x3 and 1x1 convolutions: XNOR packs 64 channels of a group per word, so a depthwise layer (one
    // channel per group) has nothing to pack; its XNOR figure is still reported in results.
    if (s.kind !== 'conv2d' || s.groups !== 1 || (s.kernel !== 1 && s.kernel !== 3)) continue;
    const xnor = row(s.name, 'xnor', 1);
    const int8 = row(s.name, 'int8', 1);
    checks.push(
      check('xnor >= 3x our int8', s.name, 'xnor', xnor && int8 ? int8.us / xnor.us : undefined, 3),
    );
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
  const lines: string[] = [
    `kernels: ${m.cpu} (${m.core}), ${m.logical_cpus} logical CPUs, ISA ${m.isa}, clock ${m.clock_ghz.toFixed(2)} GHz (measured), threads ${m.threads.join(',')}, commit ${m.commit}, node ${m.node}, onnxruntime-node ${m.onnxruntime_node}`,
    `timing: ${report.timing.statistic}; ${report.timing.rounds} rounds of ~${report.timing.batch_ms} ms batches`,
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
        '',
        `kernel-only ${kernelUs === null ? '-' : fixed(kernelUs, 1)} us: ${ops.join('+')}`,
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

/** A comma-separated list of integers in [1, 64]; throws BenchArgumentError naming the flag. */
export function positiveIntegers(value: string, flag: string): number[] {
  return value.split(',').map((part) => {
    const n = Number(part);
    if (!Number.isInteger(n) || n < 1 || n > 64)
      throw new BenchArgumentError(`Expected integers in [1, 64] for ${flag} but received "${value}"`);
    return n;
  });
}

/** `bench kernels [--json] [--shapes file] [--threads 1,2] [--rounds n] [--batch-ms n] [--profile-runs n]`;
 * the table or the JSON report goes to stdout, progress to stderr. Returns the exit code. */
export async function kernelsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      json: { type: 'boolean' },
      shapes: { type: 'string' },
      threads: { type: 'string' },
      rounds: { type: 'string' },
      'batch-ms': { type: 'string' },
      'profile-runs': { type: 'string' },
    },
  });
  const one = (value: string | undefined, fallback: number, flag: string): number =>
    value === undefined ? fallback : positiveIntegers(value, flag)[0]!;
  const report = await runKernelBench({
    shapes: readShapes(values.shapes ?? join(packageRoot(), 'bench', 'shapes.json')),
    threads: positiveIntegers(values.threads ?? '1,2', '--threads'),
    rounds: one(values.rounds, 151, '--rounds'),
    batchMs: one(values['batch-ms'], 2, '--batch-ms'),
    profileRuns: values['profile-runs'] === '0' ? 0 : one(values['profile-runs'], 50, '--profile-runs'),
    onProgress: (line) => process.stderr.write(`${line}\n`),
  });
  console.log(values.json ? JSON.stringify(report, null, 2) : formatKernelTable(report));
  return 0;
}
