// The scalar int8 requantization every int8 kernel shares (qs8 = quantized signed 8-bit, per-channel
// requantization), and the limits that keep it exact.
//
//   gemmlowp: fixed-point requantization exactly as TFLite's MultiplyByQuantizedMultiplier: two roundings,
//             SaturatingRoundingDoublingHighMul (ties toward +infinity, a side effect of its truncating
//             division) then RoundingDivideByPOT (ties away from zero). XNNPACK's "rndnu" is one rounding
//             with ties up, which gives different bits, so that name would be wrong here.
#ifndef WHITTLE_QS8_REQUANTIZE_GEMMLOWP_H_
#define WHITTLE_QS8_REQUANTIZE_GEMMLOWP_H_

#include <stdint.h>

#include "kernel_abi.h"

WHITTLE_EXTERN_C_BEGIN

// Largest dot-product length of an int8 fully-connected row: with |input - input_zero_point| <= 255 and
// |weight| <= 128, 65536 * 255 * 128 < 2^31, so the int32 dot product can never overflow. Callers check it.
#define QS8_FC_MAX_INPUT_CHANNELS 65536

// Smallest and largest shift of a requantization multiplier (positive = left shift).
#define QS8_REQUANT_MIN_SHIFT (-31)
#define QS8_REQUANT_MAX_SHIFT 30

// One value through TFLite's MultiplyByQuantizedMultiplier: round(x * multiplier * 2^(shift - 31)).
// multiplier: Q31 fixed point, normally in [2^30, 2^31) or 0; shift in [QS8_REQUANT_MIN_SHIFT,
// QS8_REQUANT_MAX_SHIFT]. The left shift wraps modulo 2^32 like TFLite's int32 multiply.
int32_t qs8_requantize_gemmlowp(int32_t x, int32_t multiplier, int32_t shift);

// gemmlowp's SaturatingRoundingDoublingHighMul: the high 32 bits of 2*a*b, rounded to nearest. The nudge is
// +-(2^30 - small) and the division truncates, so ties go toward +infinity (-1.5 -> -1, 1.5 -> 2).
// The one product that does not fit, INT32_MIN * INT32_MIN, saturates to INT32_MAX.
static inline int32_t qs8_saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) {
    return INT32_MAX;
  }
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int64_t nudge = ab >= 0 ? (INT64_C(1) << 30) : (INT64_C(1) - (INT64_C(1) << 30));
  // C division truncates toward zero, as gemmlowp relies on.
  return (int32_t)((ab + nudge) / (INT64_C(1) << 31));
}

// gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded half away from zero, exponent in [0, 31].
// Relies on >> being an arithmetic shift for negative values (true for GCC, Clang and MSVC).
static inline int32_t qs8_rounding_divide_by_pot(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)((INT64_C(1) << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// qs8_requantize_gemmlowp inlined into a caller's loop (the element-wise kernels: qs8_simple_impl.h), where
// the call would cost more than the arithmetic.
static inline int32_t qs8_requantize_gemmlowp_inline(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left_shift = shift > 0 ? shift : 0;
  const int32_t right_shift = shift > 0 ? 0 : -shift;
  // TFLite multiplies in int32; doing it in uint32 gives the same wrapped bits without undefined behaviour.
  const int32_t shifted = (int32_t)((uint32_t)x * ((uint32_t)1 << left_shift));
  return qs8_rounding_divide_by_pot(qs8_saturating_rounding_doubling_high_mul(shifted, multiplier),
                                    right_shift);
}

// The last step of every int8 reference and portable compressed-format kernel (ternary, sparse, codebook):
// the int32 sum plus the bias (wrapping modulo 2^32 like TFLite's int32 add and the dense int8 kernels),
// requantized, offset by the output zero point and clamped to [output_min, output_max].
static inline int8_t qs8_finish_gemmlowp(int32_t sum, int32_t bias, int32_t multiplier, int32_t shift,
                                         int32_t output_zero_point, int32_t output_min, int32_t output_max) {
  const int32_t accumulator = (int32_t)((uint32_t)sum + (uint32_t)bias);
  int64_t value = (int64_t)qs8_requantize_gemmlowp(accumulator, multiplier, shift) + output_zero_point;
  value = value < output_min ? output_min : value;
  value = value > output_max ? output_max : value;
  return (int8_t)value;
}

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_QS8_REQUANTIZE_GEMMLOWP_H_
