// The 'whittle-native' TensorFlow.js backend: tfjs's cpu backend with its heavy kernels (convolutions,
// matmuls, pooling, batch norm and their gradients) replaced by the native fp32 training kernels of the
// one native addon (native/train-kernels.ts). Every other kernel, and every configuration the native kernels do not cover (NCHW, PReLU
// or leaky-ReLU fusion, non-float32 tensors, unusual broadcasting), runs the cpu backend's own kernel.
// The gradients of the elementwise ops and means that training graphs are full of (ReLU, ReLU6, Minimum,
// Maximum, Square, Mean), BatchNormalization layers in training mode, and Conv2D / Dense layers with a ReLU
// (bias and activation fused forward and backward) also run as fused native passes on this backend (see
// the sections below); other backends keep tfjs's own.
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

import {
  type BatchNormOperands,
  BINARY_OPS,
  COMPARE_OPS,
  type FusedActivation,
  loadTrainBinding,
  type TrainBinding,
  UNARY_GRAD_OPS,
  UNARY_OPS,
  type WindowShape,
} from '../../native/train-kernels.js';

export const NATIVE_BACKEND = 'whittle-native';

type Conv2DInfo = tf.backend_util.Conv2DInfo;
type KernelArgs = Parameters<tf.KernelFunc>[0];
type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

function windowShape(info: Conv2DInfo): WindowShape {
  return {
    batch: info.batchSize,
    inputHeight: info.inHeight,
    inputWidth: info.inWidth,
    inputChannels: info.inChannels,
    outputHeight: info.outHeight,
    outputWidth: info.outWidth,
    outputChannels: info.outChannels,
    kernelHeight: info.filterHeight,
    kernelWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    dilationHeight: info.dilationHeight,
    dilationWidth: info.dilationWidth,
    paddingTop: info.padInfo.top,
    paddingLeft: info.padInfo.left,
  };
}

function cpu(args: KernelArgs): MathBackendCPU {
  return args.backend as MathBackendCPU;
}

/** The float32 values of a tensor on the cpu backend, or undefined when it is not float32. */
function values(backend: MathBackendCPU, info: tf.TensorInfo): Float32Array | undefined {
  if (info.dtype !== 'float32') return undefined;
  const stored = backend.data.get(info.dataId).values;
  return stored instanceof Float32Array ? stored : undefined;
}

/** An input of a kernel call with its float32 values. */
interface Operand {
  info: tf.TensorInfo;
  data: Float32Array;
}

/** The named inputs of a kernel call with their values, or undefined when one is missing or not float32. */
function operands<K extends string>(args: KernelArgs, ...names: K[]): Record<K, Operand> | undefined {
  const inputs = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const found = {} as Record<K, Operand>;
  for (const name of names) {
    const info = inputs[name];
    const data = info === undefined ? undefined : values(cpu(args), info);
    if (info === undefined || data === undefined) return undefined;
    found[name] = { info, data };
  }
  return found;
}

function output(backend: MathBackendCPU, shape: number[], data: Float32Array): tf.TensorInfo {
  return backend.makeTensorInfo(shape, 'float32', data);
}

function shape4(info: tf.TensorInfo): [number, number, number, number] | undefined {
  const s = info.shape;
  return s.length === 4 ? [s[0]!, s[1]!, s[2]!, s[3]!] : undefined;
}

function fusedActivation(name: unknown): FusedActivation | undefined {
  if (name === undefined || name === null || name === 'linear') return 'linear';
  if (name === 'relu' || name === 'relu6') return name;
  return undefined;
}

/** A bias of one value per output channel, as the native kernels take it. */
function channelBias(
  backend: MathBackendCPU,
  bias: tf.TensorInfo | undefined,
  channels: number,
): Float32Array | null | undefined {
  if (bias === undefined || bias === null) return null;
  const data = values(backend, bias);
  if (data === undefined || data.length !== channels || bias.shape[bias.shape.length - 1] !== channels)
    return undefined;
  return data;
}

/** One kernel of the backend. A kernel tfjs's cpu backend also has (`fallsBack`) returns undefined for a
 * call outside what the native kernel covers, and the cpu kernel runs it; the kernels only this backend's
 * gradient overrides call have no cpu twin, and their callers check the inputs first. */
interface NativeKernel {
  name: string;
  fallsBack: boolean;
  run(args: KernelArgs, native: TrainBinding): tf.TensorInfo | tf.TensorInfo[] | undefined;
}

function isChannelsLast(dataFormat: unknown): boolean {
  return dataFormat === undefined || dataFormat === 'NHWC' || dataFormat === 'channelsLast';
}

function convForward(args: KernelArgs, native: TrainBinding, depthwise: boolean): tf.TensorInfo | undefined {
  const backend = cpu(args);
  const { x, filter, bias, preluActivationWeights } = args.inputs as Record<
    string,
    tf.TensorInfo | undefined
  >;
  const attrs = args.attrs as Record<string, unknown>;
  if (x === undefined || filter === undefined || preluActivationWeights) return undefined;
  if (!isChannelsLast(attrs['dataFormat'])) return undefined;
  const activation = fusedActivation(attrs['activation']);
  const xShape = shape4(x);
  const filterShape = shape4(filter);
  if (activation === undefined || xShape === undefined || filterShape === undefined) return undefined;
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs['strides'] as [number, number],
    (attrs['dilations'] as [number, number] | undefined) ?? 1,
    attrs['pad'] as Pad,
    attrs['dimRoundingMode'] as Rounding,
    depthwise,
  );
  const xData = values(backend, x);
  const filterData = values(backend, filter);
  const biasData = channelBias(backend, bias, info.outChannels);
  if (xData === undefined || filterData === undefined || biasData === undefined) return undefined;
  const y = new Float32Array(info.batchSize * info.outHeight * info.outWidth * info.outChannels);
  const call = {
    ...windowShape(info),
    x: xData,
    filter: filterData,
    bias: biasData,
    activation,
    y,
  };
  if (depthwise) native.depthwiseConv2dForward(call);
  else native.conv2dForward(call);
  return output(backend, info.outShape, y);
}

/** The geometry of a conv gradient kernel from the shapes of its input and filter (one of them an
 * attribute, the other a tensor's shape), or undefined when either is not 4-D. */
function gradientConvInfo(
  attrs: Record<string, unknown>,
  inputShape: readonly number[] | undefined,
  filterShape: readonly number[] | undefined,
  depthwise: boolean,
): Conv2DInfo | undefined {
  if (inputShape?.length !== 4 || filterShape?.length !== 4) return undefined;
  return tf.backend_util.computeConv2DInfo(
    [...inputShape] as [number, number, number, number],
    [...filterShape] as [number, number, number, number],
    attrs['strides'] as [number, number],
    (attrs['dilations'] as [number, number] | undefined) ?? 1,
    attrs['pad'] as Pad,
    attrs['dimRoundingMode'] as Rounding,
    depthwise,
  );
}

/** A conv gradient kernel: dx from dy and the filter (`of` 'input'), or dfilter from x and dy (`of`
 * 'filter'). The shape it produces is an attribute; the other operand's shape is its tensor's. */
function convBackprop(
  args: KernelArgs,
  native: TrainBinding,
  depthwise: boolean,
  of: 'input' | 'filter',
): tf.TensorInfo | undefined {
  const attrs = args.attrs as Record<string, unknown>;
  const otherName = of === 'input' ? 'filter' : 'x';
  const found = operands(args, 'dy', otherName);
  if (found === undefined || !isChannelsLast(attrs['dataFormat'])) return undefined;
  const dyData = found.dy.data;
  const other = found[otherName];
  const resultShape = attrs[of === 'input' ? 'inputShape' : 'filterShape'] as number[];
  const info =
    of === 'input'
      ? gradientConvInfo(attrs, resultShape, other.info.shape, depthwise)
      : gradientConvInfo(attrs, other.info.shape, resultShape, depthwise);
  if (info === undefined) return undefined;
  const otherData = other.data;
  const result = new Float32Array(resultShape.reduce((a, b) => a * b, 1));
  const window = windowShape(info);
  if (of === 'input') {
    const call = { ...window, dy: dyData, filter: otherData, dx: result };
    if (depthwise) native.depthwiseConv2dBackpropInput(call);
    else native.conv2dBackpropInput(call);
  } else {
    const call = { ...window, x: otherData, dy: dyData, dfilter: result };
    if (depthwise) native.depthwiseConv2dBackpropFilter(call);
    else native.conv2dBackpropFilter(call);
  }
  return output(cpu(args), [...resultShape], result);
}

function poolInfo(args: KernelArgs, x: tf.TensorInfo): Conv2DInfo | undefined {
  const attrs = args.attrs as Record<string, unknown>;
  const xShape = shape4(x);
  if (xShape === undefined) return undefined;
  return tf.backend_util.computePool2DInfo(
    xShape,
    attrs['filterSize'] as [number, number],
    attrs['strides'] as [number, number],
    1,
    attrs['pad'] as Pad,
    attrs['dimRoundingMode'] as Rounding,
  );
}

function poolForward(args: KernelArgs, native: TrainBinding, max: boolean): tf.TensorInfo | undefined {
  const found = operands(args, 'x');
  const info = found && poolInfo(args, found.x.info);
  if (found === undefined || info === undefined) return undefined;
  const y = new Float32Array(info.batchSize * info.outHeight * info.outWidth * info.outChannels);
  const call = { ...windowShape(info), x: found.x.data, y };
  if (max) native.maxPool(call);
  else native.avgPool(call);
  return output(cpu(args), info.outShape, y);
}

function poolBackward(args: KernelArgs, native: TrainBinding, max: boolean): tf.TensorInfo | undefined {
  const found = operands(args, 'dy', 'input');
  const info = found && poolInfo(args, found.input.info);
  if (found === undefined || info === undefined) return undefined;
  const { dy, input } = found;
  const dx = new Float32Array(input.data.length);
  if (max) native.maxPoolBackward({ ...windowShape(info), x: input.data, dy: dy.data, dx });
  else native.avgPoolBackward({ ...windowShape(info), dy: dy.data, dx });
  return output(cpu(args), [...input.info.shape], dx);
}

function matMul(args: KernelArgs, native: TrainBinding): tf.TensorInfo | undefined {
  const backend = cpu(args);
  const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const attrs = args.attrs as Record<string, unknown>;
  if (a === undefined || b === undefined || preluActivationWeights) return undefined;
  const activation = fusedActivation(attrs['activation']);
  if (activation === undefined || a.shape.length < 2 || b.shape.length < 2) return undefined;
  const transposeA = attrs['transposeA'] === true;
  const transposeB = attrs['transposeB'] === true;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (k !== kb) return undefined;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outer = tf.backend_util.assertAndGetBroadcastShape(outerA, outerB);
  const batchA = outerA.reduce((p, v) => p * v, 1);
  const batchB = outerB.reduce((p, v) => p * v, 1);
  const batch = outer.reduce((p, v) => p * v, 1);
  if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return undefined;
  const aData = values(backend, a);
  const bData = values(backend, b);
  if (aData === undefined || bData === undefined) return undefined;
  let biasData: Float32Array | null = null;
  if (bias !== undefined && bias !== null) {
    const data = values(backend, bias);
    if (data === undefined || bias.shape.length > 1 || (data.length !== n && data.length !== 1))
      return undefined;
    biasData = data;
  }
  const c = new Float32Array(batch * m * n);
  native.batchMatMul({
    batchA,
    batchB,
    m,
    n,
    k,
    transposeA,
    transposeB,
    a: aData,
    b: bData,
    bias: biasData,
    activation,
    c,
  });
  return output(backend, [...outer, m, n], c);
}

/** What batch norm and its gradient read from a call: x, its per-channel mean and variance, the optional
 * per-channel scale, and epsilon; undefined when an input is missing, not float32 or not one per channel. */
function batchNormOperands(args: KernelArgs): { x: tf.TensorInfo; operands: BatchNormOperands } | undefined {
  const backend = cpu(args);
  const { x, mean, variance, scale } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const channels = x?.shape[x.shape.length - 1] ?? 0;
  const xData = x && values(backend, x);
  const meanData = mean && perChannel(backend, mean, channels);
  const varianceData = variance && perChannel(backend, variance, channels);
  const scaleData = perChannel(backend, scale, channels);
  if (x === undefined || xData === undefined || !meanData || !varianceData || scaleData === undefined)
    return undefined;
  if (channels === 0) return undefined;
  const epsilon = ((args.attrs as Record<string, unknown>)['varianceEpsilon'] as number | undefined) ?? 0.001;
  return {
    x,
    operands: {
      count: xData.length / channels,
      channels,
      x: xData,
      mean: meanData,
      variance: varianceData,
      scale: scaleData,
      epsilon,
    },
  };
}

/** The values of an optional per-channel parameter: null when absent, undefined when not `channels` float32s. */
function perChannel(
  backend: MathBackendCPU,
  t: tf.TensorInfo | undefined | null,
  channels: number,
): Float32Array | null | undefined {
  if (t === undefined || t === null) return null;
  const data = values(backend, t);
  return data !== undefined && data.length === channels ? data : undefined;
}

function batchNorm(args: KernelArgs, native: TrainBinding): tf.TensorInfo | undefined {
  const found = batchNormOperands(args);
  const offset = found && perChannel(cpu(args), args.inputs['offset'], found.operands.channels);
  if (found === undefined || offset === undefined) return undefined;
  const y = new Float32Array(found.operands.x.length);
  native.batchNorm({ ...found.operands, offset, y });
  return output(cpu(args), [...found.x.shape], y);
}

/** How a broadcast operand is read for output index i: x[(i / divisor) % length]. Covers operands whose
 * non-1 dimensions form one contiguous block equal to the output's (scalars, biases, per-row values);
 * undefined for any other broadcast. */
export function broadcastReader(
  shape: readonly number[],
  outShape: readonly number[],
): { divisor: number; length: number } | undefined {
  const rank = outShape.length;
  const padded = [...new Array<number>(rank - shape.length).fill(1), ...shape];
  let first = -1;
  let last = -1;
  padded.forEach((d, i) => {
    if (d !== 1) {
      if (first < 0) first = i;
      last = i;
    }
  });
  if (first < 0) return { divisor: 1, length: 1 };
  let length = 1;
  for (let d = first; d <= last; d++) {
    if (padded[d] !== outShape[d]) return undefined;
    length *= padded[d]!;
  }
  let divisor = 1;
  for (let d = last + 1; d < rank; d++) divisor *= outShape[d]!;
  return { divisor, length };
}

function binary(args: KernelArgs, native: TrainBinding, op: number): tf.TensorInfo | undefined {
  const found = operands(args, 'a', 'b');
  if (found === undefined) return undefined;
  const [aData, bData] = [found.a.data, found.b.data];
  const outShape = tf.backend_util.assertAndGetBroadcastShape(found.a.info.shape, found.b.info.shape);
  const ra = broadcastReader(found.a.info.shape, outShape);
  const rb = broadcastReader(found.b.info.shape, outShape);
  if (ra === undefined || rb === undefined) return undefined;
  const y = new Float32Array(outShape.reduce((p, v) => p * v, 1));
  if (y.length === 0 || aData.length === 0 || bData.length === 0) return undefined;
  native.binary({
    op,
    n: y.length,
    a: aData,
    aDivisor: ra.divisor,
    aLength: ra.length,
    b: bData,
    bDivisor: rb.divisor,
    bLength: rb.length,
    y,
  });
  return output(cpu(args), outShape, y);
}

/** SplitV in typed-array row copies (a concatenation's gradient: the cpu backend slices element by element,
 * over a second for one fire module's concat at batch 64). Any float32 input, any axis. */
function splitV(args: KernelArgs): tf.TensorInfo[] | undefined {
  const x = operands(args, 'x')?.x;
  if (x === undefined) return undefined;
  const attrs = args.attrs as { numOrSizeSplits: number | number[]; axis: number | number[] };
  const shape = x.info.shape;
  const axis = tf.util.parseAxisParam(attrs.axis, shape)[0]!;
  const sizes = tf.backend_util.prepareSplitSize(x.info, attrs.numOrSizeSplits, axis);
  const outer = shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const row = shape[axis]! * inner;
  let start = 0;
  return sizes.map((size) => {
    const piece = new Float32Array(outer * size * inner);
    for (let o = 0; o < outer; o++)
      piece.set(x.data.subarray(o * row + start * inner, o * row + (start + size) * inner), o * size * inner);
    start += size;
    const out = [...shape];
    out[axis] = size;
    return output(cpu(args), out, piece);
  });
}

function unary(args: KernelArgs, native: TrainBinding, op: number): tf.TensorInfo | undefined {
  const x = operands(args, 'x')?.x;
  if (x === undefined) return undefined;
  const alpha = (args.attrs as Record<string, unknown> | undefined)?.['alpha'];
  const y = new Float32Array(x.data.length);
  native.unary({ op, x: x.data, alpha: typeof alpha === 'number' ? alpha : 0, y });
  return output(cpu(args), [...x.info.shape], y);
}

/** Sum (or, with `mean`, the mean) over one contiguous block of axes. Mean matters for batch norm in
 * training: its moments average over [batch, height, width], which tfjs's cpu Mean does by transposing the
 * whole activation in JavaScript first. */
function sum(args: KernelArgs, native: TrainBinding, mean = false): tf.TensorInfo | undefined {
  const x = operands(args, 'x')?.x;
  if (x === undefined || x.data.length === 0) return undefined;
  const attrs = args.attrs as Record<string, unknown>;
  const dims = x.info.shape;
  const axes = [...tf.util.parseAxisParam(attrs['axis'] as number | number[], dims)].sort((p, q) => p - q);
  if (axes.length === 0) return undefined;
  const first = axes[0]!;
  const last = axes[axes.length - 1]!;
  if (last - first + 1 !== axes.length) return undefined;
  const prod = (from: number, to: number): number => dims.slice(from, to).reduce((p, v) => p * v, 1);
  const outer = prod(0, first);
  const mid = prod(first, last + 1);
  const inner = prod(last + 1, dims.length);
  const y = new Float32Array(outer * inner);
  native.sumAxes({ outer, mid, inner, x: x.data, y });
  if (mean) for (let i = 0; i < y.length; i++) y[i]! /= mid;
  const outShape =
    attrs['keepDims'] === true
      ? dims.map((d, i) => (i >= first && i <= last ? 1 : d))
      : dims.filter((_, i) => i < first || i > last);
  return output(cpu(args), outShape, y);
}

function transpose(args: KernelArgs, native: TrainBinding): tf.TensorInfo | undefined {
  const x = operands(args, 'x')?.x;
  const perm = (args.attrs as Record<string, unknown>)['perm'] as number[];
  const shape = x?.info.shape ?? [];
  if (x === undefined || shape.length === 0 || shape.length > 8) return undefined;
  const y = new Float32Array(x.data.length);
  native.transpose({ shape: [...shape], perm: [...perm], x: x.data, y });
  return output(
    cpu(args),
    perm.map((p) => shape[p]!),
    y,
  );
}

/** The kernel behind the native FusedBatchNorm gradient: [dx, dmean, dvariance, dscale, doffset]. */
const BATCH_NORM_GRAD = 'WhittleFusedBatchNormGrad';

function batchNormGrad(args: KernelArgs, native: TrainBinding): tf.TensorInfo[] | undefined {
  const backend = cpu(args);
  const found = batchNormOperands(args);
  const dy = found && operands(args, 'dy')?.dy.data;
  if (found === undefined || dy === undefined || dy.length !== found.operands.x.length) return undefined;
  const { channels } = found.operands;
  const dx = new Float32Array(dy.length);
  const [dmean, dvariance, dscale, doffset] = [0, 1, 2, 3].map(() => new Float32Array(channels)) as [
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  native.batchNormBackward({ ...found.operands, dy, dx, dmean, dvariance, dscale, doffset });
  return [
    output(backend, [...found.x.shape], dx),
    output(backend, [channels], dmean),
    output(backend, [channels], dvariance),
    output(backend, [channels], dscale),
    output(backend, [channels], doffset),
  ];
}

/** Replaces tfjs's FusedBatchNorm gradient (a dozen elementwise ops and reductions) by one native pass
 * when the whittle-native backend runs and the parameters are per-channel vectors; otherwise tfjs's own. */
function registerBatchNormGradient(): void {
  const original = tf.getGradient('FusedBatchNorm');
  tf.registerGradient({
    ...original,
    gradFunc: (dy, saved, attrs) => {
      const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
      const channels = x.shape[x.shape.length - 1];
      const perChannel = (t: tf.Tensor | undefined): boolean =>
        t === undefined || t === null || (t.rank === 1 && t.shape[0] === channels);
      if (
        tf.getBackend() !== NATIVE_BACKEND ||
        Array.isArray(dy) ||
        x.dtype !== 'float32' ||
        !perChannel(mean) ||
        !perChannel(variance) ||
        !perChannel(scale)
      )
        return original.gradFunc(dy, saved, attrs);
      const inputs: tf.NamedTensorMap = { dy, x, mean, variance };
      if (scale) inputs['scale'] = scale;
      const [dx, dmean, dvariance, dscale, doffset] = tf
        .engine()
        .runKernel<tf.Tensor[]>(BATCH_NORM_GRAD, inputs, attrs);
      return {
        x: () => dx!,
        mean: () => dmean!,
        variance: () => dvariance!,
        scale: () => dscale!,
        offset: () => doffset!,
      };
    },
  });
}

// ---- Fused native gradients of elementwise ops and means ----
//
// tfjs's gradients of Relu, Minimum/Maximum, Square and Mean are chains of small ops, several of them
// JavaScript-only (Greater, LessEqual and the bool Cast behind ReLU6 = min(relu(x), 6); the ones() tensor
// and two full-size passes behind Mean). Batch norm in training mode runs Mean, Sub and Square over every
// activation (its moments), so MobileNet spent most of a step in these gradients. Each is replaced by one
// native pass computing the same products, on the whittle-native backend and float32 tensors only.

const UNARY_GRAD = 'WhittleUnaryGrad';
const COMPARE_MASK = 'WhittleCompareMask';
const MEAN_GRAD = 'WhittleMeanGrad';

/** Float32 values of a float32 tensor, copied when the cpu backend stores them in another array type. */
function floatValues(backend: MathBackendCPU, info: tf.TensorInfo): Float32Array {
  const direct = values(backend, info);
  if (direct !== undefined) return direct;
  if (info.dtype !== 'float32')
    throw new TypeError(`whittle-native gradient kernels take float32 tensors but received ${info.dtype}`);
  return Float32Array.from(backend.readSync(info.dataId) as ArrayLike<number>);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function unaryGrad(args: KernelArgs, native: TrainBinding): tf.TensorInfo {
  const backend = cpu(args);
  const { dy, x } = args.inputs as Record<string, tf.TensorInfo>;
  const op = (args.attrs as Record<string, unknown>)['op'] as number;
  if (!sameShape(dy!.shape, x!.shape))
    throw new TypeError(
      `${UNARY_GRAD}: dy [${dy!.shape.join(',')}] and x [${x!.shape.join(',')}] differ in shape`,
    );
  const dx = new Float32Array(tf.util.sizeFromShape(x!.shape));
  native.unaryGrad({ op, dy: floatValues(backend, dy!), x: floatValues(backend, x!), dx });
  return output(backend, [...x!.shape], dx);
}

function compareMask(args: KernelArgs, native: TrainBinding): tf.TensorInfo {
  const backend = cpu(args);
  const { dy, a, b } = args.inputs as Record<string, tf.TensorInfo>;
  const op = (args.attrs as Record<string, unknown>)['op'] as number;
  const ra = broadcastReader(a!.shape, dy!.shape);
  const rb = broadcastReader(b!.shape, dy!.shape);
  if (ra === undefined || rb === undefined)
    throw new TypeError(
      `${COMPARE_MASK}: a [${a!.shape.join(',')}] and b [${b!.shape.join(',')}] do not broadcast to dy`,
    );
  const y = new Float32Array(tf.util.sizeFromShape(dy!.shape));
  native.compareMask({
    op,
    n: y.length,
    dy: floatValues(backend, dy!),
    a: floatValues(backend, a!),
    aDivisor: ra.divisor,
    aLength: ra.length,
    b: floatValues(backend, b!),
    bDivisor: rb.divisor,
    bLength: rb.length,
    y,
  });
  return output(backend, [...dy!.shape], y);
}

/** The axes of x a reduction covers as [outer, mid, inner] sizes, or undefined unless they are one
 * contiguous block. */
function axisBlock(shape: readonly number[], axis: unknown): [number, number, number] | undefined {
  const axes = [...tf.util.parseAxisParam(axis as number | number[], [...shape])].sort((p, q) => p - q);
  if (axes.length === 0) return undefined;
  const first = axes[0]!;
  const last = axes[axes.length - 1]!;
  if (last - first + 1 !== axes.length) return undefined;
  const prod = (from: number, to: number): number => shape.slice(from, to).reduce((p, v) => p * v, 1);
  return [prod(0, first), prod(first, last + 1), prod(last + 1, shape.length)];
}

function meanGrad(args: KernelArgs, native: TrainBinding): tf.TensorInfo {
  const backend = cpu(args);
  const { dy } = args.inputs as Record<string, tf.TensorInfo>;
  const attrs = args.attrs as Record<string, unknown>;
  const shape = attrs['shape'] as number[];
  const block = axisBlock(shape, attrs['axis']);
  if (block === undefined || block[0] * block[2] !== tf.util.sizeFromShape(dy!.shape))
    throw new TypeError(
      `${MEAN_GRAD}: dy [${dy!.shape.join(',')}] is not a mean of [${shape.join(',')}] over one block of axes`,
    );
  const [outer, mid, inner] = block;
  const dx = new Float32Array(outer * mid * inner);
  native.meanGrad({ outer, mid, inner, dy: floatValues(backend, dy!), dx });
  return output(backend, [...shape], dx);
}

function onNativeBackend(...tensors: tf.Tensor[]): boolean {
  return tf.getBackend() === NATIVE_BACKEND && tensors.every((t) => t.dtype === 'float32');
}

/** Overrides the gradient of `kernelName`: `native` returns the gradient closures, or undefined to use
 * tfjs's own gradient. */
function overrideGradient(
  kernelName: string,
  native: (dy: tf.Tensor, saved: tf.Tensor[], attrs: tf.NamedAttrMap) => ReturnType<tf.GradFunc> | undefined,
): void {
  const original = tf.getGradient(kernelName);
  tf.registerGradient({
    ...original,
    gradFunc: (dy, saved, attrs) => {
      if (Array.isArray(dy)) return original.gradFunc(dy, saved, attrs);
      const grads = native(dy, saved, attrs);
      return grads === undefined ? original.gradFunc(dy, saved, attrs) : grads;
    },
  });
}

function runKernel(name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): tf.Tensor {
  return tf.engine().runKernel<tf.Tensor>(name, inputs, attrs);
}

function registerElementwiseGradients(): void {
  for (const [kernelName, op] of [
    ['Relu', UNARY_GRAD_OPS.relu],
    ['Square', UNARY_GRAD_OPS.square],
  ] as const) {
    overrideGradient(kernelName, (dy, [x]) =>
      x !== undefined && onNativeBackend(dy, x) && sameShape(dy.shape, x.shape)
        ? { x: () => runKernel(UNARY_GRAD, { dy, x }, { op }) }
        : undefined,
    );
  }
  // tfjs: Minimum's a gets dy where a <= b, b where a > b; Maximum's a where a >= b, b where a < b.
  for (const [kernelName, opA, opB] of [
    ['Minimum', COMPARE_OPS.lessEqual, COMPARE_OPS.greater],
    ['Maximum', COMPARE_OPS.greaterEqual, COMPARE_OPS.less],
  ] as const) {
    overrideGradient(kernelName, (dy, [a, b]) => {
      if (a === undefined || b === undefined || !onNativeBackend(dy, a, b)) return undefined;
      if (
        broadcastReader(a.shape, dy.shape) === undefined ||
        broadcastReader(b.shape, dy.shape) === undefined
      )
        return undefined;
      return {
        a: () => runKernel(COMPARE_MASK, { dy, a, b }, { op: opA }),
        b: () => runKernel(COMPARE_MASK, { dy, a, b }, { op: opB }),
      };
    });
  }
  overrideGradient('Mean', (dy, [x], attrs) => {
    if (x === undefined || !onNativeBackend(dy, x)) return undefined;
    const block = axisBlock(x.shape, attrs['axis']);
    if (block === undefined || block[0] * block[2] !== dy.size) return undefined;
    return {
      x: () => runKernel(MEAN_GRAD, { dy }, { shape: [...x.shape], axis: attrs['axis'] as number[] }),
    };
  });
}

// ---- Batch normalization layers in training mode ----
//
// tfjs-layers' BatchNormalization trains through moments() (Mean, Sub, Square, Mean) and FusedBatchNorm,
// and autograd then chains back through all of them: about a dozen full-size passes over every
// activation per step, most of MobileNet's non-convolution time. The layer's call is wrapped so that, on
// the whittle-native backend and with a channels-last float32 input, training runs one native moments
// pass, the native FusedBatchNorm, and one native pass for the whole gradient (a custom gradient that
// includes the batch statistics' dependence on x). The layer's class, weights, config and saved format stay
// tfjs's own; any other case runs tfjs's original call.

const BN_MOMENTS = 'WhittleBatchNormMoments';
const BN_TRAIN_GRAD = 'WhittleBatchNormTrainGrad';

function batchNormMoments(args: KernelArgs, native: TrainBinding): tf.TensorInfo[] {
  const backend = cpu(args);
  const { x } = args.inputs as Record<string, tf.TensorInfo>;
  const channels = x!.shape[x!.shape.length - 1] ?? 0;
  const size = tf.util.sizeFromShape(x!.shape);
  if (channels === 0 || size === 0)
    throw new TypeError(`${BN_MOMENTS}: x [${x!.shape.join(',')}] has no values`);
  const mean = new Float32Array(channels);
  const variance = new Float32Array(channels);
  native.batchNormMoments({ count: size / channels, channels, x: floatValues(backend, x!), mean, variance });
  return [output(backend, [channels], mean), output(backend, [channels], variance)];
}

function batchNormTrainGrad(args: KernelArgs, native: TrainBinding): tf.TensorInfo[] {
  const backend = cpu(args);
  const { dy, x, mean, variance, scale } = args.inputs as Record<string, tf.TensorInfo>;
  const channels = x!.shape[x!.shape.length - 1]!;
  const size = tf.util.sizeFromShape(x!.shape);
  if (!sameShape(dy!.shape, x!.shape))
    throw new TypeError(
      `${BN_TRAIN_GRAD}: dy [${dy!.shape.join(',')}] and x [${x!.shape.join(',')}] differ in shape`,
    );
  const dx = new Float32Array(size);
  const dscale = new Float32Array(channels);
  const doffset = new Float32Array(channels);
  native.batchNormTrainBackward({
    count: size / channels,
    channels,
    x: floatValues(backend, x!),
    mean: floatValues(backend, mean!),
    variance: floatValues(backend, variance!),
    scale: floatValues(backend, scale!),
    dy: floatValues(backend, dy!),
    epsilon: (args.attrs as Record<string, unknown>)['epsilon'] as number,
    dx,
    dscale,
    doffset,
  });
  return [
    output(backend, [...x!.shape], dx),
    output(backend, [channels], dscale),
    output(backend, [channels], doffset),
  ];
}

/** What the wrapped call reads of a tfjs-layers BatchNormalization layer (fields that are not public API;
 * the tests train a BatchNormalization layer against the cpu backend's to catch a tfjs change). */
interface BatchNormLayerFields {
  axis: number;
  center: boolean;
  scale: boolean;
  epsilon: number;
  momentum: number;
  gamma: { read(): tf.Tensor } | null;
  beta: { read(): tf.Tensor } | null;
  movingMean: { read(): tf.Tensor; write(value: tf.Tensor): void };
  movingVariance: { read(): tf.Tensor; write(value: tf.Tensor): void };
}

type LayerCall<T = BatchNormLayerFields> = (
  this: T,
  inputs: tf.Tensor | tf.Tensor[],
  kwargs: Record<string, unknown>,
) => tf.Tensor | tf.Tensor[];

/** y = batchNorm(x) with the batch's own moments, moving averages updated as tfjs's layer does. */
function batchNormTraining(layer: BatchNormLayerFields, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const gamma = layer.gamma!.read();
    const beta = layer.beta!.read();
    const [mean, variance] = tf.engine().runKernel<tf.Tensor[]>(BN_MOMENTS, { x }, {}) as [
      tf.Tensor,
      tf.Tensor,
    ];
    const epsilon = layer.epsilon;
    const normalize = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [input, scale, offset, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      save([input, scale, mean, variance]);
      const value = tf
        .engine()
        .runKernel<tf.Tensor>(
          'FusedBatchNorm',
          { x: input, mean, variance, scale, offset },
          { varianceEpsilon: epsilon },
        );
      const gradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]): tf.Tensor[] => {
        const [sx, sscale, smean, svariance] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        const inputs = { dy: dy as tf.Tensor, x: sx, mean: smean, variance: svariance, scale: sscale };
        return tf.engine().runKernel<tf.Tensor[]>(BN_TRAIN_GRAD, inputs, { epsilon });
      };
      return { value, gradFunc };
    });
    const y = normalize(x, gamma, beta);
    // tfjs's layer: moving = moving - (moving - batch) * (1 - momentum).
    for (const [variable, value] of [
      [layer.movingMean, mean],
      [layer.movingVariance, variance],
    ] as const) {
      tf.tidy(() => {
        const current = variable.read();
        variable.write(tf.sub(current, tf.mul(tf.sub(current, value), 1 - layer.momentum)));
      });
    }
    return y;
  });
}

function registerBatchNormTraining(): void {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap['BatchNormalization'];
  const prototype = entry?.[0].prototype as { call?: LayerCall } | undefined;
  const original = prototype?.call;
  if (prototype === undefined || typeof original !== 'function')
    throw new TypeError('tfjs-layers has no BatchNormalization layer with a call method to wrap');
  prototype.call = function (this: BatchNormLayerFields, inputs, kwargs) {
    const x = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
    const applies =
      kwargs['training'] === true &&
      x !== undefined &&
      x.rank >= 2 &&
      (this.axis === -1 || this.axis === x.rank - 1) &&
      this.center &&
      this.scale &&
      this.gamma !== null &&
      this.beta !== null &&
      onNativeBackend(x, this.gamma.read(), this.beta.read());
    return applies ? batchNormTraining(this, x) : original.call(this, inputs, kwargs);
  };
}

// ---- Conv2D and Dense layers with a ReLU ----
//
// tfjs fuses a layer's bias and activation into its conv or matmul only outside gradient recording, so a
// training step of a Conv2D or Dense layer with a ReLU runs three kernels forward (conv or matmul, Add,
// Relu), each allocating a full-size activation, and two more backward (the ReLU mask, then the bias sum).
// On the whittle-native backend those layers' call runs one kernel forward (the native conv or matmul with
// bias and ReLU fused) whose gradient masks dy by the output and sums the bias gradient in one native pass
// (y > 0 exactly where the pre-activation is > 0, so it is tfjs's own dy * step(z)); the conv or matmul
// gradients then run as tfjs's autograd would run them, and only those asked for. Other layers and
// configurations (other activations, no bias, dilation, channels-first, other backends) run tfjs's call.

const CONV_BIAS_RELU = 'WhittleConv2DBiasRelu';
const MATMUL_BIAS_RELU = 'WhittleMatMulBiasRelu';
const BIAS_RELU_GRAD = 'WhittleBiasReluGrad';

function biasReluGrad(args: KernelArgs, native: TrainBinding): tf.TensorInfo[] {
  const backend = cpu(args);
  const { dy, y } = args.inputs as Record<string, tf.TensorInfo>;
  const channels = y!.shape[y!.shape.length - 1] ?? 0;
  if (!sameShape(dy!.shape, y!.shape) || channels === 0)
    throw new TypeError(
      `${BIAS_RELU_GRAD}: dy [${dy!.shape.join(',')}] and y [${y!.shape.join(',')}] differ in shape or are empty`,
    );
  const dz = new Float32Array(tf.util.sizeFromShape(y!.shape));
  const dbias = new Float32Array(channels);
  native.unaryGrad({
    op: UNARY_GRAD_OPS.relu,
    dy: floatValues(backend, dy!),
    x: floatValues(backend, y!),
    dx: dz,
    dbias,
  });
  return [output(backend, [...y!.shape], dz), output(backend, [channels], dbias)];
}

/** The gradient of a fused bias + ReLU kernel: dy masked and the bias gradient in one native pass (run when
 * autograd asks for the gradient, outside the per-input scopes it disposes), then `grads(dz)` for the
 * other inputs, each run only when needed. */
function registerBiasReluGradient(
  kernelName: string,
  inputs: readonly string[],
  grads: (dz: tf.Tensor, saved: tf.Tensor[], attrs: tf.NamedAttrMap) => Record<string, () => tf.Tensor>,
): void {
  tf.registerGradient({
    kernelName,
    inputsToSave: [...inputs],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const y = saved[saved.length - 1]!;
      const [dz, dbias] = tf
        .engine()
        .runKernel<tf.Tensor[]>(BIAS_RELU_GRAD, { dy: dy as tf.Tensor, y }, {}) as [tf.Tensor, tf.Tensor];
      return { ...grads(dz, saved, attrs), bias: () => dbias };
    },
  });
}

/** What the wrapped calls read of tfjs-layers' Conv2D and Dense layers (fields that are not public API;
 * the tests train both layer kinds against the cpu backend's to catch a tfjs change). */
interface ReluLayerFields {
  activation: { getClassName(): string } | null;
  kernel: { read(): tf.Tensor };
  bias: { read(): tf.Tensor } | null;
  invokeCallHook?: (inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => void;
}

interface ConvLayerFields extends ReluLayerFields {
  rank: number;
  strides: number[];
  padding: string;
  dataFormat: string;
  dilationRate: number[] | number;
}

function convAttrs(layer: ConvLayerFields): tf.NamedAttrMap {
  return { strides: layer.strides, pad: layer.padding, dataFormat: 'NHWC', dilations: [1, 1] };
}

/** The layer's single input when its activation is a ReLU with a bias and everything is float32 on the
 * native backend; undefined otherwise. */
function reluLayerInput(
  layer: ReluLayerFields,
  inputs: tf.Tensor | tf.Tensor[],
  rank: number,
): tf.Tensor | undefined {
  const x = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
  if (
    x === undefined ||
    x.rank !== rank ||
    layer.activation?.getClassName() !== 'relu' ||
    layer.bias === null
  )
    return undefined;
  return onNativeBackend(x, layer.kernel.read(), layer.bias.read()) ? x : undefined;
}

function wrapLayerCall<T extends ReluLayerFields>(
  className: string,
  fused: (
    layer: T,
    inputs: tf.Tensor | tf.Tensor[],
    kwargs: Record<string, unknown>,
  ) => tf.Tensor | undefined,
): void {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  const prototype = entry?.[0].prototype as { call?: LayerCall<T> } | undefined;
  const original = prototype?.call;
  if (prototype === undefined || typeof original !== 'function')
    throw new TypeError(`tfjs-layers has no ${className} layer with a call method to wrap`);
  prototype.call = function (this: T, inputs, kwargs) {
    return fused(this, inputs, kwargs) ?? original.call(this, inputs, kwargs);
  };
}

function registerReluLayers(): void {
  registerBiasReluGradient(CONV_BIAS_RELU, ['x', 'filter'], (dz, [x, filter], attrs) => ({
    x: () =>
      runKernel('Conv2DBackpropInput', { dy: dz, filter: filter! }, { ...attrs, inputShape: x!.shape }),
    filter: () =>
      runKernel('Conv2DBackpropFilter', { x: x!, dy: dz }, { ...attrs, filterShape: filter!.shape }),
  }));
  registerBiasReluGradient(MATMUL_BIAS_RELU, ['a', 'b'], (dz, [a, b]) => ({
    a: () => runKernel('BatchMatMul', { a: dz, b: b! }, { transposeA: false, transposeB: true }),
    b: () => runKernel('BatchMatMul', { a: a!, b: dz }, { transposeA: true, transposeB: false }),
  }));
  wrapLayerCall<ConvLayerFields>('Conv2D', (layer, inputs, kwargs) => {
    const x = reluLayerInput(layer, inputs, 4);
    const dilations = [layer.dilationRate].flat();
    if (
      x === undefined ||
      layer.rank !== 2 ||
      layer.dataFormat !== 'channelsLast' ||
      (layer.padding !== 'same' && layer.padding !== 'valid') ||
      dilations.some((d) => d !== 1)
    )
      return undefined;
    layer.invokeCallHook?.(inputs, kwargs);
    return tf.tidy(() =>
      runKernel(
        CONV_BIAS_RELU,
        { x, filter: layer.kernel.read(), bias: layer.bias!.read() },
        { ...convAttrs(layer), activation: 'relu' },
      ),
    );
  });
  wrapLayerCall<ReluLayerFields>('Dense', (layer, inputs, kwargs) => {
    const x = reluLayerInput(layer, inputs, 2);
    if (x === undefined || layer.kernel.read().rank !== 2) return undefined;
    layer.invokeCallHook?.(inputs, kwargs);
    return tf.tidy(() =>
      runKernel(
        MATMUL_BIAS_RELU,
        { a: x, b: layer.kernel.read(), bias: layer.bias!.read() },
        { transposeA: false, transposeB: false, activation: 'relu' },
      ),
    );
  });
}

/** One list drives registration and the tests: kernel name -> native implementation. */
export const NATIVE_KERNELS: readonly NativeKernel[] = [
  // tfjs's kernels, overridden: the cpu backend's own runs what the native one does not cover.
  { name: 'Conv2D', fallsBack: true, run: (a, n) => convForward(a, n, false) },
  { name: 'FusedConv2D', fallsBack: true, run: (a, n) => convForward(a, n, false) },
  { name: 'Conv2DBackpropInput', fallsBack: true, run: (a, n) => convBackprop(a, n, false, 'input') },
  { name: 'Conv2DBackpropFilter', fallsBack: true, run: (a, n) => convBackprop(a, n, false, 'filter') },
  { name: 'DepthwiseConv2dNative', fallsBack: true, run: (a, n) => convForward(a, n, true) },
  { name: 'FusedDepthwiseConv2D', fallsBack: true, run: (a, n) => convForward(a, n, true) },
  {
    name: 'DepthwiseConv2dNativeBackpropInput',
    fallsBack: true,
    run: (a, n) => convBackprop(a, n, true, 'input'),
  },
  {
    name: 'DepthwiseConv2dNativeBackpropFilter',
    fallsBack: true,
    run: (a, n) => convBackprop(a, n, true, 'filter'),
  },
  { name: 'MaxPool', fallsBack: true, run: (a, n) => poolForward(a, n, true) },
  { name: 'MaxPoolGrad', fallsBack: true, run: (a, n) => poolBackward(a, n, true) },
  { name: 'AvgPool', fallsBack: true, run: (a, n) => poolForward(a, n, false) },
  { name: 'AvgPoolGrad', fallsBack: true, run: (a, n) => poolBackward(a, n, false) },
  { name: 'BatchMatMul', fallsBack: true, run: matMul },
  { name: 'SplitV', fallsBack: true, run: splitV },
  { name: '_FusedMatMul', fallsBack: true, run: matMul },
  { name: 'FusedBatchNorm', fallsBack: true, run: batchNorm },
  { name: 'Add', fallsBack: true, run: (a, n) => binary(a, n, BINARY_OPS.add) },
  { name: 'Sub', fallsBack: true, run: (a, n) => binary(a, n, BINARY_OPS.sub) },
  { name: 'Multiply', fallsBack: true, run: (a, n) => binary(a, n, BINARY_OPS.mul) },
  { name: 'RealDiv', fallsBack: true, run: (a, n) => binary(a, n, BINARY_OPS.div) },
  { name: 'Maximum', fallsBack: true, run: (a, n) => binary(a, n, BINARY_OPS.max) },
  { name: 'Minimum', fallsBack: true, run: (a, n) => binary(a, n, BINARY_OPS.min) },
  { name: 'SquaredDifference', fallsBack: true, run: (a, n) => binary(a, n, BINARY_OPS.squaredDifference) },
  { name: 'Relu', fallsBack: true, run: (a, n) => unary(a, n, UNARY_OPS.relu) },
  { name: 'Relu6', fallsBack: true, run: (a, n) => unary(a, n, UNARY_OPS.relu6) },
  { name: 'Step', fallsBack: true, run: (a, n) => unary(a, n, UNARY_OPS.step) },
  { name: 'Neg', fallsBack: true, run: (a, n) => unary(a, n, UNARY_OPS.neg) },
  { name: 'Square', fallsBack: true, run: (a, n) => unary(a, n, UNARY_OPS.square) },
  { name: 'Sqrt', fallsBack: true, run: (a, n) => unary(a, n, UNARY_OPS.sqrt) },
  { name: 'Abs', fallsBack: true, run: (a, n) => unary(a, n, UNARY_OPS.abs) },
  { name: 'Sum', fallsBack: true, run: sum },
  { name: 'Mean', fallsBack: true, run: (a, n) => sum(a, n, true) },
  { name: 'Transpose', fallsBack: true, run: transpose },
  // The kernels this backend's gradient overrides call (see the sections above).
  { name: BATCH_NORM_GRAD, fallsBack: false, run: batchNormGrad },
  { name: UNARY_GRAD, fallsBack: false, run: unaryGrad },
  { name: COMPARE_MASK, fallsBack: false, run: compareMask },
  { name: MEAN_GRAD, fallsBack: false, run: meanGrad },
  { name: BN_MOMENTS, fallsBack: false, run: batchNormMoments },
  { name: BN_TRAIN_GRAD, fallsBack: false, run: batchNormTrainGrad },
  { name: CONV_BIAS_RELU, fallsBack: false, run: (a, n) => convForward(a, n, false) },
  { name: MATMUL_BIAS_RELU, fallsBack: false, run: matMul },
  { name: BIAS_RELU_GRAD, fallsBack: false, run: biasReluGrad },
];

/** Counts of native runs and cpu fallbacks per kernel since registration (what a test or benchmark reads
 * to know the native path really ran). */
export const nativeKernelStats = new Map<string, { native: number; fallback: number }>();

let registered = false;

/** Threads the native kernels train on unless the process set a count before registering the backend. */
export const DEFAULT_TRAINING_THREADS = 2;

/** Registers the 'whittle-native' backend (idempotent). Throws NativeAddonLoadError when the addon is missing.
 * Does not select it: call tf.setBackend(NATIVE_BACKEND). */
export function registerNativeBackend(priority = 0): void {
  if (registered) return;
  const native = loadTrainBinding();
  // Halves a MobileNet step on a VM: see RetainFreedMemory in native/src/binding_train.cc.
  native.retainFreedMemory();
  // The training kernels had a pool of their own with 2 threads by default; they now share the library's
  // one pool, which starts with inference's default of 1. A process that has not chosen a thread count
  // keeps training's default (whittle train --threads and the benchmarks set theirs after this).
  if (native.getThreads() === 1) native.setThreads(DEFAULT_TRAINING_THREADS);
  const cpuKernels = new Map(tf.getKernelsForBackend('cpu').map((k) => [k.kernelName, k]));
  for (const kernel of NATIVE_KERNELS) {
    const fallback = kernel.fallsBack ? cpuKernels.get(kernel.name) : undefined;
    if (kernel.fallsBack && fallback === undefined)
      throw new TypeError(`tfjs's cpu backend has no kernel ${kernel.name} to fall back on`);
    const stats = { native: 0, fallback: 0 };
    nativeKernelStats.set(kernel.name, stats);
    tf.registerKernel({
      kernelName: kernel.name,
      backendName: NATIVE_BACKEND,
      kernelFunc: (args) => {
        const result = kernel.run(args, native);
        if (result !== undefined) {
          stats.native++;
          return result;
        }
        if (fallback === undefined)
          throw new TypeError(`${kernel.name}: inputs outside what the kernel covers`);
        stats.fallback++;
        return fallback.kernelFunc(args);
      },
    });
  }
  // Every other kernel is the cpu backend's own.
  const overridden = new Set(NATIVE_KERNELS.map((k) => k.name));
  for (const config of cpuKernels.values()) {
    if (!overridden.has(config.kernelName)) tf.registerKernel({ ...config, backendName: NATIVE_BACKEND });
  }
  registerBatchNormGradient();
  registerElementwiseGradients();
  registerBatchNormTraining();
  registerReluLayers();
  tf.registerBackend(NATIVE_BACKEND, () => new MathBackendCPU(), priority);
  registered = true;
}
