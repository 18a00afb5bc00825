// xnor kernels for ARMv7 NEON and AArch64 Advanced SIMD: VCNT counts bits per byte, VPADAL widens the
// counts into 16-bit lanes; the blocked driver handles 4 output channels (two q registers) per broadcast
// input word. Activations are packed 4 at a time (VCLT, AND with the lane bits, pairwise adds).
#if defined(__arm__) || defined(__aarch64__)
#include <arm_neon.h>

#include "xnor_conv2d_impl.h"

// The two 64-bit lanes of 16-bit byte-pair counts, each summed to one number.
static inline uint64x2_t xnor_fold_u16(uint16x8_t counts) { return vpaddlq_u32(vpaddlq_u16(counts)); }

static uint32_t xnor_span_popcount_neon(const uint64_t* x, const uint64_t* w, size_t words) {
  uint16x8_t counts = vdupq_n_u16(0);
  size_t i = 0;
  for (; i + 2 <= words; i += 2) {
    const uint8x16_t v = vreinterpretq_u8_u64(veorq_u64(vld1q_u64(x + i), vld1q_u64(w + i)));
    counts = vpadalq_u8(counts, vcntq_u8(v));
  }
  const uint64x2_t lanes = xnor_fold_u16(counts);
  uint64_t count = vgetq_lane_u64(lanes, 0) + vgetq_lane_u64(lanes, 1);
  if (i < words) {
    const uint8x8_t v = vcnt_u8(vreinterpret_u8_u64(vdup_n_u64(x[i] ^ w[i])));
    count += vget_lane_u64(vpaddl_u32(vpaddl_u16(vpaddl_u8(v))), 0);
  }
  return (uint32_t)count;
}

static void xnor_block_row_neon(const uint64_t* x, const uint64_t* wt, size_t words, uint32_t* pop) {
  // Each 16-bit lane gains at most 16 per word; rows are at most XNOR_TRANSPOSED_WORDS / 4 = 1024 words.
  uint16x8_t counts01 = vdupq_n_u16(0);
  uint16x8_t counts23 = vdupq_n_u16(0);
  for (size_t i = 0; i < words; i++) {
    const uint64x2_t a = vdupq_n_u64(x[i]);
    counts01 = vpadalq_u8(counts01, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a, vld1q_u64(wt + 4 * i)))));
    counts23 = vpadalq_u8(counts23, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a, vld1q_u64(wt + 4 * i + 2)))));
  }
  const uint64x2_t lanes01 = xnor_fold_u16(counts01);
  const uint64x2_t lanes23 = xnor_fold_u16(counts23);
  pop[0] += (uint32_t)vgetq_lane_u64(lanes01, 0);
  pop[1] += (uint32_t)vgetq_lane_u64(lanes01, 1);
  pop[2] += (uint32_t)vgetq_lane_u64(lanes23, 0);
  pop[3] += (uint32_t)vgetq_lane_u64(lanes23, 1);
}

static void xnor_block_store_neon(const uint32_t* pop, int32_t valid, const float* alpha, float scale,
                                  const float* bias, float output_min, float output_max, float* out) {
  const int32x4_t dot = vsubq_s32(vdupq_n_s32(valid), vshlq_n_s32(vreinterpretq_s32_u32(vld1q_u32(pop)), 1));
  float32x4_t value = vmulq_f32(vcvtq_f32_s32(dot), vld1q_f32(alpha));
  value = vmulq_f32(value, vdupq_n_f32(scale));
  value = vaddq_f32(value, bias != NULL ? vld1q_f32(bias) : vdupq_n_f32(0.0f));
  // Selects rather than VMAX/VMIN, which order -0 below +0 where xnor_output's comparisons do not.
  const float32x4_t lo = vdupq_n_f32(output_min);
  const float32x4_t hi = vdupq_n_f32(output_max);
  value = vbslq_f32(vcltq_f32(value, lo), lo, value);
  value = vbslq_f32(vcgtq_f32(value, hi), hi, value);
  vst1q_f32(out, value);
}

// 8 channels: four q registers per broadcast input word (rows <= XNOR_TRANSPOSED_WORDS / 8 words, so the
// 16-bit lanes cannot overflow).
static void xnor_block8_row_neon(const uint64_t* x, const uint64_t* wt, size_t words, uint32_t* pop) {
  uint16x8_t counts[4] = {vdupq_n_u16(0), vdupq_n_u16(0), vdupq_n_u16(0), vdupq_n_u16(0)};
  for (size_t i = 0; i < words; i++) {
    const uint64x2_t a = vdupq_n_u64(x[i]);
    for (size_t v = 0; v < 4; v++) {
      const uint64x2_t w = vld1q_u64(wt + 8 * i + 2 * v);
      counts[v] = vpadalq_u8(counts[v], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a, w))));
    }
  }
  for (size_t v = 0; v < 4; v++) {
    const uint64x2_t lanes = xnor_fold_u16(counts[v]);
    pop[2 * v] += (uint32_t)vgetq_lane_u64(lanes, 0);
    pop[2 * v + 1] += (uint32_t)vgetq_lane_u64(lanes, 1);
  }
}

static void xnor_block8_store_neon(const uint32_t* pop, int32_t valid, const float* alpha, float scale,
                                   const float* bias, float output_min, float output_max, float* out) {
  xnor_block_store_neon(pop, valid, alpha, scale, bias, output_min, output_max, out);
  xnor_block_store_neon(pop + 4, valid, alpha + 4, scale, bias != NULL ? bias + 4 : NULL, output_min,
                        output_max, out + 4);
}

XNOR_DEFINE_KERNELS2(neon, xnor_span_popcount_neon, 8, xnor_block8_row_neon, xnor_block8_store_neon, 4,
                     xnor_block_row_neon, xnor_block_store_neon)

// 4 sign bits per compare: VCLT, AND with the lane bits 1, 2, 4, 8, then pairwise adds to one nibble.
static inline uint64_t xnor_word_sign_bits_neon(const void* input, size_t count, int32_t zero_point) {
  (void)zero_point;
  const float* x = (const float*)input;
  static const uint32_t lane_bit_values[4] = {1, 2, 4, 8};
  const uint32x4_t lane_bits = vld1q_u32(lane_bit_values);
  const float32x4_t zero = vdupq_n_f32(0.0f);
  uint64_t bits = 0;
  size_t c = 0;
  for (; c + 4 <= count; c += 4) {
    const uint32x4_t selected = vandq_u32(vcltq_f32(vld1q_f32(x + c), zero), lane_bits);
    uint32x2_t sum = vadd_u32(vget_low_u32(selected), vget_high_u32(selected));
    sum = vpadd_u32(sum, sum);
    bits |= (uint64_t)vget_lane_u32(sum, 0) << c;
  }
  return xnor_sign_bits_tail(x, c, count, bits);
}

void xnor_pack_ukernel__neon(size_t pixels, size_t groups, size_t group_channels, const float* restrict input,
                             uint64_t* restrict output) {
  xnor_pack_words(pixels, groups, group_channels, input, sizeof(float), 0, output, xnor_word_sign_bits_neon);
}

// int8: 8 sign bits per compare: VCLT.S8, AND with the lane bits 1, 2, ..., 128, three pairwise adds to one
// byte (armv7 and aarch64 alike).
static inline uint64_t xnor_word_qs8_sign_bits_neon(const void* input, size_t count, int32_t zero_point) {
  static const uint8_t lane_bit_values[8] = {1, 2, 4, 8, 16, 32, 64, 128};
  const int8_t* q = (const int8_t*)input;
  const uint8x8_t lane_bits = vld1_u8(lane_bit_values);
  const int8x8_t zp = vdup_n_s8((int8_t)zero_point);
  uint64_t bits = 0;
  size_t c = 0;
  for (; c + 8 <= count; c += 8) {
    uint8x8_t sum = vand_u8(vclt_s8(vld1_s8(q + c), zp), lane_bits);
    sum = vpadd_u8(sum, sum);
    sum = vpadd_u8(sum, sum);
    sum = vpadd_u8(sum, sum);
    bits |= (uint64_t)vget_lane_u8(sum, 0) << c;
  }
  return xnor_qs8_sign_bits_tail(q, c, count, zero_point, bits);
}

void xnor_pack_qs8_ukernel__neon(size_t pixels, size_t groups, size_t group_channels,
                                 const int8_t* restrict input, int32_t zero_point,
                                 uint64_t* restrict output) {
  xnor_pack_words(pixels, groups, group_channels, input, 1, zero_point, output, xnor_word_qs8_sign_bits_neon);
}
#endif
