// The output stage of the int8 kernels, one header per ISA section: requantize int32 accumulators with
// per-channel multiplier and shifts exactly as qs8_requantize_gemmlowp does, add the output zero point and
// clamp. Only the section of the ISA a file is compiled for is visible (by the compiler's target macros).
//
// Why the SIMD versions are exact:
//  - SaturatingRoundingDoublingHighMul(a, b) = floor((a*b + 2^30) / 2^31) for every (a, b) but
//    (INT32_MIN, INT32_MIN), which saturates to INT32_MAX: gemmlowp's "nudge" of 1 - 2^30 for negative
//    products followed by truncating division is that same floor. On x86 the 64-bit product plus 2^30 is
//    shifted right by 31 (bits 31..62 are the result, so a logical shift is fine); NEON's VQRDMULH computes
//    exactly this, saturation included.
//  - RoundingDivideByPOT rounds half away from zero: x86 uses the same mask/threshold arithmetic as the
//    scalar code; NEON's VRSHL rounds half up, so negative values are first decremented (TFLite's fixup).
//  - The zero point is added after clamping to [min - zp, max - zp], which cannot overflow and equals
//    clamp(value + zp, min, max) computed in 64 bits.
#ifndef WHITTLE_QS8_REQUANTIZE_H_
#define WHITTLE_QS8_REQUANTIZE_H_

#include "qs8_ops.h"

// Per-channel requantization constants as stored in a packed block (see qs8_ops.h).
typedef struct qs8_channel_requant {
  const int32_t* bias;
  const int32_t* multiplier;
  const int32_t* left_shift;
  const int32_t* right_shift;
} qs8_channel_requant;

static inline qs8_channel_requant qs8_block_header(const void* block, size_t nr) {
  const int32_t* p = (const int32_t*)block;
  const qs8_channel_requant h = {p, p + nr, p + 2 * nr, p + 3 * nr};
  return h;
}

// Walks the blocks of a packed depthwise weight buffer (the qs8 dwconv and dwconv3x3 kernels: per block of
// cb channels, the header, then `taps` rows of cb int8 weights):
//   for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, cb, taps); b.c0 < channels;
//        qs8_dwconv_next_block(&b))
// b.cols is cb but in a partial last block; b.w may be advanced by the kernel (the walk keeps its own place).
typedef struct qs8_dwconv_block {
  size_t c0, cols;
  qs8_channel_requant h;
  const int8_t* w;
  const unsigned char* at;
  size_t channels, cb, taps;
} qs8_dwconv_block;

static inline void qs8_dwconv_open_block(qs8_dwconv_block* b) {
  if (b->c0 >= b->channels) return;
  b->cols = b->channels - b->c0 < b->cb ? b->channels - b->c0 : b->cb;
  b->h = qs8_block_header(b->at, b->cb);
  b->w = (const int8_t*)(b->at + b->cb * 4 * sizeof(int32_t));
}

static inline qs8_dwconv_block qs8_dwconv_first_block(const void* packed_w, size_t channels, size_t cb,
                                                      size_t taps) {
  qs8_dwconv_block b = {0};
  b.at = (const unsigned char*)packed_w;
  b.channels = channels;
  b.cb = cb;
  b.taps = taps;
  qs8_dwconv_open_block(&b);
  return b;
}

static inline void qs8_dwconv_next_block(qs8_dwconv_block* b) {
  b->c0 += b->cb;
  b->at += b->cb * 4 * sizeof(int32_t) + b->taps * b->cb;
  qs8_dwconv_open_block(b);
}

// Defines the dwconv3x3 kernel `name` (qs8_dwconv3x3_ukernel_fn) over the including file's
// `static inline __attribute__((always_inline)) void run_rows(<the kernel's arguments>, bool
// unsigned_input)`: one copy of run_rows per input signedness, called with a local copy of *params (stores
// through int8_t* may alias *params, which would make the compiler reload and re-broadcast the output-stage
// constants after every store).
#define QS8_DWCONV3X3_KERNEL(name)                                                                           \
  void name(size_t channels, size_t output_rows, size_t output_width, const int8_t* const* rows,             \
            size_t input_width, size_t stride, size_t padding_left, const int8_t* pad, const void* packed_w, \
            int8_t* output, const qs8_gemmlowp_params* params) {                                             \
    const qs8_gemmlowp_params local = *params;                                                               \
    if (local.input_flip != 0) {                                                                             \
      run_rows(channels, output_rows, output_width, rows, input_width, stride, padding_left, pad, packed_w,  \
               output, &local, true);                                                                        \
    } else {                                                                                                 \
      run_rows(channels, output_rows, output_width, rows, input_width, stride, padding_left, pad, packed_w,  \
               output, &local, false);                                                                       \
    }                                                                                                        \
  }

// The residual add's three requantizations (a, b, the output; qs8_add_params) as the SIMD requantizations
// take them: multiplier, and the shift split into its left and right parts.
typedef struct qs8_add_requant {
  int32_t multiplier[3], left_shift[3], right_shift[3];
} qs8_add_requant;

static inline qs8_add_requant qs8_add_requant_of(const qs8_add_params* p) {
  const int32_t multiplier[3] = {p->a_multiplier, p->b_multiplier, p->output_multiplier};
  const int32_t shift[3] = {p->a_shift, p->b_shift, p->output_shift};
  qs8_add_requant r;
  for (int i = 0; i < 3; i++) {
    r.multiplier[i] = multiplier[i];
    r.left_shift[i] = shift[i] > 0 ? shift[i] : 0;
    r.right_shift[i] = shift[i] > 0 ? 0 : -shift[i];
  }
  return r;
}

static inline int8_t qs8_output_scalar(int32_t acc, int32_t multiplier, int32_t left_shift,
                                       int32_t right_shift, const qs8_gemmlowp_params* p) {
  int32_t v = qs8_requantize_gemmlowp(acc, multiplier, left_shift - right_shift);
  const int32_t lo = p->output_min - p->output_zero_point, hi = p->output_max - p->output_zero_point;
  v = v < lo ? lo : (v > hi ? hi : v);
  return (int8_t)(uint8_t)((uint8_t)(int8_t)(v + p->output_zero_point) ^ p->output_flip);
}

#if defined(__AVX2__)
#include <immintrin.h>

static inline __m256i qs8_requantize_avx2(__m256i acc, __m256i multiplier, __m256i left_shift,
                                          __m256i right_shift) {
  const __m256i x = _mm256_sllv_epi32(acc, left_shift);
  const __m256i nudge = _mm256_set1_epi64x(INT64_C(1) << 30);
  const __m256i even = _mm256_add_epi64(_mm256_mul_epi32(x, multiplier), nudge);
  const __m256i odd =
      _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(multiplier, 32)), nudge);
  __m256i high = _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
  const __m256i int_min = _mm256_set1_epi32(INT32_MIN);
  const __m256i saturate =
      _mm256_and_si256(_mm256_cmpeq_epi32(x, int_min), _mm256_cmpeq_epi32(multiplier, int_min));
  high = _mm256_blendv_epi8(high, _mm256_set1_epi32(INT32_MAX), saturate);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right_shift), one);
  const __m256i remainder = _mm256_and_si256(high, mask);
  const __m256i threshold =
      _mm256_sub_epi32(_mm256_srai_epi32(mask, 1), _mm256_cmpgt_epi32(_mm256_setzero_si256(), high));
  return _mm256_sub_epi32(_mm256_srav_epi32(high, right_shift), _mm256_cmpgt_epi32(remainder, threshold));
}

// Requantized, clamped and offset int32 values of 8 channels starting at channel n of a block header.
static inline __m256i qs8_output_avx2(__m256i acc, const qs8_channel_requant* h, size_t n,
                                      const qs8_gemmlowp_params* p) {
  const __m256i v = qs8_requantize_avx2(acc, _mm256_loadu_si256((const __m256i*)(h->multiplier + n)),
                                        _mm256_loadu_si256((const __m256i*)(h->left_shift + n)),
                                        _mm256_loadu_si256((const __m256i*)(h->right_shift + n)));
  const __m256i lo = _mm256_set1_epi32(p->output_min - p->output_zero_point);
  const __m256i hi = _mm256_set1_epi32(p->output_max - p->output_zero_point);
  return _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(v, lo), hi),
                          _mm256_set1_epi32(p->output_zero_point));
}

// 16 int32 (already in int8 range) -> 16 bytes in channel order, flipped for uint8 outputs.
static inline __m128i qs8_narrow16_avx2(__m256i v0, __m256i v1, const qs8_gemmlowp_params* p) {
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), 0xD8);
  const __m128i bytes = _mm_packs_epi16(_mm256_castsi256_si128(packed), _mm256_extracti128_si256(packed, 1));
  return _mm_xor_si128(bytes, _mm_set1_epi8((char)p->output_flip));
}
#endif  // __AVX2__

#if defined(__AVX512F__) && defined(__AVX512BW__)
// `general` false: the caller knows no lane shifts left and no multiplier is INT32_MIN (so no product
// saturates), and the steps for those are left out; with a constant `general` (inlined) the test is free.
static inline __attribute__((always_inline)) __m512i qs8_requantize_avx512_as(__m512i acc, __m512i multiplier,
                                                                              __m512i left_shift,
                                                                              __m512i right_shift,
                                                                              bool general) {
  const __m512i x = general ? _mm512_sllv_epi32(acc, left_shift) : acc;
  const __m512i nudge = _mm512_set1_epi64(INT64_C(1) << 30);
  const __m512i even = _mm512_add_epi64(_mm512_mul_epi32(x, multiplier), nudge);
  const __m512i odd =
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(multiplier, 32)), nudge);
  __m512i high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
  if (general) {
    const __m512i int_min = _mm512_set1_epi32(INT32_MIN);
    const __mmask16 saturate =
        _mm512_cmpeq_epi32_mask(x, int_min) & _mm512_cmpeq_epi32_mask(multiplier, int_min);
    high = _mm512_mask_mov_epi32(high, saturate, _mm512_set1_epi32(INT32_MAX));
  }
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right_shift), one);
  // The scalar test remainder > (mask >> 1) + (high < 0), as remainder - (high < 0) > mask >> 1: the left
  // side is in [-1, mask], no overflow, and the sign term is one arithmetic shift (no mask register).
  const __m512i remainder = _mm512_add_epi32(_mm512_and_si512(high, mask), _mm512_srai_epi32(high, 31));
  const __m512i shifted = _mm512_srav_epi32(high, right_shift);
  return _mm512_mask_add_epi32(shifted, _mm512_cmpgt_epi32_mask(remainder, _mm512_srai_epi32(mask, 1)),
                               shifted, one);
}

static inline __m512i qs8_requantize_avx512(__m512i acc, __m512i multiplier, __m512i left_shift,
                                            __m512i right_shift) {
  return qs8_requantize_avx512_as(acc, multiplier, left_shift, right_shift, true);
}

// The output stage of 16 channels, loaded once for every row of a tile: a kernel's int8 stores may alias
// the header and *params, so the compiler reloads and re-broadcasts them after each store unless they are
// held in registers like this. `zero_point` carries the output flip (+128 for uint8 outputs: adding 128
// before the truncating narrowing flips the byte's top bit, as the XOR does), so qs8_output16_avx512_apply's
// lanes store with qs8_store16_bytes_avx512, with no flip and no reload of *params.
// `general`: some of the 16 channels shift left or have multiplier INT32_MIN (qs8_requantize_avx512_as).
typedef struct qs8_output16_avx512 {
  __m512i multiplier, left_shift, right_shift, lo, hi, zero_point;
  bool general;
} qs8_output16_avx512;

static inline qs8_output16_avx512 qs8_output16_load_avx512(const qs8_channel_requant* h, size_t n,
                                                           const qs8_gemmlowp_params* p) {
  qs8_output16_avx512 o = {_mm512_loadu_si512(h->multiplier + n),
                           _mm512_loadu_si512(h->left_shift + n),
                           _mm512_loadu_si512(h->right_shift + n),
                           _mm512_set1_epi32(p->output_min - p->output_zero_point),
                           _mm512_set1_epi32(p->output_max - p->output_zero_point),
                           _mm512_set1_epi32(p->output_zero_point + (p->output_flip != 0 ? 128 : 0)),
                           true};
  o.general = _mm512_test_epi32_mask(o.left_shift, o.left_shift) != 0 ||
              _mm512_cmpeq_epi32_mask(o.multiplier, _mm512_set1_epi32(INT32_MIN)) != 0;
  return o;
}

// Requantized, clamped, offset (and flipped) lanes, for qs8_store16_bytes_avx512; `general` as in
// qs8_requantize_avx512_as (false only where o->general is false).
static inline __attribute__((always_inline)) __m512i qs8_output16_avx512_apply_as(
    __m512i acc, const qs8_output16_avx512* o, bool general) {
  const __m512i v = qs8_requantize_avx512_as(acc, o->multiplier, o->left_shift, o->right_shift, general);
  return _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v, o->lo), o->hi), o->zero_point);
}

static inline __m512i qs8_output16_avx512_apply(__m512i acc, const qs8_output16_avx512* o) {
  return qs8_output16_avx512_apply_as(acc, o, true);
}

// The low 8 bits of the 16 lanes of v, in a register. The compiler would fold the narrowing into a following
// store (VPMOVDB with a memory operand), which AMD's Zen 4 / Zen 5 run many times slower than VPMOVDB to a
// register and a byte store: the empty asm keeps the narrowed value in a register.
static inline __m128i qs8_narrow16_bytes_avx512(__m512i v) {
  __m128i bytes = _mm512_cvtepi32_epi8(v);
#if defined(__GNUC__)
  __asm__("" : "+v"(bytes));
#endif
  return bytes;
}

// Stores the low `count` (<= 16) lanes of v as bytes (their low 8 bits).
static inline void qs8_store16_bytes_avx512(int8_t* out, __m512i v, size_t count) {
  const __mmask16 m = count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1);
  _mm_mask_storeu_epi8(out, m, qs8_narrow16_bytes_avx512(v));
}

// The output stage of 16 channels starting at channel n of a block header, for qs8_store16_bytes_avx512.
static inline __m512i qs8_output_avx512(__m512i acc, const qs8_channel_requant* h, size_t n,
                                        const qs8_gemmlowp_params* p) {
  const qs8_output16_avx512 o = qs8_output16_load_avx512(h, n, p);
  return qs8_output16_avx512_apply(acc, &o);
}

// The GEMV kernels' blocks of 16 output channels (qs8_gemv_ukernel_fn), 4 rows at a time. Sums of the 16
// int32 lanes of each of a, b, c, d, as the 4 lanes of the result.
static inline __m128i qs8_sum4_avx512(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m256i a8 = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
  const __m256i b8 = _mm256_add_epi32(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1));
  const __m256i c8 = _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
  const __m256i d8 = _mm256_add_epi32(_mm512_castsi512_si256(d), _mm512_extracti64x4_epi64(d, 1));
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a8, b8), _mm256_hadd_epi32(c8, d8));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

// The 4 sums of the next group of rows into lanes 0..3, the block rotated by 4 lanes: after 4 groups, group g
// is in lanes 4g .. 4g + 3.
static inline __m512i qs8_gemv_add_sums_avx512(__m512i sums, __m128i group) {
  const __m512i filled = _mm512_inserti32x4(sums, group, 0);
  return _mm512_alignr_epi32(filled, filled, 4);
}

// Stores the block's `count` (<= 16) outputs: the rotation finished for blocks of fewer than 4 groups, then
// bias, output stage and store.
static inline void qs8_gemv_store_block_avx512(int8_t* out, __m512i sums, size_t count,
                                               const qs8_channel_requant* h, const qs8_gemmlowp_params* p) {
  for (size_t r = (count + 3) / 4; r < 4; r++) sums = _mm512_alignr_epi32(sums, sums, 4);
  const __m512i acc = _mm512_add_epi32(sums, _mm512_loadu_si512(h->bias));
  qs8_store16_bytes_avx512(out, qs8_output_avx512(acc, h, 0, p), count);
}
#endif  // __AVX512F__ && __AVX512BW__

#if defined(__ARM_NEON) || defined(__aarch64__)
#include <arm_neon.h>

static inline int32x4_t qs8_requantize_neon(int32x4_t acc, int32x4_t multiplier, int32x4_t left_shift,
                                            int32x4_t right_shift) {
  const int32x4_t x = vqrdmulhq_s32(vshlq_s32(acc, left_shift), multiplier);
  const int32x4_t negative_shift = vnegq_s32(right_shift);
  // -1 when x < 0 and the shift is non-zero: the sign bit of x & -shift.
  const int32x4_t fixup = vshrq_n_s32(vandq_s32(x, negative_shift), 31);
  return vrshlq_s32(vqaddq_s32(x, fixup), negative_shift);
}

static inline int32x4_t qs8_output_neon(int32x4_t acc, const qs8_channel_requant* h, size_t n,
                                        const qs8_gemmlowp_params* p) {
  const int32x4_t v = qs8_requantize_neon(acc, vld1q_s32(h->multiplier + n), vld1q_s32(h->left_shift + n),
                                          vld1q_s32(h->right_shift + n));
  const int32x4_t lo = vdupq_n_s32(p->output_min - p->output_zero_point);
  const int32x4_t hi = vdupq_n_s32(p->output_max - p->output_zero_point);
  return vaddq_s32(vminq_s32(vmaxq_s32(v, lo), hi), vdupq_n_s32(p->output_zero_point));
}

// 8 int32 (already in int8 range) -> 8 bytes, flipped for uint8 outputs.
static inline int8x8_t qs8_narrow8_neon(int32x4_t v0, int32x4_t v1, const qs8_gemmlowp_params* p) {
  const int8x8_t bytes = vqmovn_s16(vcombine_s16(vqmovn_s32(v0), vqmovn_s32(v1)));
  return veor_s8(bytes, vdup_n_s8((int8_t)p->output_flip));
}
#endif  // NEON

#endif  // WHITTLE_QS8_REQUANTIZE_H_
