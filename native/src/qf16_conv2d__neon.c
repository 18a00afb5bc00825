// qf16 kernels for ARMv7 NEON and AArch64 Advanced SIMD. Two int16 products (each below 2^30 with symmetric
// weights) are summed exactly in int32 by vmlal, then vpadal accumulates pairs of them in int64.
#if defined(__arm__) || defined(__aarch64__)
#include <arm_neon.h>

#include "qf16_conv2d_impl.h"

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

QF16_DEFINE_KERNELS(neon, qf16_dot_neon)
#endif
