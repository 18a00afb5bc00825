// qf16 and qf8 kernels for ARMv7 NEON and AArch64 Advanced SIMD.
// qf16: two int16 products (each below 2^30 with symmetric weights) are summed exactly in int32 by vmlal,
// then vpadal accumulates pairs of them in int64.
// qf8: vmull.s8 products (|p| <= 2^14) pairwise-added into int32 by vpadal, exact by QF8_MAX_REDUCTION.
#if defined(__arm__) || defined(__aarch64__)
#include <arm_neon.h>

#include "qf_conv2d_impl.h"

static int64_t qf16_dot_neon(const int16_t* x, const int16_t* w, size_t n) {
  int64x2_t acc = vdupq_n_s64(0);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const int16x8_t a = vld1q_s16(x + i);
    const int16x8_t b = vld1q_s16(w + i);
    int32x4_t p = vmull_s16(vget_low_s16(a), vget_low_s16(b));
    p = vmlal_s16(p, vget_high_s16(a), vget_high_s16(b));
    acc = vpadalq_s32(acc, p);
  }
  int64_t sum = vgetq_lane_s64(acc, 0) + vgetq_lane_s64(acc, 1);
  for (; i < n; i++) {
    sum += (int32_t)x[i] * (int32_t)w[i];
  }
  return sum;
}

QF_DEFINE_KERNELS(qf16, neon, qf16_dot_neon)

static int32_t qf8_dot_neon(const int8_t* x, const int8_t* w, size_t n) {
  int32x4_t acc = vdupq_n_s32(0);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const int8x16_t a = vld1q_s8(x + i);
    const int8x16_t b = vld1q_s8(w + i);
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(a), vget_high_s8(b)));
  }
  int32x2_t pair = vadd_s32(vget_low_s32(acc), vget_high_s32(acc));
  int32_t sum = vget_lane_s32(pair, 0) + vget_lane_s32(pair, 1);
  for (; i < n; i++) {
    sum += (int32_t)x[i] * (int32_t)w[i];
  }
  return sum;
}

// 8 output channels per pair of inputs: VLD2 splits the block's weight pairs into the even-k and odd-k
// weights of the 8 channels, and four VMLAL (by scalar) add the products into int32 lanes.
static void qf8_block8_span_neon(const int8_t* x, const int16_t* wt, size_t n, size_t flush, int32_t* acc) {
  (void)flush;  // int32 accumulation is exact by QF8_MAX_REDUCTION
  int32x4_t acc_lo = vld1q_s32(acc);
  int32x4_t acc_hi = vld1q_s32(acc + 4);
  for (size_t i = 0; i < n; i += 2) {
    const int16x8x2_t w = vld2q_s16(wt + 8 * i);
    const int16_t x0 = x[i];
    const int16_t x1 = x[i + 1];
    acc_lo = vmlal_n_s16(acc_lo, vget_low_s16(w.val[0]), x0);
    acc_hi = vmlal_n_s16(acc_hi, vget_high_s16(w.val[0]), x0);
    acc_lo = vmlal_n_s16(acc_lo, vget_low_s16(w.val[1]), x1);
    acc_hi = vmlal_n_s16(acc_hi, vget_high_s16(w.val[1]), x1);
  }
  vst1q_s32(acc, acc_lo);
  vst1q_s32(acc + 4, acc_hi);
}

QF_DEFINE_KERNELS_BLOCKED(qf8, neon, qf8_dot_neon, 8, qf8_block8_span_neon)
#endif
