// The zoo models as users bring them from PyTorch: built in TensorFlow.js with seeded random weights,
// imported, exported to ONNX by Whittle's exporter (NCHW, layout transposes around every conv and pool),
// and imported back from ONNX with and without the compile pass. Shared by the compile tests and the
// before/after benchmark (bench/compile-ab.ts).
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type Package, readPackage } from '../../../agent/package/reader.js';
import { exportOnnx } from '../../../optimize/onnx/export.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { withNchwInput } from '../../../optimize/onnx/nchw-input.js';
import type { PackageContent } from '../../../optimize/package/writer.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { importTfjsLayers } from '../../../optimize/tfjs/import.js';
import { selectTrainingBackend } from '../../../optimize/train/backend-select.js';
import { buildZooModel, type ZooModelName } from '../../../optimize/zoo/index.js';
import { randomizeWeights, saveLikeTrain } from '../../optimize/tfjs/tfjs-fixtures.js';

const keys = generateKeyPairSync('ed25519');

export const toPackage = (content: PackageContent): Package =>
  readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey });

export interface ZooCase {
  name: ZooModelName;
  height: number;
  channels: number;
  widthMultiplier?: number;
}

/** MobileNet 0.5 at 96x96x3, the small VGG at 32x32x3, LeNet-5 at 28x28x1, SqueezeNet and ShuffleNet. */
export const ZOO_CASES: readonly ZooCase[] = [
  { name: 'lenet5', height: 28, channels: 1 },
  { name: 'mobilenet', height: 96, channels: 3, widthMultiplier: 0.5 },
  { name: 'vgg-small', height: 32, channels: 3 },
  { name: 'squeezenet', height: 32, channels: 3 },
  { name: 'shufflenet', height: 32, channels: 3, widthMultiplier: 0.5 },
];

/** The ONNX export of a zoo model with random weights. */
export async function zooOnnx(zoo: ZooCase): Promise<Uint8Array> {
  await selectTrainingBackend('whittle-native');
  const model = buildZooModel(zoo.name, {
    height: zoo.height,
    width: zoo.height,
    channels: zoo.channels,
    classes: 10,
    seed: 5,
    ...(zoo.widthMultiplier !== undefined ? { widthMultiplier: zoo.widthMultiplier } : {}),
  });
  randomizeWeights(model, 17);
  const dir = mkdtempSync(join(tmpdir(), 'whittle-compile-'));
  try {
    const pkg = toPackage(importTfjsLayers(await saveLikeTrain(model, dir), { modelId: zoo.name }));
    return withNchwInput(exportOnnx(pkg));
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface ImportedPair {
  /** Imported as before the compile pass: NCHW input, layout transposes. */
  stored: Package;
  /** Imported through the compile pass: NHWC input. */
  compiled: Package;
}

export function importBoth(onnx: Uint8Array, source: string): ImportedPair {
  return {
    stored: toPackage(importOnnx(onnx, { source, compile: false })),
    compiled: toPackage(importOnnx(onnx, { source })),
  };
}

/** `count` random images in [0, 1] for an input of `perImage` values. */
export function randomImages(perImage: number, count: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  return Float32Array.from({ length: perImage * count }, () => random.next());
}

/** NCHW images as NHWC ([n][c][h][w] -> [n][h][w][c]). */
export function nchwToNhwc(data: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let p = 0; p < h * w; p++) out[(b * h * w + p) * c + ch] = data[(b * c + ch) * h * w + p]!;
  return out;
}

/** The int8 package of an fp32 one, calibrated on random images in its own input layout. */
export function quantized(pkg: Package): Package {
  const spec = pkg.manifest.tensors[pkg.manifest.inputs[0]!.tensor]!;
  const perImage = spec.shape.slice(1).reduce((p, d) => p * d, 1);
  return toPackage(quantizePackage(pkg, { count: 1, data: randomImages(perImage, 1, 99) }).content);
}
