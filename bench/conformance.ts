// The torchvision conformance set (issue 14): real architectures as PyTorch's exporter writes them, trained
// on a seeded synthetic 10-class task until they have learnt it, by scripts/conformance/export-torchvision.py
// (Debian's python3-torch and python3-torchvision; nothing is downloaded) into build/conformance/ once, then imported with
// `whittle import`'s code path (importOnnx, written and read back) and quantized with `whittle quantize`'s
// (quantizePackage, calibrated on images of the task's training distribution). The agreement inputs are the
// task's 1,000 held-out images (8-bit, as the script wrote them). A model or task the cache holds from another
// version of the script (the script's VERSION differs from the one recorded beside it) is exported again. The test (test/optimize/onnx/torchvision-conformance.test.ts)
// and `npm run bench -- models` (bench/models.ts) both read the models from here.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { type Package, readPackage } from '../agent/package/reader.js';
import { inputInLayout } from '../agent/runtime/compile/index.js';
import type { Model } from '../agent/runtime/model.js';
import { elements } from '../agent/runtime/tensor.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../optimize/package/writer.js';
import { QuantizationError } from '../optimize/quantize/calibrate.js';
import { dequantizeActivations, quantizeActivations } from '../optimize/quantize/int8.js';
import { type PtqOptions, quantizePackage } from '../optimize/quantize/ptq.js';
import { SeededRandom } from '../optimize/seeded-random.js';

/** The models of the set, as the export script names them (its MODELS table gives each its input size and
 * opset, written beside the model in NAME.json). */
export const CONFORMANCE_MODELS = [
  'mobilenet_v2',
  'mobilenet_v3_small',
  'mobilenet_v3_large',
  'resnet18',
  'squeezenet1_1',
  'shufflenet_v2_x0_5',
  'mnasnet0_5',
  'efficientnet_b0',
  'regnet_x_400mf',
  'googlenet',
] as const;
export type ConformanceModel = (typeof CONFORMANCE_MODELS)[number];

const PYTHON = '/usr/bin/python3';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = `${ROOT}scripts/conformance/export-torchvision.py`;
export const CONFORMANCE_DIR = `${ROOT}build/conformance`;
/** scripts/conformance/export-random-weights.py: torchvision models beyond the set, random weights. */
const RANDOM_WEIGHTS_SCRIPT = `${ROOT}scripts/conformance/export-random-weights.py`;
const RANDOM_WEIGHTS_DIR = `${CONFORMANCE_DIR}/random-weights`;

/** Calibration images `whittle quantize` is given for the int8 packages. */
export const CALIBRATION_IMAGES = 32;

let torchAvailable: boolean | undefined;
/** Whether python3 with torch and torchvision is installed (the set can be exported). */
export function canExport(): boolean {
  torchAvailable ??= spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status === 0;
  return torchAvailable;
}

export interface ConformanceOnnx {
  name: ConformanceModel;
  bytes: Uint8Array;
  /** Input height and width (the input is [1, 3, size, size], NCHW). */
  size: number;
  opset: number;
}

const scriptVersions = new Map<string, number>();
/** An export script's VERSION line. */
function exportVersion(script: string): number {
  const known = scriptVersions.get(script);
  if (known !== undefined) return known;
  const line = /^VERSION = (\d+)$/m.exec(readFileSync(script, 'utf8'));
  if (line === null) throw new Error(`${script} has no VERSION line`);
  scriptVersions.set(script, Number(line[1]));
  return Number(line[1]);
}

/** The JSON file an export script wrote into `dir` (NAME.json, task.json), exported (again) with
 * `exportArgs` unless it is there and was written by this version of the script. */
function exported<T>(file: string, exportArgs: string[], script = SCRIPT, dir = CONFORMANCE_DIR): T {
  const path = `${dir}/${file}`;
  const current = (): T | undefined => {
    if (!existsSync(path)) return undefined;
    const meta = JSON.parse(readFileSync(path, 'utf8')) as T & { version?: number };
    return meta.version === exportVersion(script) ? meta : undefined;
  };
  const found = current();
  if (found !== undefined) return found;
  mkdirSync(dir, { recursive: true });
  execFileSync(PYTHON, [script, dir, ...exportArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
  const made = current();
  if (made === undefined) throw new Error(`${script} did not write ${path} for this version of the script`);
  return made;
}

/** A torchvision model outside the conformance set (`name` as torchvision's constructor, 10 classes) with
 * random weights and random batch-norm statistics, exported at `opset` for [1, 3, size, size] inputs, from
 * build/conformance/random-weights/ (exported there first if missing). */
export function randomWeightsOnnx(name: string, opset: number, size: number): Uint8Array {
  const stem = `${name}-${opset}-${size}`;
  exported(`${stem}.json`, [name, String(opset), String(size)], RANDOM_WEIGHTS_SCRIPT, RANDOM_WEIGHTS_DIR);
  return readFileSync(`${RANDOM_WEIGHTS_DIR}/${stem}.onnx`);
}

/** Architectures too slow to train here, exported with random weights (randomWeightsOnnx) at these opsets and
 * input sizes: the import, native-kernel and quantizer checks (test/optimize/onnx/convnext.test.ts) and `bench
 * models` rows. */
export const UNTRAINED_MODELS = { convnext_tiny: { opset: 17, size: 64 } } as const;
export type UntrainedModel = keyof typeof UNTRAINED_MODELS;

/** The untrained model's ONNX bytes, its input size and opset (exported now if the cache lacks it). */
export function untrainedOnnx(name: UntrainedModel): { bytes: Uint8Array; size: number; opset: number } {
  const { opset, size } = UNTRAINED_MODELS[name];
  return { bytes: randomWeightsOnnx(name, opset, size), size, opset };
}

/** The exported model, exported now if build/conformance/ does not hold it from this version of the script. */
export function conformanceOnnx(name: ConformanceModel): ConformanceOnnx {
  const { size, opset } = exported<{ size: number; opset: number }>(`${name}.json`, [name]);
  return { name, bytes: readFileSync(`${CONFORMANCE_DIR}/${name}.onnx`), size, opset };
}

/** The synthetic task the models are trained on (the export script's task_images): its held-out images and
 * labels, and images of its training distribution for calibration, NCHW [count][3][size][size] in [0, 1] on
 * the 8-bit grid. */
export interface ConformanceTask {
  size: number;
  classes: number;
  test: Float32Array;
  testLabels: number[];
  calibration: Float32Array;
}

let task: ConformanceTask | undefined;
export function conformanceTask(): ConformanceTask {
  if (task !== undefined) return task;
  const meta = exported<{ size: number; classes: number; test_labels: number[] }>('task.json', []);
  const images = (file: string): Float32Array =>
    Float32Array.from(readFileSync(`${CONFORMANCE_DIR}/${file}`), (v) => v / 255);
  task = {
    size: meta.size,
    classes: meta.classes,
    test: images('task-test.u8'),
    testLabels: meta.test_labels,
    calibration: images('task-calibration.u8'),
  };
  return task;
}

/** `count` images of `images` (NCHW, `size` square, 3 channels) from image `start` on, wrapping around. */
function taskImages(images: Float32Array, size: number, count: number, start: number): Float32Array {
  const per = 3 * size * size;
  const available = images.length / per;
  const out = new Float32Array(count * per);
  for (let i = 0; i < count; i++) {
    const from = ((start + i) % available) * per;
    out.set(images.subarray(from, from + per), i * per);
  }
  return out;
}

const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });

/** `count` seeded random images, NCHW [count][3][size][size], values in [0, 1]: per image and channel a random
 * level, a random plane wave and a little noise. i.i.d. noise alone would not do: global average pooling
 * averages it away, so every image would give the same logits and top-1 would compare near-ties. */
export function randomImages(count: number, size: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  const images = new Float32Array(count * 3 * size * size);
  for (let plane = 0; plane < count * 3; plane++) {
    const level = random.next();
    const amplitude = random.next() * 0.5;
    const [fy, fx, phase] = [random.next() * 0.5, random.next() * 0.5, random.next() * 2 * Math.PI];
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        const v = level + amplitude * Math.sin(fy * y + fx * x + phase) + 0.1 * (random.next() - 0.5);
        images[(plane * size + y) * size + x] = Math.min(1, Math.max(0, v));
      }
  }
  return images;
}

/** NCHW images in the layout the package's input declares (NHWC after import). */
export function inPackageLayout(
  pkg: Package,
  images: Float32Array,
  count: number,
  size: number,
): Float32Array {
  const input = pkg.manifest.inputs[0]!;
  const shape = pkg.manifest.tensors[input.tensor]!.shape;
  return inputInLayout(
    images,
    [count, 3, size, size],
    [count, ...shape.slice(1)],
    input.layout,
  ) as Float32Array;
}

export interface ConformancePackages extends ConformanceOnnx {
  fp32: Package;
  int8: Package;
  /** `count` held-out images of the task from image `start` on (wrapping around its 1,000), NCHW. */
  images: (count: number, start: number) => Float32Array;
  /** The same images in the fp32 package's input layout. */
  inputs: (count: number, start: number) => Float32Array;
  /** Their labels. */
  labels: (count: number, start: number) => number[];
}

/** The fp32 package `whittle import` makes of the model and the int8 one `whittle quantize` makes of that,
 * calibrated on CALIBRATION_IMAGES images of the task's training distribution (which ones: `seed`). */
export function conformancePackages(
  name: ConformanceModel,
  seed: number,
  quantizeOptions: PtqOptions = {},
): ConformancePackages {
  const onnx = conformanceOnnx(name);
  const { size, test, testLabels, calibration } = conformanceTask();
  if (size !== onnx.size) throw new Error(`${name}: input size ${onnx.size}, the task's images are ${size}`);
  const fp32 = read(importOnnx(onnx.bytes, { source: `${name}.onnx`, modelId: name }));
  const images = (count: number, start: number): Float32Array => taskImages(test, size, count, start);
  const inputs = (count: number, start: number): Float32Array =>
    inPackageLayout(fp32, images(count, start), count, size);
  const labels = (count: number, start: number): number[] =>
    Array.from({ length: count }, (_, i) => testLabels[(start + i) % testLabels.length]!);
  const calibrationImages = taskImages(calibration, size, CALIBRATION_IMAGES, seed * CALIBRATION_IMAGES);
  const int8 = read(
    quantizePackage(
      fp32,
      { count: CALIBRATION_IMAGES, data: inPackageLayout(fp32, calibrationImages, CALIBRATION_IMAGES, size) },
      quantizeOptions,
    ).content,
  );
  return { ...onnx, fp32, int8, images, inputs, labels };
}

function argmaxes(logits: ArrayLike<number>, rows: number): number[] {
  const classes = logits.length / rows;
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c]! > logits[r * classes + best]!) best = c;
    return best;
  });
}

/** The classes a model built at `batch` picks for `count` inputs (`inputs(batch, seed + done)` in its input
 * layout), each input first changed by `inputOf` when given. */
export function top1Classes(
  model: Model,
  inputs: (count: number, seed: number) => Float32Array,
  count: number,
  batch: number,
  seed: number,
  inputOf: (x: Float32Array) => Float32Array = (x) => x,
): number[] {
  const classes: number[] = [];
  for (let done = 0; done < count; done += batch) {
    const y = argmaxes(model.run([inputOf(inputs(batch, seed + done))])[0]!.data, batch);
    classes.push(...y.slice(0, Math.min(batch, count - done)));
  }
  return classes;
}

/** The share of positions where two lists of classes agree. */
export const agreement = (a: readonly number[], b: readonly number[]): number =>
  a.filter((c, i) => c === b[i]).length / a.length;

/** The share of the most frequent class: 1 when a model gives every input the same class (a collapsed model,
 * whose top-1 agreement says nothing). */
export function majorityFraction(classes: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const c of classes) counts.set(c, (counts.get(c) ?? 0) + 1);
  return Math.max(...counts.values()) / classes.length;
}

/** The share of `count` inputs on which two models built at `batch` pick the same class (top1Classes). */
export function top1Agreement(
  a: Model,
  b: Model,
  inputs: (count: number, seed: number) => Float32Array,
  count: number,
  batch: number,
  seed: number,
  inputOfB?: (x: Float32Array) => Float32Array,
): number {
  return agreement(
    top1Classes(a, inputs, count, batch, seed),
    top1Classes(b, inputs, count, batch, seed, inputOfB),
  );
}

/** Rounds fp32 inputs to the grid the int8 package quantizes its input to (its first quantize_linear), and
 * back to fp32: fed to the fp32 package, the only error left is the input's 8-bit rounding, which no int8
 * package avoids. Its top-1 agreement with the unrounded fp32 package bounds what the int8 package can reach. */
export function int8InputGrid(int8: Package): (x: Float32Array) => Float32Array {
  const { manifest } = int8;
  const input = manifest.inputs[0]!.tensor;
  const quantize = manifest.nodes.find((n) => n.op === 'quantize_linear' && n.inputs[0] === input);
  const quant = quantize && manifest.tensors[quantize.outputs[0]!]!.quant;
  if (quant === undefined || quant.scale.length !== 1)
    throw new QuantizationError(
      `${manifest.model.id}: the int8 package does not quantize its input per tensor`,
    );
  const q = { scale: quant.scale[0]!, zeroPoint: quant.zeroPoint[0]! };
  return (x) => dequantizeActivations(quantizeActivations(x, q), q);
}

/** Elements of the package's input at its declared batch. */
export const inputElements = (pkg: Package): number =>
  elements(pkg.manifest.tensors[pkg.manifest.inputs[0]!.tensor]!.shape);
