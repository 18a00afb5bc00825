// Body of the SIMD SGEMM microkernels over packed panels (f32_train_ops.h: f32_ppmm_ukernel_fn), MR x NR with
// NR = 2 vectors of F32V_W floats: 2 x MR vector accumulators, 2 vector B rows and 1 broadcast A value per
// row. Each f32_ppmm_ukernel_<MR>x<NR>__<isa>.c includes its ISA's vector operations (f32_vec__<isa>.h),
// defines MR and the function name, then includes this file.
#include "f32_train_ops.h"

void WHITTLE_KERNEL_NAME(size_t kc, const float* a, const float* b, float* c, size_t ldc, int accumulate) {
  f32v acc0[MR], acc1[MR];
  for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = F32V_ZERO();
  for (size_t p = 0; p < kc; p++) {
    const f32v b0 = F32V_LOAD(b), b1 = F32V_LOAD(b + F32V_W);
    for (int i = 0; i < MR; i++) {
      const f32v ai = F32V_BCAST(a + i);
      acc0[i] = F32V_FMA(ai, b0, acc0[i]);
      acc1[i] = F32V_FMA(ai, b1, acc1[i]);
    }
    a += MR;
    b += 2 * F32V_W;
  }
  for (int i = 0; i < MR; i++) {
    float* row = c + (size_t)i * ldc;
    if (accumulate) {
      acc0[i] = F32V_ADD(acc0[i], F32V_LOAD(row));
      acc1[i] = F32V_ADD(acc1[i], F32V_LOAD(row + F32V_W));
    }
    F32V_STORE(row, acc0[i]);
    F32V_STORE(row + F32V_W, acc1[i]);
  }
}
