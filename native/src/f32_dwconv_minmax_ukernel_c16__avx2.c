#include <immintrin.h>

#include "f32_ops.h"

static __m256i tail_mask(size_t n) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), index);
}

// 16 channels per step; tails use masked loads so no byte past the last channel is read.
void f32_dwconv_minmax_ukernel_c16__avx2(size_t channels, size_t taps, const float* const* input,
                                         const float* w, float* output, float min, float max) {
  const __m256 vmin = _mm256_set1_ps(min), vmax = _mm256_set1_ps(max);
  for (size_t c0 = 0; c0 < channels; c0 += 16) {
    const size_t cols = channels - c0 < 16 ? channels - c0 : 16;
    const __m256i m0 = tail_mask(cols), m1 = tail_mask(cols > 8 ? cols - 8 : 0);
    __m256 acc0 = _mm256_loadu_ps(w), acc1 = _mm256_loadu_ps(w + 8);
    w += 16;
    for (size_t t = 0; t < taps; t++) {
      const float* x = input[t] + c0;
      const __m256 x0 = _mm256_maskload_ps(x, m0);
      const __m256 x1 = _mm256_maskload_ps(x + 8, m1);
      acc0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(w), acc0);
      acc1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(w + 8), acc1);
      w += 16;
    }
    acc0 = _mm256_min_ps(_mm256_max_ps(acc0, vmin), vmax);
    acc1 = _mm256_min_ps(_mm256_max_ps(acc1, vmin), vmax);
    _mm256_maskstore_ps(output + c0, m0, acc0);
    _mm256_maskstore_ps(output + c0 + 8, m1, acc1);
  }
}
