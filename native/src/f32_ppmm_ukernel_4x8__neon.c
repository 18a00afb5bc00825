// NEON 4x8 SGEMM microkernel over packed panels (ARMv7 NEON and AArch64 Advanced SIMD): 8 Q accumulators,
// 2 Q B rows, 1 broadcast A value per row; 4 rows fit the 16 Q registers of ARMv7. The multiply-add is the
// inference kernels' (f32_mla__neon.h): fused on AArch64, multiply then add on ARMv7.
#include <arm_neon.h>

#include "f32_mla__neon.h"
#include "f32_train_ops.h"

void f32_ppmm_ukernel_4x8__neon(size_t kc, const float* a, const float* b, float* c, size_t ldc,
                                int accumulate) {
  float32x4_t acc0[4], acc1[4];
  for (int i = 0; i < 4; i++) acc0[i] = acc1[i] = vdupq_n_f32(0.0f);
  for (size_t p = 0; p < kc; p++) {
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
    for (int i = 0; i < 4; i++) {
      const float32x4_t ai = vld1q_dup_f32(a + i);
      acc0[i] = WHITTLE_VMLA(acc0[i], ai, b0);
      acc1[i] = WHITTLE_VMLA(acc1[i], ai, b1);
    }
    a += 4;
    b += 8;
  }
  for (int i = 0; i < 4; i++) {
    float* row = c + (size_t)i * ldc;
    if (accumulate) {
      acc0[i] = vaddq_f32(acc0[i], vld1q_f32(row));
      acc1[i] = vaddq_f32(acc1[i], vld1q_f32(row + 4));
    }
    vst1q_f32(row, acc0[i]);
    vst1q_f32(row + 4, acc1[i]);
  }
}
