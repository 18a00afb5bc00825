// The operators of the graph IR: for each op its attributes, shape inference, MAC count, and one executor
// per number format it supports (op x format). An executor is prepared once per node and shape set, then
// only reads inputs and writes outputs. Every executor here runs the plain TypeScript reference of its
// operator (reference-ops/) — the native kernels replace them pair by pair as native/index.ts exposes them
// (see executors for `native:` kernel names in inspect output).
//
// Layouts: conv2d/pool operate on NHWC activations with OHWI weights; fully_connected on [B][K] x [O][K].
import type { StepLayer } from '../../native/index.js';
import type { DecodedTensor } from '../package/encodings.js';
import type { ManifestNode, NumberFormat } from '../package/manifest.js';
import { fixedPointLayer } from './fixed-point-layer.js';
import { GraphError } from './graph-error.js';
import { nativeExecutor } from './native-executors.js';
import { quantizeMultiplier, requantizeGemmlowp } from './number/requantization.js';
import { roundHalfEven } from './number/rounding.js';
import { intRange, saturate } from './number/saturation.js';
import { conv2dF32, conv2dInteger, type ConvGeometry } from './reference-ops/conv.js';
import { binaryBroadcast, sigmoid, unary } from './reference-ops/elementwise.js';
import { fixedPointConv2d, fixedPointGeometry, fullyConnectedGeometry } from './reference-ops/fixed-point.js';
import { channelShuffle, concat, softmax, transpose, transposeShape } from './reference-ops/layout.js';
import { broadcastShapes, fullyConnected, matmul, matmulShape } from './reference-ops/matmul.js';
import { averagePool, maxPool, type PoolGeometry } from './reference-ops/pool.js';
import { elements, type TensorData, type TensorSpec } from './tensor.js';

export interface Executor {
  /** Which implementation runs: `reference:<op>_<format>` or a native kernel name. */
  kernel: string;
  /** Bytes the executor holds outside the arena for the whole model's life (the word buffers of a fixed-point
   * layer); counted against the memory budget with the arena and the weights. */
  scratchBytes?: number;
  run(inputs: readonly (TensorData | undefined)[], outputs: readonly TensorData[]): void;
  /** The addon calls run() makes, as steps of an execution plan (native-plan.ts): given the views run()
   * would get, each call's layer and operand arrays (those views, or arrays the executor owns: word buffers,
   * constants) in the order the layer takes them. Absent: a TypeScript executor, which splits the plan. */
  plan?(inputs: readonly (TensorData | undefined)[], outputs: readonly TensorData[]): NativeStepCall[];
}

/** One addon call of an executor, as a plan step: its operands are arena views or arrays of its own. */
export interface NativeStepCall {
  layer: StepLayer;
  inputs: readonly ArrayBufferView[];
  outputs: readonly ArrayBufferView[];
}

export interface PrepareContext {
  node: ManifestNode;
  format: NumberFormat;
  inputs: readonly (TensorSpec | undefined)[];
  outputs: readonly TensorSpec[];
  /** Data of constant inputs (compressed weights already expanded to fp32 for reference executors). */
  constants: readonly (TensorData | undefined)[];
  /** The same constants as the package stores them (fixed-point layers read their int16 / int8 words here);
   * absent where constants were computed rather than read (constant folding while a model is imported). */
  decoded?: readonly (DecodedTensor | undefined)[];
  /** Use the reference executors even where a native kernel exists (tests compare the two). */
  referenceOnly?: boolean;
}

export interface OpDefinition {
  /** Output dtypes and shapes from the inputs'; `declared` are the manifest's output tensors (for dtypes and
   * quantization that only the manifest knows). */
  infer(
    node: ManifestNode,
    inputs: readonly (TensorSpec | undefined)[],
    declared: readonly TensorSpec[],
  ): TensorSpec[];
  macs(
    node: ManifestNode,
    inputs: readonly (TensorSpec | undefined)[],
    outputs: readonly TensorSpec[],
  ): number;
  executors: Partial<Record<NumberFormat, (context: PrepareContext) => Executor>>;
}

// ---------------------------------------------------------------------------------------------------------
// Attribute and input helpers: every problem is a GraphError naming the layer.

function intsAttr(node: ManifestNode, name: string, length: number, fallback: number[], min = 0): number[] {
  const value = node.attrs[name];
  if (value === undefined) return fallback;
  if (
    !Array.isArray(value) ||
    value.length !== length ||
    value.some((v) => !Number.isInteger(v) || v < min || v > 1 << 24)
  ) {
    throw new GraphError(
      `attribute ${name} must be ${length} integers >= ${min}, got ${JSON.stringify(value)}`,
      node.name,
    );
  }
  return value;
}

function intAttr(
  node: ManifestNode,
  name: string,
  fallback: number,
  min = -(1 << 24),
  max = 1 << 24,
): number {
  const value = node.attrs[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new GraphError(
      `attribute ${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`,
      node.name,
    );
  }
  return value;
}

function numberAttr(node: ManifestNode, name: string, fallback: number): number {
  const value = node.attrs[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number')
    throw new GraphError(`attribute ${name} must be a number, got ${JSON.stringify(value)}`, node.name);
  return value;
}

function stringAttr<T extends string>(
  node: ManifestNode,
  name: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const value = node.attrs[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new GraphError(
      `attribute ${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`,
      node.name,
    );
  }
  return value as T;
}

function input(
  node: ManifestNode,
  inputs: readonly (TensorSpec | undefined)[],
  index: number,
  what: string,
): TensorSpec {
  const spec = inputs[index];
  if (spec === undefined) throw new GraphError(`input ${index} (${what}) is missing`, node.name);
  return spec;
}

function expect(condition: boolean, node: ManifestNode, message: string): asserts condition {
  if (!condition) throw new GraphError(message, node.name);
}

function normalizeAxis(node: ManifestNode, axis: number, rank: number): number {
  expect(axis >= -rank && axis < Math.max(rank, 1), node, `axis ${axis} is outside a rank-${rank} tensor`);
  return axis < 0 ? axis + rank : axis;
}

const scalarOrChannel = (values: readonly number[], o: number): number =>
  values.length === 1 ? values[0]! : values[o]!;

function needQuant(
  node: ManifestNode,
  spec: TensorSpec,
  what: string,
): { scale: number[]; zeroPoint: number[] } {
  expect(spec.quant !== undefined, node, `${what} needs a scale and zero point`);
  return spec.quant;
}

function isInt8(spec: TensorSpec): boolean {
  return spec.dtype === 'i8' || spec.dtype === 'u8';
}

// ---------------------------------------------------------------------------------------------------------
// Convolution and pooling geometry.

interface Window {
  strides: number[];
  dilations: number[];
  pads: number[];
}

function windowAttrs(node: ManifestNode): Window {
  return {
    strides: intsAttr(node, 'strides', 2, [1, 1], 1),
    dilations: intsAttr(node, 'dilations', 2, [1, 1], 1),
    pads: intsAttr(node, 'pads', 4, [0, 0, 0, 0]),
  };
}

function windowOutput(
  node: ManifestNode,
  size: number,
  kernel: number,
  stride: number,
  dilation: number,
  padA: number,
  padB: number,
  ceil: boolean,
): number {
  const span = dilation * (kernel - 1) + 1;
  const room = size + padA + padB - span;
  expect(room >= 0, node, `a window of ${span} does not fit an input of ${size} padded by ${padA}+${padB}`);
  let out = (ceil ? Math.ceil(room / stride) : Math.floor(room / stride)) + 1;
  // Ceil mode: the last window must start inside the input or the leading padding.
  if (ceil && (out - 1) * stride >= size + padA) out--;
  return out;
}

/** A conv or pool window over an inH x inW input: strides, dilations, pads (ONNX order: top, left, bottom,
 * right) and the output size. Pools read ceil_mode (after the window attributes); a conv has none. */
function windowGeometry(node: ManifestNode, inH: number, inW: number, kh: number, kw: number, pool: boolean) {
  const { strides, dilations, pads } = windowAttrs(node);
  const ceil = pool && intAttr(node, 'ceil_mode', 0, 0, 1) === 1;
  return {
    strideH: strides[0]!,
    strideW: strides[1]!,
    dilationH: dilations[0]!,
    dilationW: dilations[1]!,
    padTop: pads[0]!,
    padLeft: pads[1]!,
    padBottom: pads[2]!,
    padRight: pads[3]!,
    outH: windowOutput(node, inH, kh, strides[0]!, dilations[0]!, pads[0]!, pads[2]!, ceil),
    outW: windowOutput(node, inW, kw, strides[1]!, dilations[1]!, pads[1]!, pads[3]!, ceil),
  };
}

function convGeometry(node: ManifestNode, x: TensorSpec, w: TensorSpec): ConvGeometry {
  expect(x.shape.length === 4, node, `input must be NHWC (rank 4), got [${x.shape.join(', ')}]`);
  expect(w.shape.length === 4, node, `weights must be OHWI (rank 4), got [${w.shape.join(', ')}]`);
  const [batch, inH, inW, inC] = x.shape as [number, number, number, number];
  const [outC, kh, kw, cg] = w.shape as [number, number, number, number];
  const groups = intAttr(node, 'groups', 1, 1);
  expect(
    inC === cg * groups,
    node,
    `input channels ${inC} != groups ${groups} x weight input channels ${cg}`,
  );
  expect(
    outC % groups === 0 && outC > 0,
    node,
    `output channels ${outC} are not a multiple of groups ${groups}`,
  );
  return { batch, inH, inW, inC, outC, kh, kw, groups, ...windowGeometry(node, inH, inW, kh, kw, false) };
}

function poolGeometry(node: ManifestNode, x: TensorSpec): PoolGeometry {
  expect(x.shape.length === 4, node, `input must be NHWC (rank 4), got [${x.shape.join(', ')}]`);
  const [batch, inH, inW, channels] = x.shape as [number, number, number, number];
  const [kh, kw] = intsAttr(node, 'kernel', 2, [0, 0], 1) as [number, number];
  return { batch, inH, inW, channels, kh, kw, ...windowGeometry(node, inH, inW, kh, kw, true) };
}

// ---------------------------------------------------------------------------------------------------------
// Requantization of integer accumulators to an int8/uint8 output.

type Requantize = (accumulator: number, o: number) => number;

function requantizer(node: ManifestNode, x: TensorSpec, w: TensorSpec, y: TensorSpec): Requantize {
  const xq = needQuant(node, x, 'input');
  const wq = needQuant(node, w, 'weights');
  const yq = needQuant(node, y, 'output');
  const [lo, hi] = intRange(y.dtype);
  const min = Math.max(lo, numberAttr(node, 'min', lo));
  const max = Math.min(hi, numberAttr(node, 'max', hi));
  const zero = yq.zeroPoint[0]!;
  const channels = wq.scale.length;
  if (stringAttr(node, 'rounding', ['gemmlowp', 'onnx'], 'gemmlowp') === 'onnx') {
    // ONNX's reference: float32 rescale, round half to even, saturate.
    const scales = Array.from({ length: channels }, (_, o) =>
      Math.fround(Math.fround(xq.scale[0]! * wq.scale[o]!) / yq.scale[0]!),
    );
    return (acc, o) =>
      saturate(roundHalfEven(Math.fround(acc * scalarOrChannel(scales, o))) + zero, min, max);
  }
  // 'saturate': the reader admits any positive finite scales, so the ratio can pass 2^30 (requantization.ts).
  const multipliers = Array.from({ length: channels }, (_, o) =>
    quantizeMultiplier((xq.scale[0]! * wq.scale[o]!) / yq.scale[0]!, 'saturate'),
  );
  return (acc, o) => {
    const m = multipliers.length === 1 ? multipliers[0]! : multipliers[o]!;
    return saturate(zero + requantizeGemmlowp(acc, m.multiplier, m.shift), min, max);
  };
}

const weightZero = (spec: TensorSpec): ((o: number) => number) => {
  const zp = spec.quant?.zeroPoint ?? [0];
  return (o) => scalarOrChannel(zp, o);
};

/** Data of input i: a constant baked at prepare time, or the runtime tensor. */
function pick(
  context: PrepareContext,
  inputs: readonly (TensorData | undefined)[],
  i: number,
): TensorData | undefined {
  return context.constants[i] ?? inputs[i];
}

// ---------------------------------------------------------------------------------------------------------
// Operators.

const FLOAT_WEIGHT_FORMATS = ['f32', 'binary', 'ternary', 'sparse', 'codebook', 'hashed'] as const;

function floatConvExecutor(binarizeInput: boolean) {
  return (context: PrepareContext): Executor => {
    const { node } = context;
    const g = convGeometry(node, context.inputs[0]!, context.inputs[1]!);
    const min = numberAttr(node, 'min', -Infinity);
    const max = numberAttr(node, 'max', Infinity);
    return {
      kernel: `reference:conv2d_${context.format}`,
      run: (inputs, outputs) =>
        conv2dF32(
          g,
          inputs[0] as Float32Array,
          pick(context, inputs, 1) as Float32Array,
          pick(context, inputs, 2) as Float32Array | undefined,
          min,
          max,
          outputs[0] as Float32Array,
          binarizeInput,
        ),
    };
  };
}

function floatFcExecutor(binarizeInput: boolean) {
  return (context: PrepareContext): Executor => {
    const { node } = context;
    const x = context.inputs[0]!;
    const w = context.inputs[1]!;
    const batch = x.shape[0]!;
    const k = w.shape[1]!;
    const outC = w.shape[0]!;
    const min = numberAttr(node, 'min', -Infinity);
    const max = numberAttr(node, 'max', Infinity);
    return {
      kernel: `reference:fully_connected_${context.format}`,
      run: (inputs, outputs) => {
        const bias = pick(context, inputs, 2);
        const y = outputs[0]!;
        const xs = binarizeInput ? Float32Array.from(inputs[0]!, (v) => (v < 0 ? -1 : 1)) : inputs[0]!;
        fullyConnected(
          batch,
          k,
          outC,
          xs,
          0,
          pick(context, inputs, 1)!,
          () => 0,
          (index, o, sum) => {
            const v = sum + (bias ? bias[o]! : 0);
            y[index] = v < min ? min : v > max ? max : v;
          },
        );
      },
    };
  };
}

// fixed16 / fixed8 layers with activation fractional lengths compute in fixed point (fixed-point-layer.ts);
// those without (format 1.0 packages) keep fp32 activations over their exactly expanded weights.
const fixedPointConvExecutor = (context: PrepareContext): Executor => {
  const layer = fixedPointLayer(context);
  if (layer === undefined) return floatConvExecutor(false)(context);
  const { node } = context;
  const g = convGeometry(node, context.inputs[0]!, context.inputs[1]!);
  expect(g.dilationH === 1 && g.dilationW === 1, node, 'fixed-point layers take no dilation');
  const geometry = fixedPointGeometry(g);
  return {
    kernel: `reference:conv2d_${context.format}`,
    run: (inputs, outputs) =>
      fixedPointConv2d(layer, geometry, inputs[0] as Float32Array, outputs[0] as Float32Array),
  };
};

const fixedPointFcExecutor = (context: PrepareContext): Executor => {
  const layer = fixedPointLayer(context);
  if (layer === undefined) return floatFcExecutor(false)(context);
  const [outC, k] = context.inputs[1]!.shape as [number, number];
  const geometry = fullyConnectedGeometry(context.inputs[0]!.shape[0]!, k, outC);
  return {
    kernel: `reference:fully_connected_${context.format}`,
    run: (inputs, outputs) =>
      fixedPointConv2d(layer, geometry, inputs[0] as Float32Array, outputs[0] as Float32Array),
  };
};

const conv2d: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const w = input(node, inputs, 1, 'weights');
    expect(
      x.dtype === 'f32',
      node,
      `conv2d takes fp32 activations, got ${x.dtype} (int8 layers are qconv2d)`,
    );
    const g = convGeometry(node, x, w);
    const bias = inputs[2];
    expect(bias === undefined || elements(bias.shape) === g.outC, node, `bias must have ${g.outC} elements`);
    return [{ dtype: 'f32', shape: [g.batch, g.outH, g.outW, g.outC] }];
  },
  macs: (node, inputs, outputs) => elements(outputs[0]!.shape) * elements(inputs[1]!.shape.slice(1)),
  executors: {
    ...Object.fromEntries(FLOAT_WEIGHT_FORMATS.map((f) => [f, floatConvExecutor(false)])),
    fixed16: fixedPointConvExecutor,
    fixed8: fixedPointConvExecutor,
    xnor: floatConvExecutor(true),
  },
};

const fullyConnectedOp: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const w = input(node, inputs, 1, 'weights');
    expect(x.dtype === 'f32', node, `fully_connected takes fp32 activations, got ${x.dtype}`);
    expect(w.shape.length === 2, node, `weights must be [out][in], got [${w.shape.join(', ')}]`);
    const batch = x.shape[0] ?? 1;
    expect(
      x.shape.length >= 1 && elements(x.shape) === batch * w.shape[1]!,
      node,
      `input [${x.shape.join(', ')}] does not hold ${w.shape[1]} features per row`,
    );
    const bias = inputs[2];
    expect(
      bias === undefined || elements(bias.shape) === w.shape[0],
      node,
      `bias must have ${w.shape[0]} elements`,
    );
    return [{ dtype: 'f32', shape: [batch, w.shape[0]!] }];
  },
  macs: (_node, inputs, outputs) => elements(outputs[0]!.shape) * inputs[1]!.shape[1]!,
  executors: {
    ...Object.fromEntries(FLOAT_WEIGHT_FORMATS.map((f) => [f, floatFcExecutor(false)])),
    fixed16: fixedPointFcExecutor,
    fixed8: fixedPointFcExecutor,
    xnor: floatFcExecutor(true),
  },
};

const qconv2d: OpDefinition = {
  infer(node, inputs, declared) {
    const x = input(node, inputs, 0, 'x');
    const w = input(node, inputs, 1, 'weights');
    const y = declared[0];
    expect(
      isInt8(x) && isInt8(w),
      node,
      `qconv2d takes int8/uint8 input and weights, got ${x.dtype} and ${w.dtype}`,
    );
    expect(y !== undefined && isInt8(y), node, 'qconv2d output must be int8 or uint8');
    needQuant(node, x, 'input');
    const wq = needQuant(node, w, 'weights');
    needQuant(node, y, 'output');
    const g = convGeometry(node, x, w);
    expect(
      wq.scale.length === 1 || wq.scale.length === g.outC,
      node,
      'weight scales must be per tensor or per output channel',
    );
    const bias = inputs[2];
    expect(
      bias === undefined || (bias.dtype === 'i32' && elements(bias.shape) === g.outC),
      node,
      `bias must be ${g.outC} int32`,
    );
    return [{ ...y, shape: [g.batch, g.outH, g.outW, g.outC] }];
  },
  macs: (node, inputs, outputs) => elements(outputs[0]!.shape) * elements(inputs[1]!.shape.slice(1)),
  executors: {
    int8: (context) => {
      const [x, w] = context.inputs as [TensorSpec, TensorSpec];
      const g = convGeometry(context.node, x, w);
      const requantize = requantizer(context.node, x, w, context.outputs[0]!);
      const xZero = x.quant!.zeroPoint[0]!;
      return {
        kernel: 'reference:qconv2d_int8',
        run: (inputs, outputs) => {
          const y = outputs[0]!;
          conv2dInteger(
            g,
            inputs[0]!,
            xZero,
            pick(context, inputs, 1)!,
            weightZero(w),
            pick(context, inputs, 2) as Int32Array | undefined,
            (index, o, acc) => {
              y[index] = requantize(acc, o);
            },
          );
        },
      };
    },
  },
};

const conv2dIntegerOp: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const w = input(node, inputs, 1, 'weights');
    expect(isInt8(x) && isInt8(w), node, 'conv2d_integer takes int8/uint8 input and weights');
    const g = convGeometry(node, x, w);
    return [{ dtype: 'i32', shape: [g.batch, g.outH, g.outW, g.outC] }];
  },
  macs: (node, inputs, outputs) => elements(outputs[0]!.shape) * elements(inputs[1]!.shape.slice(1)),
  executors: {
    int8: (context) => {
      const [x, w] = context.inputs as [TensorSpec, TensorSpec];
      const g = convGeometry(context.node, x, w);
      const xZero = x.quant?.zeroPoint[0] ?? 0;
      return {
        kernel: 'reference:conv2d_integer_int8',
        run: (inputs, outputs) => {
          const y = outputs[0]!;
          conv2dInteger(
            g,
            inputs[0]!,
            xZero,
            pick(context, inputs, 1)!,
            weightZero(w),
            undefined,
            (index, _o, acc) => {
              y[index] = acc;
            },
          );
        },
      };
    },
  },
};

const qfullyConnected: OpDefinition = {
  infer(node, inputs, declared) {
    const x = input(node, inputs, 0, 'x');
    const w = input(node, inputs, 1, 'weights');
    const y = declared[0];
    expect(
      isInt8(x) && isInt8(w) && y !== undefined && isInt8(y),
      node,
      'qfully_connected takes and gives int8/uint8',
    );
    expect(w.shape.length === 2, node, 'weights must be [out][in]');
    const batch = x.shape[0] ?? 1;
    expect(
      elements(x.shape) === batch * w.shape[1]!,
      node,
      `input does not hold ${w.shape[1]} features per row`,
    );
    needQuant(node, x, 'input');
    needQuant(node, w, 'weights');
    needQuant(node, y, 'output');
    return [{ ...y, shape: [batch, w.shape[0]!] }];
  },
  macs: (_node, inputs, outputs) => elements(outputs[0]!.shape) * inputs[1]!.shape[1]!,
  executors: {
    int8: (context) => {
      const [x, w] = context.inputs as [TensorSpec, TensorSpec];
      const requantize = requantizer(context.node, x, w, context.outputs[0]!);
      const batch = x.shape[0]!;
      const [outC, k] = w.shape as [number, number];
      const xZero = x.quant!.zeroPoint[0]!;
      return {
        kernel: 'reference:qfully_connected_int8',
        run: (inputs, outputs) => {
          const y = outputs[0]!;
          const bias = pick(context, inputs, 2);
          fullyConnected(
            batch,
            k,
            outC,
            inputs[0]!,
            xZero,
            pick(context, inputs, 1)!,
            weightZero(w),
            (index, o, sum) => {
              y[index] = requantize((sum + (bias ? bias[o]! : 0)) | 0, o);
            },
          );
        },
      };
    },
  },
};

function matmulInfer(node: ManifestNode, a: TensorSpec, b: TensorSpec): number[] {
  const shape = matmulShape(a.shape, b.shape);
  expect(typeof shape !== 'string', node, typeof shape === 'string' ? shape : '');
  return shape;
}

const matmulMacs = (
  _node: ManifestNode,
  inputs: readonly (TensorSpec | undefined)[],
  outputs: readonly TensorSpec[],
): number => elements(outputs[0]!.shape) * (inputs[0]!.shape[inputs[0]!.shape.length - 1] ?? 1);

const matmulOp: OpDefinition = {
  infer(node, inputs) {
    const a = input(node, inputs, 0, 'a');
    const b = input(node, inputs, 1, 'b');
    expect(a.dtype === 'f32' && b.dtype === 'f32', node, 'matmul takes fp32 operands');
    return [{ dtype: 'f32', shape: matmulInfer(node, a, b) }];
  },
  macs: matmulMacs,
  executors: {
    f32: (context) => {
      const [a, b] = context.inputs as [TensorSpec, TensorSpec];
      return {
        kernel: 'reference:matmul_f32',
        run: (inputs, outputs) => {
          const y = outputs[0]!;
          matmul(a.shape, pick(context, inputs, 0)!, 0, b.shape, pick(context, inputs, 1)!, 0, (i, sum) => {
            y[i] = sum;
          });
        },
      };
    },
  },
};

const qmatmul: OpDefinition = {
  infer(node, inputs, declared) {
    const a = input(node, inputs, 0, 'a');
    const b = input(node, inputs, 1, 'b');
    const y = declared[0];
    expect(
      isInt8(a) && isInt8(b) && y !== undefined && isInt8(y),
      node,
      'qmatmul takes and gives int8/uint8',
    );
    needQuant(node, a, 'a');
    const bq = needQuant(node, b, 'b');
    needQuant(node, y, 'output');
    expect(bq.scale.length === 1, node, 'qmatmul supports a per-tensor scale of b only');
    return [{ ...y, shape: matmulInfer(node, a, b) }];
  },
  macs: matmulMacs,
  executors: {
    int8: (context) => {
      const [a, b] = context.inputs as [TensorSpec, TensorSpec];
      const requantize = requantizer(context.node, a, b, context.outputs[0]!);
      return {
        kernel: 'reference:qmatmul_int8',
        run: (inputs, outputs) => {
          const y = outputs[0]!;
          matmul(
            a.shape,
            pick(context, inputs, 0)!,
            a.quant!.zeroPoint[0]!,
            b.shape,
            pick(context, inputs, 1)!,
            b.quant!.zeroPoint[0]!,
            (i, sum) => {
              y[i] = requantize(sum | 0, 0);
            },
          );
        },
      };
    },
  },
};

const matmulIntegerOp: OpDefinition = {
  infer(node, inputs) {
    const a = input(node, inputs, 0, 'a');
    const b = input(node, inputs, 1, 'b');
    expect(isInt8(a) && isInt8(b), node, 'matmul_integer takes int8/uint8 operands');
    return [{ dtype: 'i32', shape: matmulInfer(node, a, b) }];
  },
  macs: matmulMacs,
  executors: {
    int8: (context) => {
      const [a, b] = context.inputs as [TensorSpec, TensorSpec];
      return {
        kernel: 'reference:matmul_integer_int8',
        run: (inputs, outputs) => {
          const y = outputs[0]!;
          matmul(
            a.shape,
            pick(context, inputs, 0)!,
            a.quant?.zeroPoint[0] ?? 0,
            b.shape,
            pick(context, inputs, 1)!,
            b.quant?.zeroPoint[0] ?? 0,
            (i, sum) => {
              y[i] = sum | 0;
            },
          );
        },
      };
    },
  },
};

function poolOp(kind: 'max' | 'avg'): OpDefinition {
  const run = (context: PrepareContext): Executor => {
    const x = context.inputs[0]!;
    const g = poolGeometry(context.node, x);
    const includePad = intAttr(context.node, 'count_include_pad', 0, 0, 1) === 1;
    const integer = x.dtype !== 'f32';
    return {
      kernel: `reference:${kind}_pool_${context.format}`,
      run: (inputs, outputs) =>
        kind === 'max'
          ? maxPool(g, inputs[0]!, outputs[0]!)
          : averagePool(
              g,
              inputs[0]!,
              outputs[0]!,
              includePad,
              integer ? (mean) => roundHalfEven(mean) : undefined,
            ),
    };
  };
  return {
    infer(node, inputs) {
      const x = input(node, inputs, 0, 'x');
      expect(x.dtype === 'f32' || isInt8(x), node, `pooling takes fp32 or int8 input, got ${x.dtype}`);
      const g = poolGeometry(node, x);
      return [{ ...x, shape: [g.batch, g.outH, g.outW, g.channels] }];
    },
    macs: (node, _inputs, outputs) =>
      elements(outputs[0]!.shape) * elements(intsAttr(node, 'kernel', 2, [1, 1], 1)),
    executors: { f32: run, int8: run },
  };
}

const globalAvgPool: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(x.shape.length === 4, node, 'global_avgpool takes NHWC input');
    expect(x.dtype === 'f32', node, 'global_avgpool takes fp32 input');
    return [{ ...x, shape: [x.shape[0]!, 1, 1, x.shape[3]!] }];
  },
  macs: (_node, inputs) => elements(inputs[0]!.shape),
  executors: {
    f32: (context) => {
      const [n, h, w, c] = context.inputs[0]!.shape as [number, number, number, number];
      return {
        kernel: 'reference:global_avgpool_f32',
        run: (inputs, outputs) => {
          const x = inputs[0]!;
          const y = outputs[0]!;
          for (let b = 0; b < n; b++) {
            for (let ch = 0; ch < c; ch++) {
              let sum = 0;
              for (let p = 0; p < h * w; p++) sum += x[(b * h * w + p) * c + ch]!;
              y[b * c + ch] = sum / (h * w);
            }
          }
        },
      };
    },
  },
};

function wrap(dtype: string): (v: number) => number {
  switch (dtype) {
    case 'i8':
      return (v) => (v << 24) >> 24;
    case 'u8':
      return (v) => v & 0xff;
    case 'i32':
      return (v) => v | 0;
    default:
      return (v) => v;
  }
}

function binaryOp(name: string, f: (a: number, b: number) => number): OpDefinition {
  const run = (context: PrepareContext): Executor => {
    const [a, b] = context.inputs as [TensorSpec, TensorSpec];
    const y = context.outputs[0]!;
    const w = wrap(y.dtype);
    // Integer products and sums wrap like the ONNX (numpy) reference; fp32 rounds once per element.
    const combine =
      y.dtype === 'f32'
        ? (p: number, q: number) => Math.fround(f(p, q))
        : (p: number, q: number) => w(name === 'mul' ? Math.imul(p, q) : f(p, q));
    return {
      kernel: `reference:${name}_${context.format}`,
      run: (inputs, outputs) =>
        binaryBroadcast(
          a.shape,
          pick(context, inputs, 0)!,
          b.shape,
          pick(context, inputs, 1)!,
          y.shape,
          outputs[0]!,
          combine,
        ),
    };
  };
  return {
    infer(node, inputs) {
      const a = input(node, inputs, 0, 'a');
      const b = input(node, inputs, 1, 'b');
      expect(a.dtype === b.dtype, node, `operands must share a dtype, got ${a.dtype} and ${b.dtype}`);
      expect(
        a.quant === undefined && b.quant === undefined,
        node,
        `${name} of quantized tensors needs dequantize first`,
      );
      const shape = broadcastShapes(a.shape, b.shape);
      expect(typeof shape !== 'string', node, typeof shape === 'string' ? shape : '');
      return [{ dtype: a.dtype, shape }];
    },
    macs: (_node, _inputs, outputs) => elements(outputs[0]!.shape),
    executors: { f32: run, int8: run },
  };
}

function unaryOp(
  name: string,
  make: (node: ManifestNode, spec: TensorSpec) => (v: number) => number,
  floatOnly = true,
): OpDefinition {
  const run = (context: PrepareContext): Executor => {
    const f = make(context.node, context.inputs[0]!);
    return {
      kernel: `reference:${name}_${context.format}`,
      run: (inputs, outputs) => unary(inputs[0]!, outputs[0]!, f),
    };
  };
  return {
    infer(node, inputs) {
      const x = input(node, inputs, 0, 'x');
      expect(!floatOnly || x.dtype === 'f32', node, `${name} takes fp32 input, got ${x.dtype}`);
      make(node, x);
      return [{ ...x, shape: [...x.shape] }];
    },
    macs: (_node, _inputs, outputs) => elements(outputs[0]!.shape),
    executors: { f32: run, int8: run },
  };
}

const clip = unaryOp(
  'clip',
  (node) => {
    const min = numberAttr(node, 'min', -Infinity);
    const max = numberAttr(node, 'max', Infinity);
    return (v) => (v < min ? min : v > max ? max : v);
  },
  false,
);

const concatOp: OpDefinition = {
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
  executors: Object.fromEntries(
    (['f32', 'int8'] as const).map((format) => [
      format,
      (context: PrepareContext): Executor => {
        const specs = context.inputs as TensorSpec[];
        const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', 0), specs[0]!.shape.length);
        return {
          kernel: `reference:concat_${format}`,
          run: (inputs, outputs) =>
            concat(
              specs.map((s) => s.shape),
              axis,
              specs.map((_, i) => pick(context, inputs, i)!),
              outputs[0]!,
            ),
        };
      },
    ]),
  ),
};

function copyExecutor(name: string) {
  return (context: PrepareContext): Executor => ({
    kernel: `reference:${name}`,
    run: (inputs, outputs) => outputs[0]!.set(pick(context, inputs, 0)!),
  });
}

const reshape: OpDefinition = {
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
  executors: { f32: copyExecutor('reshape'), int8: copyExecutor('reshape') },
};

const identity: OpDefinition = {
  infer: (node, inputs) => [{ ...input(node, inputs, 0, 'x') }],
  macs: () => 0,
  executors: { f32: copyExecutor('identity'), int8: copyExecutor('identity') },
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
  executors: Object.fromEntries(
    (['f32', 'int8'] as const).map((format) => [
      format,
      (context: PrepareContext): Executor => {
        const x = context.inputs[0]!;
        const perm = intsAttr(context.node, 'perm', x.shape.length, [...x.shape.keys()].reverse());
        return {
          kernel: `reference:transpose_${format}`,
          run: (inputs, outputs) => transpose(x.shape, perm, pick(context, inputs, 0)!, outputs[0]!),
        };
      },
    ]),
  ),
};

const softmaxOp: OpDefinition = {
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
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const groups = intAttr(node, 'groups', 1, 1);
    const channels = x.shape[x.shape.length - 1] ?? 0;
    expect(channels % groups === 0, node, `channels ${channels} not divisible by groups ${groups}`);
    return [{ ...x, shape: [...x.shape] }];
  },
  macs: () => 0,
  executors: Object.fromEntries(
    (['f32', 'int8'] as const).map((format) => [
      format,
      (context: PrepareContext): Executor => {
        const x = context.inputs[0]!;
        const groups = intAttr(context.node, 'groups', 1, 1);
        const channels = x.shape[x.shape.length - 1]!;
        return {
          kernel: `reference:channel_shuffle_${format}`,
          run: (inputs, outputs) =>
            channelShuffle(elements(x.shape) / channels, groups, channels / groups, inputs[0]!, outputs[0]!),
        };
      },
    ]),
  ),
};

/** Index of the channel (along quant.axis) of each element, or null for per-tensor quantization. */
function channelOf(shape: readonly number[], axis: number | undefined): ((i: number) => number) | null {
  if (axis === undefined) return null;
  const inner = elements(shape.slice(axis + 1));
  const size = shape[axis]!;
  return (i) => Math.floor(i / inner) % size;
}

const quantizeLinear: OpDefinition = {
  infer(node, inputs, declared) {
    const x = input(node, inputs, 0, 'x');
    const y = declared[0];
    expect(x.dtype === 'f32', node, 'quantize_linear takes fp32 input');
    expect(y !== undefined && isInt8(y), node, 'quantize_linear gives int8 or uint8');
    const q = needQuant(node, y, 'output');
    expect(
      q.scale.length === 1 || (y.quant?.axis !== undefined && x.shape[y.quant.axis] === q.scale.length),
      node,
      'scale count does not match the axis',
    );
    return [{ ...y, shape: [...x.shape] }];
  },
  macs: (_node, inputs) => elements(inputs[0]!.shape),
  executors: {
    int8: (context) => {
      const y = context.outputs[0]!;
      const { scale, zeroPoint, axis } = y.quant!;
      const channel = channelOf(y.shape, axis);
      const [lo, hi] = intRange(y.dtype);
      return {
        kernel: 'reference:quantize_linear_int8',
        run: (inputs, outputs) => {
          const x = pick(context, inputs, 0)!;
          const out = outputs[0]!;
          for (let i = 0; i < out.length; i++) {
            const c = channel ? channel(i) : 0;
            out[i] = saturate(roundHalfEven(x[i]! / scale[c]!) + zeroPoint[c]!, lo, hi);
          }
        },
      };
    },
  },
};

const dequantizeLinear: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(isInt8(x) || x.dtype === 'i32', node, 'dequantize_linear takes int8, uint8 or int32');
    needQuant(node, x, 'input');
    return [{ dtype: 'f32', shape: [...x.shape] }];
  },
  macs: (_node, inputs) => elements(inputs[0]!.shape),
  executors: {
    int8: (context) => {
      const x = context.inputs[0]!;
      const { scale, zeroPoint, axis } = x.quant!;
      const channel = channelOf(x.shape, axis);
      return {
        kernel: 'reference:dequantize_linear_int8',
        run: (inputs, outputs) => {
          const data = pick(context, inputs, 0)!;
          const out = outputs[0]!;
          for (let i = 0; i < out.length; i++) {
            const c = channel ? channel(i) : 0;
            out[i] = (data[i]! - zeroPoint[c]!) * scale[c]!;
          }
        },
      };
    },
  },
};

const batchNorm: OpDefinition = {
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

/** Every executor of `definition` tries the native kernel of its (op, format) pair first. */
function nativeFirst(op: string, definition: OpDefinition): OpDefinition {
  const executors: OpDefinition['executors'] = {};
  for (const [format, reference] of Object.entries(definition.executors)) {
    executors[format as NumberFormat] = (context) => nativeExecutor(op, context) ?? reference(context);
  }
  return { ...definition, executors };
}

const REFERENCE_OPS: Readonly<Record<string, OpDefinition>> = {
  conv2d,
  qconv2d,
  conv2d_integer: conv2dIntegerOp,
  fully_connected: fullyConnectedOp,
  qfully_connected: qfullyConnected,
  matmul: matmulOp,
  qmatmul,
  matmul_integer: matmulIntegerOp,
  max_pool: poolOp('max'),
  avg_pool: poolOp('avg'),
  global_avgpool: globalAvgPool,
  add: binaryOp('add', (a, b) => a + b),
  mul: binaryOp('mul', (a, b) => a * b),
  clip,
  leaky_relu: unaryOp('leaky_relu', (node) => {
    const alpha = numberAttr(node, 'alpha', 0.01);
    return (v) => (v < 0 ? Math.fround(v * alpha) : v);
  }),
  sigmoid: unaryOp('sigmoid', () => sigmoid),
  concat: concatOp,
  reshape,
  transpose: transposeOp,
  softmax: softmaxOp,
  identity,
  channel_shuffle: channelShuffleOp,
  quantize_linear: quantizeLinear,
  dequantize_linear: dequantizeLinear,
  batch_norm: batchNorm,
};

export const OPS: Readonly<Record<string, OpDefinition>> = Object.fromEntries(
  Object.entries(REFERENCE_OPS).map(([op, definition]) => [op, nativeFirst(op, definition)]),
);
