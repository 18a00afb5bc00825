#include <immintrin.h>

#include "f32_ops.h"

static __mmask16 tail_mask(size_t n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

void f32_dwconv_minmax_ukernel_c32__avx512(size_t channels, size_t taps, const float* const* input,
                                           const float* w, float* output, float min, float max) {
  const __m512 vmin = _mm512_set1_ps(min), vmax = _mm512_set1_ps(max);
  for (size_t c0 = 0; c0 < channels; c0 += 32) {
    const size_t cols = channels - c0 < 32 ? channels - c0 : 32;
    const __mmask16 m0 = tail_mask(cols), m1 = tail_mask(cols > 16 ? cols - 16 : 0);
    __m512 acc0 = _mm512_loadu_ps(w), acc1 = _mm512_loadu_ps(w + 16);
    w += 32;
    for (size_t t = 0; t < taps; t++) {
      const float* x = input[t] + c0;
      acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, x), _mm512_loadu_ps(w), acc0);
      acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, x + 16), _mm512_loadu_ps(w + 16), acc1);
      w += 32;
    }
    _mm512_mask_storeu_ps(output + c0, m0, _mm512_min_ps(_mm512_max_ps(acc0, vmin), vmax));
    _mm512_mask_storeu_ps(output + c0 + 16, m1, _mm512_min_ps(_mm512_max_ps(acc1, vmin), vmax));
  }
}
