// int8 affine quantization: real = scale * (q - zeroPoint). Weights are symmetric per output channel
// (zeroPoint 0, q in [-127, 127]); activations are asymmetric per tensor (q in [-128, 127]). Rescaling
// between them uses Q31 fixed-point multipliers, so the integer kernels never touch a float.
// Each quantize function sits next to its inverse.

export const INT8_MIN = -128;
export const INT8_MAX = 127;
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

/** Rounds half away from zero, as C's round() and TFLite do (Math.round rounds half up). */
export function roundHalfAwayFromZero(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

function clamp(x: number, min: number, max: number): number {
  return x < min ? min : x > max ? max : x;
}

/** C's frexp: x = fraction * 2^exponent with |fraction| in [0.5, 1), or [x, 0] for 0, NaN and infinities. */
export function frexp(x: number): { fraction: number; exponent: number } {
  if (x === 0 || !Number.isFinite(x)) return { fraction: x, exponent: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  let biased = (view.getUint16(0) >>> 4) & 0x7ff;
  let bias = 1022;
  if (biased === 0) {
    // Subnormal: scale into the normal range first (exact, a power of two).
    view.setFloat64(0, x * 2 ** 64);
    biased = (view.getUint16(0) >>> 4) & 0x7ff;
    bias += 64;
  }
  const exponent = biased - bias;
  // Two exact power-of-two steps, because 2^-exponent alone can overflow for subnormal x.
  const half = Math.trunc(-exponent / 2);
  return { fraction: x * 2 ** half * 2 ** (-exponent - half), exponent };
}

/** A Q31 fixed-point multiplier: real ≈ multiplier * 2^(shift - 31), multiplier in [2^30, 2^31) (or
 * negated, or 0), shift in [-31, 30]. */
export interface QuantizedMultiplier {
  multiplier: number;
  shift: number;
}

/** TFLite's QuantizeMultiplier. Reals below 2^-32 in magnitude become {0, 0} (every product would round
 * to 0 anyway); reals of 2^30 or more cannot be represented and throw a RangeError. */
export function quantizeMultiplier(real: number): QuantizedMultiplier {
  if (!Number.isFinite(real)) {
    throw new RangeError(`Expected a finite number for real but received ${real}`);
  }
  if (real === 0) return { multiplier: 0, shift: 0 };
  const { fraction, exponent } = frexp(real);
  let shift = exponent;
  let fixed = roundHalfAwayFromZero(fraction * 2 ** 31);
  if (Math.abs(fixed) === 2 ** 31) {
    // The fraction rounded up to 1.0: renormalize to 0.5 * 2^(shift + 1).
    fixed /= 2;
    shift += 1;
  }
  if (shift < -31) return { multiplier: 0, shift: 0 };
  if (shift > 30) {
    throw new RangeError(`Expected a multiplier below 2^30 for real but received ${real}`);
  }
  return { multiplier: fixed, shift };
}

/** The real value a QuantizedMultiplier stands for; the inverse of quantizeMultiplier. */
export function dequantizeMultiplier({ multiplier, shift }: QuantizedMultiplier): number {
  return multiplier * 2 ** (shift - 31);
}

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
  const zeroPoint = clamp(roundHalfAwayFromZero(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX);
  return { scale, zeroPoint };
}

/** Quantizes reals into out (same length): q = clamp(round(x / scale) + zeroPoint, -128, 127). */
export function quantizeActivations(
  values: ArrayLike<number>,
  { scale, zeroPoint }: ActivationQuantization,
  out: Int8Array = new Int8Array(values.length),
): Int8Array {
  for (let i = 0; i < values.length; i++) {
    out[i] = clamp(roundHalfAwayFromZero(values[i]! / scale) + zeroPoint, INT8_MIN, INT8_MAX);
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
      values[k] = clamp(roundHalfAwayFromZero(weights[k]! / scale), -INT8_MAX, INT8_MAX);
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
    out[o] = clamp(roundHalfAwayFromZero(bias[o]! / (inputScale * weightScales[o]!)), INT32_MIN, INT32_MAX);
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
