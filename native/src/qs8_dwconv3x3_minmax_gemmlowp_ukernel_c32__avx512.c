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

// 16 requantized channels (int32 in the output's range) stored as bytes, flipped for uint8 (which the
// operator sets for input and output together).
static inline void store16(int8_t* out, __m512i v, __mmask16 mask, bool unsigned_output) {
  __m128i bytes = _mm512_cvtepi32_epi8(v);
  if (unsigned_output) bytes = _mm_xor_si128(bytes, _mm_set1_epi8((char)0x80));
  _mm_mask_storeu_epi8(out, mask, bytes);
}

// The output stage of qs8_output_avx512 (requantize, clamp, add the zero point: the same operations, so the
// same bits) with every per-channel constant computed once per block of a row instead of once per pixel.
typedef struct {
  __m512i multiplier, multiplier_odd, left_shift, right_shift, remainder_mask, threshold, lo, hi, zero_point;
  __mmask16 saturating;  // channels whose multiplier is INT32_MIN (the one saturating product)
} output_stage;

static inline output_stage output_stage_of(const qs8_channel_requant* h, size_t n,
                                           const qs8_gemmlowp_params* p) {
  output_stage o;
  o.multiplier = _mm512_loadu_si512(h->multiplier + n);
  o.multiplier_odd = _mm512_srli_epi64(o.multiplier, 32);
  o.left_shift = _mm512_loadu_si512(h->left_shift + n);
  o.right_shift = _mm512_loadu_si512(h->right_shift + n);
  const __m512i one = _mm512_set1_epi32(1);
  o.remainder_mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, o.right_shift), one);
  o.threshold = _mm512_srai_epi32(o.remainder_mask, 1);
  o.lo = _mm512_set1_epi32(p->output_min - p->output_zero_point);
  o.hi = _mm512_set1_epi32(p->output_max - p->output_zero_point);
  o.zero_point = _mm512_set1_epi32(p->output_zero_point);
  o.saturating = _mm512_cmpeq_epi32_mask(o.multiplier, _mm512_set1_epi32(INT32_MIN));
  return o;
}

static inline __m512i requantize(__m512i acc, const output_stage* o) {
  const __m512i x = _mm512_sllv_epi32(acc, o->left_shift);
  const __m512i nudge = _mm512_set1_epi64(INT64_C(1) << 30);
  const __m512i even = _mm512_add_epi64(_mm512_mul_epi32(x, o->multiplier), nudge);
  const __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), o->multiplier_odd), nudge);
  __m512i high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
  const __mmask16 saturate = _mm512_mask_cmpeq_epi32_mask(o->saturating, x, _mm512_set1_epi32(INT32_MIN));
  high = _mm512_mask_mov_epi32(high, saturate, _mm512_set1_epi32(INT32_MAX));
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i remainder = _mm512_and_si512(high, o->remainder_mask);
  const __m512i threshold = _mm512_mask_add_epi32(
      o->threshold, _mm512_cmplt_epi32_mask(high, _mm512_setzero_si512()), o->threshold, one);
  const __m512i shifted = _mm512_srav_epi32(high, o->right_shift);
  const __m512i v =
      _mm512_mask_add_epi32(shifted, _mm512_cmpgt_epi32_mask(remainder, threshold), shifted, one);
  return _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v, o->lo), o->hi), o->zero_point);
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
      const output_stage stage = output_stage_of(&h, half, params);
      const size_t c = c0 + half;
      int8_t* out = output + c;
      ptrdiff_t ix = -(ptrdiff_t)padding_left;
      size_t x = 0;
      // Four pixels at a time: four independent requantizations keep the output stage's long dependency
      // chain from stalling the row.
      for (; x + 4 <= output_width; x += 4, ix += 4 * (ptrdiff_t)stride, out += 4 * channels) {
        __m512i acc[4];
        WHITTLE_UNROLL4 for (size_t i = 0; i < 4; i++) {
          const void* taps[9];
          whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width,
                                 ix + (ptrdiff_t)(i * stride), taps);
          __m512i a = bias;
          WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
            a = MADD(a, load16((const int8_t*)taps[t] + c, mask, unsigned_input), k[t]);
          }
          acc[i] = a;
        }
        WHITTLE_UNROLL4 for (size_t i = 0; i < 4; i++) {
          store16(out + i * channels, requantize(acc[i], &stage), mask, unsigned_input);
        }
      }
      for (; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) {
        const void* taps[9];
        whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix, taps);
        __m512i a = bias;
        WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
          a = MADD(a, load16((const int8_t*)taps[t] + c, mask, unsigned_input), k[t]);
        }
        store16(out, requantize(a, &stage), mask, unsigned_input);
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
