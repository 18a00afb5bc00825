// Plain reference of the int8 fully-connected kernel (native/src/qs8_fc.c): every optimized variant must
// match it bit for bit. Written for clarity, not speed; the 64-bit product of the requantization uses
// BigInt so it is exact. Arguments are assumed valid (the native binding is where they are checked).
import type { FullyConnectedS8Args } from '../index.js';

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const TWO_POW_30 = 1n << 30n;
const TWO_POW_31 = 1n << 31n;

/** gemmlowp SaturatingRoundingDoublingHighMul: high 32 bits of 2*a*b rounded to nearest, ties toward +inf;
 * INT32_MIN * INT32_MIN (the only overflow) saturates to INT32_MAX. a, b: int32. */
export function saturatingRoundingDoublingHighMul(a: number, b: number): number {
  if (a === INT32_MIN && b === INT32_MIN) return INT32_MAX;
  const ab = BigInt(a) * BigInt(b);
  const nudge = ab >= 0n ? TWO_POW_30 : 1n - TWO_POW_30;
  // BigInt division truncates toward zero, like C's.
  return Number((ab + nudge) / TWO_POW_31);
}

/** gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero. x: int32, exponent in [0, 31]. */
export function roundingDivideByPot(x: number, exponent: number): number {
  const mask = 2 ** exponent - 1; // as int32 under &: exact for every exponent up to 31
  const remainder = x & mask;
  const threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/** TFLite MultiplyByQuantizedMultiplier: round(x * multiplier * 2^(shift - 31)), shift in [-31, 30].
 * The left shift wraps modulo 2^32 like TFLite's int32 multiply. */
export function requantizeGemmlowp(x: number, multiplier: number, shift: number): number {
  const leftShift = shift > 0 ? shift : 0;
  const rightShift = shift > 0 ? 0 : -shift;
  return roundingDivideByPot(
    saturatingRoundingDoublingHighMul(Math.imul(x, 2 ** leftShift), multiplier),
    rightShift,
  );
}

/** output[b][o] = clamp(outputZeroPoint + requantize(bias[o] + sum_i (input[b][i] - inputZeroPoint) *
 * weights[o][i])). Shapes: input [batch][inChannels], weights [outChannels][inChannels], bias, multipliers,
 * shifts [outChannels], output [batch][outChannels]. */
export function fullyConnectedS8Reference(args: FullyConnectedS8Args): void {
  const { batch, inChannels, outChannels, input, inputZeroPoint, weights, bias, multipliers, shifts } = args;
  const { outputZeroPoint, outputMin, outputMax, output } = args;
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outChannels; o++) {
      // |sum| < 2^31 for inChannels <= 65536, so double arithmetic is exact here.
      let sum = 0;
      for (let i = 0; i < inChannels; i++) {
        sum += (input[b * inChannels + i]! - inputZeroPoint) * weights[o * inChannels + i]!;
      }
      const accumulator = (sum + bias[o]!) | 0; // int32 add, wrapping like the C kernel
      const value = requantizeGemmlowp(accumulator, multipliers[o]!, shifts[o]!) + outputZeroPoint;
      output[b * outChannels + o] = Math.min(outputMax, Math.max(outputMin, value));
    }
  }
}
