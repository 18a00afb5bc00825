// batch_norm in inference form (fp32): (x - mean) / sqrt(variance + epsilon) * scale + bias along an axis.
// Imported models fold it into the convolution before it (optimize/fold-batchnorm.ts) where they can.
// layer_norm (over the axes from `axis` on) and instance_norm (per sample and channel, over the other axes)
// compute their statistics at run time: (x - mean) / sqrt(variance + epsilon) * scale + bias.
import type { ManifestNode } from '../../package/manifest.js';
import { expect, input, intAttr, normalizeAxis, numberAttr, pick } from '../attributes.js';
import type { OpDefinition } from '../executor.js';
import { stridesOf } from '../reference-ops/layout.js';
import { channelOf, elements } from '../tensor.js';

const batchNorm: OpDefinition = {
  perImage: (node) => intAttr(node, 'axis', 1) !== 0,
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(x.dtype === 'f32', node, 'batch_norm takes fp32 input');
    const axis = normalizeAxis(node, intAttr(node, 'axis', 1), x.shape.length);
    for (let i = 1; i <= 4; i++) {
      const p = input(node, inputs, i, ['', 'scale', 'bias', 'mean', 'variance'][i]!);
      expect(
        elements(p.shape) === x.shape[axis],
        node,
        `batch_norm parameter ${i} must have ${x.shape[axis]} elements`,
      );
    }
    return [{ ...x, shape: [...x.shape] }];
  },
  macs: (_node, inputs) => 2 * elements(inputs[0]!.shape),
  executors: {
    f32: (context) => {
      const x = context.inputs[0]!;
      const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', 1), x.shape.length);
      const channel = channelOf(x.shape, axis)!;
      const epsilon = numberAttr(context.node, 'epsilon', 1e-5);
      return {
        kernel: 'reference:batch_norm_f32',
        run: (inputs, outputs) => {
          const [data, s, b, m, v] = [0, 1, 2, 3, 4].map((i) => pick(context, inputs, i)!);
          const out = outputs[0]!;
          for (let i = 0; i < out.length; i++) {
            const c = channel(i);
            out[i] = ((data![i]! - m![c]!) / Math.sqrt(v![c]! + epsilon)) * s![c]! + b![c]!;
          }
        },
      };
    },
  },
};

/** Normalizes `groups` sets of `count` elements each: element k of set s is at offset(s, k); its scale and
 * bias index is param(s, k). In double, the sums in k order: the native layer_norm (f32_layer_norm) computes
 * the same operations in the same order and is bit-exact with this. */
function normalizeSets(
  x: ArrayLike<number>,
  y: { [i: number]: number },
  groups: number,
  count: number,
  offset: (s: number, k: number) => number,
  param: (s: number, k: number) => number,
  scale: ArrayLike<number>,
  bias: ArrayLike<number> | undefined,
  epsilon: number,
): void {
  for (let s = 0; s < groups; s++) {
    let mean = 0;
    for (let k = 0; k < count; k++) mean += x[offset(s, k)]!;
    mean /= count;
    let variance = 0;
    for (let k = 0; k < count; k++) {
      const d = x[offset(s, k)]! - mean;
      variance += d * d;
    }
    const inv = 1 / Math.sqrt(variance / count + epsilon);
    for (let k = 0; k < count; k++) {
      const at = offset(s, k);
      const p = param(s, k);
      y[at] = (x[at]! - mean) * inv * scale[p]! + (bias ? bias[p]! : 0);
    }
  }
}

function checkParams(
  node: ManifestNode,
  inputs: Parameters<OpDefinition['infer']>[1],
  size: number,
  biasOptional: boolean,
) {
  const scale = input(node, inputs, 1, 'scale');
  expect(elements(scale.shape) === size, node, `scale must have ${size} elements`);
  const bias = biasOptional ? inputs[2] : input(node, inputs, 2, 'bias');
  expect(bias === undefined || elements(bias.shape) === size, node, `bias must have ${size} elements`);
}

const layerNorm: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(x.dtype === 'f32', node, 'layer_norm takes fp32 input');
    const axis = normalizeAxis(node, intAttr(node, 'axis', -1), x.shape.length);
    checkParams(node, inputs, elements(x.shape.slice(axis)), true);
    return [{ ...x, shape: [...x.shape] }];
  },
  macs: (_node, inputs) => 4 * elements(inputs[0]!.shape),
  executors: {
    f32: (context) => {
      const shape = context.inputs[0]!.shape;
      const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', -1), shape.length);
      const count = elements(shape.slice(axis));
      const epsilon = numberAttr(context.node, 'epsilon', 1e-5);
      return {
        kernel: 'reference:layer_norm_f32',
        run: (inputs, outputs) =>
          normalizeSets(
            inputs[0]!,
            outputs[0]!,
            elements(shape.slice(0, axis)),
            count,
            (s, k) => s * count + k,
            (_s, k) => k,
            pick(context, inputs, 1)!,
            pick(context, inputs, 2),
            epsilon,
          ),
      };
    },
  },
};

const instanceNorm: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(
      x.dtype === 'f32' && x.shape.length >= 3,
      node,
      'instance_norm takes fp32 input of rank 3 or more',
    );
    const axis = normalizeAxis(node, intAttr(node, 'axis', 1), x.shape.length);
    expect(axis !== 0, node, 'instance_norm: the channel axis cannot be the batch axis');
    checkParams(node, inputs, x.shape[axis]!, false);
    return [{ ...x, shape: [...x.shape] }];
  },
  macs: (_node, inputs) => 4 * elements(inputs[0]!.shape),
  executors: {
    f32: (context) => {
      const shape = context.inputs[0]!.shape;
      const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', 1), shape.length);
      const channels = shape[axis]!;
      // Set (n, c) holds the elements of sample n and channel c: its k-th is found by the other axes' strides.
      const strides = stridesOf(shape);
      const others = shape.map((_, a) => a).filter((a) => a !== 0 && a !== axis);
      const count = elements(others.map((a) => shape[a]!));
      const inner = stridesOf(others.map((a) => shape[a]!));
      const offsets = Int32Array.from({ length: count }, (_, k) =>
        others.reduce((at, a, j) => at + (Math.floor(k / inner[j]!) % shape[a]!) * strides[a]!, 0),
      );
      const epsilon = numberAttr(context.node, 'epsilon', 1e-5);
      return {
        kernel: 'reference:instance_norm_f32',
        run: (inputs, outputs) =>
          normalizeSets(
            inputs[0]!,
            outputs[0]!,
            shape[0]! * channels,
            count,
            (s, k) => Math.floor(s / channels) * strides[0]! + (s % channels) * strides[axis]! + offsets[k]!,
            (s) => s % channels,
            pick(context, inputs, 1)!,
            pick(context, inputs, 2),
            epsilon,
          ),
      };
    },
  },
};

export const NORMALIZATION_OPS = {
  batch_norm: batchNorm,
  layer_norm: layerNorm,
  instance_norm: instanceNorm,
} satisfies Record<string, OpDefinition>;
