// bin kernels for AVX-512 F (compile with -mavx512f -mavx512bw -mavx512vl): 16 sign bits are directly an
// opmask; a masked XOR flips the sign of those activations. The tail uses masked loads, never a scalar loop.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "sign_conv2d_impl.h"

static inline __m512 bin_flip16_avx512(__m512 x, uint32_t bits16) {
  const __m512i sign = _mm512_set1_epi32(INT32_MIN);
  const __m512i xi = _mm512_castps_si512(x);
  return _mm512_castsi512_ps(_mm512_mask_xor_epi32(xi, (__mmask16)bits16, xi, sign));
}

static float bin_signed_sum_avx512(const float* x, const uint32_t* nonzero, const uint32_t* row,
                                   size_t row_words, size_t first_bit, size_t n) {
  (void)nonzero;  // NULL: binary weights are never 0
  __m512 acc0 = _mm512_setzero_ps();
  __m512 acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const uint32_t bits = bin_load_bits32(row, row_words, first_bit + i);
    acc0 = _mm512_add_ps(acc0, bin_flip16_avx512(_mm512_loadu_ps(x + i), bits & 0xffff));
    acc1 = _mm512_add_ps(acc1, bin_flip16_avx512(_mm512_loadu_ps(x + i + 16), bits >> 16));
  }
  for (; i < n; i += 16) {
    const size_t m = n - i < 16 ? n - i : 16;
    const __mmask16 valid = (__mmask16)((UINT32_C(1) << m) - 1);
    const uint32_t bits = bin_load_bits32(row, row_words, first_bit + i) & valid;
    acc0 = _mm512_add_ps(acc0, bin_flip16_avx512(_mm512_maskz_loadu_ps(valid, x + i), bits));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// 16 output channels per broadcast activation, 4 independent accumulators to hide the add latency.
static inline __m512 bin_flip_by_mask_avx512(const float* x, const uint32_t* mask) {
  return _mm512_castsi512_ps(
      _mm512_xor_si512(_mm512_castps_si512(_mm512_set1_ps(*x)), _mm512_loadu_si512(mask)));
}

static void bin_block16_span_avx512(const float* x, const uint32_t* masks, const uint32_t* keeps, size_t n,
                                    float* acc) {
  (void)keeps;  // NULL: binary weights are never 0
  __m512 acc0 = _mm512_loadu_ps(acc);
  __m512 acc1 = _mm512_setzero_ps();
  __m512 acc2 = _mm512_setzero_ps();
  __m512 acc3 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    acc0 = _mm512_add_ps(acc0, bin_flip_by_mask_avx512(x + i, masks + 16 * i));
    acc1 = _mm512_add_ps(acc1, bin_flip_by_mask_avx512(x + i + 1, masks + 16 * i + 16));
    acc2 = _mm512_add_ps(acc2, bin_flip_by_mask_avx512(x + i + 2, masks + 16 * i + 32));
    acc3 = _mm512_add_ps(acc3, bin_flip_by_mask_avx512(x + i + 3, masks + 16 * i + 48));
  }
  for (; i < n; i++) {
    acc0 = _mm512_add_ps(acc0, bin_flip_by_mask_avx512(x + i, masks + 16 * i));
  }
  _mm512_storeu_ps(acc, _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

BIN_DEFINE_KERNELS_BLOCKED(avx512, bin_signed_sum_avx512, 16, bin_block16_span_avx512)
#endif
