// Ops that move data rather than compute it (concat, reshape, identity, transpose, channel_shuffle, pad,
// slice, split, gather on constant indices, expand), and softmax along an axis, as reference-ops/layout.ts
// groups them. Attributes follow ONNX's (pads as all begins then all ends, slice bounds clamped as ONNX
// clamps them), with what ONNX passes as constant inputs stored as attributes.
import type { ManifestNode } from '../../package/manifest.js';
import {
  expect,
  input,
  intAttr,
  intListAttr,
  intsAttr,
  normalizeAxis,
  numberAttr,
  pick,
  stringAttr,
} from '../attributes.js';
import { type Executor, f32AndInt8, type OpDefinition, perImage, type PrepareContext } from '../executor.js';
import { binaryBroadcast } from '../reference-ops/elementwise.js';
import {
  channelShuffle,
  concat,
  gatherElements,
  softmax,
  stridesOf,
  transpose,
  transposeShape,
} from '../reference-ops/layout.js';
import { broadcastShapes } from '../reference-ops/matmul.js';
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

const PAD_MODES = ['constant', 'reflect', 'edge'] as const;

/** A pad node's per-axis [begin, end] padding (non-negative) and mode, checked against x. */
function padding(node: ManifestNode, shape: readonly number[]) {
  const rank = shape.length;
  const pads = intsAttr(node, 'pads', 2 * rank, new Array<number>(2 * rank).fill(0), 0);
  const mode = stringAttr(node, 'mode', PAD_MODES, 'constant');
  shape.forEach((d, a) => {
    const [begin, end] = [pads[a]!, pads[a + rank]!];
    expect(
      mode === 'constant' || (d > 0 && (mode === 'edge' || (begin < d && end < d))),
      node,
      `${mode} padding of ${begin}+${end} does not fit axis ${a} of size ${d}`,
    );
  });
  return { pads, mode, value: numberAttr(node, 'value', 0) };
}

const padOp: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const { pads } = padding(node, x.shape);
    return [{ ...x, shape: x.shape.map((d, a) => d + pads[a]! + pads[a + x.shape.length]!) }];
  },
  macs: () => 0,
  executors: f32AndInt8((context) => {
    const shape = context.inputs[0]!.shape;
    const { pads, mode, value } = padding(context.node, shape);
    const strides = stridesOf(shape);
    const outShape = context.outputs[0]!.shape;
    const source = (index: readonly number[]): number => {
      let at = 0;
      for (let a = 0; a < shape.length; a++) {
        const d = shape[a]!;
        let i = index[a]! - pads[a]!;
        if (i < 0 || i >= d) {
          if (mode === 'constant') return -1;
          i = mode === 'edge' ? Math.min(d - 1, Math.max(0, i)) : i < 0 ? -i : 2 * (d - 1) - i;
        }
        at += i * strides[a]!;
      }
      return at;
    };
    return {
      kernel: `reference:pad_${context.format}`,
      run: (inputs, outputs) =>
        gatherElements(outShape, pick(context, inputs, 0)!, outputs[0]!, source, value),
    };
  }),
};

/** A slice node's first index, step and length on every axis of x, ONNX's clamping applied. */
export function sliceRanges(node: ManifestNode, shape: readonly number[]) {
  const rank = shape.length;
  const starts = intListAttr(node, 'starts', []);
  const ends = intListAttr(node, 'ends', []);
  const axes = intListAttr(node, 'axes', [...starts.keys()]).map((a) => normalizeAxis(node, a, rank));
  const steps = intListAttr(
    node,
    'steps',
    starts.map(() => 1),
  );
  expect(
    ends.length === starts.length && axes.length === starts.length && steps.length === starts.length,
    node,
    'slice needs as many ends, axes and steps as starts',
  );
  expect(new Set(axes).size === axes.length, node, `slice axes repeat: [${axes.join(', ')}]`);
  const first = new Array<number>(rank).fill(0);
  const step = new Array<number>(rank).fill(1);
  const length = [...shape];
  axes.forEach((a, k) => {
    const d = shape[a]!;
    const s = steps[k]!;
    expect(s !== 0, node, `slice step 0 on axis ${a}`);
    let begin = starts[k]! < 0 ? starts[k]! + d : starts[k]!;
    let end = ends[k]! < 0 ? ends[k]! + d : ends[k]!;
    if (s > 0) {
      begin = Math.min(d, Math.max(0, begin));
      end = Math.min(d, Math.max(0, end));
    } else {
      begin = Math.min(d - 1, Math.max(0, begin));
      end = Math.min(d - 1, Math.max(-1, end));
    }
    first[a] = begin;
    step[a] = s;
    length[a] = Math.max(0, Math.ceil((end - begin) / s));
  });
  return { first, step, length };
}

/** Reads x at `first + index * step` on every axis (slice and split). */
function stridedSource(shape: readonly number[], first: readonly number[], step: readonly number[]) {
  const strides = stridesOf(shape);
  return (index: readonly number[]): number => {
    let at = 0;
    for (let a = 0; a < shape.length; a++) at += (first[a]! + index[a]! * step[a]!) * strides[a]!;
    return at;
  };
}

const sliceOp: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    return [{ ...x, shape: sliceRanges(node, x.shape).length }];
  },
  macs: () => 0,
  executors: f32AndInt8((context) => {
    const shape = context.inputs[0]!.shape;
    const { first, step, length } = sliceRanges(context.node, shape);
    const source = stridedSource(shape, first, step);
    return {
      kernel: `reference:slice_${context.format}`,
      run: (inputs, outputs) => gatherElements(length, pick(context, inputs, 0)!, outputs[0]!, source),
    };
  }),
};

/** A split node's axis and the size of each part (attribute split, or equal parts, one per output). */
export function splitSizes(node: ManifestNode, shape: readonly number[], parts: number) {
  const axis = normalizeAxis(node, intAttr(node, 'axis', 0), shape.length);
  const d = shape[axis]!;
  const fallback = Array.from({ length: parts }, (_, k) =>
    Math.min(Math.ceil(d / parts), Math.max(0, d - k * Math.ceil(d / parts))),
  );
  const sizes = intListAttr(node, 'split', fallback);
  expect(
    sizes.length === parts && sizes.every((s) => s >= 0) && sizes.reduce((p, s) => p + s, 0) === d,
    node,
    `split sizes [${sizes.join(', ')}] must be ${parts} non-negative sizes adding up to ${d}`,
  );
  return { axis, sizes };
}

const splitOp: OpDefinition = {
  infer(node, inputs, declared) {
    const x = input(node, inputs, 0, 'x');
    const { axis, sizes } = splitSizes(node, x.shape, declared.length);
    return sizes.map((s) => ({ ...x, shape: x.shape.map((d, a) => (a === axis ? s : d)) }));
  },
  macs: () => 0,
  executors: f32AndInt8((context) => {
    const shape = context.inputs[0]!.shape;
    const { axis, sizes } = splitSizes(context.node, shape, context.outputs.length);
    const step = shape.map(() => 1);
    const parts = sizes.map((_, k) => {
      const first = shape.map((_d, a) => (a === axis ? sizes.slice(0, k).reduce((p, s) => p + s, 0) : 0));
      return { shape: context.outputs[k]!.shape, source: stridedSource(shape, first, step) };
    });
    return {
      kernel: `reference:split_${context.format}`,
      run: (inputs, outputs) =>
        parts.forEach((part, k) =>
          gatherElements(part.shape, pick(context, inputs, 0)!, outputs[k]!, part.source),
        ),
    };
  }),
};

/** A gather node's axis and constant indices (attribute indices, negative ones counted from the end) with
 * their shape (indices_shape; default a list). */
function gatherIndices(node: ManifestNode, shape: readonly number[]) {
  const axis = normalizeAxis(node, intAttr(node, 'axis', 0), shape.length);
  const d = shape[axis]!;
  const raw = intListAttr(node, 'indices', []);
  const indicesShape = intListAttr(node, 'indices_shape', [raw.length]);
  expect(
    indicesShape.every((n) => n >= 0) && elements(indicesShape) === raw.length,
    node,
    `indices_shape [${indicesShape.join(', ')}] does not hold ${raw.length} indices`,
  );
  const indices = raw.map((i) => {
    expect(i >= -d && i < d, node, `gather index ${i} is outside axis ${axis} of size ${d}`);
    return i < 0 ? i + d : i;
  });
  return { axis, indices, indicesShape };
}

const gatherOp: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const { axis, indicesShape } = gatherIndices(node, x.shape);
    return [{ ...x, shape: [...x.shape.slice(0, axis), ...indicesShape, ...x.shape.slice(axis + 1)] }];
  },
  macs: () => 0,
  executors: f32AndInt8((context) => {
    const shape = context.inputs[0]!.shape;
    const { axis, indices, indicesShape } = gatherIndices(context.node, shape);
    const strides = stridesOf(shape);
    const inner = stridesOf(indicesShape);
    const k = indicesShape.length;
    const source = (index: readonly number[]): number => {
      let at = 0;
      for (let a = 0; a < axis; a++) at += index[a]! * strides[a]!;
      let flat = 0;
      for (let j = 0; j < k; j++) flat += index[axis + j]! * inner[j]!;
      at += indices[flat]! * strides[axis]!;
      for (let a = axis + 1; a < shape.length; a++) at += index[a - 1 + k]! * strides[a]!;
      return at;
    };
    const outShape = context.outputs[0]!.shape;
    return {
      kernel: `reference:gather_${context.format}`,
      run: (inputs, outputs) => gatherElements(outShape, pick(context, inputs, 0)!, outputs[0]!, source),
    };
  }),
};

const expandOp: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const target = intListAttr(node, 'shape', []);
    const shape = broadcastShapes(x.shape, target);
    expect(typeof shape !== 'string', node, typeof shape === 'string' ? shape : '');
    return [{ ...x, shape }];
  },
  macs: () => 0,
  executors: f32AndInt8((context) => {
    const x = context.inputs[0]!;
    const y = context.outputs[0]!;
    const none = [0];
    return {
      kernel: `reference:expand_${context.format}`,
      run: (inputs, outputs) =>
        binaryBroadcast(x.shape, pick(context, inputs, 0)!, [], none, y.shape, outputs[0]!, (v) => v),
    };
  }),
};

export const LAYOUT_OPS = {
  concat: concatOp,
  reshape,
  transpose: transposeOp,
  softmax: softmaxOp,
  identity,
  channel_shuffle: channelShuffleOp,
  pad: padOp,
  slice: sliceOp,
  split: splitOp,
  gather: gatherOp,
  expand: expandOp,
} satisfies Record<string, OpDefinition>;
