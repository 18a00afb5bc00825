// The rounding rules of the number formats, each named after what it does with a tie and the framework or
// kernel whose bits it reproduces. Every quantizer, requantizer and reference kernel rounds through these,
// so the manager (optimize/) and the device (agent/runtime/) round alike:
//   roundHalfAwayFromZero  C's round(), TFLite: int8 weights, biases, activations, Q31 multipliers;
//   roundHalfEven          numpy's rint, ONNX: QuantizeLinear, QLinearConv, QLinearMatMul, camera input;
//   roundHalfUp            floor(x + 0.5): the fixed-point Q(IL.FL) quantizers and kernels (fixed-point.ts);
//   the two gemmlowp steps MultiplyByQuantizedMultiplier takes (requantization.ts): a doubling high
//   multiply with ties up, then a power-of-two divide with ties away from zero.

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const TWO_POW_30 = 1n << 30n;
const TWO_POW_31 = 1n << 31n;

/** Rounds half away from zero, as C's round() and TFLite do (Math.round rounds half up). */
export function roundHalfAwayFromZero(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

/** Round half to even (numpy's rint, ONNX's rounding). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** floor(x + 0.5): round to nearest, ties toward +infinity (the fixed-point kernels' rounding). NaN stays NaN. */
export function roundHalfUp(x: number): number {
  return Math.floor(x + 0.5);
}

/** C's frexp: x = fraction * 2^exponent with |fraction| in [0.5, 1), or [x, 0] for 0, NaN and infinities.
 * Exact for every double, subnormals included (read from the bits, not from log2). */
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

/** gemmlowp SaturatingRoundingDoublingHighMul: high 32 bits of 2*a*b rounded to nearest, ties toward +inf;
 * INT32_MIN * INT32_MIN (the only overflow) saturates to INT32_MAX. a, b: int32. The 64-bit product uses
 * BigInt, so it is exact. */
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
