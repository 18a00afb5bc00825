// Body of the f32 GEMM kernels MRx32 for AVX-512; each f32_gemm_minmax_ukernel_<MR>x32__avx512.c (and
// f32_igemm_minmax_ukernel_<MR>x32__avx512.c, with WHITTLE_IGEMM: gemm_tile.h) defines MR and the function
// name, then includes this file.
#include <immintrin.h>

#include "f32_ops.h"
#include "gemm_tile.h"

// MR rows x 32 columns = 2 x MR ZMM accumulators; column tails use masked stores, and a block of at most 16
// real columns (a layer of 16 output channels or fewer, as stems and small convolutions have) runs one ZMM
// per row instead of computing 16 zero columns (summing odd k apart: float rounding may differ from the
// 32-column path).
void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const float), const float* w,
                         float* c, size_t c_stride, float min, float max) {
  WHITTLE_GEMM_TILE_ROWS(MR, const float, float);
  const __m512 vmin = _mm512_set1_ps(min), vmax = _mm512_set1_ps(max);
  for (size_t n0 = 0; n0 < nc; n0 += 32) {
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 32);
    if (cols <= 16 && MR > 1) {
      __m512 acc[MR];
      const __m512 b = _mm512_loadu_ps(w);
      for (size_t r = 0; r < MR; r++) acc[r] = b;
      w += 32;
      // MR chains alone would leave the FMA units waiting on their latency: odd k go to a second set.
      __m512 acc_odd[MR];
      for (size_t r = 0; r < MR; r++) acc_odd[r] = _mm512_setzero_ps();
      size_t k = 0;
      for (; k + 2 <= kc; k += 2) {
        const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 32);
        w += 64;
        for (size_t r = 0; r < MR; r++) {
          acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(*WHITTLE_GEMM_A_AT(r, k)), w0, acc[r]);
          acc_odd[r] = _mm512_fmadd_ps(_mm512_set1_ps(*WHITTLE_GEMM_A_AT(r, k + 1)), w1, acc_odd[r]);
        }
      }
      if (k < kc) {
        const __m512 w0 = _mm512_loadu_ps(w);
        w += 32;
        for (size_t r = 0; r < MR; r++)
          acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(*WHITTLE_GEMM_A_AT(r, k)), w0, acc[r]);
      }
      for (size_t r = 0; r < MR; r++) acc[r] = _mm512_add_ps(acc[r], acc_odd[r]);
      const __mmask16 m = (__mmask16)((1u << cols) - 1);
      for (size_t r = 0; r < MR; r++) {
        _mm512_mask_storeu_ps(c_rows[r] + n0, m, _mm512_min_ps(_mm512_max_ps(acc[r], vmin), vmax));
      }
      continue;
    }
    __m512 acc0[MR], acc1[MR];
    const __m512 b0 = _mm512_loadu_ps(w), b1 = _mm512_loadu_ps(w + 16);
    for (size_t r = 0; r < MR; r++) {
      acc0[r] = b0;
      acc1[r] = b1;
    }
    w += 32;
    size_t k = 0;
    if (MR == 1) {
      // One row has only 2 FMA chains, so FMA latency would bound it: a second pair of accumulators takes
      // every other k. (The sum order differs from the MR-row kernel by float rounding only.)
      __m512 acc0_odd = _mm512_setzero_ps(), acc1_odd = _mm512_setzero_ps();
      for (; k + 2 <= kc; k += 2) {
        const __m512 va0 = _mm512_set1_ps(*WHITTLE_GEMM_A_AT(0, k));
        const __m512 va1 = _mm512_set1_ps(*WHITTLE_GEMM_A_AT(0, k + 1));
        acc0[0] = _mm512_fmadd_ps(va0, _mm512_loadu_ps(w), acc0[0]);
        acc1[0] = _mm512_fmadd_ps(va0, _mm512_loadu_ps(w + 16), acc1[0]);
        acc0_odd = _mm512_fmadd_ps(va1, _mm512_loadu_ps(w + 32), acc0_odd);
        acc1_odd = _mm512_fmadd_ps(va1, _mm512_loadu_ps(w + 48), acc1_odd);
        w += 64;
      }
      acc0[0] = _mm512_add_ps(acc0[0], acc0_odd);
      acc1[0] = _mm512_add_ps(acc1[0], acc1_odd);
    }
    for (; k < kc; k++) {
      const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);
      w += 32;
      for (size_t r = 0; r < MR; r++) {
        const __m512 va = _mm512_set1_ps(*WHITTLE_GEMM_A_AT(r, k));
        acc0[r] = _mm512_fmadd_ps(va, w0, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(va, w1, acc1[r]);
      }
    }
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xFFFF : (cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1));
    for (size_t r = 0; r < MR; r++) {
      const __m512 v0 = _mm512_min_ps(_mm512_max_ps(acc0[r], vmin), vmax);
      const __m512 v1 = _mm512_min_ps(_mm512_max_ps(acc1[r], vmin), vmax);
      _mm512_mask_storeu_ps(c_rows[r] + n0, m0, v0);
      _mm512_mask_storeu_ps(c_rows[r] + n0 + 16, m1, v1);
    }
  }
}
