// Body of the f32 GEMM kernels MRx8 for NEON (ARMv7 and AArch64); each f32_gemm_minmax_ukernel_<MR>x8__neon.c
// (and f32_igemm_minmax_ukernel_<MR>x8__neon.c, with WHITTLE_IGEMM: gemm_tile.h) defines MR and the function
// name, then includes this file.
#include <arm_neon.h>

#include "f32_mla__neon.h"
#include "f32_ops.h"
#include "gemm_tile.h"

// MR rows x 8 columns = 2 x MR Q accumulators; MR = 4 fits the 16 Q registers of ARMv7.
void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const float), const float* w,
                         float* c, size_t c_stride, float min, float max) {
  WHITTLE_GEMM_TILE_ROWS(MR, const float, float);
  const float32x4_t vmin = vdupq_n_f32(min), vmax = vdupq_n_f32(max);
  for (size_t n0 = 0; n0 < nc; n0 += 8) {
    float32x4_t acc0[MR], acc1[MR];
    const float32x4_t b0 = vld1q_f32(w), b1 = vld1q_f32(w + 4);
    for (size_t r = 0; r < MR; r++) {
      acc0[r] = b0;
      acc1[r] = b1;
    }
    w += 8;
    for (size_t k = 0; k < kc; k++) {
      const float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4);
      w += 8;
      for (size_t r = 0; r < MR; r++) {
        const float32x4_t va = vld1q_dup_f32(WHITTLE_GEMM_A_AT(r, k));
        acc0[r] = WHITTLE_VMLA(acc0[r], va, w0);
        acc1[r] = WHITTLE_VMLA(acc1[r], va, w1);
      }
    }
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 8);
    for (size_t r = 0; r < MR; r++) {
      const float32x4_t v0 = vminq_f32(vmaxq_f32(acc0[r], vmin), vmax);
      const float32x4_t v1 = vminq_f32(vmaxq_f32(acc1[r], vmin), vmax);
      float* out = c_rows[r] + n0;
      if (cols == 8) {
        vst1q_f32(out, v0);
        vst1q_f32(out + 4, v1);
      } else {
        float tmp[8];
        vst1q_f32(tmp, v0);
        vst1q_f32(tmp + 4, v1);
        for (size_t n = 0; n < cols; n++) out[n] = tmp[n];
      }
    }
  }
}
