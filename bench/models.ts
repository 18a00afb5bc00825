// `npm run bench -- models [--json]`: whole models on Whittle's runtime against ONNX Runtime, fp32 and int8,
// per batch size and thread count, in one run.
//
// The torchvision conformance models (bench/conformance.ts: PyTorch's exports of real architectures trained
// on a synthetic 10-class task), and the untrained exports (convnext_tiny: seeded random weights, seeded random
// images; calibrated on such images) join them under their own names: their fp32 package is the import of
// that ONNX file, which ONNX Runtime runs for fp32, and their inputs are the task's held-out images. Each int8
// row adds top1_agreement: the share of 1,000 inputs on which the int8 package picks the class Whittle's own
// fp32 package picks; top1_input_rounding: the same share for the fp32 package fed those inputs rounded to the
// int8 package's 8-bit input grid, the part of the disagreement no int8 package avoids; fp32_majority_fraction:
// the share of the fp32 package's most frequent class on those inputs (1 for a collapsed model, which agrees
// with anything that collapses alike, so a top1_agreement means something only well below it); and for the
// conformance models fp32_accuracy, the fp32 package's accuracy on the task. --calibration-method picks the
// int8 packages' calibration (optimize/quantize/calibrate.ts).
//
// Each zoo model is a zoo architecture with seeded random weights (optimize/zoo/random-weights.ts), saved as
// `whittle train` saves it and read by the tfjs importer; that package is exported to ONNX by Whittle's
// exporter, and the ONNX file goes through `whittle import`'s code path (importOnnx, written and read back)
// — the fp32 package Whittle runs. `whittle quantize`'s code path (quantizePackage) makes the int8 package
// from it on seeded random calibration inputs. ONNX Runtime runs the exported ONNX model for fp32 and, for
// int8, the QDQ export of the very int8 package Whittle runs (per-channel int8 weights, activations as the
// package quantizes them), which it fuses into its QLinear kernels. `--formats qdq` rows import that QDQ file
// back with `whittle import` (optimize/onnx/qdq.ts): both runtimes then run the very same file.
//
// Timing as in `bench kernels`: each contender (runtime x thread count) is warmed up and calibrated to a batch
// of calls lasting about `batchMs`; every round times one batch of each contender, thread counts and
// contenders rotated, so a noisy neighbour slows all alike; figures are medians over the rounds. A call is
// what a user pays: Model.run (outputs copied out) for Whittle, session.run for ONNX Runtime.
//
// --residual-ab adds a third contender to every row, timed in the same rounds: the same package loaded with
// fuseResidual: false (its residual adds run as add nodes, not in the convs' output stage), and the row
// gains unfused_ms, vs_ort_unfused (vs_ort before the fusion) and fused_speedup: the median over the rounds
// of unfused / fused time within one round (a pair timed back to back, so a drift of the machine's speed
// between rounds cancels).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as ort from 'onnxruntime-node';

import { type Package, readPackage } from '../agent/package/reader.js';
import { Model } from '../agent/runtime/model.js';
import { elements } from '../agent/runtime/tensor.js';
import { getThreads, setThreads } from '../native/index.js';
import { exportOnnx } from '../optimize/onnx/export.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../optimize/package/writer.js';
import { CALIBRATION_METHODS, type CalibrationMethod } from '../optimize/quantize/calibrate.js';
import { type PtqOptions, quantizePackage } from '../optimize/quantize/ptq.js';
import { SeededRandom } from '../optimize/seeded-random.js';
import { importTfjsLayers } from '../optimize/tfjs/import.js';
import { fileHandler, MODEL_FILE } from '../optimize/train/file-io.js';
import { buildZooModel, type ZooModelName } from '../optimize/zoo/index.js';
import { randomizeWeights } from '../optimize/zoo/random-weights.js';
import {
  agreement,
  CONFORMANCE_MODELS,
  type ConformanceModel,
  conformancePackages,
  inPackageLayout,
  int8InputGrid,
  majorityFraction,
  randomImages,
  top1Classes,
  UNTRAINED_MODELS,
  type UntrainedModel,
  untrainedOnnx,
} from './conformance.js';
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
import { openOptimizedSession } from './onnx-layers.js';

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

/** fp32 and int8: Whittle's packages; qdq: the int8 package's QDQ export (uint8 activations) imported back
 * by `whittle import` (optimize/onnx/qdq.ts) — ONNX Runtime and Whittle then run the very same file. */
export const MODEL_FORMATS = ['fp32', 'int8', 'qdq'] as const;
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
  /** Inputs the int8 rows' top1_agreement is measured on (1,000 by default). */
  agreementInputs?: number;
  /** Also time each package with its residual adds unfused (ModelOptions.fuseResidual false). */
  residualAb?: boolean;
  /** How the int8 packages' activation ranges are calibrated (default: `whittle quantize`'s). */
  calibrationMethod?: CalibrationMethod;
  /** The int8 packages keep the layer that makes the logits in fp32 (PtqOptions.floatClassifier). */
  floatClassifier?: boolean;
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
  /** int8 rows: the share of seeded inputs on which the int8 package's top-1 class is the fp32 package's. */
  top1_agreement?: number;
  /** --residual-ab: the package with its residual adds unfused, timed in the same rounds; the median of
   * the per-round ratios unfused / fused; the adds fused. */
  unfused_ms?: number;
  vs_ort_unfused?: number;
  fused_speedup?: number;
  residual_adds_fused?: number;
  /** int8 rows: the same share for the fp32 package fed its inputs rounded to the int8 package's input grid
   * (conformance.ts int8InputGrid): the input's 8-bit rounding alone, a bound on top1_agreement. */
  top1_input_rounding?: number;
  /** int8 rows: the share of the fp32 package's most frequent class on the agreement inputs. */
  fp32_majority_fraction?: number;
  /** int8 rows of the conformance models: the fp32 package's accuracy on the task's held-out images. */
  fp32_accuracy?: number;
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
  /** The package the fp32 model comes from (a zoo model's tfjs import; a conformance model's fp32 package). */
  source: Package;
  fp32: Package;
  int8: Package;
  /** The fp32 ONNX model ONNX Runtime runs at `batch`. */
  fp32Onnx(batch: number): Uint8Array;
  /** `count` seeded inputs in the fp32 package's input layout. */
  inputs(count: number, seed: number): Float32Array;
  /** The same inputs as ONNX Runtime's fp32 model (fp32Onnx) takes them, with their dimensions. */
  ortInputs(count: number, seed: number): { data: Float32Array; dims: number[] };
  /** The inputs' classes, when they have some (the conformance models' task). */
  labels?(count: number, seed: number): number[];
}

const isConformance = (name: string): name is ConformanceModel =>
  (CONFORMANCE_MODELS as readonly string[]).includes(name);

const isUntrained = (name: string): name is UntrainedModel => Object.hasOwn(UNTRAINED_MODELS, name);

/** Every model `--models` takes: the zoo's, then the conformance set's, then the untrained exports'. */
export const MODEL_NAMES: readonly string[] = [
  ...Object.keys(BENCH_MODELS),
  ...CONFORMANCE_MODELS,
  ...Object.keys(UNTRAINED_MODELS),
];

export async function benchPackages(
  name: string,
  seed: number,
  ptqOptions: PtqOptions = {},
): Promise<BenchPackages> {
  if (isConformance(name)) {
    const p = conformancePackages(name, seed, ptqOptions);
    return {
      source: p.fp32,
      fp32: p.fp32,
      int8: p.int8,
      fp32Onnx: () => p.bytes,
      inputs: p.inputs,
      ortInputs: (count, at) => ({ data: p.images(count, at), dims: [count, 3, p.size, p.size] }),
      labels: p.labels,
    };
  }
  if (isUntrained(name)) {
    // PyTorch's export with seeded random weights (conformance.ts untrainedOnnx), on seeded random images.
    const { bytes, size } = untrainedOnnx(name);
    const fp32 = read(importOnnx(bytes, { source: `${name}.onnx`, modelId: name }));
    return {
      source: fp32,
      fp32,
      // Calibrated on images, as the model is run.
      int8: read(
        quantizePackage(
          fp32,
          {
            count: CALIBRATION_INPUTS,
            data: inPackageLayout(
              fp32,
              randomImages(CALIBRATION_INPUTS, size, seed + 1),
              CALIBRATION_INPUTS,
              size,
            ),
          },
          ptqOptions,
        ).content,
      ),
      fp32Onnx: () => bytes,
      inputs: (count, at) => inPackageLayout(fp32, randomImages(count, size, at), count, size),
      ortInputs: (count, at) => ({ data: randomImages(count, size, at), dims: [count, 3, size, size] }),
    };
  }
  const source = await benchSource(name, seed);
  const fp32 = read(importOnnx(exportOnnx(source), { source: `${name}.onnx`, modelId: name }));
  const shape = fp32.manifest.tensors[fp32.manifest.inputs[0]!.tensor]!.shape.slice(1);
  const perInput = elements(shape);
  return {
    source,
    fp32,
    int8: benchInt8(fp32, seed, ptqOptions),
    fp32Onnx: (batch) => exportOnnx(source, { batch }),
    inputs: (count, at) => normalValues(count * perInput, at),
    ortInputs: (count, at) => ({ data: normalValues(count * perInput, at), dims: [count, ...shape] }),
  };
}

/** The zoo model `name` with seeded random weights, saved as `whittle train` saves it and imported. */
export async function benchSource(name: string, seed: number): Promise<Package> {
  const spec = BENCH_MODELS[name];
  if (spec === undefined)
    throw new BenchArgumentError(`unknown model "${name}"; expected some of ${MODEL_NAMES.join(', ')}`);
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
export function benchInt8(fp32: Package, seed: number, ptqOptions: PtqOptions = {}): Package {
  const perInput = elements(fp32.manifest.tensors[fp32.manifest.inputs[0]!.tensor]!.shape.slice(1));
  const calibration = {
    count: CALIBRATION_INPUTS,
    data: normalValues(CALIBRATION_INPUTS * perInput, seed + 1),
  };
  return read(quantizePackage(fp32, calibration, ptqOptions).content);
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
  /** --residual-ab: the model with its residual adds unfused, and how many adds the fused one took in. */
  unfused?: Contender;
  residualAddsFused?: number;
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
      const packages = await benchPackages(name, options.seed, {
        ...(options.calibrationMethod === undefined ? {} : { calibrationMethod: options.calibrationMethod }),
        ...(options.floatClassifier === true ? { floatClassifier: true } : {}),
      });
      if ((isConformance(name) || isUntrained(name)) && options.batches.some((b) => b !== 1))
        throw new BenchArgumentError(`${name} is exported at batch 1: run it with --batches 1`);
      const agreementBatch = 50;
      const agreementInputs = options.agreementInputs ?? 1000;
      const agreementSeed = options.seed + 3;
      const fp32Model = Model.fromPackage(packages.fp32, { batch: agreementBatch });
      const classesOf = (model: Model, inputOf?: (x: Float32Array) => Float32Array): number[] =>
        top1Classes(
          model,
          (count, at) => packages.inputs(count, at),
          agreementInputs,
          agreementBatch,
          agreementSeed,
          inputOf,
        );
      let agreementFields: Partial<ModelBenchRow> = {};
      if (options.formats.includes('int8')) {
        const fp32Classes = classesOf(fp32Model);
        const labels = packages.labels?.(agreementInputs, agreementSeed);
        agreementFields = {
          top1_agreement: agreement(
            fp32Classes,
            classesOf(Model.fromPackage(packages.int8, { batch: agreementBatch })),
          ),
          top1_input_rounding: agreement(fp32Classes, classesOf(fp32Model, int8InputGrid(packages.int8))),
          fp32_majority_fraction: majorityFraction(fp32Classes),
          ...(labels === undefined ? {} : { fp32_accuracy: agreement(fp32Classes, labels) }),
        };
        log(
          `  int8 top-1 agreement with fp32: ${agreementFields.top1_agreement} (fp32 on 8-bit rounded inputs: ` +
            `${agreementFields.top1_input_rounding}); fp32's most frequent class: ` +
            `${agreementFields.fp32_majority_fraction}` +
            (labels === undefined ? '' : `, fp32 accuracy on the task: ${agreementFields.fp32_accuracy}`),
        );
      }
      for (const format of options.formats) {
        for (const batch of options.batches) {
          // fp32: ONNX Runtime runs the ONNX model Whittle imported; int8: the QDQ export of Whittle's package.
          // The QDQ export's activations are uint8 (zero points + 128, the same function): ONNX Runtime on x86
          // fuses only those into its integer kernels, and runs int8-activation convolutions in float.
          let onnxBytes: Uint8Array;
          try {
            onnxBytes =
              format === 'fp32'
                ? packages.fp32Onnx(batch)
                : exportOnnx(packages.int8, { batch, activations: 'u8' });
          } catch (error) {
            // No peer for this row (an int8 package with fp32 islands the exporter does not write): said, skipped.
            log(`  ${format} batch ${batch}: no ONNX Runtime peer: ${(error as Error).message}`);
            continue;
          }
          const pkg =
            format === 'fp32'
              ? packages.fp32
              : format === 'int8'
                ? packages.int8
                : read(importOnnx(onnxBytes, { source: `${name}-qdq.onnx`, modelId: name }));
          const groups: ThreadGroup[] = [];
          for (const threads of options.threads) {
            setThreads(threads);
            const model = Model.fromPackage(pkg, { batch, threads });
            const inputSpec = model.specs[pkg.manifest.inputs[0]!.tensor]!;
            const input = packages.inputs(inputSpec.shape[0]!, options.seed + 2);
            const { session, ops } = await openOptimizedSession(onnxBytes, threads);
            if (threads === options.threads[0])
              log(`  ${format} batch ${batch}: ONNX Runtime runs ${opCounts(ops)}`);
            // fp32: the model as given (a conformance model's own NCHW file); int8: the package's export.
            const peer =
              format === 'fp32'
                ? packages.ortInputs(inputSpec.shape[0]!, options.seed + 2)
                : { data: input, dims: inputSpec.shape };
            const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', peer.data, peer.dims) };
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
            if (options.residualAb === true) {
              const unfused = Model.fromPackage(pkg, { batch, threads, fuseResidual: false });
              const reference = unfused.run([input])[0]!.data;
              if (maxAbsDiff(reference, ours) !== 0)
                throw new Error(`${name} ${format}: the fused and unfused runs differ`);
              group.unfused = jsContender('unfused', () => void unfused.run([input]));
              group.residualAddsFused = model.compileReport.fused.filter((f) =>
                pkg.manifest.nodes.some((n) => n.name === f.node && (n.op === 'add' || n.op === 'qadd')),
              ).length;
              await calibrate(group.unfused, options.batchMs);
            }
            await calibrate(group.whittle, options.batchMs);
            await calibrate(group.ort, options.batchMs);
            groups.push(group);
          }
          for (let round = 0; round < options.rounds; round++) {
            for (let t = 0; t < groups.length; t++) {
              const group = groups[(round + t) % groups.length]!;
              setThreads(group.threads);
              const contenders = [group.whittle, group.ort, ...(group.unfused ? [group.unfused] : [])];
              const order = contenders.map((_, k) => contenders[(round + k) % contenders.length]!);
              for (const c of order) c.samplesUs.push(await timeBatch(c));
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
              ...(format === 'int8' ? agreementFields : {}),
            };
            if (group.unfused !== undefined) {
              const unfusedMs = median(group.unfused.samplesUs) / 1000;
              row.unfused_ms = unfusedMs;
              row.vs_ort_unfused = ortMs / unfusedMs;
              row.fused_speedup = median(
                group.unfused.samplesUs.map((u, r) => u / group.whittle.samplesUs[r]!),
              );
              row.residual_adds_fused = group.residualAddsFused ?? 0;
              log(
                `    residual adds fused: ${row.residual_adds_fused}; unfused ${unfusedMs.toFixed(3)} ms ` +
                  `(vs_ort ${row.vs_ort_unfused.toFixed(2)}), fused speedup ${row.fused_speedup.toFixed(3)}`,
              );
            }
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

export function calibrationMethod(value: string): CalibrationMethod {
  const methods = choices(value, CALIBRATION_METHODS, '--calibration-method');
  if (methods.length !== 1)
    throw new BenchArgumentError(
      `Expected one calibration method for --calibration-method but received "${value}"`,
    );
  return methods[0]!;
}

/** The options every whole-model benchmark (`bench models`, `bench compile-ab`) reads. */
export const ZOO_BENCH_OPTIONS = {
  json: { type: 'boolean' },
  models: { type: 'string' },
  rounds: { type: 'string' },
  'batch-ms': { type: 'string' },
  seed: { type: 'string' },
} as const;

/** The values of ZOO_BENCH_OPTIONS, checked, with the defaults (`rounds` rounds, the zoo's models; `--models`
 * takes any of `allowed`). */
export function zooBenchOptions(
  values: { models?: string; rounds?: string; 'batch-ms'?: string; seed?: string },
  rounds: number,
  allowed: readonly string[] = Object.keys(BENCH_MODELS),
): Pick<ModelBenchOptions, 'models' | 'rounds' | 'batchMs' | 'seed' | 'onProgress'> {
  return {
    models: choices(values.models ?? Object.keys(BENCH_MODELS).join(','), allowed, '--models'),
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
      'residual-ab': { type: 'boolean' },
      'calibration-method': { type: 'string' },
      'float-classifier': { type: 'boolean' },
    },
    MODELS_HELP,
  );
  if (values === undefined) return 0;
  const options: ModelBenchOptions = {
    ...zooBenchOptions(values, 21, MODEL_NAMES),
    formats: choices(values.formats ?? 'fp32,int8', MODEL_FORMATS, '--formats'),
    batches: positiveIntegers(values.batches ?? '1,32', '--batches'),
    threads: positiveIntegers(values.threads ?? '1,2', '--threads'),
    ...(values['residual-ab'] === true ? { residualAb: true } : {}),
    ...(values['calibration-method'] === undefined
      ? {}
      : { calibrationMethod: calibrationMethod(values['calibration-method']) }),
    ...(values['float-classifier'] === true ? { floatClassifier: true } : {}),
  };
  process.stderr.write(
    `models: Whittle vs ONNX Runtime ${ort.env.versions.common}, ${options.rounds} rounds\n`,
  );
  process.stderr.write(`machine: ${machine}\n`);
  const report = await runModelBench(options);
  console.log(values.json ? JSON.stringify(report, null, 2) : formatModelTable(report));
  return 0;
}

export const MODELS_HELP = `models options: --models ${MODEL_NAMES.join(',')} (the zoo's five by default),
  --formats fp32,int8 (or qdq: the int8 package's QDQ export as \`whittle import\` takes it), --batches 1,32, --threads 1,2, --rounds 21, --batch-ms 20, --seed 1, --json,
  --residual-ab (also time each package with its residual adds unfused),
  --calibration-method ${CALIBRATION_METHODS.join('|')} (the int8 packages' calibration; default whittle quantize's),
  --float-classifier (the int8 packages keep the layer that makes the logits in fp32)`;
