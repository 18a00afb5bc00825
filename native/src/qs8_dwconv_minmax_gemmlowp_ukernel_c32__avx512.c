#include <immintrin.h>

#include "qs8_requantize.h"

// 32 channels per step; masked loads and stores handle the channel tail without reading past it.
void qs8_dwconv_minmax_gemmlowp_ukernel_c32__avx512(size_t channels, size_t taps, const int8_t* const* input,
                                                    const void* packed_w, int8_t* output,
                                                    const qs8_gemmlowp_params* params) {
  const unsigned char* block = packed_w;
  const __m256i flip = _mm256_set1_epi8((char)params->input_flip);
  for (size_t c0 = 0; c0 < channels; c0 += 32) {
    const size_t cols = channels - c0 < 32 ? channels - c0 : 32;
    const __mmask32 mask = cols >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << cols) - 1);
    const qs8_channel_requant h = qs8_block_header(block, 32);
    const int8_t* w = (const int8_t*)(block + 32 * 4 * sizeof(int32_t));
    __m512i acc0 = _mm512_loadu_si512(h.bias), acc1 = _mm512_loadu_si512(h.bias + 16);
    for (size_t t = 0; t < taps; t++) {
      const __m256i x = _mm256_maskz_loadu_epi8(mask, input[t] + c0);
      const __m512i vx = _mm512_cvtepi8_epi16(_mm256_xor_si256(x, flip));
      const __m512i vw = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)w));
      w += 32;
      const __m512i product = _mm512_mullo_epi16(vx, vw);
      acc0 = _mm512_add_epi32(acc0, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(product)));
      acc1 = _mm512_add_epi32(acc1, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(product, 1)));
    }
    qs8_store16_avx512(output + c0, qs8_output_avx512(acc0, &h, 0, params), cols, params);
    if (cols > 16)
      qs8_store16_avx512(output + c0 + 16, qs8_output_avx512(acc1, &h, 16, params), cols - 16, params);
    block += 32 * 4 * sizeof(int32_t) + taps * 32;
  }
}
