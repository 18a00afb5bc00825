#include <string.h>

#include "qs8_requantize.h"

// Batch-1 fully-connected on NEON, on the packing of the GEMV list (qs8_ops.h): 4 weight rows at a time
// share each 16 bytes of A; int8 x int8 products fit int16 (|p| <= 16384) and are added pairwise into int32
// (VPADAL), so the sums wrap exactly as the scalar kernel's. A is int8 (int8 or uint8 ^ input_flip).

static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, const int8_t* w) {
  const int8x16_t b = vld1q_s8(w);
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
  return vpadalq_s16(acc, vmull_s8(vget_high_s8(a), vget_high_s8(b)));
}

// Sums of the 4 int32 lanes of each of a, b, c, d, as the 4 lanes of the result (ARMv7 has no VPADDQ).
static inline int32x4_t reduce4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  const int32x2_t ab =
      vpadd_s32(vpadd_s32(vget_low_s32(a), vget_high_s32(a)), vpadd_s32(vget_low_s32(b), vget_high_s32(b)));
  const int32x2_t cd =
      vpadd_s32(vpadd_s32(vget_low_s32(c), vget_high_s32(c)), vpadd_s32(vget_low_s32(d), vget_high_s32(d)));
  return vcombine_s32(ab, cd);
}

void qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__neon(size_t nc, size_t k_size, const int8_t* a,
                                                   const void* packed_w, int8_t* c,
                                                   const qs8_gemmlowp_params* params) {
  const qs8_gemmlowp_params p = *params;  // c may alias *params (int8_t*)
  const size_t kc = (k_size + 63) / 64 * 64;
  const size_t k_main = k_size / 16 * 16;
  // The last partial 16 bytes of A, zero-padded (the kernel never reads past k_size); its lanes past k_size
  // meet zero weights.
  int8_t tail[16] = {0};
  memcpy(tail, a + k_main, k_size - k_main);
  const int8x16_t flip = vdupq_n_s8((int8_t)p.input_flip);
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 16) {
    const qs8_channel_requant h = qs8_block_header(block, 16);
    const int8_t* w = (const int8_t*)(block + 16 * 4 * sizeof(int32_t));
    int32_t sums[16] = {0};
    for (size_t g = 0; g < 16 && n0 + g < nc; g += 4) {
      const int8_t* w0 = w + g * kc;
      const int8_t* w1 = w0 + kc;
      const int8_t* w2 = w1 + kc;
      const int8_t* w3 = w2 + kc;
      int32x4_t s0 = vdupq_n_s32(0), s1 = s0, s2 = s0, s3 = s0;
      // Past k_size the weights are zero: the tail's lanes there add nothing.
      for (size_t k = 0; k < k_size; k += 16) {
        const int8x16_t va = veorq_s8(vld1q_s8(k < k_main ? a + k : tail), flip);
        s0 = dot16(s0, va, w0 + k);
        s1 = dot16(s1, va, w1 + k);
        s2 = dot16(s2, va, w2 + k);
        s3 = dot16(s3, va, w3 + k);
      }
      vst1q_s32(sums + g, reduce4(s0, s1, s2, s3));
    }
    int8_t out[16];
    for (size_t n = 0; n < 16; n += 8) {
      const int32x4_t v0 = qs8_output_neon(vaddq_s32(vld1q_s32(sums + n), vld1q_s32(h.bias + n)), &h, n, &p);
      const int32x4_t v1 =
          qs8_output_neon(vaddq_s32(vld1q_s32(sums + n + 4), vld1q_s32(h.bias + n + 4)), &h, n + 4, &p);
      vst1_s8(out + n, qs8_narrow8_neon(v0, v1, &p));
    }
    memcpy(c + n0, out, nc - n0 < 16 ? nc - n0 : 16);
    block += 16 * 4 * sizeof(int32_t) + 16 * kc;
  }
}
