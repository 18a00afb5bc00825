// Dynamic fixed point (Courbariaux et al. 2014; Q(IL.FL) words of Gupta et al. 2015) of an fp32 package:
// every fp32 conv2d / fully_connected layer becomes a fixed16 or fixed8 layer that the runtime computes in
// fixed point on the native qf16 / qf8 kernels (agent/runtime/fixed-point-layer.ts). Each layer gets its own
// fractional lengths:
//   weights      from max |w| of the layer,
//   input/output from the activation ranges the fp32 package shows on a calibration set (calibrate.ts runs it
//                on the runtime, as int8 post-training quantization does),
// each the largest FL whose range still holds the largest magnitude: FL = floor(log2(limit / max |x|)),
// limit = 32767 or 127 (fractionalLength, agent/runtime/number/fixed-point.ts). Max and not a percentile, for the reasons ptq.ts gives: the activations here are
// inputs, ReLU outputs and logits, and clipping the large ones would change the class.
//
// The layers keep their fp32 neighbours (pools, softmax, reshapes): between two fixed-point layers an fp32
// tensor carries the fixed-point values exactly, and a next layer whose input_fl is the previous output_fl
// (the same tensor's range gives the same FL) reads back exactly the same words.
import { type EncodedTensor, encodeFixed, encodeRaw } from '../../agent/package/encodings.js';
import {
  FIXED_POINT_FL_MAX,
  FIXED_POINT_FL_MIN,
  FIXED_POINT_SHIFT_MAX,
  FIXED_POINT_SHIFT_MIN,
  type Manifest,
  type ManifestNode,
} from '../../agent/package/manifest.js';
import type { Package } from '../../agent/package/reader.js';
import { fixedPointLimit, fractionalLength } from '../../agent/runtime/number/fixed-point.js';
import {
  type CalibrationMethod,
  type CalibrationSet,
  collectRanges,
  QuantizationError,
  type TensorRange,
  withRanges,
} from '../quantize/calibrate.js';
import type { PackageContent } from './writer.js';

/** The weight encodings' fracBits bounds (manifest.ts EncodingSchema). */
const WEIGHT_FL_MIN = -16;
const WEIGHT_FL_MAX = 31;

export interface FixedPointOptions {
  bits: 16 | 8;
  /** The new package's model id (default: the fp32 package's id + "-fixed16" / "-fixed8"). */
  modelId?: string;
  version?: string;
  name?: string;
  /** How activation ranges are chosen from the calibration set (calibrate.ts; default min/max). */
  calibrationMethod?: CalibrationMethod;
  /** Ranges that replace the calibrated ones, by tensor name (fine-tuning's tracked ranges, qat.ts). */
  ranges?: ReadonlyMap<string, TensorRange>;
}

export interface FixedPointLayerChoice {
  node: string;
  inputFl: number;
  weightFl: number;
  outputFl: number;
}

export interface FixedPointResult {
  content: PackageContent;
  /** The fractional lengths chosen for each converted layer, in graph order. */
  layers: FixedPointLayerChoice[];
}

const magnitudeOf = (range: TensorRange): number => Math.max(Math.abs(range.min), Math.abs(range.max));

function maxAbs(values: Float32Array): number {
  let m = 0;
  for (const v of values) m = Math.max(m, Math.abs(v));
  return m;
}

/** A layer's weight fractional length: the largest that holds its largest magnitude. */
export function weightFractionalLength(values: Float32Array, bits: 16 | 8): number {
  return fractionalLength(maxAbs(values), fixedPointLimit(bits), WEIGHT_FL_MIN, WEIGHT_FL_MAX);
}

/** A fixed16 or fixed8 package from an fp32 one whose constants are all stored raw. */
export function fixedPointPackage(
  pkg: Package,
  calibration: CalibrationSet,
  options: FixedPointOptions,
): FixedPointResult {
  const { manifest } = pkg;
  const limit = fixedPointLimit(options.bits);
  const format = options.bits === 16 ? 'fixed16' : 'fixed8';
  const ranges = withRanges(
    manifest,
    collectRanges(pkg, calibration, options.calibrationMethod),
    options.ranges,
  );

  const uses = new Map<number, number>();
  for (const node of manifest.nodes) for (const i of node.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);

  const constants = new Map<number, EncodedTensor>();
  manifest.tensors.forEach((tensor, index) => {
    const decoded = pkg.constants[index];
    if (decoded === undefined) return;
    if (decoded.kind !== 'raw')
      throw new QuantizationError(
        `tensor ${tensor.name} is stored as ${decoded.kind}; fixed point starts from an fp32 package`,
      );
    constants.set(index, encodeRaw(decoded.values));
  });

  const layers: FixedPointLayerChoice[] = [];
  const nodes: ManifestNode[] = manifest.nodes.map((node) => {
    if ((node.op !== 'conv2d' && node.op !== 'fully_connected') || node.format !== 'f32') return node;
    const [x, w, b] = node.inputs as [number, number, number | undefined];
    const weights = pkg.constants[w];
    const bias = b === undefined || b < 0 ? undefined : pkg.constants[b];
    const inputRange = ranges.get(x);
    const outputRange = ranges.get(node.outputs[0]!);
    // Weights computed at run time, shared with another node, or a bias that is not a constant stay fp32.
    if (
      weights?.kind !== 'raw' ||
      !(weights.values instanceof Float32Array) ||
      uses.get(w) !== 1 ||
      (b !== undefined && b >= 0 && (bias?.kind !== 'raw' || !(bias.values instanceof Float32Array))) ||
      inputRange === undefined ||
      outputRange === undefined
    )
      return node;
    const weightFl = weightFractionalLength(weights.values, options.bits);
    const inputFl = fractionalLength(magnitudeOf(inputRange), limit, FIXED_POINT_FL_MIN, FIXED_POINT_FL_MAX);
    // The kernels shift the accumulator by input_fl + weight_fl - output_fl within [-32, 62].
    const outputFl = Math.max(
      inputFl + weightFl - FIXED_POINT_SHIFT_MAX,
      Math.min(
        inputFl + weightFl - FIXED_POINT_SHIFT_MIN,
        fractionalLength(magnitudeOf(outputRange), limit, FIXED_POINT_FL_MIN, FIXED_POINT_FL_MAX),
      ),
    );
    constants.set(w, encodeFixed(weights.values, options.bits, weightFl));
    layers.push({ node: node.name, inputFl, weightFl, outputFl });
    return { ...node, format, attrs: { ...node.attrs, input_fl: inputFl, output_fl: outputFl } };
  });
  if (layers.length === 0)
    throw new QuantizationError('no fp32 conv2d or fully_connected layer with constant weights to convert');

  // The fp32 package's measured accuracy and health-check probe describe other arithmetic: dropped, so
  // the caller measures the new package before it records either.
  const converted: Manifest = {
    ...manifest,
    model: {
      id: options.modelId ?? `${manifest.model.id}-${format}`,
      version: options.version ?? manifest.model.version,
      ...(options.name !== undefined
        ? { name: options.name }
        : manifest.model.name !== undefined
          ? { name: manifest.model.name }
          : {}),
    },
    tensors: manifest.tensors.map((tensor) => {
      const copy = { ...tensor };
      delete copy.section;
      delete copy.encoding;
      return copy;
    }),
    nodes,
  };
  delete converted.accuracy;
  delete converted.probe;
  return { content: { manifest: converted, constants }, layers };
}
