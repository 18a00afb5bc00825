// TFLite -> Whittle package content. TFLite is NHWC with OHWI convolution weights, as the runtime is, so
// its operators map onto the IR (agent/runtime/ops/) without a layout transpose; depthwise weights
// [1, kh, kw, C*m] become grouped-conv weights [C*m, kh, kw, 1] by a constant transpose evaluated at import.
// Each builtin op is an entry of OP_HANDLERS; the supported ops are that table's keys. Fused activations
// become the layer's clamp (fp32 min/max, or integer bounds on the int8 layers), or a clip after ops that
// take none.
//
// Fully-int8 models (per-channel int8 weights, int8 activations with scale and zero point, int32 bias) map
// onto the int8 kernels: CONV_2D / DEPTHWISE_CONV_2D -> qconv2d, FULLY_CONNECTED -> qfully_connected,
// ADD -> qadd, MEAN -> global_avgpool (requantized), pools and RELU/RELU6 in int8. Their requantization is
// TFLite's own (QuantizeMultiplier + MultiplyByQuantizedMultiplier, agent/runtime/number/requantization.ts),
// so those layers are bit-exact. The int8 ops the runtime lacks (MUL, SOFTMAX, LOGISTIC, HARD_SWISH, a
// CONCATENATION of differently quantized inputs) run as dequantize -> fp32 op -> quantize, within one
// quantization step of TFLite's integer kernels; docs/architecture.md lists where the schemes differ.
import type { Manifest, ManifestNode, TensorQuantization } from '../../agent/package/manifest.js';
import { type CompileGraph, compileGraph } from '../../agent/runtime/compile/index.js';
import { GraphError } from '../../agent/runtime/graph-error.js';
import { roundHalfAwayFromZero } from '../../agent/runtime/number/rounding.js';
import { intRange } from '../../agent/runtime/number/saturation.js';
import type { TensorSpec } from '../../agent/runtime/tensor.js';
import { samePads } from '../../agent/runtime/window.js';
import { GraphBuilder } from '../package/graph-builder.js';
import { UnsupportedOpsError } from '../package/unsupported-ops.js';
import type { PackageContent } from '../package/writer.js';
import {
  ActivationFunctionType,
  BuiltinOperator,
  Padding,
  readTflite,
  TensorType,
  TfliteImportError,
  type TfliteModel,
  type TfliteOperator,
  type TfliteTensor,
} from './reader.js';

export interface TfliteImportOptions {
  modelId?: string;
  modelVersion?: string;
  labels?: string[];
  source?: string;
  /** Batch size replacing dimension 0 of the inputs (default: as the file declares). */
  batch?: number;
  /** Run the compile pass (default true). */
  compile?: boolean;
}

/** The import state one operator's handler works on. */
class TfliteContext {
  readonly b = new GraphBuilder();
  /** TFLite tensor index -> builder tensor. */
  readonly values = new Map<number, number>();

  constructor(
    readonly model: TfliteModel,
    /** Operators whose output is a PAD folded into the convolution that reads it. */
    readonly paddedBy: Map<number, TfliteOperator>,
  ) {}

  tensor(t: number): TfliteTensor {
    return this.model.tensors[t]!;
  }

  /** The builder tensor of TFLite tensor t, declaring a constant on first use. */
  value(op: TfliteOperator, t: number | undefined, what: string): number {
    if (t === undefined || t < 0) this.fail(op, `input ${what} is missing`);
    const known = this.values.get(t);
    if (known !== undefined) return known;
    const tensor = this.tensor(t);
    if (tensor.data === undefined) this.fail(op, `input ${what} "${tensor.name}" has no value`);
    const dtype = dtypeOf(tensor, `tensor "${tensor.name}"`);
    const quant = quantOf(tensor);
    const index = this.b.constant(tensor.name, dtype, tensor.shape, constantValues(tensor), quant);
    this.values.set(t, index);
    return index;
  }

  /** TFLite tensor t's constant values as numbers (shapes, axes). */
  numbers(op: TfliteOperator, t: number | undefined, what: string): number[] {
    const tensor = t === undefined || t < 0 ? undefined : this.tensor(t);
    if (tensor?.data === undefined) this.fail(op, `${what} must be a constant`);
    return Array.from(constantValues(tensor));
  }

  /** An optional input (bias): -1 when absent. */
  optional(op: TfliteOperator, t: number | undefined, what: string): number {
    return t === undefined || t < 0 ? -1 : this.value(op, t, what);
  }

  /** What the output tensor k of `op` is declared as (dtype and quantization). */
  declared(op: TfliteOperator, k = 0): Partial<TensorSpec> {
    const t = op.outputs[k];
    if (t === undefined) this.fail(op, `output ${k} is missing`);
    const tensor = this.tensor(t);
    const quant = quantOf(tensor);
    const dtype = dtypeOf(tensor, `tensor "${tensor.name}"`);
    if ((dtype === 'i8' || dtype === 'u8') && quant === undefined)
      this.fail(op, `output "${tensor.name}" is ${dtype} without a quantization`);
    return { dtype, ...(quant ? { quant } : {}) };
  }

  set(op: TfliteOperator, value: number, k = 0): void {
    this.values.set(op.outputs[k]!, value);
  }

  fail(op: TfliteOperator, why: string): never {
    throw new TfliteImportError(`operator "${op.name}" (${op.opName}): ${why}`);
  }
}

type Handler = (c: TfliteContext, op: TfliteOperator) => void;

function dtypeOf(tensor: TfliteTensor, where: string): TensorSpec['dtype'] {
  switch (tensor.type) {
    case TensorType.FLOAT32:
      return 'f32';
    case TensorType.INT8:
      return 'i8';
    case TensorType.UINT8:
      return 'u8';
    case TensorType.INT32:
      return 'i32';
    default:
      throw new TfliteImportError(
        `${where}: type ${TensorType[tensor.type] ?? tensor.type} is not supported`,
      );
  }
}

function quantOf(tensor: TfliteTensor): TensorQuantization | undefined {
  const q = tensor.quant;
  if (q === undefined || tensor.type === TensorType.FLOAT32) return undefined;
  return { scale: q.scale, zeroPoint: q.zeroPoint, ...(q.axis !== undefined ? { axis: q.axis } : {}) };
}

function constantValues(tensor: TfliteTensor): ArrayLike<number> {
  const data = tensor.data!;
  const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  switch (tensor.type) {
    case TensorType.FLOAT32:
      return new Float32Array(buffer);
    case TensorType.INT32:
      return new Int32Array(buffer);
    case TensorType.INT8:
      return new Int8Array(buffer);
    case TensorType.UINT8:
      return new Uint8Array(buffer);
    case TensorType.INT64:
      return Array.from(new BigInt64Array(buffer), Number);
    default:
      throw new TfliteImportError(
        `tensor "${tensor.name}": constants of type ${TensorType[tensor.type] ?? tensor.type} are not supported`,
      );
  }
}

const isQuantized = (spec: TensorSpec | Partial<TensorSpec>): boolean =>
  spec.dtype === 'i8' || spec.dtype === 'u8';

/** The clamp of a fused activation: fp32 bounds, or for an int8 output the integer bounds TFLite's
 * CalculateActivationRangeQuantized gives (zero point + round(bound / scale), clamped to the dtype). */
function activationRange(
  c: TfliteContext,
  op: TfliteOperator,
  output: Partial<TensorSpec>,
): { min?: number; max?: number } {
  const act = op.options.activation ?? ActivationFunctionType.NONE;
  const bounds: Partial<Record<ActivationFunctionType, [number, number]>> = {
    [ActivationFunctionType.NONE]: [-Infinity, Infinity],
    [ActivationFunctionType.RELU]: [0, Infinity],
    [ActivationFunctionType.RELU_N1_TO_1]: [-1, 1],
    [ActivationFunctionType.RELU6]: [0, 6],
  };
  const range = bounds[act as ActivationFunctionType];
  if (range === undefined)
    c.fail(op, `fused activation ${ActivationFunctionType[act] ?? act} is not supported`);
  const [lo, hi] = range;
  if (!isQuantized(output)) {
    return { ...(lo > -Infinity ? { min: lo } : {}), ...(hi < Infinity ? { max: hi } : {}) };
  }
  if (lo === -Infinity && hi === Infinity) return {};
  const [qmin, qmax] = intRange(output.dtype!);
  const scale = output.quant!.scale[0]!;
  const zero = output.quant!.zeroPoint[0]!;
  const q = (f: number) => zero + roundHalfAwayFromZero(f / scale);
  return {
    min: lo === -Infinity ? qmin : Math.max(qmin, q(lo)),
    max: hi === Infinity ? qmax : Math.min(qmax, q(hi)),
  };
}

/** Applies op's fused activation after `y` as a clip (for ops whose IR node has no clamp). */
function withActivation(c: TfliteContext, op: TfliteOperator, y: number): number {
  const range = activationRange(c, op, c.b.spec(y));
  if (range.min === undefined && range.max === undefined) return y;
  return c.b.emit(`${op.name}/activation`, 'clip', c.b.formatOf(y), [y], range)[0]!;
}

function needOptions<K extends keyof TfliteOperator['options']>(
  c: TfliteContext,
  op: TfliteOperator,
  keys: K[],
): void {
  for (const key of keys)
    if (op.options[key] === undefined) c.fail(op, `its builtin options (${String(key)}) are missing`);
}

/** Strides, dilations and pads of a conv or pool window over input x. */
function windowOf(c: TfliteContext, op: TfliteOperator, x: number, kh: number, kw: number) {
  const o = op.options;
  const strides = [o.strideH!, o.strideW!];
  const dilations = [o.dilationH ?? 1, o.dilationW ?? 1];
  if ([...strides, ...dilations].some((v) => !Number.isInteger(v) || v < 1 || v > 1 << 16))
    c.fail(op, `strides ${strides.join('x')} and dilations ${dilations.join('x')} must be positive`);
  const [, inH, inW] = c.b.tensors[x]!.shape as [number, number, number, number];
  let pads: number[];
  if (o.padding === Padding.SAME) pads = samePads(inH, inW, kh, kw, strides, dilations);
  else if (o.padding === Padding.VALID) pads = [0, 0, 0, 0];
  else c.fail(op, `padding ${o.padding} is unknown`);
  return { strides, dilations, pads: pads! };
}

/** A float layer's weights must be float: hybrid models (fp32 activations, int8 weights) are refused. */
function floatWeights(c: TfliteContext, op: TfliteOperator, w: number): void {
  if (c.b.tensors[w]!.dtype !== 'f32')
    c.fail(op, `fp32 input with ${c.b.tensors[w]!.dtype} weights (a hybrid model) is not supported`);
}

function rank4(c: TfliteContext, op: TfliteOperator, t: number, what: string): void {
  if (c.b.tensors[t]!.shape.length !== 4)
    c.fail(op, `${what} must be 4-D (NHWC), got [${c.b.tensors[t]!.shape.join(', ')}]`);
}

/** The fp32 op `fp32Op` run on int8 tensors: dequantize the inputs, compute, quantize to the output's
 * declared quantization. For the int8 ops the runtime has no integer kernel for. */
function viaFloat(
  c: TfliteContext,
  op: TfliteOperator,
  inputs: number[],
  fp32Op: (floats: number[]) => number,
): number {
  const floats = inputs.map((t, i) =>
    isQuantized(c.b.spec(t))
      ? c.b.emit(`${op.name}/dequantize${i}`, 'dequantize_linear', 'int8', [t], {})[0]!
      : t,
  );
  const y = fp32Op(floats);
  const out = c.declared(op);
  if (!isQuantized(out)) return y;
  return c.b.emit(`${op.name}/quantize`, 'quantize_linear', 'int8', [y], {}, [out])[0]!;
}

/** An elementwise op that keeps int8 as int8 when the input and output share quantization (clip), else via
 * float. */
function sameQuant(a: TensorSpec, b: Partial<TensorSpec>): boolean {
  return JSON.stringify(a.quant) === JSON.stringify(b.quant) && a.dtype === b.dtype;
}

function convolution(depthwise: boolean): Handler {
  return (c, op) => {
    needOptions(c, op, ['padding', 'strideH', 'strideW']);
    const pad = c.paddedBy.get(op.inputs[0]!);
    const x = pad ? c.value(pad, pad.inputs[0], 'input') : c.value(op, op.inputs[0], 'input');
    let w = c.value(op, op.inputs[1], 'filter');
    const bias = c.optional(op, op.inputs[2], 'bias');
    rank4(c, op, x, 'input');
    rank4(c, op, w, 'filter');
    const inC = c.b.tensors[x]!.shape[3]!;
    let groups = 1;
    if (depthwise) {
      // [1, kh, kw, C*m] -> [C*m, kh, kw, 1]: a grouped conv with one group per input channel.
      const [one, , , outC] = c.b.tensors[w]!.shape as [number, number, number, number];
      const multiplier = op.options.depthMultiplier ?? 1;
      if (one !== 1 || outC !== inC * multiplier)
        c.fail(op, `filter [${c.b.tensors[w]!.shape.join(', ')}] is not [1, kh, kw, ${inC} x ${multiplier}]`);
      const quant = c.b.tensors[w]!.quant;
      w = c.b.emit(`${op.name}/filter_ohwi`, 'transpose', c.b.formatOf(w), [w], { perm: [3, 1, 2, 0] })[0]!;
      if (quant) c.b.tensors[w]!.quant = quant.axis === 3 ? { ...quant, axis: 0 } : quant;
      groups = inC;
    } else {
      const cg = c.b.tensors[w]!.shape[3]!;
      if (cg < 1 || inC % cg !== 0)
        c.fail(op, `input channels ${inC} are not a multiple of the filter's ${cg}`);
      groups = inC / cg;
    }
    const [, kh, kw] = c.b.tensors[w]!.shape as [number, number, number, number];
    const window = windowOf(c, op, x, kh, kw);
    if (pad) window.pads = window.pads.map((p, i) => p + padAmounts(c, pad, x)[i]!);
    const out = c.declared(op);
    const attrs: ManifestNode['attrs'] = { ...window, groups, ...activationRange(c, op, out) };
    const xSpec = c.b.spec(x);
    if (isQuantized(xSpec)) {
      const wq = c.b.tensors[w]!.quant;
      if (wq && wq.scale.length > 1 && wq.axis !== 0)
        c.fail(op, 'per-channel filter scales must be along the output channels');
      c.set(op, c.b.emit(op.name, 'qconv2d', 'int8', [x, w, bias], attrs, [out])[0]!);
    } else {
      floatWeights(c, op, w);
      c.set(op, c.b.emit(op.name, 'conv2d', 'f32', [x, w, bias], attrs)[0]!);
    }
  };
}

/** A PAD folded into the convolution that reads it: [top, left, bottom, right]. */
function padAmounts(c: TfliteContext, pad: TfliteOperator, x: number): number[] {
  const p = c.numbers(pad, pad.inputs[1], 'paddings');
  if (p.length !== 8 || c.b.tensors[x]!.shape.length !== 4)
    c.fail(pad, 'paddings must be [4, 2] for a 4-D input');
  if (p[0] !== 0 || p[1] !== 0 || p[6] !== 0 || p[7] !== 0 || p.some((v) => !Number.isInteger(v) || v < 0))
    c.fail(pad, 'only non-negative padding of H and W folds into a convolution');
  return [p[2]!, p[4]!, p[3]!, p[5]!];
}

function pool(kind: 'max_pool' | 'avg_pool'): Handler {
  return (c, op) => {
    needOptions(c, op, ['padding', 'strideH', 'strideW', 'filterH', 'filterW']);
    const x = c.value(op, op.inputs[0], 'input');
    rank4(c, op, x, 'input');
    const kernel = [op.options.filterH!, op.options.filterW!];
    if (kernel.some((k) => k < 1)) c.fail(op, `filter ${kernel.join('x')} must be positive`);
    const { strides, pads } = windowOf(c, op, x, kernel[0]!, kernel[1]!);
    const out = c.declared(op);
    if (isQuantized(out) && !sameQuant(c.b.spec(x), out))
      c.fail(op, 'an int8 pool must keep its input quantization (TFLite requires it too)');
    const y = c.b.emit(op.name, kind, c.b.formatOf(x), [x], {
      kernel,
      strides,
      pads,
      count_include_pad: 0,
    })[0]!;
    c.set(op, withActivation(c, op, y));
  };
}

function elementwise(kind: 'add' | 'mul'): Handler {
  return (c, op) => {
    const a = c.value(op, op.inputs[0], 'x');
    const b = c.value(op, op.inputs[1], 'y');
    const out = c.declared(op);
    if (!isQuantized(out)) {
      c.set(op, withActivation(c, op, c.b.emit(op.name, kind, 'f32', [a, b], {})[0]!));
      return;
    }
    const sameShape = c.b.tensors[a]!.shape.join() === c.b.tensors[b]!.shape.join();
    if (kind === 'add' && sameShape) {
      c.set(op, c.b.emit(op.name, 'qadd', 'int8', [a, b], activationRange(c, op, out), [out])[0]!);
      return;
    }
    const y = viaFloat(c, op, [a, b], ([p, q]) => c.b.emit(op.name, kind, 'f32', [p!, q!], {})[0]!);
    c.set(op, withActivation(c, op, y));
  };
}

/** A unary fp32 op; int8 through float unless it is a clip that keeps the quantization. */
function unary(
  make: (c: TfliteContext, op: TfliteOperator, x: number) => number,
  clip?: [number, number],
): Handler {
  return (c, op) => {
    const x = c.value(op, op.inputs[0], 'input');
    const out = c.declared(op);
    if (clip && isQuantized(out) && sameQuant(c.b.spec(x), out)) {
      const range = activationRange(
        c,
        {
          ...op,
          options: { activation: clip[1] === 6 ? ActivationFunctionType.RELU6 : ActivationFunctionType.RELU },
        },
        out,
      );
      c.set(op, c.b.emit(op.name, 'clip', 'int8', [x], range)[0]!);
      return;
    }
    c.set(
      op,
      viaFloat(c, op, [x], ([f]) => make(c, op, f!)),
    );
  };
}

const OP_HANDLERS: Partial<Record<BuiltinOperator, Handler>> = {
  [BuiltinOperator.CONV_2D]: convolution(false),
  [BuiltinOperator.DEPTHWISE_CONV_2D]: convolution(true),
  [BuiltinOperator.FULLY_CONNECTED]: (c, op) => {
    if (op.options.keepDims === true) c.fail(op, 'keep_num_dims is not supported');
    if ((op.options.weightsFormat ?? 0) !== 0) c.fail(op, 'shuffled weights are not supported');
    let x = c.value(op, op.inputs[0], 'input');
    const w = c.value(op, op.inputs[1], 'weights');
    const bias = c.optional(op, op.inputs[2], 'bias');
    const [, k] = c.b.tensors[w]!.shape as [number, number];
    if (c.b.tensors[w]!.shape.length !== 2) c.fail(op, 'weights must be [out, in]');
    // TFLite flattens the input to [-1, in].
    if (c.b.tensors[x]!.shape.length !== 2)
      x = c.b.emit(`${op.name}/flatten`, 'reshape', c.b.formatOf(x), [x], { shape: [-1, k] })[0]!;
    const out = c.declared(op);
    const clamp = activationRange(c, op, out);
    if (isQuantized(c.b.spec(x)))
      c.set(op, c.b.emit(op.name, 'qfully_connected', 'int8', [x, w, bias], clamp, [out])[0]!);
    else {
      floatWeights(c, op, w);
      c.set(op, c.b.emit(op.name, 'fully_connected', 'f32', [x, w, bias], clamp)[0]!);
    }
  },
  [BuiltinOperator.AVERAGE_POOL_2D]: pool('avg_pool'),
  [BuiltinOperator.MAX_POOL_2D]: pool('max_pool'),
  [BuiltinOperator.MEAN]: (c, op) => {
    const x = c.value(op, op.inputs[0], 'input');
    const axes = c.numbers(op, op.inputs[1], 'axes').map((a) => (a < 0 ? a + 4 : a));
    rank4(c, op, x, 'input');
    if (axes.length !== 2 || !axes.includes(1) || !axes.includes(2))
      c.fail(op, `only the mean over H and W (axes 1, 2) is supported, got axes ${axes.join(', ')}`);
    const out = c.declared(op);
    let y = c.b.emit(op.name, 'global_avgpool', c.b.formatOf(x), [x], {}, [out])[0]!;
    if (op.options.keepDims !== true) {
      const [n, , , ch] = c.b.tensors[y]!.shape as [number, number, number, number];
      y = c.b.emit(`${op.name}/squeeze`, 'reshape', c.b.formatOf(y), [y], { shape: [n, ch] })[0]!;
    }
    c.set(op, y);
  },
  [BuiltinOperator.ADD]: elementwise('add'),
  [BuiltinOperator.MUL]: elementwise('mul'),
  [BuiltinOperator.CONCATENATION]: (c, op) => {
    const inputs = op.inputs.map((t, i) => c.value(op, t, `input ${i}`));
    const out = c.declared(op);
    let axis = op.options.axis ?? 0;
    const rank = c.b.tensors[inputs[0]!]!.shape.length;
    if (axis < 0) axis += rank;
    if (!isQuantized(out) || inputs.every((t) => sameQuant(c.b.spec(t), out))) {
      const y = c.b.emit(op.name, 'concat', c.b.formatOf(inputs[0]!), inputs, { axis })[0]!;
      c.set(op, withActivation(c, op, y));
      return;
    }
    c.set(
      op,
      withActivation(
        c,
        op,
        viaFloat(c, op, inputs, (f) => c.b.emit(op.name, 'concat', 'f32', f, { axis })[0]!),
      ),
    );
  },
  [BuiltinOperator.RESHAPE]: (c, op) => {
    const x = c.value(op, op.inputs[0], 'input');
    const shape =
      op.inputs[1] !== undefined && op.inputs[1] >= 0
        ? c.numbers(op, op.inputs[1], 'shape')
        : (op.options.newShape ?? c.fail(op, 'no shape input and no new_shape option'));
    // With the batch left free (when no other dimension is), so the package runs at any batch size.
    const target = shape.includes(-1) ? shape : shape.map((d, i) => (i === 0 ? -1 : d));
    c.set(op, c.b.emit(op.name, 'reshape', c.b.formatOf(x), [x], { shape: target })[0]!);
  },
  [BuiltinOperator.SOFTMAX]: (c, op) => {
    if ((op.options.beta ?? 1) !== 1) c.fail(op, `beta ${op.options.beta} is not supported (only 1)`);
    const x = c.value(op, op.inputs[0], 'input');
    c.set(
      op,
      viaFloat(c, op, [x], ([f]) => c.b.emit(op.name, 'softmax', 'f32', [f!], { axis: -1 })[0]!),
    );
  },
  [BuiltinOperator.LOGISTIC]: unary((c, op, x) => c.b.emit(op.name, 'sigmoid', 'f32', [x], {})[0]!),
  [BuiltinOperator.RELU]: unary(
    (c, op, x) => c.b.emit(op.name, 'clip', 'f32', [x], { min: 0 })[0]!,
    [0, Infinity],
  ),
  [BuiltinOperator.RELU6]: unary(
    (c, op, x) => c.b.emit(op.name, 'clip', 'f32', [x], { min: 0, max: 6 })[0]!,
    [0, 6],
  ),
  [BuiltinOperator.HARD_SWISH]: unary((c, op, x) => c.b.emit(op.name, 'hard_swish', 'f32', [x], {})[0]!),
  [BuiltinOperator.PAD]: (c, op) => {
    if (!c.paddedBy.has(op.outputs[0]!))
      c.fail(
        op,
        'the runtime has no pad op: only zero padding of H and W read by convolutions is supported (folded into their padding)',
      );
  },
  [BuiltinOperator.QUANTIZE]: (c, op) => {
    const x = c.value(op, op.inputs[0], 'input');
    const out = c.declared(op);
    if (!isQuantized(out) || out.quant === undefined)
      c.fail(op, 'the output must be int8 or uint8 with a quantization');
    c.set(
      op,
      viaFloat(c, op, [x], ([f]) => f!),
    );
  },
  [BuiltinOperator.DEQUANTIZE]: (c, op) => {
    const x = c.value(op, op.inputs[0], 'input');
    if (!isQuantized(c.b.spec(x)) || c.b.spec(x).quant === undefined)
      c.fail(op, 'the input must be int8 or uint8 with a quantization');
    c.set(op, c.b.emit(op.name, 'dequantize_linear', 'int8', [x], {})[0]!);
  },
};

/** The TFLite builtin ops the importer takes. */
export const SUPPORTED_TFLITE_OPS: readonly string[] = Object.keys(OP_HANDLERS).map(
  (code) => BuiltinOperator[Number(code)]!,
);

/** Converts a .tflite model to package content (manifest + raw-encoded constants). */
export function importTflite(bytes: Uint8Array, options: TfliteImportOptions = {}): PackageContent {
  const source = options.source ?? 'model.tflite';
  const model = readTflite(bytes, source);
  const unsupported = model.operators.filter((op) => op.op === -1 || OP_HANDLERS[op.op] === undefined);
  if (unsupported.length > 0)
    throw new UnsupportedOpsError(
      unsupported.map((op) => ({ name: op.name, opType: op.opName })),
      SUPPORTED_TFLITE_OPS,
    );

  // PADs read only by convolutions fold into their padding.
  const paddedBy = new Map<number, TfliteOperator>();
  for (const op of model.operators) {
    if (op.op !== BuiltinOperator.PAD || op.outputs.length !== 1) continue;
    const out = op.outputs[0]!;
    const readers = model.operators.filter((r) => r.inputs.includes(out));
    const convs = [BuiltinOperator.CONV_2D, BuiltinOperator.DEPTHWISE_CONV_2D];
    if (
      readers.length > 0 &&
      readers.every((r) => convs.includes(r.op as BuiltinOperator) && r.inputs[0] === out) &&
      !model.outputs.includes(out)
    )
      paddedBy.set(out, op);
  }
  const c = new TfliteContext(model, paddedBy);

  const manifestInputs: Manifest['inputs'] = model.inputs.map((t) => {
    const tensor = model.tensors[t]!;
    const dtype = dtypeOf(tensor, `input "${tensor.name}"`);
    const quant = quantOf(tensor);
    if (isQuantized({ dtype }) && quant === undefined)
      throw new TfliteImportError(`${source}: input "${tensor.name}" is ${dtype} without a quantization`);
    const shape = tensor.shape.map((d, i) => (i === 0 && options.batch !== undefined ? options.batch : d));
    const index = c.b.addTensor(tensor.name, { dtype, shape, ...(quant ? { quant } : {}) });
    c.values.set(t, index);
    const [, h, w, ch] = shape;
    const image = shape.length === 4 && (ch === 1 || ch === 3) && dtype === 'f32';
    return {
      name: tensor.name,
      tensor: index,
      layout: shape.length === 4 ? 'NHWC' : shape.length === 2 ? 'NC' : 'other',
      ...(image
        ? { preprocessing: { kind: 'image', width: w!, height: h!, channels: ch, mean: [0], std: [1] } }
        : {}),
    };
  });

  for (const op of model.operators) {
    try {
      OP_HANDLERS[op.op as BuiltinOperator]!(c, op);
    } catch (error) {
      // The runtime's shape inference refuses what does not fit (GraphError): named by the TFLite operator.
      if (error instanceof GraphError) c.fail(op, error.message);
      throw error;
    }
  }

  const outputs = model.outputs.map((t) => {
    const value = c.values.get(t);
    if (value === undefined)
      throw new TfliteImportError(`${source}: output "${model.tensors[t]!.name}" is never produced`);
    return { name: model.tensors[t]!.name, tensor: value };
  });
  const compiled: CompileGraph = {
    tensors: c.b.tensors,
    nodes: c.b.nodes.slice(),
    inputs: manifestInputs,
    outputs,
    constants: new Map(c.b.data),
  };
  if (options.compile !== false) compileGraph(compiled, { inputLayout: 'keep' });
  for (const [t, data] of compiled.constants) if (data !== 'opaque') c.b.data.set(t, data);
  c.b.nodes.splice(0, c.b.nodes.length, ...compiled.nodes);
  return c.b.finish(compiled.inputs, compiled.outputs, {
    id: options.modelId ?? 'tflite-model',
    version: options.modelVersion ?? '1',
    name: source,
    ...(options.labels ? { labels: options.labels } : {}),
  });
}
