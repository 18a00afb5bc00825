// A small fp32 LeNet-style CNN (conv 5x5 + ReLU, max pool, conv 3x3 + ReLU, max pool, two fully-connected
// layers, softmax) with seeded weights, and its fixed16 / fixed8 twins made by optimize/package/fixed-point.ts
// from a seeded calibration set. Every conv / fc output is also a graph output, so tests can compare each
// layer, not only the last one.
import type { EncodedTensor } from '../../../agent/package/encodings.js';
import { encodeRaw } from '../../../agent/package/encodings.js';
import type { Manifest, ManifestNode, ManifestTensor } from '../../../agent/package/manifest.js';
import { type Package, readPackage } from '../../../agent/package/reader.js';
import { fixedPointPackage, type FixedPointResult } from '../../../optimize/package/fixed-point.js';
import { type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import type { CalibrationSet } from '../../../optimize/quantize/calibrate.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { signingKeys } from '../deploy/deploy-fixtures.js';

export const keys = signingKeys();
export const IMAGE = { height: 12, width: 12, channels: 1 };
export const IMAGE_ELEMENTS = IMAGE.height * IMAGE.width * IMAGE.channels;

export const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey });

/** Inputs like normalized images, in [0, 1); with `outliers`, every 97th value is in [3, 4) instead, past
 * the calibrated range, so that the input quantizer and the layers saturate somewhere. */
export function images(count: number, seed: number, outliers = false): Float32Array {
  const random = new SeededRandom(seed);
  return Float32Array.from({ length: count * IMAGE_ELEMENTS }, (_, i) =>
    outliers && i % 97 === 5 ? 3 + random.next() : random.next(),
  );
}

export function smallCnnContent(seed = 7): PackageContent {
  const random = new SeededRandom(seed);
  const tensors: ManifestTensor[] = [];
  const nodes: ManifestNode[] = [];
  const constants = new Map<number, EncodedTensor>();
  const tensor = (name: string, shape: number[]): number => tensors.push({ name, dtype: 'f32', shape }) - 1;
  const constant = (name: string, shape: number[], std: number): number => {
    const index = tensor(name, shape);
    const n = shape.reduce((a, b) => a * b, 1);
    constants.set(index, encodeRaw(Float32Array.from({ length: n }, () => random.normal() * std)));
    return index;
  };
  const layer = (
    name: string,
    op: 'conv2d' | 'fully_connected',
    x: number,
    weightShape: number[],
    outShape: number[],
    attrs: ManifestNode['attrs'],
  ): number => {
    const fanIn = weightShape.slice(1).reduce((a, b) => a * b, 1);
    const w = constant(`${name}.weight`, weightShape, Math.sqrt(2 / fanIn));
    const b = constant(`${name}.bias`, [weightShape[0]!], 0.1);
    const y = tensor(`${name}.out`, outShape);
    nodes.push({ name, op, format: 'f32', inputs: [x, w, b], outputs: [y], attrs });
    return y;
  };
  const pool = (name: string, x: number, outShape: number[]): number => {
    const y = tensor(`${name}.out`, outShape);
    nodes.push({
      name,
      op: 'max_pool',
      format: 'f32',
      inputs: [x],
      outputs: [y],
      attrs: { kernel: [2, 2], strides: [2, 2] },
    });
    return y;
  };
  const input = tensor('image', [1, IMAGE.height, IMAGE.width, IMAGE.channels]);
  const conv1 = layer('conv1', 'conv2d', input, [6, 5, 5, 1], [1, 12, 12, 6], { pads: [2, 2, 2, 2], min: 0 });
  const conv2 = layer('conv2', 'conv2d', pool('pool1', conv1, [1, 6, 6, 6]), [8, 3, 3, 6], [1, 4, 4, 8], {
    min: 0,
  });
  // fully_connected reads any [batch, ...] tensor as [batch][K]: the pooled NHWC map is its input as is.
  const fc1 = layer('fc1', 'fully_connected', pool('pool2', conv2, [1, 2, 2, 8]), [16, 32], [1, 16], {
    min: 0,
  });
  const logits = layer('fc2', 'fully_connected', fc1, [10, 16], [1, 10], {});
  const probabilities = tensor('probabilities', [1, 10]);
  nodes.push({
    name: 'softmax',
    op: 'softmax',
    format: 'f32',
    inputs: [logits],
    outputs: [probabilities],
    attrs: { axis: -1 },
  });
  const manifest: Manifest = {
    format: 'whittle-package',
    version: 1,
    model: { id: 'small-cnn', version: '1' },
    target: { deviceClass: 'any', cpuFamily: 'any' },
    inputs: [{ name: 'image', tensor: input, layout: 'NHWC' }],
    outputs: [
      { name: 'probabilities', tensor: probabilities },
      { name: 'conv1', tensor: conv1 },
      { name: 'conv2', tensor: conv2 },
      { name: 'fc1', tensor: fc1 },
      { name: 'logits', tensor: logits },
    ],
    tensors,
    nodes,
  };
  return { manifest, constants };
}

export const calibration = (): CalibrationSet => ({ count: 16, data: images(16, 11) });

export function fixedPointCnn(bits: 16 | 8): FixedPointResult {
  return fixedPointPackage(read(smallCnnContent()), calibration(), { bits });
}
