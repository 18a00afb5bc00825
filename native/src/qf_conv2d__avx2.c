// qf16 and qf8 kernels for AVX2 (compile with -mavx2 -mfma).
// qf16: vpmaddwd forms exact int32 pair sums (weights are symmetric, so no pair reaches 2^31); each is
// widened to int64 before it is added.
// qf8: int8 sign-extended to int16, vpmaddwd pair sums (|pair| <= 2^15) accumulated in int32, exact by
// QF8_MAX_REDUCTION.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "qf_conv2d_impl.h"

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

QF_DEFINE_KERNELS(qf16, avx2, qf16_dot_avx2)

static int32_t qf8_dot_avx2(const int8_t* x, const int8_t* w, size_t n) {
  __m256i acc = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(x + i)));
    const __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(w + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
  }
  __m128i half = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  half = _mm_add_epi32(half, _mm_shuffle_epi32(half, _MM_SHUFFLE(1, 0, 3, 2)));
  half = _mm_add_epi32(half, _mm_shuffle_epi32(half, _MM_SHUFFLE(2, 3, 0, 1)));
  int32_t sum = _mm_cvtsi128_si32(half);
  for (; i < n; i++) {
    sum += (int32_t)x[i] * (int32_t)w[i];
  }
  return sum;
}

// 8 output channels per step: one broadcast pair of inputs (as two int16 in an int32), one vpmaddwd
// against the 8 channels' weight pairs; |pair sum| <= 2^15, int32 accumulation exact by QF8_MAX_REDUCTION.
static void qf8_block8_span_avx2(const int8_t* x, const int16_t* wt, size_t n, size_t flush, int32_t* acc) {
  (void)flush;  // int32 accumulation is exact by QF8_MAX_REDUCTION
  __m256i acc0 = _mm256_loadu_si256((const __m256i*)acc);
  __m256i acc1 = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const int32_t pair0 = (int32_t)(((uint32_t)(uint16_t)x[i + 1] << 16) | (uint16_t)x[i]);
    const int32_t pair1 = (int32_t)(((uint32_t)(uint16_t)x[i + 3] << 16) | (uint16_t)x[i + 2]);
    acc0 = _mm256_add_epi32(
        acc0, _mm256_madd_epi16(_mm256_set1_epi32(pair0), _mm256_loadu_si256((const __m256i*)(wt + 8 * i))));
    acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_set1_epi32(pair1),
                                                    _mm256_loadu_si256((const __m256i*)(wt + 8 * i + 16))));
  }
  for (; i < n; i += 2) {
    const int32_t pair = (int32_t)(((uint32_t)(uint16_t)x[i + 1] << 16) | (uint16_t)x[i]);
    acc0 = _mm256_add_epi32(
        acc0, _mm256_madd_epi16(_mm256_set1_epi32(pair), _mm256_loadu_si256((const __m256i*)(wt + 8 * i))));
  }
  _mm256_storeu_si256((__m256i*)acc, _mm256_add_epi32(acc0, acc1));
}

QF_DEFINE_KERNELS_BLOCKED(qf8, avx2, qf8_dot_avx2, 8, qf8_block8_span_avx2)
#endif
