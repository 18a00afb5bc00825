#include "qs8_requantize_gemmlowp.h"

// gemmlowp's SaturatingRoundingDoublingHighMul: the high 32 bits of 2*a*b, rounded to nearest. The nudge is
// +-(2^30 - small) and the division truncates, so ties go toward +infinity (-1.5 -> -1, 1.5 -> 2).
// The one product that does not fit, INT32_MIN * INT32_MIN, saturates to INT32_MAX.
static inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
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
static inline int32_t rounding_divide_by_pot(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)((INT64_C(1) << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t qs8_requantize_gemmlowp(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left_shift = shift > 0 ? shift : 0;
  const int32_t right_shift = shift > 0 ? 0 : -shift;
  // TFLite multiplies in int32; doing it in uint32 gives the same wrapped bits without undefined behaviour.
  const int32_t shifted = (int32_t)((uint32_t)x * ((uint32_t)1 << left_shift));
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right_shift);
}
