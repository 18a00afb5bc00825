// The GEMV body (qs8_gemv_impl.h) on NEON: 16 bytes of A per step; int8 x int8 products fit int16
// (|p| <= 16384) and are added pairwise into int32 (VPADAL). A is int8 (int8, or uint8 ^ input_flip).
#include "qs8_gemv_impl__step16.h"

typedef int32x4_t qs8_gemv_acc;
typedef int8x16_t qs8_gemv_a;

static inline int32x4_t qs8_gemv_dot16(int32x4_t acc, int8x16_t a, const int8_t* w) {
  const int8x16_t b = vld1q_s8(w);
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
  return vpadalq_s16(acc, vmull_s8(vget_high_s8(a), vget_high_s8(b)));
}

// Sums of the 4 int32 lanes of each of s0..s3 into lanes g .. g + 3 (ARMv7 has no VPADDQ).
static inline qs8_gemv_sums qs8_gemv_add_group(qs8_gemv_sums sums, size_t g, int32x4_t s0, int32x4_t s1,
                                               int32x4_t s2, int32x4_t s3) {
  const int32x2_t s01 = vpadd_s32(vpadd_s32(vget_low_s32(s0), vget_high_s32(s0)),
                                  vpadd_s32(vget_low_s32(s1), vget_high_s32(s1)));
  const int32x2_t s23 = vpadd_s32(vpadd_s32(vget_low_s32(s2), vget_high_s32(s2)),
                                  vpadd_s32(vget_low_s32(s3), vget_high_s32(s3)));
  vst1q_s32(sums.v + g, vcombine_s32(s01, s23));
  return sums;
}

static inline void qs8_gemv_store_block(int8_t* c, const qs8_gemv_sums* sums, size_t count,
                                        const qs8_channel_requant* h, const qs8_gemmlowp_params* p) {
  int8_t out[16];
  for (size_t n = 0; n < 16; n += 8) {
    const int32x4_t v0 = qs8_output_neon(vaddq_s32(vld1q_s32(sums->v + n), vld1q_s32(h->bias + n)), h, n, p);
    const int32x4_t v1 =
        qs8_output_neon(vaddq_s32(vld1q_s32(sums->v + n + 4), vld1q_s32(h->bias + n + 4)), h, n + 4, p);
    vst1_s8(out + n, qs8_narrow8_neon(v0, v1, p));
  }
  memcpy(c, out, count);
}

#define QS8_GEMV_LOAD_A(a, tail, p) veorq_s8(vld1q_s8(a), vdupq_n_s8((int8_t)(p)->input_flip))
#define QS8_GEMV_ZERO() vdupq_n_s32(0)
#define QS8_GEMV_DOT(acc, va, w) qs8_gemv_dot16(acc, va, w)
#define QS8_GEMV_ADD(x, y) vaddq_s32(x, y)

#define WHITTLE_KERNEL_NAME qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__neon
#include "qs8_gemv_impl.h"
