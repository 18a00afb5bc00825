#include <immintrin.h>

#include "f32_ops.h"

// Lanes < n set: the mask of a masked load or store of the first n (<= 8) floats.
static __m256i tail_mask(size_t n) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 8 ? n : 8)), lanes);
}

// A block of 16 channels runs as two halves of 8: the 9 weight vectors of a half, its bias and the clamp
// fit AVX2's 16 registers, so across the row each multiply-add loads only its input.
void f32_dwconv3x3_minmax_ukernel_c16__avx2(size_t channels, size_t output_width, const float* const* rows,
                                            size_t input_width, size_t stride, size_t padding_left,
                                            const float* pad, const float* w, float* output, float min,
                                            float max) {
  const __m256 vmin = _mm256_set1_ps(min), vmax = _mm256_set1_ps(max);
  for (size_t c0 = 0; c0 < channels; c0 += 16) {
    for (size_t h = 0; h < 16 && c0 + h < channels; h += 8) {
      const size_t cols = channels - c0 - h < 8 ? channels - c0 - h : 8;
      const __m256i mask = tail_mask(cols);
      const __m256 bias = _mm256_loadu_ps(w + h);
      __m256 k[9];
      WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) k[t] = _mm256_loadu_ps(w + 16 + t * 16 + h);
      float* out = output + c0 + h;
      ptrdiff_t ix = -(ptrdiff_t)padding_left;
      for (size_t x = 0; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) {
        const void* taps[9];
        whittle_dwconv3x3_taps((const void* const*)rows, pad, channels * sizeof(float), input_width, ix,
                               taps);
        __m256 acc = bias;
        if (cols == 8) {
          WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
            acc = _mm256_fmadd_ps(_mm256_loadu_ps((const float*)taps[t] + c0 + h), k[t], acc);
          }
          _mm256_storeu_ps(out, _mm256_min_ps(_mm256_max_ps(acc, vmin), vmax));
        } else {
          WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
            acc = _mm256_fmadd_ps(_mm256_maskload_ps((const float*)taps[t] + c0 + h, mask), k[t], acc);
          }
          _mm256_maskstore_ps(out, mask, _mm256_min_ps(_mm256_max_ps(acc, vmin), vmax));
        }
      }
    }
    w += 16 * 10;
  }
}
