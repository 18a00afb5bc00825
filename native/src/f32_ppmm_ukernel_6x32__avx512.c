// AVX-512F 6x32 SGEMM microkernel: 12 zmm accumulators, 2 zmm B rows, 1 broadcast A value.
// Compiled with the avx512 level's flags in its own file; listed for WHITTLE_ISA_AVX512 (cpu/cpu-features.h).
#include <immintrin.h>

#include "f32_train_ops.h"

void f32_ppmm_ukernel_6x32__avx512(size_t kc, const float* a, const float* b, float* c, size_t ldc,
                                   int accumulate) {
  __m512 acc[6][2];
  for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (size_t p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    for (int i = 0; i < 6; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += 6;
    b += 32;
  }
  for (int i = 0; i < 6; i++) {
    float* row = c + (size_t)i * ldc;
    if (accumulate) {
      acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_loadu_ps(row));
      acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, acc[i][0]);
    _mm512_storeu_ps(row + 16, acc[i][1]);
  }
}
