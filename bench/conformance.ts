// The torchvision conformance set (issue 14): real architectures as PyTorch's exporter writes them, built
// with random seeded weights by scripts/conformance/export-torchvision.py (Debian's python3-torch and
// python3-torchvision; nothing is downloaded) into build/conformance/ once, then imported with
// `whittle import`'s code path (importOnnx, written and read back) and quantized with `whittle quantize`'s
// (quantizePackage, seeded calibration images). The test (test/optimize/onnx/torchvision-conformance.test.ts)
// and `npm run bench -- models` (bench/models.ts) both read the models from here.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { type Package, readPackage } from '../agent/package/reader.js';
import { inputInLayout } from '../agent/runtime/compile/index.js';
import type { Model } from '../agent/runtime/model.js';
import { elements } from '../agent/runtime/tensor.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../optimize/package/writer.js';
import { QuantizationError } from '../optimize/quantize/calibrate.js';
import { dequantizeActivations, quantizeActivations } from '../optimize/quantize/int8.js';
import { quantizePackage } from '../optimize/quantize/ptq.js';
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

/** The exported model, exported now if build/conformance/ does not hold it yet. */
export function conformanceOnnx(name: ConformanceModel): ConformanceOnnx {
  const meta = `${CONFORMANCE_DIR}/${name}.json`;
  if (!existsSync(meta))
    execFileSync(PYTHON, [SCRIPT, CONFORMANCE_DIR, name], { stdio: ['ignore', 'ignore', 'pipe'] });
  const { size, opset } = JSON.parse(readFileSync(meta, 'utf8')) as { size: number; opset: number };
  return { name, bytes: readFileSync(`${CONFORMANCE_DIR}/${name}.onnx`), size, opset };
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
  /** `count` seeded random images (randomImages) in the fp32 package's input layout. */
  inputs: (count: number, seed: number) => Float32Array;
}

/** The fp32 package `whittle import` makes of the model and the int8 one `whittle quantize` makes of that,
 * calibrated on seeded random images. */
export function conformancePackages(name: ConformanceModel, seed: number): ConformancePackages {
  const onnx = conformanceOnnx(name);
  const fp32 = read(importOnnx(onnx.bytes, { source: `${name}.onnx`, modelId: name }));
  const inputs = (count: number, at: number): Float32Array =>
    inPackageLayout(fp32, randomImages(count, onnx.size, at), count, onnx.size);
  const calibration = { count: CALIBRATION_IMAGES, data: inputs(CALIBRATION_IMAGES, seed) };
  const int8 = read(quantizePackage(fp32, calibration).content);
  return { ...onnx, fp32, int8, inputs };
}

function argmaxes(logits: ArrayLike<number>, rows: number): number[] {
  const classes = logits.length / rows;
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c]! > logits[r * classes + best]!) best = c;
    return best;
  });
}

/** The share of `count` seeded inputs (`inputs(batch, seed)` in the models' input layout) on which two models
 * built at `batch` pick the same class; `inputOfB`, when given, changes what model `b` is fed. */
export function top1Agreement(
  a: Model,
  b: Model,
  inputs: (count: number, seed: number) => Float32Array,
  count: number,
  batch: number,
  seed: number,
  inputOfB: (x: Float32Array) => Float32Array = (x) => x,
): number {
  let same = 0;
  for (let done = 0; done < count; done += batch) {
    const x = inputs(batch, seed + done);
    const ya = argmaxes(a.run([x])[0]!.data, batch);
    const yb = argmaxes(b.run([inputOfB(x)])[0]!.data, batch);
    const rows = Math.min(batch, count - done);
    for (let r = 0; r < rows; r++) if (ya[r] === yb[r]) same++;
  }
  return same / count;
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
