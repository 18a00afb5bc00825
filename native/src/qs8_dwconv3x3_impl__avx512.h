// Body of the int8 3x3 depthwise row kernels c32 for AVX-512 (qs8_dwconv3x3_..._c32__avx512.c) and AVX-512
// VNNI (..._c32__avx512vnni.c, where VPDPWSSD fuses the multiply-add and the accumulation); each file
// defines WHITTLE_KERNEL_NAME and includes this one.
//
// Two taps at a time: the bytes of taps t and t + 1 of 32 channels are interleaved (VPUNPCK[LH]BW, within
// 128-bit lanes) and widened to int16 pairs, so one VPMADDWD gives x_t * w_t + x_t+1 * w_t+1 per channel in
// int32 (exact: |products| <= 255 * 128). The interleave leaves the accumulators in lane order: `lo` holds
// channels 0-7 and 16-23, `hi` 8-15 and 24-31; the bias is permuted into that order once per block and the
// sums back before the output stage. Weight pairs are formed the same way once per block of a row, from the
// per-pixel kernels' packing. uint8 inputs are zero-extended (their extra 128 * sum(w) comes off the bias).
#include <immintrin.h>

#include "qs8_requantize.h"

// The output stage of qs8_output_avx512 (requantize, clamp, add the zero point: the same operations, so the
// same bits) with every per-channel constant computed once per block of a row instead of once per pixel.
typedef struct {
  __m512i multiplier, multiplier_odd, left_shift, right_shift, remainder_mask, threshold;
  __mmask16 saturating;  // channels whose multiplier is INT32_MIN (the one saturating product)
} output_stage;

static inline output_stage output_stage_of(const qs8_channel_requant* h, size_t n) {
  output_stage o;
  o.multiplier = _mm512_loadu_si512(h->multiplier + n);
  o.multiplier_odd = _mm512_srli_epi64(o.multiplier, 32);
  o.left_shift = _mm512_loadu_si512(h->left_shift + n);
  o.right_shift = _mm512_loadu_si512(h->right_shift + n);
  const __m512i one = _mm512_set1_epi32(1);
  o.remainder_mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, o.right_shift), one);
  o.threshold = _mm512_srai_epi32(o.remainder_mask, 1);
  o.saturating = _mm512_cmpeq_epi32_mask(o.multiplier, _mm512_set1_epi32(INT32_MIN));
  return o;
}

static inline __m512i requantize(__m512i acc, const output_stage* o, __m512i lo, __m512i hi, __m512i zp) {
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
  return _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v, lo), hi), zp);
}

// 16 requantized channels stored as bytes, flipped for uint8 (set for input and output together).
static inline void store16(int8_t* out, __m512i v, __mmask16 mask, bool unsigned_output) {
  __m128i bytes = _mm512_cvtepi32_epi8(v);
  if (unsigned_output) bytes = _mm_xor_si128(bytes, _mm_set1_epi8((char)0x80));
  _mm_mask_storeu_epi8(out, mask, bytes);
}

static inline __m512i widen(__m256i bytes, bool unsigned_input) {
  return unsigned_input ? _mm512_cvtepu8_epi16(bytes) : _mm512_cvtepi8_epi16(bytes);
}

#if defined(__AVX512VNNI__)
#define PAIR_MADD(acc, x, k) _mm512_dpwssd_epi32(acc, x, k)
#else
#define PAIR_MADD(acc, x, k) _mm512_add_epi32(acc, _mm512_madd_epi16(x, k))
#endif

// acc_lo / acc_hi += the 9 taps of one pixel (tap pointers `taps`, channels c0..c0+31 under mask).
#define PIXEL(acc_lo, acc_hi, taps)                                                               \
  do {                                                                                            \
    WHITTLE_UNROLL4 for (size_t pr = 0; pr < 4; pr++) {                                           \
      const __m256i xa = _mm256_maskz_loadu_epi8(mask, (const int8_t*)(taps)[2 * pr] + b.c0);     \
      const __m256i xb = _mm256_maskz_loadu_epi8(mask, (const int8_t*)(taps)[2 * pr + 1] + b.c0); \
      acc_lo = PAIR_MADD(acc_lo, widen(_mm256_unpacklo_epi8(xa, xb), unsigned_input), k_lo[pr]);  \
      acc_hi = PAIR_MADD(acc_hi, widen(_mm256_unpackhi_epi8(xa, xb), unsigned_input), k_hi[pr]);  \
    }                                                                                             \
    const __m256i x8 = _mm256_maskz_loadu_epi8(mask, (const int8_t*)(taps)[8] + b.c0);            \
    acc_lo = PAIR_MADD(acc_lo, widen(_mm256_unpacklo_epi8(x8, zero), unsigned_input), k_lo[4]);   \
    acc_hi = PAIR_MADD(acc_hi, widen(_mm256_unpackhi_epi8(x8, zero), unsigned_input), k_hi[4]);   \
  } while (0)

static inline __attribute__((always_inline)) void row(size_t channels, size_t output_width,
                                                      const int8_t* const* rows, size_t input_width,
                                                      size_t stride, size_t padding_left, const int8_t* pad,
                                                      const void* packed_w, int8_t* output,
                                                      const qs8_gemmlowp_params* params,
                                                      bool unsigned_input) {
  const __m512i idx_lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const __m512i idx_hi = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const __m256i zero = _mm256_setzero_si256();
  const __m512i lo = _mm512_set1_epi32(params->output_min - params->output_zero_point);
  const __m512i hi = _mm512_set1_epi32(params->output_max - params->output_zero_point);
  const __m512i zp = _mm512_set1_epi32(params->output_zero_point);
  for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, 32, 9); b.c0 < channels;
       qs8_dwconv_next_block(&b)) {
    const __mmask32 mask = b.cols >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << b.cols) - 1);
    const __mmask16 m0 = (__mmask16)mask, m1 = (__mmask16)(mask >> 16);
    __m512i k_lo[5], k_hi[5];
    WHITTLE_UNROLL4 for (size_t pr = 0; pr < 4; pr++) {
      const __m256i wa = _mm256_loadu_si256((const __m256i*)(b.w + 2 * pr * 32));
      const __m256i wb = _mm256_loadu_si256((const __m256i*)(b.w + (2 * pr + 1) * 32));
      k_lo[pr] = _mm512_cvtepi8_epi16(_mm256_unpacklo_epi8(wa, wb));
      k_hi[pr] = _mm512_cvtepi8_epi16(_mm256_unpackhi_epi8(wa, wb));
    }
    const __m256i w8 = _mm256_loadu_si256((const __m256i*)(b.w + 8 * 32));
    k_lo[4] = _mm512_cvtepi8_epi16(_mm256_unpacklo_epi8(w8, zero));
    k_hi[4] = _mm512_cvtepi8_epi16(_mm256_unpackhi_epi8(w8, zero));
    __m512i b0 = _mm512_loadu_si512(b.h.bias), b1 = _mm512_loadu_si512(b.h.bias + 16);
    if (unsigned_input) {
      __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
      WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
        s0 = _mm512_add_epi32(s0, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(b.w + t * 32))));
        s1 = _mm512_add_epi32(s1, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(b.w + t * 32 + 16))));
      }
      b0 = _mm512_sub_epi32(b0, _mm512_slli_epi32(s0, 7));
      b1 = _mm512_sub_epi32(b1, _mm512_slli_epi32(s1, 7));
    }
    const __m512i bias_lo = _mm512_permutex2var_epi32(b0, idx_lo, b1);
    const __m512i bias_hi = _mm512_permutex2var_epi32(b0, idx_hi, b1);
    const output_stage stage0 = output_stage_of(&b.h, 0), stage1 = output_stage_of(&b.h, 16);
    int8_t* out = output + b.c0;
    ptrdiff_t ix = -(ptrdiff_t)padding_left;
    size_t x = 0;
    for (; x + 2 <= output_width; x += 2, ix += 2 * (ptrdiff_t)stride, out += 2 * channels) {
      const void *ta[9], *tb[9];
      whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix, ta);
      whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix + (ptrdiff_t)stride,
                             tb);
      __m512i a_lo = bias_lo, a_hi = bias_hi, b_lo = bias_lo, b_hi = bias_hi;
      PIXEL(a_lo, a_hi, ta);
      PIXEL(b_lo, b_hi, tb);
      store16(out, requantize(_mm512_permutex2var_epi32(a_lo, idx_lo, a_hi), &stage0, lo, hi, zp), m0,
              unsigned_input);
      store16(out + 16, requantize(_mm512_permutex2var_epi32(a_lo, idx_hi, a_hi), &stage1, lo, hi, zp), m1,
              unsigned_input);
      store16(out + channels, requantize(_mm512_permutex2var_epi32(b_lo, idx_lo, b_hi), &stage0, lo, hi, zp),
              m0, unsigned_input);
      store16(out + channels + 16,
              requantize(_mm512_permutex2var_epi32(b_lo, idx_hi, b_hi), &stage1, lo, hi, zp), m1,
              unsigned_input);
    }
    if (x < output_width) {
      const void* ta[9];
      whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix, ta);
      __m512i a_lo = bias_lo, a_hi = bias_hi;
      PIXEL(a_lo, a_hi, ta);
      store16(out, requantize(_mm512_permutex2var_epi32(a_lo, idx_lo, a_hi), &stage0, lo, hi, zp), m0,
              unsigned_input);
      store16(out + 16, requantize(_mm512_permutex2var_epi32(a_lo, idx_hi, a_hi), &stage1, lo, hi, zp), m1,
              unsigned_input);
    }
  }
}

#undef PIXEL
#undef PAIR_MADD

QS8_DWCONV3X3_KERNEL(WHITTLE_KERNEL_NAME)
