// qf16 kernels for AVX2 (compile with -mavx2 -mfma). vpmaddwd forms exact int32 pair sums (weights are
// symmetric, so no pair reaches 2^31); each is widened to int64 before it is added.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "qf16_conv2d_impl.h"

static int64_t qf16_dot_avx2(const int16_t* x, const int16_t* w, size_t n) {
  __m256i acc_lo = _mm256_setzero_si256();
  __m256i acc_hi = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i pairs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i*)(x + i)),
                                            _mm256_loadu_si256((const __m256i*)(w + i)));
    acc_lo = _mm256_add_epi64(acc_lo, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(pairs)));
    acc_hi = _mm256_add_epi64(acc_hi, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(pairs, 1)));
  }
  const __m256i acc = _mm256_add_epi64(acc_lo, acc_hi);
  const __m128i half = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  int64_t sum = _mm_cvtsi128_si64(half) + _mm_extract_epi64(half, 1);
  for (; i < n; i++) {
    sum += (int32_t)x[i] * (int32_t)w[i];
  }
  return sum;
}

QF16_DEFINE_KERNELS(avx2, qf16_dot_avx2)
#endif
