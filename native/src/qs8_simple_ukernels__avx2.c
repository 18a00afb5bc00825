// The element-wise and pooling kernels of qs8_simple_impl.h for AVX2, with a vector residual add.
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qs8_requantize.h"

// The residual add, 8 elements at a time, with the scalar loop's arithmetic (qs8_add__reference): each
// input's (x - zero_point) << QS8_ADD_LEFT_SHIFT requantized, the sum requantized, offset and clamped.
// Returns the count done (a multiple of 8).
static size_t qs8_vadd_vectors__avx2(size_t n, const void* a, const void* b, void* y, const qs8_add_params* p,
                                     bool u) {
  const qs8_add_requant q = qs8_add_requant_of(p);
  __m256i multiplier[3], left[3], right[3];  // a, b, the output
  for (int i = 0; i < 3; i++) {
    multiplier[i] = _mm256_set1_epi32(q.multiplier[i]);
    left[i] = _mm256_set1_epi32(q.left_shift[i]);
    right[i] = _mm256_set1_epi32(q.right_shift[i]);
  }
  const __m256i a_zero_point = _mm256_set1_epi32(p->a_zero_point),
                b_zero_point = _mm256_set1_epi32(p->b_zero_point);
  // The output zero point is added after clamping to [min - zp, max - zp]: no overflow, the scalar clamp.
  const __m256i lo = _mm256_set1_epi32(p->output_min - p->output_zero_point);
  const __m256i hi = _mm256_set1_epi32(p->output_max - p->output_zero_point);
  const __m256i output_zero_point = _mm256_set1_epi32(p->output_zero_point);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i a8 = _mm_loadl_epi64((const __m128i*)((const unsigned char*)a + i));
    const __m128i b8 = _mm_loadl_epi64((const __m128i*)((const unsigned char*)b + i));
    const __m256i xa = _mm256_slli_epi32(
        _mm256_sub_epi32(u ? _mm256_cvtepu8_epi32(a8) : _mm256_cvtepi8_epi32(a8), a_zero_point),
        QS8_ADD_LEFT_SHIFT);
    const __m256i xb = _mm256_slli_epi32(
        _mm256_sub_epi32(u ? _mm256_cvtepu8_epi32(b8) : _mm256_cvtepi8_epi32(b8), b_zero_point),
        QS8_ADD_LEFT_SHIFT);
    const __m256i sum = _mm256_add_epi32(qs8_requantize_avx2(xa, multiplier[0], left[0], right[0]),
                                         qs8_requantize_avx2(xb, multiplier[1], left[1], right[1]));
    __m256i v = qs8_requantize_avx2(sum, multiplier[2], left[2], right[2]);
    v = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(v, lo), hi), output_zero_point);
    // In the type's range: the saturating narrowings keep the values.
    const __m128i v16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i*)((unsigned char*)y + i),
                     u ? _mm_packus_epi16(v16, v16) : _mm_packs_epi16(v16, v16));
  }
  return i;
}

#define WHITTLE_VADD_VECTORS qs8_vadd_vectors__avx2
#define WHITTLE_SUFFIX avx2
#define WHITTLE_SUFFIX_NAME "avx2"
#include "qs8_simple_impl.h"
