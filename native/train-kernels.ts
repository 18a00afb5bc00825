// The TypeScript face of the fp32 training kernels (native/src/f32_train_ops.h, bound by
// native/src/binding_train.cc in the one addon that native/index.ts loads). The addon checks every argument
// (types, lengths, ranges, aliasing) and throws a TypeError or RangeError naming it, so no bad call reaches
// C. The kernels run on the library's one thread pool (setThreads) and take their SGEMM path from the
// library's ISA level (WHITTLE_ISA).
import { type Conv2dOutputSize, type Conv2dShape, loadNativeBinding } from './index.js';

export type FusedActivation = 'linear' | 'relu' | 'relu6';

/** A 2-D window op over NHWC tensors, in the names of the one convolution shape type (Conv2dShape) with
 * every default resolved and the output size given: conv, depthwise conv (outputChannels = inputChannels *
 * multiplier) or pooling (outputChannels = inputChannels, no dilation). paddingTop/paddingLeft are the zero
 * rows/columns before the input (tfjs's padInfo); the padding after it follows from the output size. */
export type WindowShape = Required<Omit<Conv2dShape, 'paddingBottom' | 'paddingRight' | 'groups'>> &
  Conv2dOutputSize;

/** conv2dForward / depthwiseConv2dForward: y = act(conv(x, filter) + bias). */
export type ConvForwardArgs = WindowShape & {
  x: Float32Array;
  filter: Float32Array;
  bias: Float32Array | null;
  activation: FusedActivation;
  y: Float32Array;
};
/** The input gradient dx of a convolution from dy. */
export type ConvBackpropInputArgs = WindowShape & {
  dy: Float32Array;
  filter: Float32Array;
  dx: Float32Array;
};
/** The filter gradient dfilter of a convolution from x and dy. */
export type ConvBackpropFilterArgs = WindowShape & {
  x: Float32Array;
  dy: Float32Array;
  dfilter: Float32Array;
};

/** Two operands broadcast over n outputs: output i reads a[(i / aDivisor) % aLength] and
 * b[(i / bDivisor) % bLength]. */
export interface BroadcastOperands {
  n: number;
  a: Float32Array;
  aDivisor: number;
  aLength: number;
  b: Float32Array;
  bDivisor: number;
  bLength: number;
}

/** What batch norm and its gradients read: x[count][channels] and the per-channel statistics and scale
 * (null = 1). */
export interface BatchNormOperands {
  count: number;
  channels: number;
  x: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  scale: Float32Array | null;
  epsilon: number;
}

/** What both batch-norm gradients read, and the dx they write. */
export interface BatchNormGradientArgs extends BatchNormOperands {
  dy: Float32Array;
  dx: Float32Array;
}

export interface TrainBinding {
  /** y[batch][outH][outW][outC] = act(conv(x, filter[fh][fw][inC][outC]) + bias). */
  conv2dForward(args: ConvForwardArgs): void;
  conv2dBackpropInput(args: ConvBackpropInputArgs): void;
  conv2dBackpropFilter(args: ConvBackpropFilterArgs): void;
  /** filter[fh][fw][inC][multiplier]. */
  depthwiseConv2dForward(args: ConvForwardArgs): void;
  depthwiseConv2dBackpropInput(args: ConvBackpropInputArgs): void;
  depthwiseConv2dBackpropFilter(args: ConvBackpropFilterArgs): void;
  maxPool(args: WindowShape & { x: Float32Array; y: Float32Array }): void;
  maxPoolBackward(args: WindowShape & { x: Float32Array; dy: Float32Array; dx: Float32Array }): void;
  avgPool(args: WindowShape & { x: Float32Array; y: Float32Array }): void;
  avgPoolBackward(args: WindowShape & { dy: Float32Array; dx: Float32Array }): void;
  /** c[batch][m][n] = act(op(a) * op(b) + bias); a batch of 1 broadcasts; bias has 1 or n values. */
  batchMatMul(args: {
    batchA: number;
    batchB: number;
    m: number;
    n: number;
    k: number;
    transposeA: boolean;
    transposeB: boolean;
    a: Float32Array;
    b: Float32Array;
    bias: Float32Array | null;
    activation: FusedActivation;
    c: Float32Array;
  }): void;
  /** y = (x - mean) * scale / sqrt(variance + epsilon) + offset over [count][channels]. */
  batchNorm(args: BatchNormOperands & { offset: Float32Array | null; y: Float32Array }): void;
  batchNormBackward(
    args: BatchNormGradientArgs & {
      dmean: Float32Array;
      dvariance: Float32Array;
      dscale: Float32Array;
      doffset: Float32Array;
    },
  ): void;
  /** The biased per-channel mean and variance of x[count][channels] (batch norm's training moments). */
  batchNormMoments(args: {
    count: number;
    channels: number;
    x: Float32Array;
    mean: Float32Array;
    variance: Float32Array;
  }): void;
  /** Batch norm's gradient in training mode, where mean and variance are x's own moments: dx includes
   * their dependence on x. */
  batchNormTrainBackward(args: BatchNormGradientArgs & { dscale: Float32Array; doffset: Float32Array }): void;
  /** y[i] = op(a[(i / aDivisor) % aLength], b[(i / bDivisor) % bLength]) for i < n (BINARY_OPS). */
  binary(args: BroadcastOperands & { op: number; y: Float32Array }): void;
  /** y = op(x) elementwise (UNARY_OPS); alpha is Step's value for x <= 0. */
  unary(args: { op: number; x: Float32Array; alpha: number; y: Float32Array }): void;
  /** y[outer][inner] = sum over mid of x[outer][mid][inner]. */
  sumAxes(args: { outer: number; mid: number; inner: number; x: Float32Array; y: Float32Array }): void;
  /** dx = dy * step(x) (op relu) or dy * (2 x) (op square), elementwise (UNARY_GRAD_OPS). With dbias (its
   * length a divisor of dy's): the values are rows of dbias.length channels and dbias[c] = the sum over rows
   * of dx[row][c], row by row as sumAxes sums (a layer's activation and bias gradients in one pass). */
  unaryGrad(args: {
    op: number;
    dy: Float32Array;
    x: Float32Array;
    dx: Float32Array;
    dbias?: Float32Array | null;
  }): void;
  /** y[i] = dy[i] * (op(a[(i / aDivisor) % aLength], b[(i / bDivisor) % bLength]) ? 1 : 0) for i < n
   * (COMPARE_OPS): Minimum's and Maximum's gradients in one pass. */
  compareMask(args: BroadcastOperands & { op: number; dy: Float32Array; y: Float32Array }): void;
  /** dx[outer][m][inner] = dy[outer][inner] / mid: the gradient of a mean over a block of axes. */
  meanGrad(args: { outer: number; mid: number; inner: number; dy: Float32Array; dx: Float32Array }): void;
  /** y = transpose(x, perm) for x of `shape` (rank 1-8). */
  transpose(args: { shape: number[]; perm: number[]; x: Float32Array; y: Float32Array }): void;
  /** One Adam step in place on param, m and v (tfjs AdamOptimizer's formula); bias1 = 1 - beta1^t. */
  adamUpdate(args: {
    param: Float32Array;
    grad: Float32Array;
    m: Float32Array;
    v: Float32Array;
    learningRate: number;
    beta1: number;
    beta2: number;
    epsilon: number;
    bias1: number;
    bias2: number;
  }): void;
  /** Keeps freed activation-sized buffers in the C heap instead of unmapping them (glibc mallopt), so
   * the next step's arrays do not page-fault in again; false where the C library has no such setting. */
  retainFreedMemory(): boolean;
  /** The SGEMM path in use and the one the process's kernel path (WHITTLE_ISA, or the CPU's best) selects. */
  isa(): { current: TrainIsa; best: TrainIsa };
  /** Forces a lower SGEMM path (tests, benchmarks); RangeError for a path above the selected one. */
  setIsa(isa: TrainIsa): void;
  /** Threads of the library's one pool, shared with the inference kernels (native/index.ts setThreads). */
  getThreads(): number;
  /** 1-64; the pool every kernel of the addon runs on. */
  setThreads(threads: number): void;
}

/** Codes of f32_binary_op in native/src/f32_train_ops.h. */
export const BINARY_OPS = { add: 0, sub: 1, mul: 2, div: 3, max: 4, min: 5, squaredDifference: 6 } as const;
/** Codes of f32_unary_op. */
export const UNARY_OPS = { relu: 0, relu6: 1, step: 2, neg: 3, square: 4, sqrt: 5, abs: 6 } as const;

/** Codes of f32_unary_grad_op. */
export const UNARY_GRAD_OPS = { relu: 0, square: 1 } as const;
/** Codes of f32_compare_op. */
export const COMPARE_OPS = { greater: 0, greaterEqual: 1, less: 2, lessEqual: 3 } as const;

/** The ISAs of the SGEMM microkernels (f32_ppmm_ukernels in native/src/f32_ukernels.c). */
export type TrainIsa = 'scalar' | 'avx2' | 'avx512' | 'neon';

/** The addon's training kernels. Throws NativeAddonLoadError (native/index.ts) listing every path tried when
 * the addon cannot be loaded. */
export function loadTrainBinding(): TrainBinding {
  return loadNativeBinding();
}
