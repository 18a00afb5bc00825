// int8 affine quantization: real = scale * (q - zeroPoint). Weights are symmetric per output channel
// (zeroPoint 0, q in [-127, 127]); activations are asymmetric per tensor (q in [-128, 127]). Rescaling
// between them uses Q31 fixed-point multipliers (agent/runtime/number/requantization.ts: the runtime derives
// them from these scales at load), so the integer kernels never touch a float. Rounding and saturation are
// the runtime's (agent/runtime/number/). Each quantize function sits next to its inverse.
import { roundHalfAwayFromZero } from '../../agent/runtime/number/rounding.js';
import { INT8_MAX, INT8_MIN, INT32_MAX, INT32_MIN, saturate } from '../../agent/runtime/number/saturation.js';

/** Per-tensor affine parameters of an activation: real = scale * (q - zeroPoint). */
export interface ActivationQuantization {
  scale: number;
  zeroPoint: number;
}

/** TFLite's ChooseQuantizationParams for int8: the range is widened to include 0 (so 0 is exact, which
 * padding and ReLU need), scale = (max - min) / 255, the zero point rounded and clamped to int8. */
export function activationQuantizationFromRange(min: number, max: number): ActivationQuantization {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
    throw new RangeError(`Expected a finite range with min <= max but received [${min}, ${max}]`);
  }
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  if (hi === lo) return { scale: 1, zeroPoint: 0 };
  const scale = (hi - lo) / (INT8_MAX - INT8_MIN);
  const zeroPoint = saturate(roundHalfAwayFromZero(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX);
  return { scale, zeroPoint };
}

/** Quantizes reals into out (same length): q = clamp(round(x / scale) + zeroPoint, -128, 127). */
export function quantizeActivations(
  values: ArrayLike<number>,
  { scale, zeroPoint }: ActivationQuantization,
  out: Int8Array = new Int8Array(values.length),
): Int8Array {
  for (let i = 0; i < values.length; i++) {
    out[i] = saturate(roundHalfAwayFromZero(values[i]! / scale) + zeroPoint, INT8_MIN, INT8_MAX);
  }
  return out;
}

/** The inverse of quantizeActivations: real = scale * (q - zeroPoint). */
export function dequantizeActivations(
  values: ArrayLike<number>,
  { scale, zeroPoint }: ActivationQuantization,
  out: Float32Array = new Float32Array(values.length),
): Float32Array {
  for (let i = 0; i < values.length; i++) out[i] = scale * (values[i]! - zeroPoint);
  return out;
}

/** Weights [outChannels][inChannels] quantized symmetrically per output channel. */
export interface ChannelwiseWeights {
  outChannels: number;
  inChannels: number;
  /** [outChannels][inChannels], in [-127, 127] (-128 unused, so negation never overflows). */
  values: Int8Array;
  /** [outChannels] real = scales[o] * values[o][i]. */
  scales: Float64Array;
}

/** Symmetric per-output-channel quantization: scale[o] = max_i |w[o][i]| / 127. An all-zero channel gets
 * scale 1 so that every later division stays finite. */
export function quantizeWeightsPerChannel(
  weights: ArrayLike<number>,
  outChannels: number,
  inChannels: number,
): ChannelwiseWeights {
  if (weights.length !== outChannels * inChannels) {
    throw new RangeError(
      `Expected weights of length ${outChannels * inChannels} (outChannels ${outChannels} x inChannels ` +
        `${inChannels}) but received length ${weights.length}`,
    );
  }
  const values = new Int8Array(weights.length);
  const scales = new Float64Array(outChannels);
  for (let o = 0; o < outChannels; o++) {
    let maxAbs = 0;
    for (let i = 0; i < inChannels; i++) maxAbs = Math.max(maxAbs, Math.abs(weights[o * inChannels + i]!));
    const scale = maxAbs > 0 ? maxAbs / INT8_MAX : 1;
    scales[o] = scale;
    for (let i = 0; i < inChannels; i++) {
      const k = o * inChannels + i;
      values[k] = saturate(roundHalfAwayFromZero(weights[k]! / scale), -INT8_MAX, INT8_MAX);
    }
  }
  return { outChannels, inChannels, values, scales };
}

/** The inverse of quantizeWeightsPerChannel: [outChannels][inChannels] reals. */
export function dequantizeWeightsPerChannel({
  outChannels,
  inChannels,
  values,
  scales,
}: ChannelwiseWeights): Float32Array {
  const out = new Float32Array(values.length);
  for (let o = 0; o < outChannels; o++) {
    for (let i = 0; i < inChannels; i++) out[o * inChannels + i] = scales[o]! * values[o * inChannels + i]!;
  }
  return out;
}

/** Bias in the accumulator's units (inputScale * weightScales[o]), rounded and saturated to int32. */
export function quantizeBias(
  bias: ArrayLike<number>,
  inputScale: number,
  weightScales: Float64Array,
): Int32Array {
  const out = new Int32Array(bias.length);
  for (let o = 0; o < bias.length; o++) {
    out[o] = saturate(
      roundHalfAwayFromZero(bias[o]! / (inputScale * weightScales[o]!)),
      INT32_MIN,
      INT32_MAX,
    );
  }
  return out;
}

/** The inverse of quantizeBias. */
export function dequantizeBias(
  bias: Int32Array,
  inputScale: number,
  weightScales: Float64Array,
): Float32Array {
  const out = new Float32Array(bias.length);
  for (let o = 0; o < bias.length; o++) out[o] = bias[o]! * inputScale * weightScales[o]!;
  return out;
}
