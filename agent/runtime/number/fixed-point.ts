// Dynamic fixed point Q(IL.FL) (Gupta et al. 2015, Courbariaux et al. 2014; native/formats.md): a word q
// with fractional length fl stands for q * 2^-fl. Everything about the words themselves lives here: their
// range, the choice of a fractional length for a range of values, the quantizers (round to nearest and
// stochastic rounding, as the trainer and the package writer use them), the inverse, and the rounding shift
// that moves an accumulator to the output's fractional length. Bit-exact with the C code of the qf16 / qf8
// kernels (native/src/qf_conv2d.h, one template for both word sizes): same counter-based random stream, same rounding, same
// saturation. The reference convolution built on them is reference-ops/fixed-point.ts.
//
// A layer's accumulator sum(x * w) + bias has fl = inputFl + weightFl and reaches the output by
// shift = inputFl + weightFl - outputFl:
//   shift > 0  floor((acc + 2^(shift-1)) / 2^shift)  (round to nearest, ties toward +infinity)
//   shift <= 0 acc * 2^-shift                        (exact; |acc| is first clamped to 2^24, which
//                                                      saturates anyway)
// then clamped to [outputMin, outputMax].
import { roundHalfUp } from './rounding.js';
import { INT32_MAX, INT32_MIN, saturate } from './saturation.js';

/** Word sizes of the fixed-point formats. */
export type FixedPointBits = 8 | 16;

/** Largest magnitude the quantizers produce: symmetric ranges, so weights never hit -2^(bits-1). */
export function fixedPointLimit(bits: FixedPointBits): number {
  return bits === 16 ? 32767 : 127;
}

/** The Q(IL.FL) choice: the largest fractional length in [min, max] at which `magnitude` still fits `limit`
 * words (FL = floor(log2(limit / magnitude)), IL = bits - 1 - FL); an all-zero tensor takes the largest one
 * (any FL represents it exactly). */
export function fractionalLength(magnitude: number, limit: number, min: number, max: number): number {
  if (!(magnitude > 0)) return max;
  let fl = Math.floor(Math.log2(limit / magnitude));
  // log2 of a ratio can land one off an exact power of two: settle on the grid itself.
  while (magnitude * 2 ** fl > limit) fl--;
  while (magnitude * 2 ** (fl + 1) <= limit) fl++;
  return Math.max(min, Math.min(max, fl));
}

/** Chris Wellons' lowbias32 integer hash, in 32-bit arithmetic exactly as the C code. */
function lowbias32(value: number): number {
  let x = value >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** The uniform draw number `index` of stream `seed`: in [0, 1) on a 2^-24 grid (whittle_fixed_point_uniform24). */
export function uniform24(seed: number, index: number): number {
  return (lowbias32((index >>> 0) ^ lowbias32(seed)) >>> 8) * 2 ** -24;
}

/** floor(value) saturated to [-limit, limit]; NaN -> 0. */
function saturateFloor(value: number, limit: number): number {
  if (Number.isNaN(value)) return 0;
  if (value >= limit) return limit;
  if (value <= -limit) return -limit;
  return Math.floor(value);
}

/** Round to nearest (ties toward +infinity) with saturation: q with q * 2^-fl nearest to each input.
 * input is read as float32 (pass a Float32Array for values the C side will see). */
export function quantizeNearest(
  input: ArrayLike<number>,
  fractionalLength: number,
  bits: FixedPointBits,
): Int16Array | Int8Array {
  const output = bits === 16 ? new Int16Array(input.length) : new Int8Array(input.length);
  const scale = 2 ** fractionalLength;
  for (let i = 0; i < input.length; i++) {
    output[i] = saturateFloor(Math.fround(input[i]!) * scale + 0.5, fixedPointLimit(bits));
  }
  return output;
}

/** Stochastic rounding (Gupta et al. 2015): floor(x * 2^fl + u_i) with u_i = uniform24(seed, firstIndex + i),
 * saturated. Unbiased: E[q * 2^-fl] = x (up to 2^-24 of a step) inside the range. Counter-based, so any
 * split of an array gives the same bits as one call, and the C quantizer gives the same bits too. */
export function quantizeStochastic(
  input: ArrayLike<number>,
  fractionalLength: number,
  bits: FixedPointBits,
  seed: number,
  firstIndex = 0,
): Int16Array | Int8Array {
  const output = bits === 16 ? new Int16Array(input.length) : new Int8Array(input.length);
  const scale = 2 ** fractionalLength;
  for (let i = 0; i < input.length; i++) {
    const u = uniform24(seed, (firstIndex + i) >>> 0);
    output[i] = saturateFloor(Math.fround(input[i]!) * scale + u, fixedPointLimit(bits));
  }
  return output;
}

/** Largest |bias| the qf16 kernels take, in accumulator units (their int64 accumulator's headroom). */
export const FIXED16_BIAS_LIMIT = 2 ** 56;

/** An fp32 bias in accumulator units 2^-accumulatorFl (accumulatorFl = inputFl + weightFl): round to nearest
 * (ties up), NaN -> 0, saturated to what the kernels take: [-2^56, 2^56] in a BigInt64Array for 16-bit
 * words, int32 for 8-bit words. A bias past the bound saturates the output anyway unless the products
 * cancel it. */
export function quantizeFixedPointBias(
  bias: ArrayLike<number>,
  accumulatorFl: number,
  bits: FixedPointBits,
): BigInt64Array | Int32Array {
  const scale = 2 ** accumulatorFl;
  const units = Array.from({ length: bias.length }, (_, i) => {
    const q = roundHalfUp(bias[i]! * scale);
    return Number.isNaN(q) ? 0 : q;
  });
  return bits === 16
    ? BigInt64Array.from(units, (q) => BigInt(saturate(q, -FIXED16_BIAS_LIMIT, FIXED16_BIAS_LIMIT)))
    : Int32Array.from(units, (q) => saturate(q, INT32_MIN, INT32_MAX));
}

/** q * 2^-fl as float32. */
export function dequantize(input: ArrayLike<number>, fractionalLength: number): Float32Array {
  const output = new Float32Array(input.length);
  const scale = 2 ** -fractionalLength;
  for (let i = 0; i < input.length; i++) output[i] = input[i]! * scale;
  return output;
}

/** The straight-through gradient of either quantizer inside its range, 0 where it saturates (the usual
 * estimator when training through fixed-point rounding). */
export function quantizeGradientMask(
  input: ArrayLike<number>,
  fractionalLength: number,
  bits: FixedPointBits,
): Uint8Array {
  const limit = fixedPointLimit(bits) * 2 ** -fractionalLength;
  return Uint8Array.from({ length: input.length }, (_, i) => (Math.abs(input[i]!) <= limit ? 1 : 0));
}

/** The accumulator (in units of 2^-(inputFl + weightFl)) moved to the output format, saturated. */
export function roundShiftSaturate(acc: bigint, shift: number, outputMin: number, outputMax: number): number {
  let value: bigint;
  if (shift > 0) {
    value = (acc + (1n << BigInt(shift - 1))) >> BigInt(shift); // BigInt >> floors, like C's on int64
  } else {
    const limit = 1n << 24n;
    const clamped = acc < -limit ? -limit : acc > limit ? limit : acc;
    value = clamped * (1n << BigInt(-shift));
  }
  if (value < BigInt(outputMin)) return outputMin;
  if (value > BigInt(outputMax)) return outputMax;
  return Number(value);
}
