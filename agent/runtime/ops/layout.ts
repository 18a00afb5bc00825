// Ops that move data rather than compute it (concat, reshape, identity, transpose, channel_shuffle), and
// softmax along an axis, as reference-ops/layout.ts groups them.
import { expect, input, intAttr, intsAttr, normalizeAxis, pick } from '../attributes.js';
import { type Executor, f32AndInt8, type OpDefinition, perImage, type PrepareContext } from '../executor.js';
import { channelShuffle, concat, softmax, transpose, transposeShape } from '../reference-ops/layout.js';
import { elements, type TensorSpec } from '../tensor.js';

const concatOp: OpDefinition = {
  perImage,
  infer(node, inputs) {
    expect(
      inputs.length >= 1 && inputs.every((s) => s !== undefined),
      node,
      'concat needs at least one input, none missing',
    );
    const specs = inputs as TensorSpec[];
    const first = specs[0]!;
    const axis = normalizeAxis(node, intAttr(node, 'axis', 0), first.shape.length);
    const shape = [...first.shape];
    shape[axis] = 0;
    for (const spec of specs) {
      expect(
        spec.dtype === first.dtype && spec.shape.length === first.shape.length,
        node,
        'concat inputs must share dtype and rank',
      );
      spec.shape.forEach((d, i) =>
        expect(i === axis || d === first.shape[i], node, `concat inputs differ on axis ${i}`),
      );
      shape[axis] += spec.shape[axis]!;
    }
    return [{ ...first, shape }];
  },
  macs: () => 0,
  executors: f32AndInt8((context) => {
    const specs = context.inputs as TensorSpec[];
    const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', 0), specs[0]!.shape.length);
    return {
      kernel: `reference:concat_${context.format}`,
      run: (inputs, outputs) =>
        concat(
          specs.map((s) => s.shape),
          axis,
          specs.map((_, i) => pick(context, inputs, i)!),
          outputs[0]!,
        ),
    };
  }),
};

function copyExecutor(name: string) {
  return (context: PrepareContext): Executor => ({
    kernel: `reference:${name}`,
    run: (inputs, outputs) => outputs[0]!.set(pick(context, inputs, 0)!),
  });
}

const reshape: OpDefinition = {
  perImage,
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const target = node.attrs.shape;
    expect(Array.isArray(target) && target.length <= 8, node, 'reshape needs a shape attribute');
    const allowZero = intAttr(node, 'allowzero', 0, 0, 1) === 1;
    const shape = target.map((d, i) => (d === 0 && !allowZero ? (x.shape[i] ?? -2) : d));
    expect(
      shape.every((d) => Number.isInteger(d) && d >= -1),
      node,
      `bad reshape target [${target.join(', ')}]`,
    );
    const unknown = shape.filter((d) => d === -1).length;
    expect(unknown <= 1, node, 'at most one -1 in a reshape target');
    const known = shape.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
    const total = elements(x.shape);
    if (unknown === 1) {
      expect(known > 0 && total % known === 0, node, `cannot infer -1: ${total} elements over ${known}`);
      shape[shape.indexOf(-1)] = total / known;
    }
    expect(elements(shape) === total, node, `reshape of ${total} elements to [${shape.join(', ')}]`);
    return [{ ...x, shape }];
  },
  macs: () => 0,
  executors: f32AndInt8(copyExecutor('reshape')),
};

const identity: OpDefinition = {
  perImage,
  infer: (node, inputs) => [{ ...input(node, inputs, 0, 'x') }],
  macs: () => 0,
  executors: f32AndInt8(copyExecutor('identity')),
};

const transposeOp: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const perm = intsAttr(node, 'perm', x.shape.length, [...x.shape.keys()].reverse());
    expect(
      [...perm].sort((a, b) => a - b).every((p, i) => p === i),
      node,
      `perm [${perm.join(', ')}] is not a permutation`,
    );
    return [{ ...x, shape: transposeShape(x.shape, perm) }];
  },
  macs: () => 0,
  executors: f32AndInt8((context) => {
    const x = context.inputs[0]!;
    const perm = intsAttr(context.node, 'perm', x.shape.length, [...x.shape.keys()].reverse());
    return {
      kernel: `reference:transpose_${context.format}`,
      run: (inputs, outputs) => transpose(x.shape, perm, pick(context, inputs, 0)!, outputs[0]!),
    };
  }),
};

const softmaxOp: OpDefinition = {
  // Along an axis past the batch (or, coerce2d, over every axis from one past it): one image at a time.
  perImage: (node) => intAttr(node, 'axis', -1) !== 0,
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(x.dtype === 'f32', node, 'softmax takes fp32 input');
    normalizeAxis(node, intAttr(node, 'axis', -1), x.shape.length);
    return [{ ...x, shape: [...x.shape] }];
  },
  macs: (_node, inputs) => elements(inputs[0]!.shape),
  executors: {
    f32: (context) => {
      const x = context.inputs[0]!;
      const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', -1), x.shape.length);
      // coerce2d (ONNX opset < 13): one softmax over all axes from `axis` on.
      const shape =
        intAttr(context.node, 'coerce2d', 0, 0, 1) === 1
          ? [elements(x.shape.slice(0, axis)), elements(x.shape.slice(axis))]
          : x.shape;
      const along = shape === x.shape ? axis : 1;
      return {
        kernel: 'reference:softmax_f32',
        run: (inputs, outputs) => softmax(shape, along, inputs[0]!, outputs[0]!),
      };
    },
  },
};

const channelShuffleOp: OpDefinition = {
  perImage,
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const groups = intAttr(node, 'groups', 1, 1);
    const channels = x.shape[x.shape.length - 1] ?? 0;
    expect(channels % groups === 0, node, `channels ${channels} not divisible by groups ${groups}`);
    return [{ ...x, shape: [...x.shape] }];
  },
  macs: () => 0,
  executors: f32AndInt8((context) => {
    const x = context.inputs[0]!;
    const groups = intAttr(context.node, 'groups', 1, 1);
    const channels = x.shape[x.shape.length - 1]!;
    return {
      kernel: `reference:channel_shuffle_${context.format}`,
      run: (inputs, outputs) =>
        channelShuffle(elements(x.shape) / channels, groups, channels / groups, inputs[0]!, outputs[0]!),
    };
  }),
};

/** Index of the channel (along quant.axis) of each element, or null for per-tensor quantization. */
export const LAYOUT_OPS = {
  concat: concatOp,
  reshape,
  transpose: transposeOp,
  softmax: softmaxOp,
  identity,
  channel_shuffle: channelShuffleOp,
} satisfies Record<string, OpDefinition>;
