// bin kernels for AVX2 (compile with -mavx2 -mfma): 8 sign bits become a lane mask (broadcast, AND with the
// lane's bit, compare), whose sign bit is XORed into 8 activations before they are added.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "sign_conv2d_impl.h"

static inline __m256 bin_flip8_avx2(__m256 x, uint32_t bits8) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i selected = _mm256_and_si256(_mm256_set1_epi32((int32_t)bits8), lane_bits);
  const __m256i mask = _mm256_slli_epi32(_mm256_cmpeq_epi32(selected, lane_bits), 31);
  return _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(x), mask));
}

static float bin_signed_sum_avx2(const float* x, const uint32_t* nonzero, const uint32_t* row,
                                 size_t row_words, size_t first_bit, size_t n) {
  (void)nonzero;  // NULL: binary weights are never 0
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps();
  __m256 acc3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const uint32_t bits = bin_load_bits32(row, row_words, first_bit + i);
    acc0 = _mm256_add_ps(acc0, bin_flip8_avx2(_mm256_loadu_ps(x + i), bits & 0xff));
    acc1 = _mm256_add_ps(acc1, bin_flip8_avx2(_mm256_loadu_ps(x + i + 8), (bits >> 8) & 0xff));
    acc2 = _mm256_add_ps(acc2, bin_flip8_avx2(_mm256_loadu_ps(x + i + 16), (bits >> 16) & 0xff));
    acc3 = _mm256_add_ps(acc3, bin_flip8_avx2(_mm256_loadu_ps(x + i + 24), bits >> 24));
  }
  for (; i + 8 <= n; i += 8) {
    const uint32_t bits = bin_load_bits32(row, row_words, first_bit + i);
    acc0 = _mm256_add_ps(acc0, bin_flip8_avx2(_mm256_loadu_ps(x + i), bits & 0xff));
  }
  const __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  half = _mm_add_ss(half, _mm_movehdup_ps(half));
  float sum = _mm_cvtss_f32(half);
  if (i < n) {
    uint32_t bits = bin_load_bits32(row, row_words, first_bit + i);
    for (; i < n; i++, bits >>= 1) {
      sum += (bits & 1) ? -x[i] : x[i];
    }
  }
  return sum;
}

// 8 output channels per broadcast activation, 4 independent accumulators to hide the add latency.
static void bin_block8_span_avx2(const float* x, const uint32_t* masks, const uint32_t* keeps, size_t n,
                                 float* acc) {
  (void)keeps;  // NULL: binary weights are never 0
  __m256 acc0 = _mm256_loadu_ps(acc);
  __m256 acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps();
  __m256 acc3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256i* m = (const __m256i*)(masks + 8 * i);
    acc0 = _mm256_add_ps(
        acc0, _mm256_xor_ps(_mm256_broadcast_ss(x + i), _mm256_castsi256_ps(_mm256_loadu_si256(m))));
    acc1 = _mm256_add_ps(
        acc1, _mm256_xor_ps(_mm256_broadcast_ss(x + i + 1), _mm256_castsi256_ps(_mm256_loadu_si256(m + 1))));
    acc2 = _mm256_add_ps(
        acc2, _mm256_xor_ps(_mm256_broadcast_ss(x + i + 2), _mm256_castsi256_ps(_mm256_loadu_si256(m + 2))));
    acc3 = _mm256_add_ps(
        acc3, _mm256_xor_ps(_mm256_broadcast_ss(x + i + 3), _mm256_castsi256_ps(_mm256_loadu_si256(m + 3))));
  }
  for (; i < n; i++) {
    const __m256 m = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)(masks + 8 * i)));
    acc0 = _mm256_add_ps(acc0, _mm256_xor_ps(_mm256_broadcast_ss(x + i), m));
  }
  _mm256_storeu_ps(acc, _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

BIN_DEFINE_KERNELS_BLOCKED(avx2, bin_signed_sum_avx2, 8, bin_block8_span_avx2)
#endif
