// The compressed formats' layers for a benchmark shape (native/formats.ts): one for each format that the
// runtime runs on a native kernel of its own (agent/runtime/ops/index.ts NATIVE_FORMAT_KERNELS, from the
// executor registry), built from the same fp32 weights as the fp32 layer: binary, XNOR and ternary from their
// signs, sparse at 90 % unstructured sparsity, codebook with 4-bit indices (16 centroids), fixed point with
// Q8.8 / Q.6 words. A format whose kernel refuses the shape (e.g. no depthwise path) is reported as skipped
// with the kernel's own message. sparse-codebook (Deep Compression's pruned and shared layer: 90 % pruned,
// 16 centroids) has no kernel of its own: its layer is built as the runtime loads one, from the package
// section (encode, decode, expand) onto the kernels the registry names for it. ternary-int8 and codebook-int8
// are the ternary and codebook layers of an int8 package: the same planes and indices with int8 activations
// (the codebook's centroids on each channel's int8 grid, quantizeCodebooks), at a realistic requantization.
import { decodeTensor, encodeSparseCodebook, toFloat32 } from '../agent/package/encodings.js';
import {
  encodeCsr,
  packBinaryWeights,
  packCodebookIndices,
  packTernaryWeights,
  packXnorWeights,
  quantizeCodebooks,
} from '../agent/runtime/format-layouts.js';
import { formatKernelName } from '../agent/runtime/native-executors.js';
import { quantizeMultiplier } from '../agent/runtime/number/requantization.js';
import { NATIVE_FORMAT_KERNELS } from '../agent/runtime/ops/index.js';
import {
  createCodebookInt8Conv2d,
  createCodebookInt8FullyConnected,
  createTernaryInt8Conv2d,
  createTernaryInt8FullyConnected,
  type Format as FormatKernelName,
  FORMAT_LAYERS,
  type FormatConv2dShape,
  type FormatFullyConnectedShape,
  type FormatLayer,
  type FormatTensor,
} from '../native/formats.js';
import { type BenchShape, conv2dDims, fullyConnectedDims } from './kernel-shapes.js';
import { seededRandom } from './onnx-layers.js';
import type { Format } from './peak.js';

export interface FormatBenchLayer {
  format: Format;
  layer: FormatLayer<FormatTensor>;
  input: FormatTensor;
  output: FormatTensor;
}

export type FormatBuild = FormatBenchLayer | { format: Format; skipped: string };

/** The int8-activation create functions of ternary and codebook layers (an int8 package's). */
const TERNARY_INT8 = { conv2d: createTernaryInt8Conv2d, fullyConnected: createTernaryInt8FullyConnected };
const CODEBOOK_INT8 = { conv2d: createCodebookInt8Conv2d, fullyConnected: createCodebookInt8FullyConnected };

/** Fraction of weights pruned for the sparse format. */
export const SPARSITY = 0.9;

/** Builds every compressed format's layer for a shape; `weights` are the fp32 layer's OHWI weights.
 * `expandWeights` (default true, as the runtime loads them): ternary and codebook layers on the dense
 * operators with expanded weights; false: on the formats' own kernels. */
export function formatLayers(
  shape: BenchShape,
  weights: Float32Array,
  seed: number,
  expandWeights = true,
): FormatBuild[] {
  const random = seededRandom(seed);
  const isFc = shape.kind === 'fullyConnected';
  const outputChannels = isFc ? shape.outChannels : shape.outputChannels;
  const groupChannels = isFc ? shape.inChannels : shape.inputChannels / shape.groups;
  const taps = isFc ? 1 : shape.kernel * shape.kernel;
  const reduction = taps * groupChannels;
  const dims: FormatConv2dShape | FormatFullyConnectedShape =
    shape.kind === 'fullyConnected' ? fullyConnectedDims(shape) : conv2dDims(shape);
  /** The layer of `creators` (one FORMAT_LAYERS entry) for this shape, conv2d or fully-connected. */
  const layerOf = <A>(
    creators: {
      conv2d: (args: FormatConv2dShape & A) => FormatLayer<FormatTensor>;
      fullyConnected: (args: FormatFullyConnectedShape & A) => FormatLayer<FormatTensor>;
    },
    args: NoInfer<A>,
  ): FormatLayer<FormatTensor> =>
    isFc
      ? creators.fullyConnected({ ...(dims as FormatFullyConnectedShape), ...args })
      : creators.conv2d({ ...(dims as FormatConv2dShape), ...args });
  const bias = Float32Array.from({ length: outputChannels }, () => random() - 0.5);
  const meanAbs = weights.reduce((s, w) => s + Math.abs(w), 0) / weights.length;
  const ternary = (): Int8Array => {
    const threshold = 0.7 * meanAbs;
    return Int8Array.from(weights, (w) => (w > threshold ? 1 : w < -threshold ? -1 : 0));
  };
  // 16 centroids, 4-bit indices.
  const codebookBits = 4;
  const codebook = Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) / 16);
  const unpackedIndices = (): Uint8Array =>
    Uint8Array.from(weights, (w) => Math.max(0, Math.min(15, Math.round(w * 16 + 7.5))));
  /** int8 activations in [-1, 1) at scale 1/128 and outputs at scale 1/16 (per channel: the weights' scale
   * times 1/8), the bias in accumulator units. */
  const int8Requantization = (weightScales: Float32Array) => {
    const multipliers = new Int32Array(outputChannels);
    const shifts = new Int32Array(outputChannels);
    weightScales.forEach((scale, o) => {
      const q = quantizeMultiplier(scale / 8, 'saturate');
      multipliers[o] = q.multiplier;
      shifts[o] = q.shift;
    });
    return {
      activations: 'int8' as const,
      inputZeroPoint: 0,
      outputZeroPoint: 0,
      multipliers,
      shifts,
      bias: Int32Array.from(bias, (b, o) => Math.round((b * 128) / (weightScales[o]! || 1))),
      expandWeights,
    };
  };

  /** Per kernel: how its layer is built, and its activations' word type. */
  const builders: Record<FormatKernelName, [() => FormatLayer<FormatTensor>, 'f32' | 'i16' | 'i8']> = {
    fixed16: [
      () => {
        const args = {
          inputFl: 8,
          weightFl: 12,
          outputFl: 8,
          weights: Int16Array.from(weights, (w) => Math.round(w * 4096)),
        };
        return layerOf(FORMAT_LAYERS.fixed16, args);
      },
      'i16',
    ],
    fixed8: [
      () => {
        const args = {
          inputFl: 5,
          weightFl: 7,
          outputFl: 4,
          weights: Int8Array.from(weights, (w) => Math.max(-127, Math.min(127, Math.round(w * 128)))),
        };
        return layerOf(FORMAT_LAYERS.fixed8, args);
      },
      'i8',
    ],
    'binary-weights': [
      () => {
        const args = { ...packBinaryWeights(outputChannels, reduction, weights), bias };
        return layerOf(FORMAT_LAYERS['binary-weights'], args);
      },
      'f32',
    ],
    xnor: [
      () => {
        const args = { ...packXnorWeights(outputChannels, taps, groupChannels, weights), bias };
        return layerOf(FORMAT_LAYERS.xnor, args);
      },
      'f32',
    ],
    ternary: [
      () => {
        const alpha = new Float32Array(outputChannels).fill(meanAbs);
        const args = {
          ...packTernaryWeights(outputChannels, reduction, ternary()),
          alpha,
          bias,
          expandWeights,
        };
        return layerOf(FORMAT_LAYERS.ternary, args);
      },
      'f32',
    ],
    sparse: [
      () => {
        const pruned = Float32Array.from(weights, (w) => (random() < SPARSITY ? 0 : w));
        const args = { ...encodeCsr(outputChannels, reduction, pruned), bias };
        return layerOf(FORMAT_LAYERS.sparse, args);
      },
      'f32',
    ],
    codebook: [
      () => {
        const args = {
          indexBits: codebookBits,
          codebook,
          indices: packCodebookIndices(outputChannels, reduction, codebookBits, unpackedIndices()),
          bias,
          expandWeights,
        };
        return layerOf(FORMAT_LAYERS.codebook, args);
      },
      'f32',
    ],
  };

  /** The sparse-codebook layer: the sparse layer's pruning, its survivors snapped to 16 linearly spaced
   * centroids, through the package encoding and back. */
  const sparseCodebook = (): FormatLayer<FormatTensor> => {
    const kernel = formatKernelName('sparse-codebook');
    if (kernel !== 'sparse')
      throw new RangeError(`sparse-codebook runs on ${kernel}, not the sparse kernels`);
    const centroids = Float32Array.from({ length: 16 }, (_, i) => ((i - 7.5) / 7.5) * 2 * meanAbs);
    const nearest = (w: number): number =>
      centroids.reduce((best, c) => (Math.abs(c - w) < Math.abs(best - w) ? c : best), centroids[0]!);
    const shared = Float32Array.from(weights, (w) => (random() < SPARSITY ? 0 : nearest(w)));
    const shape = [outputChannels, reduction];
    const section = encodeSparseCodebook(shared, shape, centroids);
    const decoded = decodeTensor(section.bytes, 0, { dtype: 'f32', shape }, section.encoding, {});
    const args = { ...encodeCsr(outputChannels, reduction, toFloat32(decoded, shared.length)), bias };
    return layerOf(FORMAT_LAYERS.sparse, args);
  };
  const ternaryInt8 = (): FormatLayer<FormatTensor> => {
    const args = {
      ...packTernaryWeights(outputChannels, reduction, ternary()),
      ...int8Requantization(new Float32Array(outputChannels).fill(meanAbs)),
    };
    return layerOf(TERNARY_INT8, args);
  };
  const codebookInt8 = (): FormatLayer<FormatTensor> => {
    const unpacked = unpackedIndices();
    const { codebooks, scales } = quantizeCodebooks(outputChannels, reduction, codebook, unpacked);
    const args = {
      indexBits: codebookBits,
      codebook: codebooks,
      indices: packCodebookIndices(outputChannels, reduction, codebookBits, unpacked),
      ...int8Requantization(scales),
    };
    return layerOf(CODEBOOK_INT8, args);
  };
  const all: (readonly [Format, () => FormatLayer<FormatTensor>, 'f32' | 'i16' | 'i8'])[] = [
    ...NATIVE_FORMAT_KERNELS.map((format) => [format, ...builders[format]] as const),
    ['sparse-codebook', sparseCodebook, 'f32'] as const,
    ['ternary-int8', ternaryInt8, 'i8'] as const,
    ['codebook-int8', codebookInt8, 'i8'] as const,
  ];
  return all.map(([format, build, type]): FormatBuild => {
    let layer: FormatLayer<FormatTensor>;
    try {
      layer = build();
    } catch (error) {
      return { format, skipped: `the kernel refused this shape: ${(error as Error).message}` };
    }
    const n = layer.inputLength;
    const input: FormatTensor =
      type === 'f32'
        ? Float32Array.from({ length: n }, () => random() * 2 - 1)
        : type === 'i16'
          ? Int16Array.from({ length: n }, () => Math.floor(random() * 512) - 256)
          : Int8Array.from({ length: n }, () => Math.floor(random() * 256) - 128);
    const m = layer.outputLength;
    const output: FormatTensor =
      type === 'f32' ? new Float32Array(m) : type === 'i16' ? new Int16Array(m) : new Int8Array(m);
    return { format, layer, input, output };
  });
}
