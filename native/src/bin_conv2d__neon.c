// bin kernels for ARMv7 NEON and AArch64 Advanced SIMD: 4 sign bits become a lane mask (VTST against the
// lanes' bits) whose sign bit is XORed into 4 activations before they are added.
#if defined(__arm__) || defined(__aarch64__)
#include <arm_neon.h>

#include "sign_conv2d_impl.h"

static inline float32x4_t bin_flip4_neon(float32x4_t x, uint32_t bits4) {
  static const uint32_t lane_bit_values[4] = {1, 2, 4, 8};
  const uint32x4_t lane_bits = vld1q_u32(lane_bit_values);
  const uint32x4_t mask = vshlq_n_u32(vtstq_u32(vdupq_n_u32(bits4), lane_bits), 31);
  return vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(x), mask));
}

static float bin_signed_sum_neon(const float* x, const uint32_t* nonzero, const uint32_t* row,
                                 size_t row_words, size_t first_bit, size_t n) {
  (void)nonzero;  // NULL: binary weights are never 0
  float32x4_t acc0 = vdupq_n_f32(0.0f);
  float32x4_t acc1 = vdupq_n_f32(0.0f);
  float32x4_t acc2 = vdupq_n_f32(0.0f);
  float32x4_t acc3 = vdupq_n_f32(0.0f);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint32_t bits = bin_load_bits32(row, row_words, first_bit + i);
    acc0 = vaddq_f32(acc0, bin_flip4_neon(vld1q_f32(x + i), bits));
    acc1 = vaddq_f32(acc1, bin_flip4_neon(vld1q_f32(x + i + 4), bits >> 4));
    acc2 = vaddq_f32(acc2, bin_flip4_neon(vld1q_f32(x + i + 8), bits >> 8));
    acc3 = vaddq_f32(acc3, bin_flip4_neon(vld1q_f32(x + i + 12), bits >> 12));
  }
  for (; i + 4 <= n; i += 4) {
    acc0 = vaddq_f32(acc0, bin_flip4_neon(vld1q_f32(x + i), bin_load_bits32(row, row_words, first_bit + i)));
  }
  const float32x4_t acc = vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3));
  const float32x2_t pair = vadd_f32(vget_low_f32(acc), vget_high_f32(acc));
  float sum = vget_lane_f32(vpadd_f32(pair, pair), 0);
  if (i < n) {
    uint32_t bits = bin_load_bits32(row, row_words, first_bit + i);
    for (; i < n; i++, bits >>= 1) {
      sum += (bits & 1) ? -x[i] : x[i];
    }
  }
  return sum;
}

// 8 output channels (two q registers) per broadcast activation, two activations per step.
static void bin_block8_span_neon(const float* x, const uint32_t* masks, const uint32_t* keeps, size_t n,
                                 float* acc) {
  (void)keeps;  // NULL: binary weights are never 0
  float32x4_t acc_lo0 = vld1q_f32(acc), acc_hi0 = vld1q_f32(acc + 4);
  float32x4_t acc_lo1 = vdupq_n_f32(0.0f), acc_hi1 = vdupq_n_f32(0.0f);
  size_t i = 0;
  for (; i + 2 <= n; i += 2) {
    const uint32x4_t a = vreinterpretq_u32_f32(vdupq_n_f32(x[i]));
    const uint32x4_t b = vreinterpretq_u32_f32(vdupq_n_f32(x[i + 1]));
    acc_lo0 = vaddq_f32(acc_lo0, vreinterpretq_f32_u32(veorq_u32(a, vld1q_u32(masks + 8 * i))));
    acc_hi0 = vaddq_f32(acc_hi0, vreinterpretq_f32_u32(veorq_u32(a, vld1q_u32(masks + 8 * i + 4))));
    acc_lo1 = vaddq_f32(acc_lo1, vreinterpretq_f32_u32(veorq_u32(b, vld1q_u32(masks + 8 * i + 8))));
    acc_hi1 = vaddq_f32(acc_hi1, vreinterpretq_f32_u32(veorq_u32(b, vld1q_u32(masks + 8 * i + 12))));
  }
  if (i < n) {
    const uint32x4_t a = vreinterpretq_u32_f32(vdupq_n_f32(x[i]));
    acc_lo0 = vaddq_f32(acc_lo0, vreinterpretq_f32_u32(veorq_u32(a, vld1q_u32(masks + 8 * i))));
    acc_hi0 = vaddq_f32(acc_hi0, vreinterpretq_f32_u32(veorq_u32(a, vld1q_u32(masks + 8 * i + 4))));
  }
  vst1q_f32(acc, vaddq_f32(acc_lo0, acc_lo1));
  vst1q_f32(acc + 4, vaddq_f32(acc_hi0, acc_hi1));
}

BIN_DEFINE_KERNELS_BLOCKED(neon, bin_signed_sum_neon, 8, bin_block8_span_neon)
#endif
