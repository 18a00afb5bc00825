// Constant folding at import: the shape arithmetic exporters leave in graphs (PyTorch's x.view(x.size(0), -1)
// is Shape -> Gather -> Unsqueeze -> Concat -> Reshape) and any other node of these op types whose inputs
// are all known is evaluated here, on numbers, and its outputs become constants (int64 ones stay numbers:
// b.ints). Shape needs only its input's static shape. The element-wise arithmetic and the data movement
// reuse the runtime's reference helpers (binaryBroadcast, broadcastShapes, concat).
//
// Ops that also have a handler in ONNX_OPS fold there when their inputs are float constants (GraphBuilder.emit
// evaluates a node of constants with the runtime's executors); this evaluator takes them when an input is
// int64 (the runtime has no int64 tensors) or when the op has no handler at all.
import { binaryBroadcast } from '../../agent/runtime/reference-ops/elementwise.js';
import { concat, transpose, transposeShape } from '../../agent/runtime/reference-ops/layout.js';
import { broadcastShapes } from '../../agent/runtime/reference-ops/matmul.js';
import { elements } from '../../agent/runtime/tensor.js';
import type { OnnxNode } from './context.js';
import { ElemType, type OnnxTensor } from './onnx-proto.js';

/** A tensor known at import: its element type and dims, and its values when it is a constant. */
export interface KnownTensor {
  elemType: number;
  dims: number[];
  data?: number[];
}

/** A computed constant. */
interface Constant {
  elemType: number;
  dims: number[];
  data: number[];
}

/** The largest constant folding may create: beyond it a shape is hostile, not a model's. */
const MAX_FOLDED_ELEMENTS = 1 << 24;

type Evaluator = (n: OnnxNode, inputs: (KnownTensor | undefined)[]) => Constant;

const INTEGER_TYPES = new Set<number>([ElemType.INT64, ElemType.INT32, ElemType.INT8, ElemType.UINT8]);

function data(n: OnnxNode, t: KnownTensor | undefined, what: string): Constant {
  if (t?.data === undefined) return n.fail(`${what} must be a constant to fold`);
  return t as Constant;
}

/** An axis in [-rank, rank) made non-negative. */
function axisIn(n: OnnxNode, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) n.fail(`axis ${axis} outside rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

function checkedSize(n: OnnxNode, dims: readonly number[]): number {
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) n.fail(`bad shape [${dims.join(', ')}]`);
  const size = elements(dims);
  if (size > MAX_FOLDED_ELEMENTS) n.fail(`a folded constant of ${size} elements is too large`);
  return size;
}

/** Values converted to an element type as ONNX's Cast does (float -> integer truncates toward zero). */
function castValues(values: readonly number[], to: number): number[] {
  switch (to) {
    case ElemType.FLOAT:
    case ElemType.DOUBLE:
      return values.map((v) => Math.fround(v));
    case ElemType.BOOL:
      return values.map((v) => (v !== 0 ? 1 : 0));
    case ElemType.INT8:
      return values.map((v) => (Math.trunc(v) << 24) >> 24);
    case ElemType.UINT8:
      return values.map((v) => Math.trunc(v) & 0xff);
    case ElemType.INT32:
      return values.map((v) => Math.trunc(v) | 0);
    default:
      return values.map((v) => Math.trunc(v));
  }
}

function arithmetic(
  f: (a: number, b: number) => number,
  integer: (a: number, b: number) => number,
): Evaluator {
  return (n, [a, b]) => {
    const x = data(n, a, 'A');
    const y = data(n, b, 'B');
    const dims = broadcastShapes(x.dims, y.dims);
    if (typeof dims === 'string') return n.fail(dims);
    const out = new Array<number>(checkedSize(n, dims)).fill(0);
    const isInt = INTEGER_TYPES.has(x.elemType);
    binaryBroadcast(
      x.dims,
      x.data,
      y.dims,
      y.data,
      dims,
      out,
      isInt ? integer : (p, q) => Math.fround(f(p, q)),
    );
    return { elemType: x.elemType, dims, data: isInt ? castValues(out, x.elemType) : out };
  };
}

/** Axes from input `index` (from opset `inputFrom`) or from the `axes` attribute before it. */
function axesOf(
  n: OnnxNode,
  inputs: (KnownTensor | undefined)[],
  index: number,
  inputFrom: number,
): number[] | undefined {
  if (n.opset >= inputFrom)
    return inputs[index] === undefined ? undefined : data(n, inputs[index], 'axes').data;
  return n.attrs.has('axes') ? n.ints('axes', []) : undefined;
}

function gather(n: OnnxNode, [d, i]: (KnownTensor | undefined)[]): Constant {
  const x = data(n, d, 'data');
  const indices = data(n, i, 'indices');
  const axis = axisIn(n, n.int('axis', 0), x.dims.length);
  const size = x.dims[axis]!;
  const outer = elements(x.dims.slice(0, axis));
  const inner = elements(x.dims.slice(axis + 1));
  const dims = [...x.dims.slice(0, axis), ...indices.dims, ...x.dims.slice(axis + 1)];
  checkedSize(n, dims);
  const out: number[] = [];
  for (let o = 0; o < outer; o++)
    for (const raw of indices.data) {
      const k = raw < 0 ? raw + size : raw;
      if (!Number.isInteger(k) || k < 0 || k >= size) n.fail(`index ${raw} outside [${-size}, ${size})`);
      for (let j = 0; j < inner; j++) out.push(x.data[(o * size + k) * inner + j]!);
    }
  return { elemType: x.elemType, dims, data: out };
}

function slice(n: OnnxNode, inputs: (KnownTensor | undefined)[]): Constant {
  const x = data(n, inputs[0], 'data');
  const rank = x.dims.length;
  const fromInputs = n.opset >= 10;
  const starts = fromInputs ? data(n, inputs[1], 'starts').data : n.ints('starts', []);
  const ends = fromInputs ? data(n, inputs[2], 'ends').data : n.ints('ends', []);
  const axes =
    (fromInputs
      ? inputs[3] && data(n, inputs[3], 'axes').data
      : n.attrs.has('axes')
        ? n.ints('axes', [])
        : undefined) ?? starts.map((_, k) => k);
  const steps =
    (fromInputs && inputs[4] ? data(n, inputs[4], 'steps').data : undefined) ?? starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length)
    n.fail('starts, ends, axes and steps must have the same length');
  const lo = x.dims.map(() => 0);
  const step = x.dims.map(() => 1);
  const count = [...x.dims];
  axes.forEach((rawAxis, k) => {
    const axis = axisIn(n, rawAxis, rank);
    const dim = x.dims[axis]!;
    const s = steps[k]!;
    if (!Number.isInteger(s) || s === 0) n.fail('steps must be non-zero integers');
    // ONNX clamps starts and ends to [0, dim] (to [0, dim - 1] and [-1, dim - 1] for negative steps).
    const clamp = (v: number, min: number, max: number): number =>
      Math.min(max, Math.max(min, v < 0 ? v + dim : v));
    const start = s > 0 ? clamp(starts[k]!, 0, dim) : clamp(starts[k]!, 0, dim - 1);
    const end = s > 0 ? clamp(ends[k]!, 0, dim) : clamp(ends[k]!, -1, dim - 1);
    lo[axis] = start;
    step[axis] = s;
    count[axis] = Math.max(0, Math.ceil((end - start) / s));
  });
  checkedSize(n, count);
  const strides = x.dims.map((_, a) => elements(x.dims.slice(a + 1)));
  const out: number[] = [];
  const index = count.map(() => 0);
  const total = elements(count);
  for (let i = 0; i < total; i++) {
    let offset = 0;
    for (let a = 0; a < rank; a++) offset += (lo[a]! + index[a]! * step[a]!) * strides[a]!;
    out.push(x.data[offset]!);
    for (let a = rank - 1; a >= 0; a--) {
      if (++index[a]! < count[a]!) break;
      index[a] = 0;
    }
  }
  return { elemType: x.elemType, dims: count, data: out };
}

/** ONNX op type -> its evaluation on known tensors. */
const EVALUATORS: Readonly<Record<string, Evaluator>> = {
  Shape: (n, [x]) => {
    const dims = (x ?? n.fail('input data is missing')).dims;
    const clamp = (v: number): number => Math.min(dims.length, Math.max(0, v < 0 ? v + dims.length : v));
    const values = dims.slice(clamp(n.int('start', 0)), clamp(n.int('end', dims.length)));
    return { elemType: ElemType.INT64, dims: [values.length], data: values };
  },
  Size: (n, [x]) => ({
    elemType: ElemType.INT64,
    dims: [],
    data: [elements((x ?? n.fail('input data is missing')).dims)],
  }),
  Identity: (n, [x]) => data(n, x, 'input'),
  Cast: (n, [x]) => {
    const to = n.int('to', ElemType.FLOAT);
    if (![...INTEGER_TYPES, ElemType.FLOAT, ElemType.DOUBLE, ElemType.BOOL].includes(to))
      n.fail(`cast to element type ${to} is not supported`);
    const value = data(n, x, 'input');
    return {
      elemType: to === ElemType.DOUBLE ? ElemType.FLOAT : to,
      dims: value.dims,
      data: castValues(value.data, to),
    };
  },
  Gather: gather,
  Slice: slice,
  Concat: (n, inputs) => {
    const xs = inputs.map((x, k) => data(n, x, `input ${k}`));
    const rank = xs[0]!.dims.length;
    const axis = axisIn(n, n.int('axis', 0), rank);
    if (xs.some((x) => x.dims.length !== rank || x.dims.some((d, a) => a !== axis && d !== xs[0]!.dims[a])))
      n.fail('inputs must agree on every dimension but the axis');
    const dims = [...xs[0]!.dims];
    dims[axis] = xs.reduce((s, x) => s + x.dims[axis]!, 0);
    const out = new Array<number>(checkedSize(n, dims)).fill(0);
    concat(
      xs.map((x) => x.dims),
      axis,
      xs.map((x) => x.data),
      out,
    );
    return { elemType: xs[0]!.elemType, dims, data: out };
  },
  Unsqueeze: (n, inputs) => {
    const x = data(n, inputs[0], 'data');
    const axes = axesOf(n, inputs, 1, 13) ?? n.fail('axes are required');
    const rank = x.dims.length + axes.length;
    const at = new Set(axes.map((a) => axisIn(n, a, rank)));
    if (at.size !== axes.length) n.fail('axes repeat');
    const dims: number[] = [];
    let next = 0;
    for (let a = 0; a < rank; a++) dims.push(at.has(a) ? 1 : x.dims[next++]!);
    return { ...x, dims };
  },
  Squeeze: (n, inputs) => {
    const x = data(n, inputs[0], 'data');
    const axes = axesOf(n, inputs, 1, 13);
    const drop = new Set(
      axes === undefined
        ? x.dims.flatMap((d, a) => (d === 1 ? [a] : []))
        : axes.map((a) => axisIn(n, a, x.dims.length)),
    );
    if ([...drop].some((a) => x.dims[a] !== 1)) n.fail('only dimensions of size 1 can be squeezed');
    return { ...x, dims: x.dims.filter((_, a) => !drop.has(a)) };
  },
  Reshape: (n, [d, s]) => {
    const x = data(n, d, 'data');
    const requested = data(n, s, 'shape').data;
    const allowZero = n.int('allowzero', 0) === 1;
    const dims = requested.map((v, a) =>
      v === 0 && !allowZero ? (x.dims[a] ?? n.fail('0 past the input rank')) : v,
    );
    const known = dims.filter((v) => v !== -1);
    if (dims.length - known.length > 1 || known.some((v) => !Number.isInteger(v) || v < 0))
      n.fail(`bad target shape [${requested.join(', ')}]`);
    const size = elements(known);
    const inferred = dims.map((v) => (v === -1 ? (size === 0 ? 0 : x.data.length / size) : v));
    if (elements(inferred) !== x.data.length || inferred.some((v) => !Number.isInteger(v)))
      n.fail(`cannot reshape [${x.dims.join(', ')}] to [${requested.join(', ')}]`);
    return { ...x, dims: inferred };
  },
  Transpose: (n, [d]) => {
    const x = data(n, d, 'data');
    const perm = n.ints('perm', [...x.dims.keys()].reverse());
    if (perm.length !== x.dims.length || [...perm].sort((p, q) => p - q).some((v, i) => v !== i))
      n.fail(`perm [${perm.join(', ')}] is not a permutation of the input's ${x.dims.length} axes`);
    const out = new Array<number>(x.data.length).fill(0);
    transpose(x.dims, perm, x.data, out);
    return { elemType: x.elemType, dims: transposeShape(x.dims, perm), data: out };
  },
  NonZero: (n, [d]) => {
    // The coordinates of the non-zero elements, one row per axis (PyTorch's opset-9 arange uses it).
    const x = data(n, d, 'X');
    const hits = x.data.flatMap((v, i) => (v !== 0 ? [i] : []));
    const strides = x.dims.map((_, a) => elements(x.dims.slice(a + 1)));
    const rows = strides.map((stride, a) => hits.map((i) => Math.floor(i / stride) % x.dims[a]!));
    return { elemType: ElemType.INT64, dims: [x.dims.length, hits.length], data: rows.flat() };
  },
  Add: arithmetic(
    (a, b) => a + b,
    (a, b) => a + b,
  ),
  Sub: arithmetic(
    (a, b) => a - b,
    (a, b) => a - b,
  ),
  Mul: arithmetic(
    (a, b) => a * b,
    (a, b) => a * b,
  ),
  Div: arithmetic(
    (a, b) => a / b,
    (a, b) => (b === 0 ? 0 : Math.trunc(a / b)),
  ),
  ConstantOfShape: (n, [s]) => {
    const dims = data(n, s, 'input').data;
    checkedSize(n, dims);
    const value = n.tensor('value');
    const fill = value === undefined ? 0 : (value.data[0] ?? 0);
    return {
      elemType: value?.elemType ?? ElemType.FLOAT,
      dims,
      data: new Array<number>(elements(dims)).fill(fill),
    };
  },
  Range: (n, [a, b, c]) => {
    const [start, limit, delta] = [data(n, a, 'start'), data(n, b, 'limit'), data(n, c, 'delta')].map(
      (t) => t.data[0] ?? n.fail('start, limit and delta must be scalars'),
    ) as [number, number, number];
    if (delta === 0) n.fail('delta must not be 0');
    const count = Math.max(0, Math.ceil((limit - start) / delta));
    checkedSize(n, [count]);
    return {
      elemType: a!.elemType,
      dims: [count],
      data: Array.from({ length: count }, (_, i) => start + i * delta),
    };
  },
};

/** The op types constant folding evaluates. */
export const FOLDABLE_ONNX_OPS: readonly string[] = Object.keys(EVALUATORS);

/**
 * Folds the node when it can and should: its op has an evaluator, every input it names is known (Shape:
 * its static shape; the others: their values), and either the op has no runtime handler or an input is
 * int64. Declares the outputs as constants and returns true; false leaves the node to its handler.
 */
export function foldConstantNode(n: OnnxNode, hasHandler: boolean): boolean {
  const evaluate = EVALUATORS[n.opType];
  if (evaluate === undefined) return false;
  const names = n.proto.input ?? [];
  const inputs = names.map((name) => (name === '' ? undefined : n.ctx.known(name)));
  if (names.some((name, k) => name !== '' && inputs[k] === undefined)) return false;
  const needsValues = n.opType !== 'Shape' && n.opType !== 'Size';
  if (needsValues && inputs.some((t) => t !== undefined && t.data === undefined)) return false;
  if (hasHandler && !inputs.some((t) => t?.elemType === ElemType.INT64)) return false;
  const out = evaluate(n, inputs);
  const tensor: OnnxTensor = { name: n.name, elemType: out.elemType, dims: out.dims, data: out.data };
  n.ctx.declareConstant(tensor, n.proto.output?.[0] || n.name);
  return true;
}
