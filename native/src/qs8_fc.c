#include "qs8_fc.h"

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

void qs8_fc_minmax_gemmlowp_ukernel__scalar(size_t batch, size_t input_channels, size_t output_channels,
                                            const int8_t* restrict input, int32_t input_zero_point,
                                            const int8_t* restrict weights, const int32_t* restrict bias,
                                            const int32_t* restrict multipliers,
                                            const int32_t* restrict shifts, int32_t output_zero_point,
                                            int32_t output_min, int32_t output_max, int8_t* restrict output) {
  for (size_t o = 0; o < output_channels; o++) {
    const int8_t* restrict w = weights + o * input_channels;
    // sum_i (x_i - zp) * w_i = sum_i x_i * w_i - zp * sum_i w_i: the weight sum is computed once per
    // channel and the inner loop is a plain int8 dot product, which compilers vectorize.
    int32_t weight_sum = 0;
    for (size_t i = 0; i < input_channels; i++) {
      weight_sum += (int32_t)w[i];
    }
    const int64_t zero_point_correction = (int64_t)input_zero_point * (int64_t)weight_sum;
    const int32_t b = bias[o];
    const int32_t multiplier = multipliers[o];
    const int32_t shift = shifts[o];
    for (size_t n = 0; n < batch; n++) {
      const int8_t* restrict x = input + n * input_channels;
      int32_t dot = 0;
      for (size_t i = 0; i < input_channels; i++) {
        dot += (int32_t)x[i] * (int32_t)w[i];
      }
      // Exact: |dot - zero_point_correction| < 2^31 by QS8_FC_MAX_INPUT_CHANNELS.
      const int32_t centered = (int32_t)((int64_t)dot - zero_point_correction);
      const int32_t accumulator = (int32_t)((uint32_t)centered + (uint32_t)b);
      int64_t value = (int64_t)qs8_requantize_gemmlowp(accumulator, multiplier, shift) + output_zero_point;
      value = value < output_min ? output_min : value;
      value = value > output_max ? output_max : value;
      output[n * output_channels + o] = (int8_t)value;
    }
  }
}
