// tern kernels for ARMv7 NEON and AArch64 Advanced SIMD: 4 bits of each plane become lane masks (VTST);
// the sign mask flips the float's sign bit, the nonzero mask zeroes skipped lanes, then one add.
#if defined(__arm__) || defined(__aarch64__)
#include <arm_neon.h>

#include "sign_conv2d_impl.h"

static inline float32x4_t tern_apply4_neon(float32x4_t x, uint32_t nonzero4, uint32_t sign4) {
  static const uint32_t lane_bit_values[4] = {1, 2, 4, 8};
  const uint32x4_t lane_bits = vld1q_u32(lane_bit_values);
  const uint32x4_t flip = vshlq_n_u32(vtstq_u32(vdupq_n_u32(sign4), lane_bits), 31);
  const uint32x4_t keep = vtstq_u32(vdupq_n_u32(nonzero4), lane_bits);
  return vreinterpretq_f32_u32(vandq_u32(veorq_u32(vreinterpretq_u32_f32(x), flip), keep));
}

static float tern_signed_sum_neon(const float* x, const uint32_t* nonzero, const uint32_t* sign,
                                  size_t row_words, size_t first_bit, size_t n) {
  float32x4_t acc0 = vdupq_n_f32(0.0f);
  float32x4_t acc1 = vdupq_n_f32(0.0f);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint32_t nz = bin_load_bits32(nonzero, row_words, first_bit + i);
    const uint32_t neg = bin_load_bits32(sign, row_words, first_bit + i);
    acc0 = vaddq_f32(acc0, tern_apply4_neon(vld1q_f32(x + i), nz, neg));
    acc1 = vaddq_f32(acc1, tern_apply4_neon(vld1q_f32(x + i + 4), nz >> 4, neg >> 4));
    acc0 = vaddq_f32(acc0, tern_apply4_neon(vld1q_f32(x + i + 8), nz >> 8, neg >> 8));
    acc1 = vaddq_f32(acc1, tern_apply4_neon(vld1q_f32(x + i + 12), nz >> 12, neg >> 12));
  }
  for (; i + 4 <= n; i += 4) {
    acc0 =
        vaddq_f32(acc0, tern_apply4_neon(vld1q_f32(x + i), bin_load_bits32(nonzero, row_words, first_bit + i),
                                         bin_load_bits32(sign, row_words, first_bit + i)));
  }
  const float32x4_t acc = vaddq_f32(acc0, acc1);
  const float32x2_t pair = vadd_f32(vget_low_f32(acc), vget_high_f32(acc));
  float sum = vget_lane_f32(vpadd_f32(pair, pair), 0);
  if (i < n) {
    uint32_t nz = bin_load_bits32(nonzero, row_words, first_bit + i);
    uint32_t neg = bin_load_bits32(sign, row_words, first_bit + i);
    for (; i < n; i++, nz >>= 1, neg >>= 1) {
      if (nz & 1) {
        sum += (neg & 1) ? -x[i] : x[i];
      }
    }
  }
  return sum;
}

// 8 output channels (two q registers) per broadcast activation.
static void tern_block8_span_neon(const float* x, const uint32_t* flips, const uint32_t* keeps, size_t n,
                                  float* acc) {
  float32x4_t acc_lo = vld1q_f32(acc);
  float32x4_t acc_hi = vld1q_f32(acc + 4);
  for (size_t i = 0; i < n; i++) {
    const uint32x4_t a = vreinterpretq_u32_f32(vdupq_n_f32(x[i]));
    const uint32x4_t lo = vandq_u32(veorq_u32(a, vld1q_u32(flips + 8 * i)), vld1q_u32(keeps + 8 * i));
    const uint32x4_t hi = vandq_u32(veorq_u32(a, vld1q_u32(flips + 8 * i + 4)), vld1q_u32(keeps + 8 * i + 4));
    acc_lo = vaddq_f32(acc_lo, vreinterpretq_f32_u32(lo));
    acc_hi = vaddq_f32(acc_hi, vreinterpretq_f32_u32(hi));
  }
  vst1q_f32(acc, acc_lo);
  vst1q_f32(acc + 4, acc_hi);
}

TERN_DEFINE_KERNELS_BLOCKED(neon, tern_signed_sum_neon, 8, tern_block8_span_neon)
#endif
