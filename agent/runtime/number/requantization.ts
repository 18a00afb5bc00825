// Requantization of int32 accumulators by a real factor in integer arithmetic only: TFLite's Q31 fixed-point
// multiplier and shift (QuantizeMultiplier) and the gemmlowp multiply the native int8 kernels apply with it
// (MultiplyByQuantizedMultiplier, native/src/qs8_requantize.h). The one place a real factor becomes the
// (multiplier, shift) pair the kernels take: the runtime derives them here from a package's scales at load,
// the optimizer measures every candidate on that runtime, and anything that writes multipliers takes them
// from here too, so the manager and the device get the same bits.
//
// Edge cases (pinned by test/agent/runtime/number/requantization.test.ts):
//   0, -0, and |real| below 2^-32 (subnormals included)  {0, 0}: every product would round to 0 anyway
//                                                        (TFLite flushes these too);
//   |real| in [2^-32, 2^30), either sign                  exact to Q31 (relative error <= 2^-31); a negative
//                                                        real gives a negative multiplier (the runtime never
//                                                        has one: scales are positive, and the compressed-
//                                                        format bindings refuse them);
//   |real| >= 2^30 (after rounding), or +-Infinity        no Q31 form: the caller says what it needs, see
//                                                        MultiplierOutOfRange;
//   NaN                                                   always a RangeError: no scale the package reader
//                                                        admits gives one, so it is a bug upstream.
import {
  frexp,
  roundHalfAwayFromZero,
  roundingDivideByPot,
  saturatingRoundingDoublingHighMul,
} from './rounding.js';
import { INT32_MAX } from './saturation.js';

/** The shifts the native int8 kernels take (QS8_REQUANT_MIN_SHIFT / QS8_REQUANT_MAX_SHIFT; positive = left). */
export const REQUANTIZATION_SHIFT_MIN = -31;
export const REQUANTIZATION_SHIFT_MAX = 30;

/** A Q31 fixed-point multiplier: real ≈ multiplier * 2^(shift - 31), multiplier in [2^30, 2^31) (or
 * negated, or 0), shift in [REQUANTIZATION_SHIFT_MIN, REQUANTIZATION_SHIFT_MAX]. */
/** An affine quantization: real = scale * (q - zeroPoint). */
export interface AffineQuantization {
  scale: number;
  zeroPoint: number;
}

export interface QuantizedMultiplier {
  multiplier: number;
  shift: number;
}

/** What quantizeMultiplier does with a real whose magnitude is 2^30 or more (or infinite):
 * - 'refuse': throw a RangeError. For a writer of multipliers, which must not store a number that stands
 *   for another real than the one it computed.
 * - 'saturate': {±INT32_MAX, 30}, the largest multiplier, as TFLite's QuantizeMultiplier does under
 *   TFLITE_SINGLE_ROUNDING. For the runtime, which derives multipliers at load from scales the package reader
 *   admits (any positive finite numbers, so their ratio can pass 2^30 or overflow to Infinity) and must load
 *   every package it loaded before. An accumulator of +-1 then already lands near +-2^30, past every int8
 *   bound; larger ones wrap in the left shift exactly as TFLite's and the native kernels' int32 arithmetic
 *   does, so the reference and the kernels still agree bit for bit.
 */
export type MultiplierOutOfRange = 'refuse' | 'saturate';

/** TFLite's QuantizeMultiplier: the Q31 multiplier and shift nearest `real` (ties of the Q31 rounding away from
 * zero). See the edge cases at the top of this file. */
export function quantizeMultiplier(real: number, outOfRange: MultiplierOutOfRange): QuantizedMultiplier {
  if (Number.isNaN(real) || (outOfRange === 'refuse' && !Number.isFinite(real))) {
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
  if (shift < REQUANTIZATION_SHIFT_MIN) return { multiplier: 0, shift: 0 };
  // frexp leaves infinities with exponent 0, so they are caught here by name rather than by shift.
  if (shift > REQUANTIZATION_SHIFT_MAX || !Number.isFinite(real)) {
    if (outOfRange === 'refuse') {
      throw new RangeError(`Expected a multiplier below 2^30 for real but received ${real}`);
    }
    return { multiplier: Math.sign(real) * INT32_MAX, shift: REQUANTIZATION_SHIFT_MAX };
  }
  return { multiplier: fixed, shift };
}

/** The real value a QuantizedMultiplier stands for; the inverse of quantizeMultiplier. */
export function dequantizeMultiplier({ multiplier, shift }: QuantizedMultiplier): number {
  return multiplier * 2 ** (shift - 31);
}

/** TFLite MultiplyByQuantizedMultiplier: round(x * multiplier * 2^(shift - 31)), x int32, shift in
 * [REQUANTIZATION_SHIFT_MIN, REQUANTIZATION_SHIFT_MAX]. The left shift wraps modulo 2^32 like TFLite's int32
 * multiply. The plain reference of the native kernels' output stage: bit for bit the same. */
export function requantizeGemmlowp(x: number, multiplier: number, shift: number): number {
  const leftShift = shift > 0 ? shift : 0;
  const rightShift = shift > 0 ? 0 : -shift;
  return roundingDivideByPot(
    saturatingRoundingDoublingHighMul(Math.imul(x, 2 ** leftShift), multiplier),
    rightShift,
  );
}
