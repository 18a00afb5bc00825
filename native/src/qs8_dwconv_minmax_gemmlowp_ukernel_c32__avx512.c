#include <immintrin.h>

#include "qs8_requantize.h"

// 32 channels per step; masked loads and stores handle the channel tail without reading past it.
void qs8_dwconv_minmax_gemmlowp_ukernel_c32__avx512(size_t channels, size_t taps, const int8_t* const* input,
                                                    const void* packed_w, int8_t* output,
                                                    const qs8_gemmlowp_params* params) {
  const __m256i flip = _mm256_set1_epi8((char)params->input_flip);
  for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, 32, taps); b.c0 < channels;
       qs8_dwconv_next_block(&b)) {
    const __mmask32 mask = b.cols >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << b.cols) - 1);
    __m512i acc0 = _mm512_loadu_si512(b.h.bias), acc1 = _mm512_loadu_si512(b.h.bias + 16);
    for (size_t t = 0; t < taps; t++) {
      const __m256i x = _mm256_maskz_loadu_epi8(mask, input[t] + b.c0);
      const __m512i vx = _mm512_cvtepi8_epi16(_mm256_xor_si256(x, flip));
      const __m512i vw = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)b.w));
      b.w += 32;
      const __m512i product = _mm512_mullo_epi16(vx, vw);
      acc0 = _mm512_add_epi32(acc0, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(product)));
      acc1 = _mm512_add_epi32(acc1, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(product, 1)));
    }
    qs8_store16_bytes_avx512(output + b.c0, qs8_output_avx512(acc0, &b.h, 0, params), b.cols);
    if (b.cols > 16)
      qs8_store16_bytes_avx512(output + b.c0 + 16, qs8_output_avx512(acc1, &b.h, 16, params), b.cols - 16);
  }
}
