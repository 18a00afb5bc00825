// Body of the f32 GEMM kernels MRx16 for AVX2 (FMA); each f32_gemm_minmax_ukernel_<MR>x16__avx2.c (and
// f32_igemm_minmax_ukernel_<MR>x16__avx2.c, with WHITTLE_IGEMM: gemm_tile.h) defines MR and the function
// name, then includes this file.
#include <immintrin.h>

#include "f32_ops.h"
#include "gemm_tile.h"

// MR rows x 16 columns = 2 x MR YMM accumulators; per k: 2 weight loads, MR broadcasts, 2 x MR FMAs. A block
// of at most 8 real columns (a layer of 8 output channels or fewer, as LeNet's first conv) runs one YMM per
// row instead of computing 8 zero columns; each lane sums in the same order either way.
void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const float), const float* w,
                         float* c, size_t c_stride, float min, float max) {
  WHITTLE_GEMM_TILE_ROWS(MR, const float, float);
  const __m256 vmin = _mm256_set1_ps(min), vmax = _mm256_set1_ps(max);
  for (size_t n0 = 0; n0 < nc; n0 += 16) {
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 16);
    if (cols <= 8 && MR > 1) {
      __m256 acc[MR];
      const __m256 b = _mm256_loadu_ps(w);
      for (size_t r = 0; r < MR; r++) acc[r] = b;
      w += 16;
      for (size_t k = 0; k < kc; k++) {
        const __m256 w0 = _mm256_loadu_ps(w);
        w += 16;
        for (size_t r = 0; r < MR; r++) {
          acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(WHITTLE_GEMM_A_AT(r, k)), w0, acc[r]);
        }
      }
      for (size_t r = 0; r < MR; r++) {
        float tmp[8];
        _mm256_storeu_ps(tmp, _mm256_min_ps(_mm256_max_ps(acc[r], vmin), vmax));
        for (size_t n = 0; n < cols; n++) c_rows[r][n0 + n] = tmp[n];
      }
      continue;
    }
    __m256 acc0[MR], acc1[MR];
    const __m256 b0 = _mm256_loadu_ps(w), b1 = _mm256_loadu_ps(w + 8);
    for (size_t r = 0; r < MR; r++) {
      acc0[r] = b0;
      acc1[r] = b1;
    }
    w += 16;
    size_t k = 0;
    if (MR == 1) {
      // One row has only 2 FMA chains, so FMA latency would bound it: a second pair of accumulators takes
      // every other k. (The sum order differs from the MR-row kernel by float rounding only.)
      __m256 acc0_odd = _mm256_setzero_ps(), acc1_odd = _mm256_setzero_ps();
      for (; k + 2 <= kc; k += 2) {
        const __m256 va0 = _mm256_broadcast_ss(WHITTLE_GEMM_A_AT(0, k));
        const __m256 va1 = _mm256_broadcast_ss(WHITTLE_GEMM_A_AT(0, k + 1));
        acc0[0] = _mm256_fmadd_ps(va0, _mm256_loadu_ps(w), acc0[0]);
        acc1[0] = _mm256_fmadd_ps(va0, _mm256_loadu_ps(w + 8), acc1[0]);
        acc0_odd = _mm256_fmadd_ps(va1, _mm256_loadu_ps(w + 16), acc0_odd);
        acc1_odd = _mm256_fmadd_ps(va1, _mm256_loadu_ps(w + 24), acc1_odd);
        w += 32;
      }
      acc0[0] = _mm256_add_ps(acc0[0], acc0_odd);
      acc1[0] = _mm256_add_ps(acc1[0], acc1_odd);
    }
    for (; k < kc; k++) {
      const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
      w += 16;
      for (size_t r = 0; r < MR; r++) {
        const __m256 va = _mm256_broadcast_ss(WHITTLE_GEMM_A_AT(r, k));
        acc0[r] = _mm256_fmadd_ps(va, w0, acc0[r]);
        acc1[r] = _mm256_fmadd_ps(va, w1, acc1[r]);
      }
    }
    for (size_t r = 0; r < MR; r++) {
      const __m256 v0 = _mm256_min_ps(_mm256_max_ps(acc0[r], vmin), vmax);
      const __m256 v1 = _mm256_min_ps(_mm256_max_ps(acc1[r], vmin), vmax);
      float* out = c_rows[r] + n0;
      if (cols == 16) {
        _mm256_storeu_ps(out, v0);
        _mm256_storeu_ps(out + 8, v1);
      } else {
        float tmp[16];
        _mm256_storeu_ps(tmp, v0);
        _mm256_storeu_ps(tmp + 8, v1);
        for (size_t n = 0; n < cols; n++) out[n] = tmp[n];
      }
    }
  }
}
