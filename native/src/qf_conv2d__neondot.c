// qf8 kernels (qf_conv2d.h) for AArch64 with the dot-product extension (Cortex-A76 and later: Raspberry Pi 5,
// recent phones; compile with -march=armv8.2-a+dotprod): SDOT adds four int8 products into each int32 lane,
// exact by QF8_MAX_REDUCTION.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "qf_conv2d_impl.h"

static int32_t qf8_dot_neondot(const int8_t* x, const int8_t* w, size_t n) {
  int32x4_t acc0 = vdupq_n_s32(0);
  int32x4_t acc1 = vdupq_n_s32(0);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = vdotq_s32(acc0, vld1q_s8(x + i), vld1q_s8(w + i));
    acc1 = vdotq_s32(acc1, vld1q_s8(x + i + 16), vld1q_s8(w + i + 16));
  }
  for (; i + 16 <= n; i += 16) {
    acc0 = vdotq_s32(acc0, vld1q_s8(x + i), vld1q_s8(w + i));
  }
  int32_t sum = vaddvq_s32(vaddq_s32(acc0, acc1));
  for (; i < n; i++) {
    sum += (int32_t)x[i] * (int32_t)w[i];
  }
  return sum;
}

QF_DEFINE_KERNELS(qf8, neondot, qf8_dot_neondot)
#endif
