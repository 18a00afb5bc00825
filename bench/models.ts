// `npm run bench -- models [--json]`: whole models on Whittle's runtime against ONNX Runtime, fp32 and int8,
// per batch size and thread count, in one run.
//
// Each model is a zoo architecture with seeded random weights (optimize/zoo/random-weights.ts), saved as
// `whittle train` saves it and read by the tfjs importer; that package is exported to ONNX by Whittle's
// exporter, and the ONNX file goes through `whittle import`'s code path (importOnnx, written and read back)
// — the fp32 package Whittle runs. `whittle quantize`'s code path (quantizePackage) makes the int8 package
// from it on seeded random calibration inputs. ONNX Runtime runs the exported ONNX model for fp32 and, for
// int8, the QDQ export of the very int8 package Whittle runs (per-channel int8 weights, activations as the
// package quantizes them), which it fuses into its QLinear kernels.
//
// Timing as in `bench kernels`: each contender (runtime x thread count) is warmed up and calibrated to a batch
// of calls lasting about `batchMs`; every round times one batch of each contender, thread counts and
// contenders rotated, so a noisy neighbour slows all alike; figures are medians over the rounds. A call is
// what a user pays: Model.run (outputs copied out) for Whittle, session.run for ONNX Runtime.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as ort from 'onnxruntime-node';

import { type Package, readPackage } from '../agent/package/reader.js';
import { Model } from '../agent/runtime/model.js';
import { elements } from '../agent/runtime/tensor.js';
import { getThreads, setThreads } from '../native/index.js';
import { exportOnnx } from '../optimize/onnx/export.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { onnx } from '../optimize/onnx/onnx-proto.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../optimize/package/writer.js';
import { quantizePackage } from '../optimize/quantize/ptq.js';
import { SeededRandom } from '../optimize/seeded-random.js';
import { importTfjsLayers } from '../optimize/tfjs/import.js';
import { fileHandler, MODEL_FILE } from '../optimize/train/file-io.js';
import { buildZooModel, type ZooModelName } from '../optimize/zoo/index.js';
import { randomizeWeights } from '../optimize/zoo/random-weights.js';
import {
  BenchArgumentError,
  benchOptions,
  calibrate,
  type Contender,
  jsContender,
  median,
  positiveInteger,
  positiveIntegers,
  timeBatch,
} from './kernels.js';
import { ortSessionOptions } from './onnx-layers.js';

interface BenchModelSpec {
  zoo: ZooModelName;
  height: number;
  width: number;
  channels: number;
  widthMultiplier?: number;
}

/** The benchmark's models, by the name they carry in the results. */
export const BENCH_MODELS: Record<string, BenchModelSpec> = {
  lenet5: { zoo: 'lenet5', height: 28, width: 28, channels: 1 },
  'mobilenet-0.5': { zoo: 'mobilenet', height: 96, width: 96, channels: 3, widthMultiplier: 0.5 },
  'vgg-small': { zoo: 'vgg-small', height: 32, width: 32, channels: 3 },
  squeezenet: { zoo: 'squeezenet', height: 64, width: 64, channels: 3 },
  shufflenet: { zoo: 'shufflenet', height: 64, width: 64, channels: 3 },
};

export const MODEL_FORMATS = ['fp32', 'int8'] as const;
export type ModelFormat = (typeof MODEL_FORMATS)[number];

export interface ModelBenchOptions {
  models: string[];
  formats: ModelFormat[];
  batches: number[];
  threads: number[];
  /** Timed rounds per (model, format, batch); figures are medians over them. */
  rounds: number;
  /** Milliseconds one timed batch of calls should last (at least one call). */
  batchMs: number;
  /** Seed of the weights, the calibration inputs and the timed inputs. */
  seed: number;
  onProgress?: (line: string) => void;
}

export interface ModelBenchRow {
  model: string;
  format: ModelFormat;
  batch: number;
  threads: number;
  /** Median milliseconds per run of the whole batch. */
  whittle_ms: number;
  ort_ms: number;
  /** ort_ms / whittle_ms: above 1, Whittle is faster. */
  vs_ort: number;
  /** Largest |Whittle - ONNX Runtime| over the first output, same input. */
  max_abs_diff: number;
}

export interface ModelBenchReport {
  results: ModelBenchRow[];
}

/** Calibration inputs `whittle quantize` would be given; random, seeded. */
const CALIBRATION_INPUTS = 32;
const CLASSES = 10;

export const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });

function normalValues(count: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  return Float32Array.from({ length: count }, () => random.normal());
}

/** The packages of one model: `source` (the tfjs import whose ONNX export is the model), and the fp32 and
 * int8 packages Whittle runs. */
export interface BenchPackages {
  source: Package;
  fp32: Package;
  int8: Package;
}

export async function benchPackages(name: string, seed: number): Promise<BenchPackages> {
  const source = await benchSource(name, seed);
  const fp32 = read(importOnnx(exportOnnx(source), { source: `${name}.onnx`, modelId: name }));
  return { source, fp32, int8: benchInt8(fp32, seed) };
}

/** The zoo model `name` with seeded random weights, saved as `whittle train` saves it and imported. */
export async function benchSource(name: string, seed: number): Promise<Package> {
  const spec = BENCH_MODELS[name];
  if (spec === undefined)
    throw new BenchArgumentError(
      `unknown model "${name}"; expected some of ${Object.keys(BENCH_MODELS).join(', ')}`,
    );
  const net = buildZooModel(spec.zoo, {
    height: spec.height,
    width: spec.width,
    channels: spec.channels,
    classes: CLASSES,
    seed,
    ...(spec.widthMultiplier === undefined ? {} : { widthMultiplier: spec.widthMultiplier }),
  });
  const dir = mkdtempSync(join(tmpdir(), 'whittle-bench-models-'));
  try {
    randomizeWeights(net, seed);
    await net.save(fileHandler(dir));
    return read(importTfjsLayers(join(dir, MODEL_FILE), { modelId: name }));
  } finally {
    net.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The int8 package `whittle quantize` makes of `fp32`, on seeded random calibration inputs. */
export function benchInt8(fp32: Package, seed: number): Package {
  const perInput = elements(fp32.manifest.tensors[fp32.manifest.inputs[0]!.tensor]!.shape.slice(1));
  const calibration = {
    count: CALIBRATION_INPUTS,
    data: normalValues(CALIBRATION_INPUTS * perInput, seed + 1),
  };
  return read(quantizePackage(fp32, calibration).content);
}

/** An ONNX Runtime session as the benchmark runs it, with the ops of its optimized graph. */
async function openSession(
  bytes: Uint8Array,
  threads: number,
): Promise<{ session: ort.InferenceSession; ops: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-ort-'));
  try {
    const optimizedModelFilePath = join(dir, 'optimized.onnx');
    const session = await ort.InferenceSession.create(bytes, {
      ...ortSessionOptions(threads),
      optimizedModelFilePath,
    });
    const optimized = onnx.ModelProto.decode(readFileSync(optimizedModelFilePath));
    return { session, ops: (optimized.graph?.node ?? []).map((n) => n.opType ?? '?') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(diff) ? Infinity : diff;
}

/** How many times each op occurs, most frequent first: "QLinearConv x8, Transpose x2". */
function opCounts(ops: string[]): string {
  const counts = new Map<string, number>();
  for (const op of ops) counts.set(op, (counts.get(op) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([op, n]) => `${op} x${n}`)
    .join(', ');
}

interface ThreadGroup {
  threads: number;
  whittle: Contender;
  ort: Contender;
  maxAbsDiff: number;
}

/** Runs the benchmark; see the header of this file. */
export async function runModelBench(options: ModelBenchOptions): Promise<ModelBenchReport> {
  const log = options.onProgress ?? (() => undefined);
  const results: ModelBenchRow[] = [];
  const savedThreads = getThreads();
  try {
    for (const name of options.models) {
      log(`${name}: building the packages (zoo -> ONNX -> whittle import -> whittle quantize)`);
      const packages = await benchPackages(name, options.seed);
      for (const format of options.formats) {
        const pkg = format === 'fp32' ? packages.fp32 : packages.int8;
        for (const batch of options.batches) {
          // fp32: ONNX Runtime runs the ONNX model Whittle imported; int8: the QDQ export of Whittle's package.
          // The QDQ export's activations are uint8 (zero points + 128, the same function): ONNX Runtime on x86
          // fuses only those into its integer kernels, and runs int8-activation convolutions in float.
          const onnxBytes =
            format === 'fp32'
              ? exportOnnx(packages.source, { batch })
              : exportOnnx(pkg, { batch, activations: 'u8' });
          const groups: ThreadGroup[] = [];
          for (const threads of options.threads) {
            setThreads(threads);
            const model = Model.fromPackage(pkg, { batch, threads });
            const inputSpec = model.specs[pkg.manifest.inputs[0]!.tensor]!;
            const input = normalValues(elements(inputSpec.shape), options.seed + 2);
            const { session, ops } = await openSession(onnxBytes, threads);
            if (threads === options.threads[0])
              log(`  ${format} batch ${batch}: ONNX Runtime runs ${opCounts(ops)}`);
            const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', input, inputSpec.shape) };
            const ours = model.run([input])[0]!.data;
            const theirs = (await session.run(feeds))[session.outputNames[0]!]!.data as Float32Array;
            const group: ThreadGroup = {
              threads,
              maxAbsDiff: maxAbsDiff(ours, theirs),
              whittle: jsContender('whittle', () => void model.run([input])),
              ort: jsContender('ort', async () => {
                await session.run(feeds);
              }),
            };
            await calibrate(group.whittle, options.batchMs);
            await calibrate(group.ort, options.batchMs);
            groups.push(group);
          }
          for (let round = 0; round < options.rounds; round++) {
            for (let t = 0; t < groups.length; t++) {
              const group = groups[(round + t) % groups.length]!;
              setThreads(group.threads);
              const pair = round % 2 === 0 ? [group.whittle, group.ort] : [group.ort, group.whittle];
              for (const c of pair) c.samplesUs.push(await timeBatch(c));
            }
          }
          for (const group of groups) {
            const whittleMs = median(group.whittle.samplesUs) / 1000;
            const ortMs = median(group.ort.samplesUs) / 1000;
            const row: ModelBenchRow = {
              model: name,
              format,
              batch,
              threads: group.threads,
              whittle_ms: whittleMs,
              ort_ms: ortMs,
              vs_ort: ortMs / whittleMs,
              max_abs_diff: group.maxAbsDiff,
            };
            results.push(row);
            log(
              `  ${format} batch ${batch} threads ${group.threads}: Whittle ${whittleMs.toFixed(3)} ms, ` +
                `ONNX Runtime ${ortMs.toFixed(3)} ms (vs_ort ${row.vs_ort.toFixed(2)}), ` +
                `max |diff| ${row.max_abs_diff.toExponential(2)}`,
            );
          }
        }
      }
    }
  } finally {
    setThreads(savedThreads);
  }
  return { results };
}

export function formatModelTable(report: ModelBenchReport): string {
  const header = 'model          format  batch  threads  whittle ms    ort ms   vs_ort  max |diff|';
  const lines = report.results.map(
    (r) =>
      `${r.model.padEnd(14)} ${r.format.padEnd(7)} ${String(r.batch).padStart(5)}  ${String(r.threads).padStart(7)}  ` +
      `${r.whittle_ms.toFixed(3).padStart(10)}  ${r.ort_ms.toFixed(3).padStart(8)}  ${r.vs_ort.toFixed(2).padStart(7)}` +
      `  ${r.max_abs_diff.toExponential(2)}`,
  );
  return [header, ...lines].join('\n');
}

export function choices<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  return value.split(',').map((part) => {
    if (!(allowed as readonly string[]).includes(part))
      throw new BenchArgumentError(
        `Expected some of ${allowed.join(', ')} for ${flag} but received "${value}"`,
      );
    return part as T;
  });
}

/** The options every whole-model benchmark (`bench models`, `bench compile-ab`) reads. */
export const ZOO_BENCH_OPTIONS = {
  json: { type: 'boolean' },
  models: { type: 'string' },
  rounds: { type: 'string' },
  'batch-ms': { type: 'string' },
  seed: { type: 'string' },
} as const;

/** The values of ZOO_BENCH_OPTIONS, checked, with the defaults (`rounds` rounds, all models). */
export function zooBenchOptions(
  values: { models?: string; rounds?: string; 'batch-ms'?: string; seed?: string },
  rounds: number,
): Pick<ModelBenchOptions, 'models' | 'rounds' | 'batchMs' | 'seed' | 'onProgress'> {
  return {
    models: choices(
      values.models ?? Object.keys(BENCH_MODELS).join(','),
      Object.keys(BENCH_MODELS),
      '--models',
    ),
    rounds: positiveInteger(values.rounds, rounds, '--rounds'),
    batchMs: positiveInteger(values['batch-ms'], 20, '--batch-ms'),
    seed: positiveInteger(values.seed, 1, '--seed'),
    onProgress: (line) => process.stderr.write(`${line}\n`),
  };
}

export async function modelsCommand(args: string[], machine: string): Promise<number> {
  const values = benchOptions(
    args,
    {
      ...ZOO_BENCH_OPTIONS,
      formats: { type: 'string' },
      batches: { type: 'string' },
      threads: { type: 'string' },
    },
    MODELS_HELP,
  );
  if (values === undefined) return 0;
  const options: ModelBenchOptions = {
    ...zooBenchOptions(values, 21),
    formats: choices(values.formats ?? 'fp32,int8', MODEL_FORMATS, '--formats'),
    batches: positiveIntegers(values.batches ?? '1,32', '--batches'),
    threads: positiveIntegers(values.threads ?? '1,2', '--threads'),
  };
  process.stderr.write(
    `models: Whittle vs ONNX Runtime ${ort.env.versions.common}, ${options.rounds} rounds\n`,
  );
  process.stderr.write(`machine: ${machine}\n`);
  const report = await runModelBench(options);
  console.log(values.json ? JSON.stringify(report, null, 2) : formatModelTable(report));
  return 0;
}

export const MODELS_HELP = `models options: --models ${Object.keys(BENCH_MODELS).join(',')} (all by default),
  --formats fp32,int8, --batches 1,32, --threads 1,2, --rounds 21, --batch-ms 20, --seed 1, --json`;
