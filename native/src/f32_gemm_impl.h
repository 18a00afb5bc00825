// Body of the SIMD f32 GEMM kernels MR x NR, NR = 2 vectors of F32V_W floats. f32_gemm_impl__<isa>.h includes
// the vector operations of its ISA (f32_vec__<isa>.h, f32_vec.h), then this file; each
// f32_gemm_minmax_ukernel_<MR>x<NR>__<isa>.c (and f32_igemm_minmax_ukernel_<MR>x<NR>__<isa>.c, with
// WHITTLE_IGEMM: gemm_tile.h) defines MR and the function name, then includes that header.
//
// To leave a path out, the ISA header sets F32_GEMM_HALF_BLOCK or F32_GEMM_ONE_ROW_ODD_K as 0 (both 1 by
// default) and F32_GEMM_HALF_ODD_K as 1 (0 by default):
//   HALF_BLOCK: a block of at most F32V_W real columns (a layer with that few output channels, as stems and
//     LeNet's first conv have) runs one vector per row instead of computing F32V_W zero columns; each lane
//     sums in the same order either way, unless HALF_ODD_K, where MR chains alone would leave the FMA units
//     waiting on their latency, so odd k go to a second set (float rounding may differ from the full path).
//   ONE_ROW_ODD_K: with MR = 1 there are only 2 FMA chains, so FMA latency would bound the kernel: a second
//     pair of accumulators takes every other k (the sum order differs from the MR-row kernel by float
//     rounding only).
#include "f32_ops.h"
#include "gemm_tile.h"

#ifndef F32_GEMM_HALF_BLOCK
#define F32_GEMM_HALF_BLOCK 1
#endif
#ifndef F32_GEMM_HALF_ODD_K
#define F32_GEMM_HALF_ODD_K 0
#endif
#ifndef F32_GEMM_ONE_ROW_ODD_K
#define F32_GEMM_ONE_ROW_ODD_K 1
#endif

#define F32_GEMM_NR (2 * F32V_W)

// MR rows x NR columns = 2 x MR vector accumulators; per k: 2 weight loads, MR broadcasts, 2 x MR FMAs.
void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const float), const float* w,
                         float* c, size_t c_stride, float min, float max) {
  WHITTLE_GEMM_TILE_ROWS(MR, const float, float);
  const f32v vmin = F32V_SPLAT(min), vmax = F32V_SPLAT(max);
  for (size_t n0 = 0; n0 < nc; n0 += F32_GEMM_NR) {
    const size_t cols = whittle_gemm_tile_cols(nc, n0, F32_GEMM_NR);
#if F32_GEMM_HALF_BLOCK
    if (cols <= F32V_W && MR > 1) {
      f32v acc[MR];
      const f32v b = F32V_LOAD(w);
      for (size_t r = 0; r < MR; r++) acc[r] = b;
      w += F32_GEMM_NR;
      size_t k = 0;
#if F32_GEMM_HALF_ODD_K
      f32v acc_odd[MR];
      for (size_t r = 0; r < MR; r++) acc_odd[r] = F32V_ZERO();
      for (; k + 2 <= kc; k += 2) {
        const f32v w0 = F32V_LOAD(w), w1 = F32V_LOAD(w + F32_GEMM_NR);
        w += 2 * F32_GEMM_NR;
        for (size_t r = 0; r < MR; r++) {
          acc[r] = F32V_FMA(F32V_BCAST(WHITTLE_GEMM_A_AT(r, k)), w0, acc[r]);
          acc_odd[r] = F32V_FMA(F32V_BCAST(WHITTLE_GEMM_A_AT(r, k + 1)), w1, acc_odd[r]);
        }
      }
#endif
      for (; k < kc; k++) {
        const f32v w0 = F32V_LOAD(w);
        w += F32_GEMM_NR;
        for (size_t r = 0; r < MR; r++) acc[r] = F32V_FMA(F32V_BCAST(WHITTLE_GEMM_A_AT(r, k)), w0, acc[r]);
      }
#if F32_GEMM_HALF_ODD_K
      for (size_t r = 0; r < MR; r++) acc[r] = F32V_ADD(acc[r], acc_odd[r]);
#endif
      for (size_t r = 0; r < MR; r++) f32v_store_n(c_rows[r] + n0, F32V_CLAMP(acc[r], vmin, vmax), cols);
      continue;
    }
#endif
    f32v acc0[MR], acc1[MR];
    const f32v b0 = F32V_LOAD(w), b1 = F32V_LOAD(w + F32V_W);
    for (size_t r = 0; r < MR; r++) {
      acc0[r] = b0;
      acc1[r] = b1;
    }
    w += F32_GEMM_NR;
    size_t k = 0;
#if F32_GEMM_ONE_ROW_ODD_K
    if (MR == 1) {
      f32v acc0_odd = F32V_ZERO(), acc1_odd = F32V_ZERO();
      for (; k + 2 <= kc; k += 2) {
        const f32v va0 = F32V_BCAST(WHITTLE_GEMM_A_AT(0, k));
        const f32v va1 = F32V_BCAST(WHITTLE_GEMM_A_AT(0, k + 1));
        acc0[0] = F32V_FMA(va0, F32V_LOAD(w), acc0[0]);
        acc1[0] = F32V_FMA(va0, F32V_LOAD(w + F32V_W), acc1[0]);
        acc0_odd = F32V_FMA(va1, F32V_LOAD(w + 2 * F32V_W), acc0_odd);
        acc1_odd = F32V_FMA(va1, F32V_LOAD(w + 3 * F32V_W), acc1_odd);
        w += 2 * F32_GEMM_NR;
      }
      acc0[0] = F32V_ADD(acc0[0], acc0_odd);
      acc1[0] = F32V_ADD(acc1[0], acc1_odd);
    }
#endif
    for (; k < kc; k++) {
      const f32v w0 = F32V_LOAD(w), w1 = F32V_LOAD(w + F32V_W);
      w += F32_GEMM_NR;
      for (size_t r = 0; r < MR; r++) {
        const f32v va = F32V_BCAST(WHITTLE_GEMM_A_AT(r, k));
        acc0[r] = F32V_FMA(va, w0, acc0[r]);
        acc1[r] = F32V_FMA(va, w1, acc1[r]);
      }
    }
    for (size_t r = 0; r < MR; r++) {
      float* out = c_rows[r] + n0;
      f32v_store_n(out, F32V_CLAMP(acc0[r], vmin, vmax), cols < F32V_W ? cols : F32V_W);
      f32v_store_n(out + F32V_W, F32V_CLAMP(acc1[r], vmin, vmax), cols > F32V_W ? cols - F32V_W : 0);
    }
  }
}
