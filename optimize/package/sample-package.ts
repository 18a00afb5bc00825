// A small CNN whose layers use every weight encoding of the package format: the fixture of the package
// tests, the fuzz job (bench/fuzz.ts) and the runtime tests. Weights are seeded, so the bytes are stable.
import {
  type EncodedTensor,
  encodeRaw,
  encodeWeights,
  type WeightEncodingOptions,
} from '../../agent/package/encodings.js';
import type { Manifest, ManifestNode, ManifestTensor } from '../../agent/package/manifest.js';
import { SeededRandom } from '../seeded-random.js';
import { GraphBuilder } from './graph-builder.js';
import type { PackageContent } from './writer.js';

export function samplePackageContent(seed = 1): PackageContent {
  const random = new SeededRandom(seed);
  const tensors: ManifestTensor[] = [];
  const nodes: ManifestNode[] = [];
  const constants = new Map<number, EncodedTensor>();
  const tensor = (name: string, shape: number[], dtype: ManifestTensor['dtype'] = 'f32'): number => {
    tensors.push({ name, dtype, shape });
    return tensors.length - 1;
  };
  const weights = (n: number): Float32Array => Float32Array.from({ length: n }, () => random.normal() * 0.3);
  const constant = (
    name: string,
    shape: number[],
    encode: (values: Float32Array) => EncodedTensor,
  ): number => {
    const index = tensor(name, shape);
    constants.set(index, encode(weights(shape.reduce((a, b) => a * b, 1))));
    return index;
  };
  /** A conv2d layer in `format`: its weights (`shape`) seeded values, or what `weight` makes of them, stored by
   * the format's encoder (encodeWeights); its bias fp32. */
  const conv = (
    name: string,
    format: ManifestNode['format'],
    x: number,
    shape: number[],
    outShape: number[],
    attrs: ManifestNode['attrs'],
    weight: (values: Float32Array) => { values?: Float32Array; options?: WeightEncodingOptions } = () => ({}),
  ): number => {
    const w = constant(`${name}.weight`, shape, (v) => {
      const { values = v, options } = weight(v);
      return encodeWeights(format, values, shape, options);
    });
    const b = constant(`${name}.bias`, [shape[0]!], encodeRaw);
    const y = tensor(`${name}.out`, outShape);
    nodes.push({ name, op: 'conv2d', format, inputs: [x, w, b], outputs: [y], attrs });
    return y;
  };
  const input = tensor('image', [1, 8, 8, 3]);
  let x = conv('conv1', 'f32', input, [4, 3, 3, 3], [1, 8, 8, 4], { pads: [1, 1, 1, 1], min: 0 });
  x = conv('conv2', 'binary', x, [8, 3, 3, 4], [1, 4, 4, 8], { pads: [1, 1, 1, 1], strides: [2, 2] });
  x = conv('conv3', 'ternary', x, [8, 1, 1, 8], [1, 4, 4, 8], { min: 0 });
  x = conv('conv4', 'codebook', x, [8, 3, 3, 1], [1, 4, 4, 8], { pads: [1, 1, 1, 1], groups: 8 }, (v) => ({
    options: {
      centroids: Float32Array.from([-0.4, -0.1, 0.1, 0.4]),
      indices: Uint8Array.from(v, (w) => (w < -0.2 ? 0 : w < 0 ? 1 : w < 0.2 ? 2 : 3)),
    },
  }));
  x = conv('conv5', 'sparse', x, [8, 1, 1, 8], [1, 4, 4, 8], {}, (v) => ({
    values: v.map((w) => (Math.abs(w) < 0.25 ? 0 : w)),
  }));
  x = conv('conv6', 'fixed16', x, [8, 1, 1, 8], [1, 4, 4, 8], { min: 0 }, () => ({
    options: { fracBits: 12 },
  }));
  x = conv('conv7', 'fixed8', x, [8, 1, 1, 8], [1, 4, 4, 8], {}, () => ({ options: { fracBits: 6 } }));
  x = conv('conv8', 'xnor', x, [8, 3, 3, 8], [1, 4, 4, 8], { pads: [1, 1, 1, 1] });
  x = conv('conv9', 'sparse-codebook', x, [8, 3, 3, 8], [1, 4, 4, 8], { pads: [1, 1, 1, 1], min: 0 }, (v) => {
    // Pruned to |w| >= 0.3 (about 70 % zeros) and shared over 6 centroids; 2-bit gaps, so runs of 3 zeros
    // or more take fillers.
    const centroids = Float32Array.from([-0.9, -0.6, -0.35, 0.35, 0.6, 0.9]);
    const values = v.map((w) =>
      Math.abs(w) < 0.3 ? 0 : centroids.reduce((a, c) => (Math.abs(c - w) < Math.abs(a - w) ? c : a)),
    );
    return { values, options: { centroids, gapBits: 2 } };
  });
  const pooled = tensor('pool.out', [1, 1, 1, 8]);
  nodes.push({
    name: 'pool',
    op: 'global_avgpool',
    format: 'f32',
    inputs: [x],
    outputs: [pooled],
    attrs: {},
  });
  const fcWeight = constant('fc.weight', [10, 8], (v) =>
    encodeWeights('hashed', v, [10, 8], { hashed: { buckets: 32, seed: 7 } }),
  );
  const fcBias = constant('fc.bias', [10], encodeRaw);
  const logits = tensor('logits', [1, 10]);
  nodes.push({
    name: 'fc',
    op: 'fully_connected',
    format: 'hashed',
    inputs: [pooled, fcWeight, fcBias],
    outputs: [logits],
    attrs: {},
  });
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
    model: { id: 'sample-cnn', version: '1.0.0', name: 'every encoding' },
    target: { deviceClass: 'any', cpuFamily: 'any' },
    budgets: { latencyMs: 5, ramBytes: 1 << 20, packageBytes: 1 << 16 },
    accuracy: { dataset: 'none', images: 0, top1: 0 },
    labels: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'],
    inputs: [
      {
        name: 'image',
        tensor: input,
        layout: 'NHWC',
        preprocessing: { kind: 'image', width: 8, height: 8, channels: 3, mean: [0.5], std: [0.25] },
      },
    ],
    outputs: [{ name: 'probabilities', tensor: probabilities }],
    tensors,
    nodes,
  };
  return { manifest, constants };
}

/** An int8 fully-connected layer whose weights are stored as ternary int8 bit planes (format 1.5) — what
 * `ternary` on int8 activations writes — or, with `planes` false, the same weights raw: quantize_linear ->
 * qfully_connected -> dequantize_linear, 20 inputs, 3 outputs. The fixture of the int8 planes tests and a
 * seed of the package fuzzer. */
export function samplePlanarInt8Content(planes = true): PackageContent {
  const weights = Int8Array.from([
    ...[127, 0, -127, 0, 0, 127, -127, 127, 0, 0, 127, -127, 0, 127, 0, 0, -127, 127, 0, 0],
    ...[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ...[5, -5, 0, 5, 0, 0, -5, 0, 5, 5, 0, 0, -5, 0, 0, 5, 0, -5, 0, 5],
  ]);
  const g = new GraphBuilder();
  const x = g.addTensor('x', { dtype: 'f32', shape: [1, 20] });
  const [q] = g.emit('q', 'quantize_linear', 'int8', [x], {}, [
    { dtype: 'i8', quant: { scale: [0.02], zeroPoint: [3] } },
  ]);
  const w = g.constant('w', 'i8', [3, 20], weights, {
    scale: [0.01, 0.02, 0.03],
    zeroPoint: [0, 0, 0],
    axis: 0,
  });
  const b = g.constant('b', 'i32', [3], [10, -20, 30]);
  const [y] = g.emit('fc', 'qfully_connected', 'int8', [q!, w, b], {}, [
    { dtype: 'i8', shape: [1, 3], quant: { scale: [0.05], zeroPoint: [-2] } },
  ]);
  const [out] = g.emit('dq', 'dequantize_linear', 'int8', [y!], {}, [{ dtype: 'f32' }]);
  const content = g.finish([{ name: 'x', tensor: x, layout: 'NC' }], [{ name: 'y', tensor: out! }], {
    id: 'planes',
    version: '1',
  });
  if (!planes) {
    const index = content.manifest.tensors.findIndex((t) => t.name === 'w');
    const constants = new Map(content.constants);
    constants.set(index, { encoding: { kind: 'raw' }, bytes: Buffer.from(weights.buffer) });
    content.constants = constants;
  }
  return content;
}
