// tern kernels for AVX-512 F (compile with -mavx512f -mavx512bw -mavx512vl): the sign bits are an opmask
// for a masked XOR of the float sign, the nonzero bits an opmask for a masked add; masked loads for the tail.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "sign_conv2d_impl.h"

static inline __m512 tern_accumulate16_avx512(__m512 acc, __m512 x, uint32_t nonzero16, uint32_t sign16) {
  const __m512i xi = _mm512_castps_si512(x);
  const __m512 flipped =
      _mm512_castsi512_ps(_mm512_mask_xor_epi32(xi, (__mmask16)sign16, xi, _mm512_set1_epi32(INT32_MIN)));
  return _mm512_mask_add_ps(acc, (__mmask16)nonzero16, acc, flipped);
}

static float tern_signed_sum_avx512(const float* x, const uint32_t* nonzero, const uint32_t* sign,
                                    size_t row_words, size_t first_bit, size_t n) {
  __m512 acc0 = _mm512_setzero_ps();
  __m512 acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const uint32_t nz = bin_load_bits32(nonzero, row_words, first_bit + i);
    const uint32_t neg = bin_load_bits32(sign, row_words, first_bit + i);
    acc0 = tern_accumulate16_avx512(acc0, _mm512_loadu_ps(x + i), nz & 0xffff, neg & 0xffff);
    acc1 = tern_accumulate16_avx512(acc1, _mm512_loadu_ps(x + i + 16), nz >> 16, neg >> 16);
  }
  for (; i < n; i += 16) {
    const size_t m = n - i < 16 ? n - i : 16;
    const __mmask16 valid = (__mmask16)((UINT32_C(1) << m) - 1);
    const uint32_t nz = bin_load_bits32(nonzero, row_words, first_bit + i) & valid;
    const uint32_t neg = bin_load_bits32(sign, row_words, first_bit + i);
    acc0 = tern_accumulate16_avx512(acc0, _mm512_maskz_loadu_ps(valid, x + i), nz, neg);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// 16 output channels per broadcast activation, 2 independent accumulators.
static inline __m512 tern_select16_avx512(const float* x, const uint32_t* flips, const uint32_t* keeps) {
  const __m512i flipped =
      _mm512_xor_si512(_mm512_castps_si512(_mm512_set1_ps(*x)), _mm512_loadu_si512(flips));
  return _mm512_castsi512_ps(_mm512_and_si512(flipped, _mm512_loadu_si512(keeps)));
}

static void tern_block16_span_avx512(const float* x, const uint32_t* flips, const uint32_t* keeps, size_t n,
                                     float* acc) {
  __m512 acc0 = _mm512_loadu_ps(acc);
  __m512 acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 2 <= n; i += 2) {
    acc0 = _mm512_add_ps(acc0, tern_select16_avx512(x + i, flips + 16 * i, keeps + 16 * i));
    acc1 = _mm512_add_ps(acc1, tern_select16_avx512(x + i + 1, flips + 16 * i + 16, keeps + 16 * i + 16));
  }
  if (i < n) {
    acc0 = _mm512_add_ps(acc0, tern_select16_avx512(x + i, flips + 16 * i, keeps + 16 * i));
  }
  _mm512_storeu_ps(acc, _mm512_add_ps(acc0, acc1));
}

TERN_DEFINE_KERNELS_BLOCKED(avx512, tern_signed_sum_avx512, 16, tern_block16_span_avx512)
#endif
