// tern kernels for AVX2 (compile with -mavx2 -mfma): each plane's 8 bits become a lane mask; the sign mask
// flips the float's sign bit, the nonzero mask zeroes the skipped lanes, then one add.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "sign_conv2d_impl.h"

static inline __m256i tern_lane_mask_avx2(uint32_t bits8) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int32_t)bits8), lane_bits), lane_bits);
}

static inline __m256 tern_apply8_avx2(__m256 x, uint32_t nonzero8, uint32_t sign8) {
  const __m256i flip = _mm256_slli_epi32(tern_lane_mask_avx2(sign8), 31);
  const __m256i flipped = _mm256_xor_si256(_mm256_castps_si256(x), flip);
  return _mm256_castsi256_ps(_mm256_and_si256(flipped, tern_lane_mask_avx2(nonzero8)));
}

static float tern_signed_sum_avx2(const float* x, const uint32_t* nonzero, const uint32_t* sign,
                                  size_t row_words, size_t first_bit, size_t n) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const uint32_t nz = bin_load_bits32(nonzero, row_words, first_bit + i);
    const uint32_t neg = bin_load_bits32(sign, row_words, first_bit + i);
    acc0 = _mm256_add_ps(acc0, tern_apply8_avx2(_mm256_loadu_ps(x + i), nz & 0xff, neg & 0xff));
    acc1 = _mm256_add_ps(acc1,
                         tern_apply8_avx2(_mm256_loadu_ps(x + i + 8), (nz >> 8) & 0xff, (neg >> 8) & 0xff));
    acc0 = _mm256_add_ps(
        acc0, tern_apply8_avx2(_mm256_loadu_ps(x + i + 16), (nz >> 16) & 0xff, (neg >> 16) & 0xff));
    acc1 = _mm256_add_ps(acc1, tern_apply8_avx2(_mm256_loadu_ps(x + i + 24), nz >> 24, neg >> 24));
  }
  for (; i + 8 <= n; i += 8) {
    const uint32_t nz = bin_load_bits32(nonzero, row_words, first_bit + i);
    const uint32_t neg = bin_load_bits32(sign, row_words, first_bit + i);
    acc0 = _mm256_add_ps(acc0, tern_apply8_avx2(_mm256_loadu_ps(x + i), nz & 0xff, neg & 0xff));
  }
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  half = _mm_add_ss(half, _mm_movehdup_ps(half));
  float sum = _mm_cvtss_f32(half);
  if (i < n) {
    uint32_t nz = bin_load_bits32(nonzero, row_words, first_bit + i);
    uint32_t neg = bin_load_bits32(sign, row_words, first_bit + i);
    for (; i < n; i++, nz >>= 1, neg >>= 1) {
      if (nz & 1) {
        sum += (neg & 1) ? -x[i] : x[i];
      }
    }
  }
  return sum;
}

// 8 output channels per broadcast activation, 2 independent accumulators.
static inline __m256 tern_select8_avx2(const float* x, const uint32_t* flips, const uint32_t* keeps) {
  const __m256i flipped = _mm256_xor_si256(_mm256_castps_si256(_mm256_broadcast_ss(x)),
                                           _mm256_loadu_si256((const __m256i*)flips));
  return _mm256_castsi256_ps(_mm256_and_si256(flipped, _mm256_loadu_si256((const __m256i*)keeps)));
}

static void tern_block8_span_avx2(const float* x, const uint32_t* flips, const uint32_t* keeps, size_t n,
                                  float* acc) {
  __m256 acc0 = _mm256_loadu_ps(acc);
  __m256 acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 2 <= n; i += 2) {
    acc0 = _mm256_add_ps(acc0, tern_select8_avx2(x + i, flips + 8 * i, keeps + 8 * i));
    acc1 = _mm256_add_ps(acc1, tern_select8_avx2(x + i + 1, flips + 8 * i + 8, keeps + 8 * i + 8));
  }
  if (i < n) {
    acc0 = _mm256_add_ps(acc0, tern_select8_avx2(x + i, flips + 8 * i, keeps + 8 * i));
  }
  _mm256_storeu_ps(acc, _mm256_add_ps(acc0, acc1));
}

TERN_DEFINE_KERNELS_BLOCKED(avx2, tern_signed_sum_avx2, 8, tern_block8_span_avx2)
#endif
