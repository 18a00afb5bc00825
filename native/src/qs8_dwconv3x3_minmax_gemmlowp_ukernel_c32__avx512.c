#include <immintrin.h>

#include "qs8_requantize.h"

static __mmask16 tail_mask(size_t n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

// Input bytes of 16 channels widened to int32 lanes: sign-extended (int8) or zero-extended (uint8, whose
// extra 128 * sum(w) the caller's bias takes back). VPMADDWD of such a lane with a weight lane (w, 0)
// is exactly x * w, whatever the high half of the input lane holds.
static inline __m512i load16(const int8_t* p, __mmask16 mask, bool unsigned_input) {
  const __m128i bytes = _mm_maskz_loadu_epi8(mask, p);
  return unsigned_input ? _mm512_cvtepu8_epi32(bytes) : _mm512_cvtepi8_epi32(bytes);
}

#define MADD(acc, x, k) _mm512_add_epi32(acc, _mm512_madd_epi16(x, k))

// A block of 32 channels runs as two halves of 16, whose 9 weight vectors stay in registers across the
// row; two pixels at a time.
static inline __attribute__((always_inline)) void row(size_t channels, size_t output_width,
                                                      const int8_t* const* rows, size_t input_width,
                                                      size_t stride, size_t padding_left, const int8_t* pad,
                                                      const void* packed_w, int8_t* output,
                                                      const qs8_gemmlowp_params* params,
                                                      bool unsigned_input) {
  const unsigned char* block = packed_w;
  for (size_t c0 = 0; c0 < channels; c0 += 32) {
    const qs8_channel_requant h = qs8_block_header(block, 32);
    const int8_t* w = (const int8_t*)(block + 32 * 4 * sizeof(int32_t));
    for (size_t half = 0; half < 32 && c0 + half < channels; half += 16) {
      const size_t cols = channels - c0 - half < 16 ? channels - c0 - half : 16;
      const __mmask16 mask = tail_mask(cols);
      // Weight lanes (w, 0): int8 widened to int16, then zero-extended to 32 bits.
      __m512i k[9];
      __m512i sum = _mm512_setzero_si512();
      WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
        const __m128i bytes = _mm_loadu_si128((const __m128i*)(w + t * 32 + half));
        k[t] = _mm512_cvtepu16_epi32(_mm256_cvtepi8_epi16(bytes));
        sum = _mm512_add_epi32(sum, _mm512_cvtepi8_epi32(bytes));
      }
      __m512i bias = _mm512_loadu_si512(h.bias + half);
      if (unsigned_input) bias = _mm512_sub_epi32(bias, _mm512_slli_epi32(sum, 7));
      const size_t c = c0 + half;
      int8_t* out = output + c;
      ptrdiff_t ix = -(ptrdiff_t)padding_left;
      size_t x = 0;
      for (; x + 2 <= output_width; x += 2, ix += 2 * (ptrdiff_t)stride, out += 2 * channels) {
        const void *ta[9], *tb[9];
        whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix, ta);
        whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix + (ptrdiff_t)stride,
                               tb);
        __m512i a = bias, b = bias;
        WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
          a = MADD(a, load16((const int8_t*)ta[t] + c, mask, unsigned_input), k[t]);
          b = MADD(b, load16((const int8_t*)tb[t] + c, mask, unsigned_input), k[t]);
        }
        qs8_store16_avx512(out, qs8_output_avx512(a, &h, half, params), cols, params);
        qs8_store16_avx512(out + channels, qs8_output_avx512(b, &h, half, params), cols, params);
      }
      if (x < output_width) {
        const void* ta[9];
        whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix, ta);
        __m512i a = bias;
        WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
          a = MADD(a, load16((const int8_t*)ta[t] + c, mask, unsigned_input), k[t]);
        }
        qs8_store16_avx512(out, qs8_output_avx512(a, &h, half, params), cols, params);
      }
    }
    block += 32 * 4 * sizeof(int32_t) + 9 * 32;
  }
}

void qs8_dwconv3x3_minmax_gemmlowp_ukernel_c32__avx512(size_t channels, size_t output_width,
                                                       const int8_t* const* rows, size_t input_width,
                                                       size_t stride, size_t padding_left, const int8_t* pad,
                                                       const void* packed_w, int8_t* output,
                                                       const qs8_gemmlowp_params* params) {
  // A local copy: stores through int8_t* may alias *params, which would make the compiler reload (and
  // re-broadcast) the output-stage constants after every store.
  const qs8_gemmlowp_params local = *params;
  if (local.input_flip != 0) {
    row(channels, output_width, rows, input_width, stride, padding_left, pad, packed_w, output, &local, true);
  } else {
    row(channels, output_width, rows, input_width, stride, padding_left, pad, packed_w, output, &local,
        false);
  }
}
