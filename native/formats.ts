// The TypeScript face of the compressed-format kernels (native/src/binding_formats.cc): one create function
// per format x layer, each returning a FormatLayer whose weights were checked and copied once. Weights are
// passed in their storage layout (native/formats.md); agent/runtime/format-layouts.ts builds
// those layouts from fp32 weights. Tensors are NHWC. The addon checks every argument (types, lengths,
// shapes, CSR structure, codebook indices, unused high bits, fractional-length shifts, aliasing) and throws a
// TypeError or RangeError naming it, so a bad call can never reach C.
import {
  type Conv2dShape,
  type Int8LayerQuantization,
  loadNativeBinding,
  type NativeLayer,
  PackedLayer,
} from './index.js';

/** Format names as the benchmark reports them. */
export const FORMATS = [
  'fixed16',
  'fixed8',
  'binary-weights',
  'xnor',
  'ternary',
  'sparse',
  'codebook',
] as const;
export type Format = (typeof FORMATS)[number];

/** A conv2d layer's shape: Conv2dShape without dilation (the compressed formats have none). Weight element k
 * of output channel o is k = (ky * kernelWidth + kx) * (inputChannels / groups) + i, K = kernelHeight *
 * kernelWidth * inputChannels / groups elements per output channel. */
export type FormatConv2dShape = Omit<Conv2dShape, 'dilationHeight' | 'dilationWidth'>;

/** A fully-connected layer's shape: K = inChannels elements per output channel. */
export interface FormatFullyConnectedShape {
  batch: number;
  inChannels: number;
  outChannels: number;
}

/** fp32 output clamp; defaults -Infinity / +Infinity (ReLU: outputMin 0). */
export interface FloatClamp {
  outputMin?: number;
  outputMax?: number;
}

/** Dynamic fixed point Q(IL.FL): a value q with fractional length FL means q * 2^-FL. The accumulator
 * (FL = inputFl + weightFl) moves to outputFl by one rounding shift (round to nearest, ties up), then
 * saturates to [outputMin, outputMax]. Each FL is an integer in [-64, 64], and
 * inputFl + weightFl - outputFl must lie in [-32, 62]. */
export interface FixedPointParams {
  inputFl: number;
  weightFl: number;
  outputFl: number;
  /** Default: the word's whole range. */
  outputMin?: number;
  outputMax?: number;
}

/** 16-bit words: weights [outputChannels][K] in [-32767, 32767]; bias [outputChannels] in units of
 * 2^-(inputFl + weightFl), |bias| <= 2^56; K <= 2^24. Tensors are Int16Array. */
export interface Fixed16Params extends FixedPointParams {
  weights: Int16Array;
  bias?: BigInt64Array | null;
}

/** 8-bit words: weights [outputChannels][K]; bias [outputChannels] in units of 2^-(inputFl + weightFl);
 * K <= 65536. Tensors are Int8Array. */
export interface Fixed8Params extends FixedPointParams {
  weights: Int8Array;
  bias?: Int32Array | null;
}

/** BinaryConnect / BWN: weight = alpha[o] * (bit ? -1 : +1). weightBits: per output channel ceil(K / 32)
 * words, bit k = word k / 32, bit k % 32 (LSB first), 1 meaning -1; bits past K are 0. Tensors fp32. */
export interface BinaryWeightsParams extends FloatClamp {
  weightBits: Uint32Array;
  alpha: Float32Array;
  bias?: Float32Array | null;
}

/** XNOR-Net: binary weights and activations. The fp32 input is binarized by the kernel (bit 1 = x < 0).
 * weightBits: [outputChannels][kernelHeight][kernelWidth][ceil(groupInputChannels / 64)] 64-bit words,
 * channel c = bit c % 64 of word c / 64, bits past groupInputChannels 0 (fully connected: [outChannels]
 * [ceil(inChannels / 64)]). output = clamp((dot * alpha[o]) * K + bias[o]) with K the paper's input scaling
 * (mean |x| over channels, averaged over the kernel window) when inputScaling, else 1. K <= 2^24. */
export interface XnorParams extends FloatClamp {
  weightBits: BigUint64Array;
  alpha: Float32Array;
  bias?: Float32Array | null;
  inputScaling?: boolean;
  /** Given: the input is int8 (an Int8Array) x = scale * (q - inputZeroPoint) with scale > 0, read without
   * its dequantize: bit 1 = q < inputZeroPoint, the same bits as the fp32 input's. Not with inputScaling
   * (the K map needs the fp32 values). The output stays fp32. */
  inputZeroPoint?: number;
}

/** Ternary weights alpha[o] * t, t in {-1, 0, +1}: two planes with the binary row layout; weightNonzero 1
 * where t != 0, weightSign 1 where t = -1 (so weightSign is a subset of weightNonzero). Tensors fp32. */
export interface TernaryParams extends FloatClamp {
  /** Absent or 'float32' (see TernaryInt8Params for 'int8'). */
  activations?: 'float32';
  weightNonzero: Uint32Array;
  weightSign: Uint32Array;
  alpha: Float32Array;
  bias?: Float32Array | null;
  expandWeights?: boolean;
}

/** Unstructured pruning, CSR with outputChannels rows and K columns: rowOffsets [outputChannels + 1] from 0,
 * non-decreasing, last = nnz; columnIndices [nnz] < K and strictly increasing within a row; values [nnz].
 * Tensors fp32. (Structured pruning is a smaller dense layer.) */
export interface SparseParams extends FloatClamp {
  /** Absent or 'float32' (see SparseInt8Params for 'int8'). */
  activations?: 'float32';
  rowOffsets: Uint32Array;
  columnIndices: Uint32Array;
  values: Float32Array;
  bias?: Float32Array | null;
}

/** k-means weight sharing: indices [outputChannels][ceil(K * indexBits / 8)] bytes, index k in bits
 * [k * indexBits, (k + 1) * indexBits) of the row (LSB first), each < codebook.length, unused high bits 0;
 * indexBits in [2, 8], codebook of 1..2^indexBits centroids. Tensors fp32. */
export interface CodebookParams extends FloatClamp {
  /** Absent or 'float32' (see CodebookInt8Params for 'int8'). */
  activations?: 'float32';
  indexBits: number;
  codebook: Float32Array;
  indices: Uint8Array;
  bias?: Float32Array | null;
  expandWeights?: boolean;
}

/** HashedNets (Chen et al. 2015), fully connected only: weight [o][k] = sign * buckets[bucket] of the index
 * hash of o * inChannels + k with `seed` (native/src/hashed_fc.h; agent/package/encodings.ts hashedSlot);
 * outChannels x inChannels <= 2^24. Expanded once at creation onto the fp32 fully-connected operator, as a
 * ternary or codebook layer (expandedBytes: 4 bytes a weight), up to HASHED_EXPAND_MAX_BYTES (16 MiB,
 * native/src/hashed_fc.h) of weights; a larger layer, or expandWeights: false, keeps only the buckets and
 * expands one row at a time on every run (inChannels floats of workspace per thread; the same bits at any
 * batch). fp32. */
export interface HashedParams extends FloatClamp {
  buckets: Float32Array;
  seed: number;
  expandWeights?: boolean;
  bias?: Float32Array | null;
}

/** int8 activations (ternary, sparse and codebook only): the affine quantization of the int8 kernels (gemmlowp,
 * Int8LayerQuantization in index.ts) with int8 activations only, and its bias:
 *   acc    = bias[o] + sum_k w_k * (x_k - inputZeroPoint)       (padding reads inputZeroPoint)
 * bit-exact on every path. Tensors are Int8Array. For ternary, multipliers[o] encodes
 * alpha[o] * inputScale / outputScale. */
export interface Int8Requantization extends Omit<Int8LayerQuantization, 'activations'> {
  activations: 'int8';
  /** [outputChannels] int32 accumulator units; absent = zero. */
  bias?: Int32Array | null;
}

/** Ternary planes with int8 activations; K <= 2^23. */
export interface TernaryInt8Params extends Int8Requantization {
  weightNonzero: Uint32Array;
  weightSign: Uint32Array;
  expandWeights?: boolean;
}

/** Codebook indices (the CodebookParams layout) with int8 activations: codebook is one int8 table per output
 * channel, [outputChannels][size] (size <= 2^indexBits), the layer's centroids on each channel's int8 grid
 * (agent/runtime/format-layouts.ts quantizeCodebooks), so the layer is the dense int8 layer with weights
 * codebook[o][index] (expanded at creation onto the int8 operators unless expandWeights: false);
 * K <= 65536. */
export interface CodebookInt8Params extends Int8Requantization {
  indexBits: number;
  codebook: Int8Array;
  indices: Uint8Array;
  expandWeights?: boolean;
}

/** CSR with int8 values and int8 activations; at most 65536 nonzeros per row. */
export interface SparseInt8Params extends Int8Requantization {
  rowOffsets: Uint32Array;
  columnIndices: Uint32Array;
  values: Int8Array;
}

export type FormatTensor = Float32Array | Int8Array | Int16Array;

/** The formats of the FormatLayer class: those of FORMATS (conv2d and fully connected) and hashed (fully
 * connected only). */
export type LayerFormat = Format | 'hashed';

type NativeFormatLayerConstructor = new (
  format: LayerFormat,
  layer: 'conv2d' | 'fullyConnected',
  args: object,
) => NativeLayer<FormatTensor> & { readonly expandedBytes: number };

function nativeClass(): NativeFormatLayerConstructor {
  const loaded = loadNativeBinding() as unknown as { FormatLayer?: unknown };
  if (typeof loaded.FormatLayer !== 'function') {
    throw new Error(
      'The native addon has no FormatLayer: rebuild it (npx node-gyp build --directory native)',
    );
  }
  return loaded.FormatLayer as NativeFormatLayerConstructor;
}

/** A compressed conv2d or fully-connected layer: a PackedLayer (native/index.ts) that knows its format.
 * run() splits the output channels over the threads set by setThreads; output must not share memory with
 * input. dispose() frees the weights early. */
export class FormatLayer<T extends FormatTensor> extends PackedLayer<T> {
  readonly format: LayerFormat;
  /** Bytes of dense weights the layer expanded its own into at creation, 0 when it runs the format's kernels:
   * binary-weight (fp32: alpha * sign), ternary (fp32: alpha * t; int8: t), codebook (fp32: centroids; int8:
   * each channel's int8 centroids) and hashed (fp32: the hashed weights) layers run on the fp32 / int8 operators
   * with their weights
   * expanded (4 bytes a weight in fp32, 1 in int8), unless the operator refuses the shape or quantization or
   * the arguments say expandWeights: false (default true). */
  readonly expandedBytes: number;

  /** @internal use the create* functions. */
  constructor(format: LayerFormat, layer: 'conv2d' | 'fullyConnected', args: object) {
    const native = new (nativeClass())(format, layer, args);
    super(native);
    this.format = format;
    this.expandedBytes = native.expandedBytes;
  }
}

/** A conv2d / fully-connected layer's arguments: its shape and the format's parameters P. */
type Conv<P> = FormatConv2dShape & P;
type Fc<P> = FormatFullyConnectedShape & P;

/** The create function of one format x layer: its argument type is the layer's shape and the format's
 * parameters, its tensors are T. */
function layerFactory<Args extends object, T extends FormatTensor>(
  format: LayerFormat,
  layer: 'conv2d' | 'fullyConnected',
): (args: Args) => FormatLayer<T> {
  return (args) => new FormatLayer<T>(format, layer, args);
}

export const createFixed16Conv2d = layerFactory<Conv<Fixed16Params>, Int16Array>('fixed16', 'conv2d');
export const createFixed16FullyConnected = layerFactory<Fc<Fixed16Params>, Int16Array>(
  'fixed16',
  'fullyConnected',
);
export const createFixed8Conv2d = layerFactory<Conv<Fixed8Params>, Int8Array>('fixed8', 'conv2d');
export const createFixed8FullyConnected = layerFactory<Fc<Fixed8Params>, Int8Array>(
  'fixed8',
  'fullyConnected',
);
export const createBinaryWeightsConv2d = layerFactory<Conv<BinaryWeightsParams>, Float32Array>(
  'binary-weights',
  'conv2d',
);
export const createBinaryWeightsFullyConnected = layerFactory<Fc<BinaryWeightsParams>, Float32Array>(
  'binary-weights',
  'fullyConnected',
);
export const createXnorConv2d = layerFactory<Conv<XnorParams>, Float32Array>('xnor', 'conv2d');
export const createXnorFullyConnected = layerFactory<Fc<XnorParams>, Float32Array>('xnor', 'fullyConnected');
export const createTernaryConv2d = layerFactory<Conv<TernaryParams>, Float32Array>('ternary', 'conv2d');
export const createTernaryFullyConnected = layerFactory<Fc<TernaryParams>, Float32Array>(
  'ternary',
  'fullyConnected',
);
export const createTernaryInt8Conv2d = layerFactory<Conv<TernaryInt8Params>, Int8Array>('ternary', 'conv2d');
export const createTernaryInt8FullyConnected = layerFactory<Fc<TernaryInt8Params>, Int8Array>(
  'ternary',
  'fullyConnected',
);
export const createSparseConv2d = layerFactory<Conv<SparseParams>, Float32Array>('sparse', 'conv2d');
export const createSparseFullyConnected = layerFactory<Fc<SparseParams>, Float32Array>(
  'sparse',
  'fullyConnected',
);
export const createSparseInt8Conv2d = layerFactory<Conv<SparseInt8Params>, Int8Array>('sparse', 'conv2d');
export const createSparseInt8FullyConnected = layerFactory<Fc<SparseInt8Params>, Int8Array>(
  'sparse',
  'fullyConnected',
);
export const createCodebookConv2d = layerFactory<Conv<CodebookParams>, Float32Array>('codebook', 'conv2d');
export const createCodebookFullyConnected = layerFactory<Fc<CodebookParams>, Float32Array>(
  'codebook',
  'fullyConnected',
);

export const createCodebookInt8Conv2d = layerFactory<Conv<CodebookInt8Params>, Int8Array>(
  'codebook',
  'conv2d',
);
export const createCodebookInt8FullyConnected = layerFactory<Fc<CodebookInt8Params>, Int8Array>(
  'codebook',
  'fullyConnected',
);

export const createHashedFullyConnected = layerFactory<Fc<HashedParams>, Float32Array>(
  'hashed',
  'fullyConnected',
);

/** Each format's conv2d and fully-connected create functions (fp32 activations for the binary, ternary and
 * sparse formats), by the benchmark's format name: one table for the callers that pick the format or the layer
 * kind at run time (the runtime's executors, the kernel benchmark, the tests). */
export const FORMAT_LAYERS = {
  fixed16: { conv2d: createFixed16Conv2d, fullyConnected: createFixed16FullyConnected },
  fixed8: { conv2d: createFixed8Conv2d, fullyConnected: createFixed8FullyConnected },
  'binary-weights': { conv2d: createBinaryWeightsConv2d, fullyConnected: createBinaryWeightsFullyConnected },
  xnor: { conv2d: createXnorConv2d, fullyConnected: createXnorFullyConnected },
  ternary: { conv2d: createTernaryConv2d, fullyConnected: createTernaryFullyConnected },
  sparse: { conv2d: createSparseConv2d, fullyConnected: createSparseFullyConnected },
  codebook: { conv2d: createCodebookConv2d, fullyConnected: createCodebookFullyConnected },
} as const satisfies Record<Format, { conv2d: unknown; fullyConnected: unknown }>;

// ---------------------------------------------------------------------------------------------------------
// The trainer's fixed-point quantizers (qf16/qf8_quantize_*), bit-identical to their TypeScript twins in
// agent/runtime/number/fixed-point.ts.

export interface FixedPointQuantizeArgs<T extends Int16Array | Int8Array> {
  input: Float32Array;
  /** Same length as input; Int16Array saturates to [-32767, 32767], Int8Array to [-127, 127]. */
  output: T;
  /** In [-64, 64]: q * 2^-fractionalLength approximates the input. */
  fractionalLength: number;
  /** 'nearest' (default; ties toward +infinity, NaN -> 0) or 'stochastic' (Gupta et al. 2015). */
  rounding?: 'nearest' | 'stochastic';
  /** Stochastic only: uint32 seed of the counter-based draw u_i = uniform24(seed, firstIndex + i). */
  seed?: number;
  /** Stochastic only: uint32 index of input[0] (default 0), so that any split gives the same bits. */
  firstIndex?: number;
}

export interface FixedPointDequantizeArgs {
  input: Int16Array | Int8Array;
  /** In [-100, 100]. */
  fractionalLength: number;
  /** Same length as input: input[i] * 2^-fractionalLength. */
  output: Float32Array;
}

interface NativeQuantizers {
  fixedPointQuantize(args: FixedPointQuantizeArgs<Int16Array | Int8Array>): void;
  fixedPointDequantize(args: FixedPointDequantizeArgs): void;
}

function quantizers(): NativeQuantizers {
  return loadNativeBinding() as unknown as NativeQuantizers;
}

export function fixedPointQuantize<T extends Int16Array | Int8Array>(args: FixedPointQuantizeArgs<T>): void {
  quantizers().fixedPointQuantize(args);
}

export function fixedPointDequantize(args: FixedPointDequantizeArgs): void {
  quantizers().fixedPointDequantize(args);
}
