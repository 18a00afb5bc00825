// Integer requantization shared by the int8 operators: TFLite's fixed-point multiplier (the native
// kernels' gemmlowp rounding) and ONNX's float rescale with round-half-to-even (QLinearConv, QLinearMatMul,
// QuantizeLinear), so an imported ONNX model gives ONNX's bits.
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const TWO_POW_30 = 1n << 30n;
const TWO_POW_31 = 1n << 31n;

/** gemmlowp SaturatingRoundingDoublingHighMul: high 32 bits of 2*a*b rounded to nearest, ties toward +inf;
 * INT32_MIN * INT32_MIN (the only overflow) saturates to INT32_MAX. a, b: int32. */
function saturatingRoundingDoublingHighMul(a: number, b: number): number {
  if (a === INT32_MIN && b === INT32_MIN) return INT32_MAX;
  const ab = BigInt(a) * BigInt(b);
  const nudge = ab >= 0n ? TWO_POW_30 : 1n - TWO_POW_30;
  // BigInt division truncates toward zero, like C's.
  return Number((ab + nudge) / TWO_POW_31);
}

/** gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero. x: int32, exponent in [0, 31]. */
function roundingDivideByPot(x: number, exponent: number): number {
  const mask = 2 ** exponent - 1; // as int32 under &: exact for every exponent up to 31
  const remainder = x & mask;
  const threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/** TFLite MultiplyByQuantizedMultiplier: round(x * multiplier * 2^(shift - 31)), shift in [-31, 30].
 * The left shift wraps modulo 2^32 like TFLite's int32 multiply. The plain reference of the native
 * qs8_requantize_gemmlowp (native/src/qs8_requantize_gemmlowp.c): bit for bit the same; the 64-bit product
 * uses BigInt so it is exact. */
export function requantizeGemmlowp(x: number, multiplier: number, shift: number): number {
  const leftShift = shift > 0 ? shift : 0;
  const rightShift = shift > 0 ? 0 : -shift;
  return roundingDivideByPot(
    saturatingRoundingDoublingHighMul(Math.imul(x, 2 ** leftShift), multiplier),
    rightShift,
  );
}

/** C's frexp for finite non-zero x: x = fraction * 2^exponent, |fraction| in [0.5, 1). */
function frexp(x: number): { fraction: number; exponent: number } {
  let exponent = Math.ceil(Math.log2(Math.abs(x)));
  let fraction = x / 2 ** exponent;
  // log2 rounding can be off by one at the edges; fix it exactly.
  while (Math.abs(fraction) >= 1) {
    fraction /= 2;
    exponent++;
  }
  while (Math.abs(fraction) < 0.5) {
    fraction *= 2;
    exponent--;
  }
  return { fraction, exponent };
}

/** TFLite's QuantizeMultiplier: real ~ multiplier * 2^(shift - 31), multiplier Q31, shift in [-31, 30]. */
export function quantizeMultiplier(real: number): { multiplier: number; shift: number } {
  if (real === 0 || !Number.isFinite(real)) return { multiplier: 0, shift: 0 };
  const { fraction, exponent } = frexp(real);
  let shift = exponent;
  let fixed = Math.sign(fraction) * Math.round(Math.abs(fraction) * 2 ** 31);
  if (Math.abs(fixed) === 2 ** 31) {
    fixed /= 2;
    shift += 1;
  }
  if (shift < -31) return { multiplier: 0, shift: 0 };
  if (shift > 30) return { multiplier: 0x7fffffff, shift: 30 };
  return { multiplier: fixed, shift };
}

/** Round half to even (numpy's rint, ONNX's rounding). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function saturate(x: number, min: number, max: number): number {
  return x < min ? min : x > max ? max : x;
}

/** Value range of an integer dtype. */
export function intRange(dtype: string): [number, number] {
  switch (dtype) {
    case 'u8':
      return [0, 255];
    case 'i8':
      return [-128, 127];
    default:
      return [-0x80000000, 0x7fffffff];
  }
}
