#include <immintrin.h>

#include "f32_ops.h"

static __mmask16 tail_mask(size_t n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

// 32 channels per block: 18 weight vectors, the bias and the clamp stay in registers across the row, so
// each multiply-add loads only its input. Two pixels at a time give four independent accumulator chains,
// enough to hide the multiply-add latency.
void f32_dwconv3x3_minmax_ukernel_c32__avx512(size_t channels, size_t output_width, const float* const* rows,
                                              size_t input_width, size_t stride, size_t padding_left,
                                              const float* pad, const float* w, float* output, float min,
                                              float max) {
  const __m512 vmin = _mm512_set1_ps(min), vmax = _mm512_set1_ps(max);
  const size_t pixel_bytes = channels * sizeof(float);
  for (size_t c0 = 0; c0 < channels; c0 += 32) {
    const size_t cols = channels - c0 < 32 ? channels - c0 : 32;
    const __mmask16 m0 = tail_mask(cols), m1 = tail_mask(cols > 16 ? cols - 16 : 0);
    const __m512 b0 = _mm512_loadu_ps(w), b1 = _mm512_loadu_ps(w + 16);
    __m512 k0[9], k1[9];
    WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
      k0[t] = _mm512_loadu_ps(w + 32 + t * 32);
      k1[t] = _mm512_loadu_ps(w + 48 + t * 32);
    }
    w += 32 * 10;
    float* out = output + c0;
    ptrdiff_t ix = -(ptrdiff_t)padding_left;
    size_t x = 0;
    if (cols <= 16) {
      // A block of at most 16 channels (a layer of 16, the last 16 of 48): one vector per pixel, 4 pixels at
      // a time for 4 independent chains, rather than 2 pixels of 2 vectors, one of them all masked.
      for (; x + 4 <= output_width; x += 4, ix += 4 * (ptrdiff_t)stride, out += 4 * channels) {
        const void* t4[4][9];
        WHITTLE_UNROLL4 for (size_t p = 0; p < 4; p++) {
          whittle_dwconv3x3_taps((const void* const*)rows, pad, pixel_bytes, input_width,
                                 ix + (ptrdiff_t)(p * stride), t4[p]);
        }
        __m512 a[4] = {b0, b0, b0, b0};
        WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
          WHITTLE_UNROLL4 for (size_t p = 0; p < 4; p++) {
            a[p] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, (const float*)t4[p][t] + c0), k0[t], a[p]);
          }
        }
        WHITTLE_UNROLL4 for (size_t p = 0; p < 4; p++) {
          _mm512_mask_storeu_ps(out + p * channels, m0, _mm512_min_ps(_mm512_max_ps(a[p], vmin), vmax));
        }
      }
    }
    for (; x + 2 <= output_width; x += 2, ix += 2 * (ptrdiff_t)stride, out += 2 * channels) {
      const void *ta[9], *tb[9];
      whittle_dwconv3x3_taps((const void* const*)rows, pad, pixel_bytes, input_width, ix, ta);
      whittle_dwconv3x3_taps((const void* const*)rows, pad, pixel_bytes, input_width, ix + (ptrdiff_t)stride,
                             tb);
      __m512 a0 = b0, a1 = b1, c0v = b0, c1v = b1;
      WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
        const float* p = (const float*)ta[t] + c0;
        const float* q = (const float*)tb[t] + c0;
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, p), k0[t], a0);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, p + 16), k1[t], a1);
        c0v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, q), k0[t], c0v);
        c1v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, q + 16), k1[t], c1v);
      }
      _mm512_mask_storeu_ps(out, m0, _mm512_min_ps(_mm512_max_ps(a0, vmin), vmax));
      _mm512_mask_storeu_ps(out + 16, m1, _mm512_min_ps(_mm512_max_ps(a1, vmin), vmax));
      _mm512_mask_storeu_ps(out + channels, m0, _mm512_min_ps(_mm512_max_ps(c0v, vmin), vmax));
      _mm512_mask_storeu_ps(out + channels + 16, m1, _mm512_min_ps(_mm512_max_ps(c1v, vmin), vmax));
    }
    if (x < output_width) {
      const void* ta[9];
      whittle_dwconv3x3_taps((const void* const*)rows, pad, pixel_bytes, input_width, ix, ta);
      __m512 a0 = b0, a1 = b1;
      WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
        const float* p = (const float*)ta[t] + c0;
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, p), k0[t], a0);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, p + 16), k1[t], a1);
      }
      _mm512_mask_storeu_ps(out, m0, _mm512_min_ps(_mm512_max_ps(a0, vmin), vmax));
      _mm512_mask_storeu_ps(out + 16, m1, _mm512_min_ps(_mm512_max_ps(a1, vmin), vmax));
    }
  }
}
