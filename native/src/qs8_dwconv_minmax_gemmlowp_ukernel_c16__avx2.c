#include <immintrin.h>
#include <string.h>

#include "qs8_requantize.h"

// 16 channels per step. int8 x int8 products fit int16 (|p| <= 2^14), so they are formed with one
// VPMULLW and widened to int32 only for the accumulation.
void qs8_dwconv_minmax_gemmlowp_ukernel_c16__avx2(size_t channels, size_t taps, const int8_t* const* input,
                                                  const void* packed_w, int8_t* output,
                                                  const qs8_gemmlowp_params* params) {
  const __m128i flip = _mm_set1_epi8((char)params->input_flip);
  for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, 16, taps); b.c0 < channels;
       qs8_dwconv_next_block(&b)) {
    __m256i acc0 = _mm256_loadu_si256((const __m256i*)b.h.bias);
    __m256i acc1 = _mm256_loadu_si256((const __m256i*)(b.h.bias + 8));
    for (size_t t = 0; t < taps; t++) {
      __m128i x;
      if (b.cols == 16) {
        x = _mm_loadu_si128((const __m128i*)(input[t] + b.c0));
      } else {
        int8_t tmp[16] = {0};
        memcpy(tmp, input[t] + b.c0, b.cols);
        x = _mm_loadu_si128((const __m128i*)tmp);
      }
      const __m256i vx = _mm256_cvtepi8_epi16(_mm_xor_si128(x, flip));
      const __m256i vw = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)b.w));
      b.w += 16;
      const __m256i product = _mm256_mullo_epi16(vx, vw);
      acc0 = _mm256_add_epi32(acc0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(product)));
      acc1 = _mm256_add_epi32(acc1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(product, 1)));
    }
    const __m128i bytes = qs8_narrow16_avx2(qs8_output_avx2(acc0, &b.h, 0, params),
                                            qs8_output_avx2(acc1, &b.h, 8, params), params);
    if (b.cols == 16) {
      _mm_storeu_si128((__m128i*)(output + b.c0), bytes);
    } else {
      int8_t tmp[16];
      _mm_storeu_si128((__m128i*)tmp, bytes);
      memcpy(output + b.c0, tmp, b.cols);
    }
  }
}
