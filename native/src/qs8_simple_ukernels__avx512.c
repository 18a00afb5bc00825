// The element-wise and pooling kernels of qs8_simple_impl.h for AVX-512, with a vector quantize loop.
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qs8_requantize.h"

// Quantizes 16 values at a time, the reference's bits: a division per value costs more than the rest of the
// op, so each vector multiplies by 1 / scale instead (relative error under 2^-51 against the quotient) and a
// vector where any product below 1024 in magnitude lies within 1e-9 of a half-integer (a rounding boundary)
// is redone with the division. Elsewhere product and quotient round to the same integer: they are on the same
// side of every boundary. Larger products (whose error may exceed 1e-9) saturate, as do their quotients.
// Scales whose inverse is not a normal double (0, subnormal, huge) divide every vector. Returns the count
// done (a multiple of 16).
static size_t qs8_quantize_vectors__avx512(size_t n, const float* x, void* y, double scale, double zero_point,
                                           bool u) {
  const double inverse = 1.0 / scale;
  const bool multiply = __builtin_isnormal(scale) && __builtin_isnormal(inverse);
  const __m512d vinverse = _mm512_set1_pd(inverse), vscale = _mm512_set1_pd(scale);
  const __m512d vzero_point = _mm512_set1_pd(zero_point);
  const __m512d lo = _mm512_set1_pd(u ? 0.0 : -128.0), hi = _mm512_set1_pd(u ? 255.0 : 127.0);
  const __m512d near = _mm512_set1_pd(0.5 - 1e-9), large = _mm512_set1_pd(1024.0);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xf = _mm512_loadu_ps(x + i);
    __m256i q[2];
    for (int h = 0; h < 2; h++) {
      const __m512d xd =
          _mm512_cvtps_pd(h == 0 ? _mm512_castps512_ps256(xf)
                                 : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xf), 1)));
      __m512d v = multiply ? _mm512_mul_pd(xd, vinverse) : _mm512_div_pd(xd, vscale);
      __m512d r = _mm512_roundscale_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      if (multiply) {
        const __m512d distance = _mm512_abs_pd(_mm512_sub_pd(v, r));
        const __mmask8 boundary = _mm512_mask_cmp_pd_mask(
            _mm512_cmp_pd_mask(_mm512_abs_pd(v), large, _CMP_LT_OQ), distance, near, _CMP_GT_OQ);
        if (boundary != 0) r = _mm512_roundscale_pd(_mm512_div_pd(xd, vscale), _MM_FROUND_TO_NEAREST_INT);
      }
      // NaN stays NaN through the add and max/min with NaN first (they return the second operand), so the
      // ordered mask zeroes it as the reference does.
      v = _mm512_add_pd(r, vzero_point);
      const __mmask8 ordered = _mm512_cmp_pd_mask(v, v, _CMP_ORD_Q);
      v = _mm512_min_pd(_mm512_max_pd(v, lo), hi);
      q[h] = _mm512_maskz_cvtpd_epi32(ordered, v);
    }
    const __m512i q32 = _mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1);
    // The values are in the type's range: the saturating narrowings keep them. Narrowed in a register, not
    // folded into the store (qs8_narrow16_bytes_avx512 says why).
    __m128i bytes = u ? _mm512_cvtusepi32_epi8(q32) : _mm512_cvtsepi32_epi8(q32);
#if defined(__GNUC__)
    __asm__("" : "+v"(bytes));
#endif
    _mm_storeu_si128((__m128i*)((unsigned char*)y + i), bytes);
  }
  return i;
}

// The residual add, 16 elements at a time, with the scalar loop's arithmetic (qs8_add__reference): each
// input's (x - zero_point) << QS8_ADD_LEFT_SHIFT requantized, the sum requantized, offset and clamped.
// `general_in` / `general_out`: whether the inputs' / the output's requantization can shift left or has
// multiplier INT32_MIN (qs8_requantize_avx512_as), constants after inlining. Returns the count done (a
// multiple of 16).
static inline __attribute__((always_inline)) size_t qs8_vadd_vectors_as__avx512(size_t n, const void* a,
                                                                                const void* b, void* y,
                                                                                const qs8_add_params* p,
                                                                                bool u, bool general_in,
                                                                                bool general_out) {
  const qs8_add_requant q = qs8_add_requant_of(p);
  __m512i multiplier[3], left[3], right[3];  // a, b, the output
  for (int i = 0; i < 3; i++) {
    multiplier[i] = _mm512_set1_epi32(q.multiplier[i]);
    left[i] = _mm512_set1_epi32(q.left_shift[i]);
    right[i] = _mm512_set1_epi32(q.right_shift[i]);
  }
  const __m512i a_zero_point = _mm512_set1_epi32(p->a_zero_point),
                b_zero_point = _mm512_set1_epi32(p->b_zero_point);
  // The output zero point is added after clamping to [min - zp, max - zp]: no overflow, the scalar clamp.
  const __m512i lo = _mm512_set1_epi32(p->output_min - p->output_zero_point);
  const __m512i hi = _mm512_set1_epi32(p->output_max - p->output_zero_point);
  const __m512i output_zero_point = _mm512_set1_epi32(p->output_zero_point);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a8 = _mm_loadu_si128((const __m128i*)((const unsigned char*)a + i));
    const __m128i b8 = _mm_loadu_si128((const __m128i*)((const unsigned char*)b + i));
    const __m512i xa = _mm512_slli_epi32(
        _mm512_sub_epi32(u ? _mm512_cvtepu8_epi32(a8) : _mm512_cvtepi8_epi32(a8), a_zero_point),
        QS8_ADD_LEFT_SHIFT);
    const __m512i xb = _mm512_slli_epi32(
        _mm512_sub_epi32(u ? _mm512_cvtepu8_epi32(b8) : _mm512_cvtepi8_epi32(b8), b_zero_point),
        QS8_ADD_LEFT_SHIFT);
    const __m512i sum =
        _mm512_add_epi32(qs8_requantize_avx512_as(xa, multiplier[0], left[0], right[0], general_in),
                         qs8_requantize_avx512_as(xb, multiplier[1], left[1], right[1], general_in));
    __m512i v = qs8_requantize_avx512_as(sum, multiplier[2], left[2], right[2], general_out);
    v = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v, lo), hi), output_zero_point);
    // In the type's range: the truncating narrowing keeps the byte (uint8 values 0..255 included).
    _mm_storeu_si128((__m128i*)((unsigned char*)y + i), qs8_narrow16_bytes_avx512(v));
  }
  return i;
}

static size_t qs8_vadd_vectors__avx512(size_t n, const void* a, const void* b, void* y,
                                       const qs8_add_params* p, bool u) {
  const bool general_in =
      p->a_shift > 0 || p->b_shift > 0 || p->a_multiplier == INT32_MIN || p->b_multiplier == INT32_MIN;
  const bool general_out = p->output_shift > 0 || p->output_multiplier == INT32_MIN;
  if (u) {
    if (general_in) return qs8_vadd_vectors_as__avx512(n, a, b, y, p, true, true, true);
    return general_out ? qs8_vadd_vectors_as__avx512(n, a, b, y, p, true, false, true)
                       : qs8_vadd_vectors_as__avx512(n, a, b, y, p, true, false, false);
  }
  if (general_in) return qs8_vadd_vectors_as__avx512(n, a, b, y, p, false, true, true);
  return general_out ? qs8_vadd_vectors_as__avx512(n, a, b, y, p, false, false, true)
                     : qs8_vadd_vectors_as__avx512(n, a, b, y, p, false, false, false);
}

#define WHITTLE_VADD_VECTORS qs8_vadd_vectors__avx512
#define WHITTLE_QUANTIZE_VECTORS qs8_quantize_vectors__avx512
#define WHITTLE_SUFFIX avx512
#define WHITTLE_SUFFIX_NAME "avx512"
#include "qs8_simple_impl.h"
