// Layout and plumbing: Constant, Concat, Flatten, Reshape, Transpose, Squeeze / Unsqueeze (as reshape),
// Slice, Split, Gather on constant indices, Expand, Pad (that no Conv takes), and the inference identities
// Dropout and Identity. What ONNX passes as constant inputs becomes the IR op's attributes.
import { elements } from '../../../agent/runtime/tensor.js';
import type { OnnxNode, OnnxOpTable } from '../context.js';
import { ElemType, type OnnxTensor } from '../onnx-proto.js';

/** The input's rank and `axes` made non-negative, or the node refused. */
function normalized(n: OnnxNode, axes: readonly number[], rank: number): number[] {
  return axes.map((a) => {
    if (!Number.isInteger(a) || a < -rank || a >= rank) n.fail(`axis ${a} is outside rank ${rank}`);
    return a < 0 ? a + rank : a;
  });
}

/** Whether a Squeeze removes axis 0. */
function squeezedFirst(n: OnnxNode, shape: readonly number[], axes: readonly number[]): boolean {
  return axes.length === 0 ? shape[0] === 1 : normalized(n, axes, shape.length).includes(0);
}

/** Squeeze and Unsqueeze are reshapes to the shape they compute (shapes are static). */
function squeeze(n: OnnxNode): void {
  const x = n.input(0, 'data');
  const shape = n.b.tensors[x]!.shape;
  const axes = n.listArg('axes', 1, 13, []);
  let target: number[];
  if (n.opType === 'Unsqueeze') {
    const rank = shape.length + axes.length;
    const added = new Set(normalized(n, axes, rank));
    if (added.size !== axes.length) n.fail(`axes [${axes.join(', ')}] repeat`);
    const rest = [...shape];
    target = Array.from({ length: rank }, (_, a) => (added.has(a) ? 1 : rest.shift()!));
  } else {
    const removed = new Set(
      axes.length === 0 ? shape.flatMap((d, a) => (d === 1 ? [a] : [])) : normalized(n, axes, shape.length),
    );
    for (const a of removed) if (shape[a] !== 1) n.fail(`axis ${a} has size ${shape[a]}, not 1`);
    target = shape.filter((_, a) => !removed.has(a));
  }
  // The batch axis kept in front is -1, so the package still runs at any batch size.
  const keepsFirst =
    n.opType === 'Unsqueeze'
      ? !normalized(n, axes, target.length).includes(0)
      : !squeezedFirst(n, shape, axes);
  if (keepsFirst && target.length > 0 && target.every((d) => d > 0)) target[0] = -1;
  n.set(0, n.emit('reshape', [x], { shape: target }));
}

function slice(n: OnnxNode): void {
  const x = n.input(0, 'data');
  const starts = n.listArg('starts', 1, 10, []);
  const ends = n.listArg('ends', 2, 10, []);
  const axes = normalized(n, n.listArg('axes', 3, 10, [...starts.keys()]), n.b.tensors[x]!.shape.length);
  const steps =
    n.opset >= 10
      ? n.listArg(
          'steps',
          4,
          10,
          starts.map(() => 1),
        )
      : starts.map(() => 1);
  n.set(0, n.emit('slice', [x], { starts, ends, axes, steps }));
}

function split(n: OnnxNode): void {
  const x = n.input(0, 'input');
  const parts = (n.proto.output ?? []).length;
  if (n.opset >= 18 && n.attrs.has('num_outputs') && n.int('num_outputs', parts) !== parts)
    n.fail(`num_outputs ${n.int('num_outputs', parts)} but ${parts} outputs`);
  const sizes = n.listArg('split', 1, 13, []);
  const attrs = { axis: n.int('axis', 0), ...(sizes.length > 0 ? { split: sizes } : {}) };
  const ys = n.b.emit(
    n.name,
    'split',
    n.b.formatOf(x),
    [x],
    attrs,
    (n.proto.output ?? []).map(() => ({})),
  );
  ys.forEach((y, k) => n.set(k, y));
}

/** Pad that no Conv folds: constant, reflect or edge padding of any axes (pads as an attribute before opset
 * 11, inputs from 11, axes from 18). */
function pad(n: OnnxNode): void {
  if (n.ctx.padOf.has(n.proto.output?.[0] ?? '')) return; // folded where the Conv reads it (ops/conv.ts)
  const x = n.input(0, 'data');
  const rank = n.b.tensors[x]!.shape.length;
  const mode = n.oneOf('mode', 'constant', ['constant', 'reflect', 'edge']);
  const given = n.opset >= 11 ? n.constant(1, 'pads') : n.ints('pads', []);
  const value =
    n.opset >= 11 ? (n.optional(2) < 0 ? 0 : n.constant(2, 'constant_value')[0]!) : n.float('value', 0);
  const axes =
    n.opset >= 18 && n.optional(3) >= 0
      ? normalized(n, n.constant(3, 'axes'), rank)
      : [...Array(rank).keys()];
  if (given.length !== 2 * axes.length) n.fail(`pads has ${given.length} values for ${axes.length} axes`);
  if (given.some((p) => p < 0)) n.fail(`negative pads [${given.join(', ')}] (cropping) are not supported`);
  const pads = new Array<number>(2 * rank).fill(0);
  axes.forEach((a, k) => {
    pads[a] = given[k]!;
    pads[a + rank] = given[k + axes.length]!;
  });
  n.set(0, n.emit('pad', [x], { pads, mode, value }));
}

export const LAYOUT_ONNX_OPS: OnnxOpTable = {
  Constant: (n) => {
    // A constant tensor (PyTorch writes Clip's bounds and Reshape's shape so): an initializer by another
    // name. Its value comes in one of several attributes (opset 12 added the scalar and list forms).
    const output = n.proto.output?.[0] ?? n.name;
    const scalarOrList = (elemType: number, values: number[], scalar: boolean): OnnxTensor => ({
      name: output,
      elemType,
      dims: scalar ? [] : [values.length],
      data: elemType === ElemType.FLOAT ? Float32Array.from(values) : values,
    });
    const value = n.attrs.has('value')
      ? n.tensor('value')
      : n.attrs.has('value_float')
        ? scalarOrList(ElemType.FLOAT, [n.float('value_float', 0)], true)
        : n.attrs.has('value_floats')
          ? scalarOrList(ElemType.FLOAT, n.floats('value_floats', []), false)
          : n.attrs.has('value_int')
            ? scalarOrList(ElemType.INT64, [n.int('value_int', 0)], true)
            : n.attrs.has('value_ints')
              ? scalarOrList(ElemType.INT64, n.ints('value_ints', []), false)
              : undefined;
    if (value === undefined)
      return n.fail(
        `attribute ${[...n.attrs.keys()].join(', ') || '(none)'} is not supported (value, value_float(s) and value_int(s) are)`,
      );
    n.ctx.declareConstant(value, output);
  },
  Concat: (n) => {
    const inputs = (n.proto.input ?? []).map((_, i) => n.input(i, `input ${i}`));
    n.set(0, n.emit('concat', inputs, { axis: n.int('axis', 0) }));
  },
  Flatten: (n) => {
    const x = n.input(0, 'input');
    const shape = n.b.tensors[x]!.shape;
    let axis = n.int('axis', 1);
    if (axis < 0) axis += shape.length;
    if (axis < 0 || axis > shape.length) n.fail(`axis ${axis} outside rank ${shape.length}`);
    // [-1, inner] rather than fixed numbers, so the package still runs at any batch size.
    const target = axis === 0 ? [1, -1] : [-1, elements(shape.slice(axis))];
    n.set(0, n.emit('reshape', [x], { shape: target }));
  },
  Reshape: (n) => {
    const x = n.input(0, 'data');
    const shape = n.opset >= 5 ? n.constant(1, 'shape') : n.ints('shape', []);
    n.set(0, n.emit('reshape', [x], { shape, allowzero: n.int('allowzero', 0) }));
  },
  Transpose: (n) => {
    const x = n.input(0, 'data');
    const rank = n.b.tensors[x]!.shape.length;
    n.set(0, n.emit('transpose', [x], { perm: n.ints('perm', [...Array(rank).keys()].reverse()) }));
  },
  Dropout: (n) => {
    const x = n.input(0, 'input');
    if (n.optional(2) >= 0) {
      // Training-mode dropout is random; it is the identity only when it is off or its ratio is 0.
      const training = n.constant(2, 'training_mode')[0] !== 0;
      const ratio = n.optional(1) >= 0 ? n.constant(1, 'ratio')[0]! : 0.5;
      if (training && ratio !== 0)
        n.fail('training-mode dropout (random) is not supported; export the model in eval mode');
    }
    // Inference: Dropout is the identity; its mask output (if asked for) is all true.
    n.set(0, n.emit('identity', [x]));
    if (n.proto.output?.[1]) {
      const shape = n.b.tensors[x]!.shape;
      n.set(1, n.b.constant(`${n.name}.mask`, 'bool', [...shape], new Uint8Array(elements(shape)).fill(1)));
    }
  },
  Identity: (n) => n.set(0, n.emit('identity', [n.input(0, 'input')])),
  Squeeze: squeeze,
  Unsqueeze: squeeze,
  Slice: slice,
  Split: split,
  Gather: (n) => {
    const x = n.input(0, 'data');
    const indicesTensor = n.input(1, 'indices');
    const indices = n.constant(1, 'indices (gathering by indices computed at run time is not supported)');
    const attrs = { axis: n.int('axis', 0), indices, indices_shape: [...n.b.tensors[indicesTensor]!.shape] };
    n.set(0, n.emit('gather', [x], attrs));
  },
  Expand: (n) => n.set(0, n.emit('expand', [n.input(0, 'input')], { shape: n.constant(1, 'shape') })),
  Pad: pad,
};
