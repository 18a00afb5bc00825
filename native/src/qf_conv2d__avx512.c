// qf16 kernels for AVX-512 (compile with -mavx512f -mavx512bw -mavx512vl): 16 output channels per step, one
// broadcast pair of int16 inputs against the 16 channels' weight pairs through one vpmaddwd; the int32 pair
// sums add up to `flush` pairs (qf16_conv2d_drive_blocked) before they are widened into int64 accumulators,
// so the result is the exact sum of the scalar path. The one-channel and depthwise paths keep a 512-bit dot.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <string.h>

#include "qf_conv2d_impl.h"

// Two consecutive int16 inputs as one int32 lane (x[0] low), broadcast.
static inline __m512i qf16_broadcast_pair(const int16_t* x) {
  int32_t pair;
  memcpy(&pair, x, sizeof(pair));
  return _mm512_set1_epi32(pair);
}

static int64_t qf16_dot_avx512(const int16_t* x, const int16_t* w, size_t n) {
  if (n < 32) {
    return qf16_dot_scalar(x, w, n);  // short spans (a few input channels): no vector setup and reduction
  }
  __m512i acc_lo = _mm512_setzero_si512();
  __m512i acc_hi = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i pairs = _mm512_madd_epi16(_mm512_loadu_si512(x + i), _mm512_loadu_si512(w + i));
    acc_lo = _mm512_add_epi64(acc_lo, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(pairs)));
    acc_hi = _mm512_add_epi64(acc_hi, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(pairs, 1)));
  }
  int64_t sum = _mm512_reduce_add_epi64(_mm512_add_epi64(acc_lo, acc_hi));
  for (; i < n; i++) {
    sum += (int32_t)x[i] * (int32_t)w[i];
  }
  return sum;
}

static inline void qf16_widen_add(__m512i sums, __m512i* lo, __m512i* hi) {
  *lo = _mm512_add_epi64(*lo, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(sums)));
  *hi = _mm512_add_epi64(*hi, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(sums, 1)));
}

static inline __attribute__((always_inline)) void qf16_block16_span_avx512(const int16_t* x,
                                                                           const int16_t* wt, size_t n,
                                                                           size_t flush, int64_t* acc) {
  __m512i lo = _mm512_loadu_si512(acc);
  __m512i hi = _mm512_loadu_si512(acc + 8);
  size_t i = 0;
  while (i < n) {
    const size_t end = n - i < 2 * flush ? n : i + 2 * flush;
    __m512i sums0 = _mm512_setzero_si512();
    __m512i sums1 = _mm512_setzero_si512();
    for (; i + 4 <= end; i += 4) {
      const __m512i w0 = _mm512_loadu_si512(wt + 16 * i);
      const __m512i w1 = _mm512_loadu_si512(wt + 16 * i + 32);
      sums0 = _mm512_add_epi32(sums0, _mm512_madd_epi16(qf16_broadcast_pair(x + i), w0));
      sums1 = _mm512_add_epi32(sums1, _mm512_madd_epi16(qf16_broadcast_pair(x + i + 2), w1));
    }
    for (; i < end; i += 2) {
      sums0 = _mm512_add_epi32(
          sums0, _mm512_madd_epi16(qf16_broadcast_pair(x + i), _mm512_loadu_si512(wt + 16 * i)));
    }
    qf16_widen_add(sums0, &lo, &hi);
    qf16_widen_add(sums1, &lo, &hi);
  }
  _mm512_storeu_si512(acc, lo);
  _mm512_storeu_si512(acc + 8, hi);
}

QF_DEFINE_KERNELS_BLOCKED(qf16, avx512, qf16_dot_avx512, 16, qf16_block16_span_avx512)
#endif
