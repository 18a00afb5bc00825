#include <immintrin.h>
#include <string.h>

#include "qs8_requantize.h"

// Input bytes of 8 channels widened to int32 lanes: sign-extended (int8) or zero-extended (uint8, whose
// extra 128 * sum(w) the bias takes back). VPMADDWD of such a lane with a weight lane (w, 0) is exactly
// x * w.
static inline __m256i load8(const int8_t* p, size_t cols, bool unsigned_input) {
  __m128i bytes;
  if (cols >= 8) {
    bytes = _mm_loadl_epi64((const __m128i*)p);
  } else {
    int8_t tmp[8] = {0};
    memcpy(tmp, p, cols);
    bytes = _mm_loadl_epi64((const __m128i*)tmp);
  }
  return unsigned_input ? _mm256_cvtepu8_epi32(bytes) : _mm256_cvtepi8_epi32(bytes);
}

// A block of 16 channels runs as two halves of 8, whose 9 weight vectors stay in registers across the rows.
static inline __attribute__((always_inline)) void run_rows(
    size_t channels, size_t output_rows, size_t output_width, const int8_t* const* input_rows,
    size_t input_width, size_t stride, size_t padding_left, const int8_t* pad, const void* packed_w,
    int8_t* output, const qs8_gemmlowp_params* params, bool unsigned_input) {
  for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, 16, 9); b.c0 < channels;
       qs8_dwconv_next_block(&b)) {
    for (size_t half = 0; half < b.cols; half += 8) {
      const size_t cols = b.cols - half < 8 ? b.cols - half : 8;
      __m256i k[9];
      __m256i sum = _mm256_setzero_si256();
      WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
        const __m128i bytes = _mm_loadl_epi64((const __m128i*)(b.w + t * 16 + half));
        k[t] = _mm256_cvtepu16_epi32(_mm_cvtepi8_epi16(bytes));
        sum = _mm256_add_epi32(sum, _mm256_cvtepi8_epi32(bytes));
      }
      __m256i bias = _mm256_loadu_si256((const __m256i*)(b.h.bias + half));
      if (unsigned_input) bias = _mm256_sub_epi32(bias, _mm256_slli_epi32(sum, 7));
      for (size_t y = 0; y < output_rows; y++) {
        const int8_t* const* rows = input_rows + 3 * y;
        int8_t* out = output + y * output_width * channels + b.c0 + half;
        ptrdiff_t ix = -(ptrdiff_t)padding_left;
        for (size_t x = 0; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) {
          const void* taps[9];
          whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix, taps);
          __m256i acc = bias;
          WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
            const __m256i v = load8((const int8_t*)taps[t] + b.c0 + half, cols, unsigned_input);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(v, k[t]));
          }
          const __m256i v = qs8_output_avx2(acc, &b.h, half, params);
          const __m128i bytes = qs8_narrow16_avx2(v, v, params);
          if (cols == 8) {
            _mm_storel_epi64((__m128i*)out, bytes);
          } else {
            int8_t tmp[16];
            _mm_storeu_si128((__m128i*)tmp, bytes);
            memcpy(out, tmp, cols);
          }
        }
      }
    }
  }
}

QS8_DWCONV3X3_KERNEL(qs8_dwconv3x3_minmax_gemmlowp_ukernel_c16__avx2)
