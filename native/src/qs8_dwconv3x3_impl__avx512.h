// Body of the int8 3x3 depthwise row kernels c32 for AVX-512 (qs8_dwconv3x3_..._c32__avx512.c) and AVX-512
// VNNI (..._c32__avx512vnni.c); each file defines WHITTLE_KERNEL_NAME and includes this one.
//
// Multiply-add, two ways:
//  - VNNI: four taps at a time. The bytes of taps t..t+3 of 32 channels are interleaved into one int32 lane
//    per channel (two 512-bit vectors: channels 0-15 and 16-31, in order) and VPDPBUSD adds the four
//    products. It multiplies unsigned by signed bytes, so inputs are taken as uint8 (int8 inputs flipped by
//    0x80), and 128 * sum(w) comes off the bias. Taps 0-3 and 4-7 are two such groups; tap 8 is zero-extended
//    to one byte per lane. The weights are interleaved once per block of a call (up to 16 rows), by the same
//    steps. At stride 1 and 2 the groups are kernel columns instead (COLUMN: rows 0-2 of one input column and
//    a slot of zero weight), so each input column is interleaved once for the 3 (2) pixels that read it.
//  - AVX-512 without VNNI: two taps at a time. Taps t and t + 1 are interleaved (VPUNPCK[LH]BW, within
//    128-bit lanes) and widened to int16 pairs, so one VPMADDWD gives x_t * w_t + x_t+1 * w_t+1 per channel
//    (|products| <= 255 * 128). The interleave leaves the accumulators in lane order: `lo` holds channels 0-7
//    and 16-23, `hi` 8-15 and 24-31. uint8 inputs are zero-extended (their extra 128 * sum(w) comes off the
//    bias).
// Either way the per-channel constants of the output stage (bias, multipliers, shifts) are permuted into the
// accumulators' lane order once per block of a call, and the narrowing to bytes restores channel order.
//
// The output stage is qs8_requantize_gemmlowp's, bit for bit. For a block whose every channel has a right
// shift s in [1, 22] (no left shift), a multiplier other than INT32_MIN, and an output zero point zp with
// |zp| <= 255 (the usual case), it runs as one rounding of a 64-bit product per lane:
//   out = floor((x * M + 2^30 + 2^(30+s) - 2^31 * [x * M < 0] + zp * 2^(31+s)) / 2^(31+s))
// which is RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, M), s) + zp: the high multiply is
// floor((x * M + 2^30) / 2^31) (no saturation without INT32_MIN), rounding half away from zero of h / 2^s is
// floor((h + 2^(s-1) - [h < 0]) / 2^s), and floor(floor(a / 2^31) + c) / 2^s) = floor((a + c * 2^31) /
// 2^(31+s)) for an integer c. [h < 0] can be [x * M < 0]: they differ only for -2^30 <= x * M < 0, where h is
// 0 and both give 0 (s >= 1). Every term fits in int64 under those bounds, and the result, within 2^30 + 255,
// in int32; it is clamped after the saturating narrowing to bytes (exact, as [min, max] lies in
// [-128, 127]). Other blocks run the step-by-step form of qs8_requantize_avx512.
#include <immintrin.h>

#include "qs8_requantize.h"

// Largest right shift of the one-rounding output stage (zp * 2^(31+s) must stay far below 2^63).
#define QS8_DW_FAST_MAX_SHIFT 22
#define QS8_DW_FAST_MAX_ZERO_POINT 255

#if defined(__AVX512VNNI__)
// Accumulator lanes hold channels in order.
#define ORDER_LO 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
#define ORDER_HI 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
// After VPACKSSDW + VPACKSSWB of (lo, hi), 32-bit group g of lane L holds channels 4L..4L+3 (g = 0, from lo)
// or 16+4L.. (g = 1, from hi): the groups in channel order.
#define NARROW_ORDER 0, 4, 8, 12, 1, 5, 9, 13
#else
#define ORDER_LO 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define ORDER_HI 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define NARROW_ORDER 0, 4, 1, 5, 8, 12, 9, 13
#endif
// _mm512_setr_epi32 of a list macro (expanded before the call).
#define SETR16(...) _mm512_setr_epi32(__VA_ARGS__)

// The output stage of 16 accumulator lanes, constants computed once per block of a call.
typedef struct {
  // One rounding (fast): multipliers of the even / odd lanes in the low half of each 64-bit lane, the
  // rounding and zero-point term, and the shift 31 + s.
  __m512i m_even, m_odd, k_even, k_odd, s_even, s_odd;
  // Step by step (exact): as qs8_requantize_avx512.
  __m512i multiplier, left_shift, right_shift;
} output_stage;

// 32 per-channel int32 constants from `p` (cols valid) in the accumulators' lane order.
static inline void load_ordered(const int32_t* p, __mmask32 mask, __m512i* lo, __m512i* hi) {
  const __m512i c0 = _mm512_maskz_loadu_epi32((__mmask16)mask, p);
  const __m512i c1 = _mm512_maskz_loadu_epi32((__mmask16)(mask >> 16), p + 16);
  *lo = _mm512_permutex2var_epi32(c0, SETR16(ORDER_LO), c1);
  *hi = _mm512_permutex2var_epi32(c0, SETR16(ORDER_HI), c1);
}

// The 64-bit lanes of the even (odd) int32 lanes of v, sign-extended.
static inline __m512i even64(__m512i v) { return _mm512_srai_epi64(_mm512_slli_epi64(v, 32), 32); }
static inline __m512i odd64(__m512i v) { return _mm512_srai_epi64(v, 32); }

// 2^30 + (1 + 2 zp) 2^(30+s) per 64-bit lane (s: 64-bit lanes).
static inline __m512i rounding_term(__m512i s, int32_t zp) {
  const __m512i scaled =
      _mm512_sllv_epi64(_mm512_set1_epi64(1 + 2 * (int64_t)zp), _mm512_add_epi64(s, _mm512_set1_epi64(30)));
  return _mm512_add_epi64(scaled, _mm512_set1_epi64(INT64_C(1) << 30));
}

static inline void output_stages_of(const qs8_channel_requant* h, __mmask32 mask, int32_t zp,
                                    output_stage* lo, output_stage* hi, bool* fast) {
  load_ordered(h->multiplier, mask, &lo->multiplier, &hi->multiplier);
  load_ordered(h->left_shift, mask, &lo->left_shift, &hi->left_shift);
  load_ordered(h->right_shift, mask, &lo->right_shift, &hi->right_shift);
  // Lanes past the block's channels hold zeros: they pass the check below with s = 1.
  const __m512i one = _mm512_set1_epi32(1);
  bool ok = zp >= -QS8_DW_FAST_MAX_ZERO_POINT && zp <= QS8_DW_FAST_MAX_ZERO_POINT;
  output_stage* stages[2] = {lo, hi};
  for (size_t i = 0; i < 2; i++) {
    output_stage* o = stages[i];
    const __m512i s = _mm512_max_epi32(o->right_shift, one);
    const __mmask16 good = _mm512_cmpneq_epi32_mask(o->multiplier, _mm512_set1_epi32(INT32_MIN)) &
                           _mm512_cmple_epi32_mask(s, _mm512_set1_epi32(QS8_DW_FAST_MAX_SHIFT)) &
                           _mm512_cmpeq_epi32_mask(o->left_shift, _mm512_setzero_si512());
    const __mmask16 lanes = _mm512_cmpneq_epi32_mask(o->right_shift, _mm512_setzero_si512()) |
                            _mm512_cmpeq_epi32_mask(o->multiplier, _mm512_setzero_si512());
    // A valid channel with s = 0 fails (lanes past the block have multiplier 0 and pass).
    ok = ok && good == 0xFFFF && lanes == 0xFFFF;
    o->m_even = o->multiplier;
    o->m_odd = _mm512_srli_epi64(o->multiplier, 32);
    const __m512i s_even = even64(s), s_odd = odd64(s);
    o->k_even = rounding_term(s_even, zp);
    o->k_odd = rounding_term(s_odd, zp);
    o->s_even = _mm512_add_epi64(s_even, _mm512_set1_epi64(31));
    o->s_odd = _mm512_add_epi64(s_odd, _mm512_set1_epi64(31));
  }
  *fast = ok;
}

// Requantized accumulators plus the zero point (fast: not clamped; the narrowing clamps).
static inline __m512i output_fast(__m512i acc, const output_stage* o) {
  const __m512i fixup = _mm512_set1_epi64(INT64_C(1) << 31);
  const __m512i pe = _mm512_mul_epi32(acc, o->m_even);
  const __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(acc, 32), o->m_odd);
  __m512i te = _mm512_add_epi64(pe, o->k_even);
  __m512i to = _mm512_add_epi64(po, o->k_odd);
  te = _mm512_mask_sub_epi64(te, _mm512_cmplt_epi64_mask(pe, _mm512_setzero_si512()), te, fixup);
  to = _mm512_mask_sub_epi64(to, _mm512_cmplt_epi64_mask(po, _mm512_setzero_si512()), to, fixup);
  const __m512i re = _mm512_srav_epi64(te, o->s_even);
  const __m512i ro = _mm512_srav_epi64(to, o->s_odd);
  // The odd results' low halves into the odd int32 lanes.
  return _mm512_mask_shuffle_epi32(re, 0xAAAA, ro, _MM_PERM_CDAB);
}

static inline __m512i output_exact(__m512i acc, const output_stage* o, __m512i lo, __m512i hi, __m512i zp) {
  const __m512i v = qs8_requantize_avx512(acc, o->multiplier, o->left_shift, o->right_shift);
  return _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v, lo), hi), zp);
}

// The 32 channels of (lo, hi) as bytes in channel order: saturated to int8, clamped to [min, max], flipped
// for uint8 outputs.
static inline void store32(int8_t* out, __m512i lo, __m512i hi, __mmask32 mask, __m256i min, __m256i max,
                           __m256i flip) {
  const __m512i words = _mm512_packs_epi32(lo, hi);
  const __m512i bytes = _mm512_packs_epi16(words, words);
  __m256i v =
      _mm512_castsi512_si256(_mm512_permutexvar_epi32(SETR16(NARROW_ORDER, 0, 0, 0, 0, 0, 0, 0, 0), bytes));
  v = _mm256_min_epi8(_mm256_max_epi8(v, min), max);
  _mm256_mask_storeu_epi8(out, mask, _mm256_xor_si256(v, flip));
}

#if defined(__AVX512VNNI__)
// 32 bytes from a then 32 from b (channels under the block's mask), as one vector. (Two 512-bit masked
// loads merging into one vector run no faster here, and ASan checks every lane of a masked load: the
// sanitizer builds took minutes.)
static inline __m512i load_pair(const int8_t* a, const int8_t* b, __mmask32 mask) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_maskz_loadu_epi8(mask, a)),
                            _mm256_maskz_loadu_epi8(mask, b), 1);
}

// Taps t0..t3 of 32 channels, p = t0 | t1 and q = t2 | t3, as two vectors of 16 channels x 4 bytes (t0, t2,
// t1, t3), channels in order: VPUNPCK[LH]BW pair t0 with t2 and t1 with t3 within 128-bit lanes (lo:
// channels 0-7 of each 16, hi: 8-15), and one word permute per output joins the two pairs of a channel.
static inline void interleave4(__m512i p, __m512i q, __m512i* lo, __m512i* hi) {
  const __m512i a = _mm512_unpacklo_epi8(p, q);  // words: t0t2 c0-7, t0t2 c16-23, t1t3 c0-7, t1t3 c16-23
  const __m512i b = _mm512_unpackhi_epi8(p, q);  // the same for c8-15 and c24-31
  *lo =
      _mm512_permutex2var_epi16(a,
                                _mm512_set_epi16(55, 39, 54, 38, 53, 37, 52, 36, 51, 35, 50, 34, 49, 33, 48,
                                                 32, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0),
                                b);
  *hi = _mm512_permutex2var_epi16(
      a,
      _mm512_set_epi16(63, 47, 62, 46, 61, 45, 60, 44, 59, 43, 58, 42, 57, 41, 56, 40, 31, 15, 30, 14, 29, 13,
                       28, 12, 27, 11, 26, 10, 25, 9, 24, 8),
      b);
}

// Tap 8 of 32 channels zero-extended to one byte per int32 lane.
static inline void widen1(__m256i t8, __m512i* lo, __m512i* hi) {
  *lo = _mm512_cvtepu8_epi32(_mm256_castsi256_si128(t8));
  *hi = _mm512_cvtepu8_epi32(_mm256_extracti128_si256(t8, 1));
}

// Column c of the three rows (or the padding pixel outside [0, input_width)) of 32 channels as two vectors
// of 16 channels x 4 bytes (rows 0, 2, 1 and a zero-weight slot; interleave4's order): what the column
// weights (COLUMN_WEIGHTS) multiply. At stride 1 a column serves three output pixels, at stride 2 its even
// columns serve two, so it is interleaved once for all of them.
#define COLUMN(c, col_lo, col_hi)                                                                  \
  do {                                                                                             \
    const bool inside_ = (c) >= 0 && (c) < (ptrdiff_t)input_width;                                 \
    const size_t at_ = inside_ ? (size_t)(c)*channels : 0;                                         \
    const int8_t* r0_ = inside_ ? rows[0] + at_ : pad;                                             \
    const int8_t* r1_ = inside_ ? rows[1] + at_ : pad;                                             \
    const int8_t* r2_ = inside_ ? rows[2] + at_ : pad;                                             \
    const __m512i q_ = _mm512_zextsi256_si512(                                                     \
        _mm256_xor_si256(_mm256_maskz_loadu_epi8(mask, LOAD(r2_)), _mm512_castsi512_si256(flip))); \
    interleave4(PAIR(r0_, r1_), q_, &(col_lo), &(col_hi));                                         \
  } while (0)

// The weights of kernel column j (taps j, 3 + j, 6 + j and a zero) in the layout of COLUMN.
#define COLUMN_WEIGHTS(j, kc_lo, kc_hi)                                                                      \
  interleave4(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(b.w + (j)*32))), \
                                 _mm256_loadu_si256((const __m256i*)(b.w + (3 + (j)) * 32)), 1),             \
              _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i*)(b.w + (6 + (j)) * 32))), &(kc_lo),  \
              &(kc_hi))

#define LOAD(p) ((const int8_t*)(p) + b.c0)
#define PAIR(t, u) _mm512_xor_si512(load_pair(LOAD(t), LOAD(u), mask), flip)

// acc_lo / acc_hi += the 9 taps of one pixel (tap pointers `taps`).
#define PIXEL(acc_lo, acc_hi, taps)                                                                        \
  do {                                                                                                     \
    __m512i g_lo, g_hi;                                                                                    \
    interleave4(PAIR((taps)[0], (taps)[1]), PAIR((taps)[2], (taps)[3]), &g_lo, &g_hi);                     \
    acc_lo = _mm512_dpbusd_epi32(acc_lo, g_lo, k_lo[0]);                                                   \
    acc_hi = _mm512_dpbusd_epi32(acc_hi, g_hi, k_hi[0]);                                                   \
    interleave4(PAIR((taps)[4], (taps)[5]), PAIR((taps)[6], (taps)[7]), &g_lo, &g_hi);                     \
    acc_lo = _mm512_dpbusd_epi32(acc_lo, g_lo, k_lo[1]);                                                   \
    acc_hi = _mm512_dpbusd_epi32(acc_hi, g_hi, k_hi[1]);                                                   \
    widen1(_mm256_xor_si256(_mm256_maskz_loadu_epi8(mask, LOAD((taps)[8])), _mm512_castsi512_si256(flip)), \
           &g_lo, &g_hi);                                                                                  \
    acc_lo = _mm512_dpbusd_epi32(acc_lo, g_lo, k_lo[2]);                                                   \
    acc_hi = _mm512_dpbusd_epi32(acc_hi, g_hi, k_hi[2]);                                                   \
  } while (0)

// The block's weights in the layout of PIXEL, and the bias less 128 * sum(w) (inputs are taken as uint8).
#define BLOCK_WEIGHTS()                                                                    \
  __m512i k_lo[3], k_hi[3];                                                                \
  const __m512i flip = _mm512_set1_epi8(unsigned_input ? 0 : (char)0x80);                  \
  {                                                                                        \
    const __m512i* w = (const __m512i*)b.w; /* taps 0 | 1, 2 | 3, ... */                   \
    interleave4(_mm512_loadu_si512(w), _mm512_loadu_si512(w + 1), &k_lo[0], &k_hi[0]);     \
    interleave4(_mm512_loadu_si512(w + 2), _mm512_loadu_si512(w + 3), &k_lo[1], &k_hi[1]); \
    widen1(_mm256_loadu_si256((const __m256i*)(b.w + 8 * 32)), &k_lo[2], &k_hi[2]);        \
  }                                                                                        \
  __m512i bias_lo, bias_hi;                                                                \
  load_ordered(b.h.bias, mask, &bias_lo, &bias_hi);                                        \
  {                                                                                        \
    const __m512i u128 = _mm512_set1_epi8((char)0x80);                                     \
    __m512i s_lo = _mm512_setzero_si512(), s_hi = _mm512_setzero_si512();                  \
    for (size_t g = 0; g < 3; g++) {                                                       \
      s_lo = _mm512_dpbusd_epi32(s_lo, u128, k_lo[g]);                                     \
      s_hi = _mm512_dpbusd_epi32(s_hi, u128, k_hi[g]);                                     \
    }                                                                                      \
    bias_lo = _mm512_sub_epi32(bias_lo, s_lo);                                             \
    bias_hi = _mm512_sub_epi32(bias_hi, s_hi);                                             \
  }
#else
static inline __m512i widen(__m256i bytes, bool unsigned_input) {
  return unsigned_input ? _mm512_cvtepu8_epi16(bytes) : _mm512_cvtepi8_epi16(bytes);
}

#define PAIR_MADD(acc, x, k) _mm512_add_epi32(acc, _mm512_madd_epi16(x, k))

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

// Weight pairs in the layout of PIXEL, and the bias less 128 * sum(w) for uint8 inputs (zero-extended).
#define BLOCK_WEIGHTS()                                                                                      \
  const __m256i zero = _mm256_setzero_si256();                                                               \
  __m512i k_lo[5], k_hi[5];                                                                                  \
  WHITTLE_UNROLL4 for (size_t pr = 0; pr < 4; pr++) {                                                        \
    const __m256i wa = _mm256_loadu_si256((const __m256i*)(b.w + 2 * pr * 32));                              \
    const __m256i wb = _mm256_loadu_si256((const __m256i*)(b.w + (2 * pr + 1) * 32));                        \
    k_lo[pr] = _mm512_cvtepi8_epi16(_mm256_unpacklo_epi8(wa, wb));                                           \
    k_hi[pr] = _mm512_cvtepi8_epi16(_mm256_unpackhi_epi8(wa, wb));                                           \
  }                                                                                                          \
  const __m256i w8 = _mm256_loadu_si256((const __m256i*)(b.w + 8 * 32));                                     \
  k_lo[4] = _mm512_cvtepi8_epi16(_mm256_unpacklo_epi8(w8, zero));                                            \
  k_hi[4] = _mm512_cvtepi8_epi16(_mm256_unpackhi_epi8(w8, zero));                                            \
  __m512i b0 = _mm512_loadu_si512(b.h.bias), b1 = _mm512_loadu_si512(b.h.bias + 16);                         \
  if (unsigned_input) {                                                                                      \
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();                                        \
    WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {                                                         \
      s0 = _mm512_add_epi32(s0, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(b.w + t * 32))));      \
      s1 = _mm512_add_epi32(s1, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(b.w + t * 32 + 16)))); \
    }                                                                                                        \
    b0 = _mm512_sub_epi32(b0, _mm512_slli_epi32(s0, 7));                                                     \
    b1 = _mm512_sub_epi32(b1, _mm512_slli_epi32(s1, 7));                                                     \
  }                                                                                                          \
  const __m512i bias_lo = _mm512_permutex2var_epi32(b0, SETR16(ORDER_LO), b1);                               \
  const __m512i bias_hi = _mm512_permutex2var_epi32(b0, SETR16(ORDER_HI), b1);
#endif

// The pixels of one block of every row (the block's weights and constants set up once): by columns (VNNI,
// stride 1 or 2), or two at a time, then the last one.
static inline __attribute__((always_inline)) void block_rows(
    size_t channels, size_t output_rows, size_t output_width, const int8_t* const* input_rows,
    size_t input_width, size_t stride, size_t padding_left, const int8_t* pad, int8_t* first_output,
    const qs8_gemmlowp_params* params, bool unsigned_input, const qs8_dwconv_block* block, __mmask32 mask,
    const output_stage* stages, bool fast) {
  const qs8_dwconv_block b = *block;
  BLOCK_WEIGHTS()
  const output_stage stage_lo = stages[0], stage_hi = stages[1];
  const __m512i lo = _mm512_set1_epi32(params->output_min - params->output_zero_point);
  const __m512i hi = _mm512_set1_epi32(params->output_max - params->output_zero_point);
  const __m512i zp = _mm512_set1_epi32(params->output_zero_point);
  const __m256i min = _mm256_set1_epi8((char)params->output_min);
  const __m256i max = _mm256_set1_epi8((char)params->output_max);
  const __m256i out_flip = _mm256_set1_epi8((char)params->output_flip);
#define OUTPUT(acc, stage) (fast ? output_fast(acc, &stage) : output_exact(acc, &stage, lo, hi, zp))
#if defined(__AVX512VNNI__)
  __m512i kc_lo[3], kc_hi[3];  // the column weights (COLUMN_WEIGHTS)
  WHITTLE_UNROLL3 for (size_t j = 0; j < 3; j++) COLUMN_WEIGHTS(j, kc_lo[j], kc_hi[j]);
#endif
  for (size_t y = 0; y < output_rows; y++) {
    const int8_t* const* rows = input_rows + 3 * y;
    int8_t* const output = first_output + y * output_width * channels;
    // Left border pixels one at a time (their taps through whittle_dwconv3x3_taps), then the pixels whose
    // taps all lie in the rows two at a time (taps at fixed offsets from one column), then the rest.
    int8_t* out = output + b.c0;
    ptrdiff_t ix = -(ptrdiff_t)padding_left;
    size_t x = 0;
#define ONE_PIXEL()                                                                         \
  do {                                                                                      \
    const void* ta[9];                                                                      \
    whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix, ta);   \
    __m512i a_lo = bias_lo, a_hi = bias_hi;                                                 \
    PIXEL(a_lo, a_hi, ta);                                                                  \
    store32(out, OUTPUT(a_lo, stage_lo), OUTPUT(a_hi, stage_hi), mask, min, max, out_flip); \
  } while (0)
#if defined(__AVX512VNNI__)
    if (channels != 16 && (stride == 1 || stride == 2)) {
      // By columns: output pixel x sums kernel columns j = 0..2 over input columns ix + j, each column of
      // the three rows interleaved once (COLUMN) and multiplied by that kernel column's weights, 3 VPDPBUSD
      // per 16 channels. Stride 1 reuses the last two columns of the previous pixel, stride 2 the last one.
      // The sums are the same integers as PIXEL's (int32 adds of the same products, no overflow).
      __m512i c0_lo, c0_hi, c1_lo = bias_lo, c1_hi = bias_hi, c2_lo, c2_hi;  // c1: set before any use
      COLUMN(ix, c0_lo, c0_hi);
      if (stride == 1) COLUMN(ix + 1, c1_lo, c1_hi);
      for (; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) {
        if (stride != 1) COLUMN(ix + 1, c1_lo, c1_hi);
        COLUMN(ix + 2, c2_lo, c2_hi);
        __m512i a_lo = _mm512_dpbusd_epi32(bias_lo, c0_lo, kc_lo[0]);
        __m512i a_hi = _mm512_dpbusd_epi32(bias_hi, c0_hi, kc_hi[0]);
        a_lo = _mm512_dpbusd_epi32(a_lo, c1_lo, kc_lo[1]);
        a_hi = _mm512_dpbusd_epi32(a_hi, c1_hi, kc_hi[1]);
        a_lo = _mm512_dpbusd_epi32(a_lo, c2_lo, kc_lo[2]);
        a_hi = _mm512_dpbusd_epi32(a_hi, c2_hi, kc_hi[2]);
        store32(out, OUTPUT(a_lo, stage_lo), OUTPUT(a_hi, stage_hi), mask, min, max, out_flip);
        if (stride == 1) {
          c0_lo = c1_lo, c0_hi = c1_hi;
          c1_lo = c2_lo, c1_hi = c2_hi;
        } else {
          c0_lo = c2_lo, c0_hi = c2_hi;
        }
      }
      continue;
    }
#endif
    for (; x < output_width && ix < 0; x++, ix += (ptrdiff_t)stride, out += channels) ONE_PIXEL();
#if defined(__AVX512VNNI__)
    if (channels == 16 && stride == 1) {
      // 16 channels at stride 1: a 32-byte tap load holds that tap of two adjacent pixels, so the upper 16
      // lanes compute the next pixel with the weights and constants of the lower ones (the names below
      // shadow the block's); four pixels a step.
      const __m512i* const k_hi = k_lo;
      const __mmask32 mask = 0xFFFFFFFFu;
      for (; x + 4 <= output_width && ix + 5 < (ptrdiff_t)input_width; x += 4, ix += 4, out += 64) {
        const int8_t *ta[9], *tb[9];
        WHITTLE_UNROLL3 for (size_t i = 0; i < 3; i++) {
          WHITTLE_UNROLL3 for (size_t j = 0; j < 3; j++) {
            ta[i * 3 + j] = rows[i] + ((size_t)ix + j) * 16;
            tb[i * 3 + j] = ta[i * 3 + j] + 32;
          }
        }
        __m512i a_lo = bias_lo, a_hi = bias_lo, b_lo = bias_lo, b_hi = bias_lo;
        PIXEL(a_lo, a_hi, ta);
        PIXEL(b_lo, b_hi, tb);
        store32(out, OUTPUT(a_lo, stage_lo), OUTPUT(a_hi, stage_lo), mask, min, max, out_flip);
        store32(out + 32, OUTPUT(b_lo, stage_lo), OUTPUT(b_hi, stage_lo), mask, min, max, out_flip);
      }
    }
#endif
    for (; x + 2 <= output_width && ix + (ptrdiff_t)stride + 2 < (ptrdiff_t)input_width;
         x += 2, ix += 2 * (ptrdiff_t)stride, out += 2 * channels) {
      const int8_t *ta[9], *tb[9];
      WHITTLE_UNROLL3 for (size_t i = 0; i < 3; i++) {
        WHITTLE_UNROLL3 for (size_t j = 0; j < 3; j++) {
          ta[i * 3 + j] = rows[i] + ((size_t)ix + j) * channels;
          tb[i * 3 + j] = ta[i * 3 + j] + stride * channels;
        }
      }
      __m512i a_lo = bias_lo, a_hi = bias_hi, b_lo = bias_lo, b_hi = bias_hi;
      PIXEL(a_lo, a_hi, ta);
      PIXEL(b_lo, b_hi, tb);
      store32(out, OUTPUT(a_lo, stage_lo), OUTPUT(a_hi, stage_hi), mask, min, max, out_flip);
      store32(out + channels, OUTPUT(b_lo, stage_lo), OUTPUT(b_hi, stage_hi), mask, min, max, out_flip);
    }
    for (; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) ONE_PIXEL();
  }
#undef ONE_PIXEL
#undef OUTPUT
}

static inline __attribute__((always_inline)) void run_rows(
    size_t channels, size_t output_rows, size_t output_width, const int8_t* const* rows, size_t input_width,
    size_t stride, size_t padding_left, const int8_t* pad, const void* packed_w, int8_t* output,
    const qs8_gemmlowp_params* params, bool unsigned_input) {
  for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, 32, 9); b.c0 < channels;
       qs8_dwconv_next_block(&b)) {
    const __mmask32 mask = b.cols >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << b.cols) - 1);
    output_stage stages[2];
    bool fast;
    output_stages_of(&b.h, mask, params->output_zero_point, &stages[0], &stages[1], &fast);
    block_rows(channels, output_rows, output_width, rows, input_width, stride, padding_left, pad, output,
               params, unsigned_input, &b, mask, stages, fast);
  }
}

#undef PIXEL
#undef COLUMN
#undef COLUMN_WEIGHTS
#undef LOAD
#undef PAIR
#undef PAIR_MADD
#undef BLOCK_WEIGHTS
#undef ORDER_LO
#undef ORDER_HI
#undef NARROW_ORDER
#undef SETR16

QS8_DWCONV3X3_KERNEL(WHITTLE_KERNEL_NAME)
