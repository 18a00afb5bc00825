// xnor kernels for AVX-512 VPOPCNTDQ (Ice Lake, Zen 4): VPOPCNTQ counts 8 words at once, 8 output channels
// per broadcast input word; spans use masked loads, so there is no scalar tail. Compile with -mavx512f
// -mavx512bw -mavx512vl -mavx512vpopcntdq.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "xnor_conv2d_impl.h"

static uint32_t xnor_span_popcount_avx512vpopcnt(const uint64_t* x, const uint64_t* w, size_t words) {
  __m512i total = _mm512_setzero_si512();
  for (size_t i = 0; i < words; i += 8) {
    const __mmask8 valid = words - i < 8 ? (__mmask8)((1u << (words - i)) - 1) : (__mmask8)0xff;
    const __m512i v =
        _mm512_xor_si512(_mm512_maskz_loadu_epi64(valid, x + i), _mm512_maskz_loadu_epi64(valid, w + i));
    total = _mm512_add_epi64(total, _mm512_popcnt_epi64(v));
  }
  return (uint32_t)_mm512_reduce_add_epi64(total);
}

static void xnor_block_row_avx512vpopcnt(const uint64_t* x, const uint64_t* wt, size_t words, uint32_t* pop) {
  __m512i total0 = _mm512_setzero_si512();
  __m512i total1 = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 2 <= words; i += 2) {
    const __m512i v0 = _mm512_xor_si512(_mm512_set1_epi64((long long)x[i]), _mm512_loadu_si512(wt + 8 * i));
    const __m512i v1 =
        _mm512_xor_si512(_mm512_set1_epi64((long long)x[i + 1]), _mm512_loadu_si512(wt + 8 * i + 8));
    total0 = _mm512_add_epi64(total0, _mm512_popcnt_epi64(v0));
    total1 = _mm512_add_epi64(total1, _mm512_popcnt_epi64(v1));
  }
  if (i < words) {
    const __m512i v = _mm512_xor_si512(_mm512_set1_epi64((long long)x[i]), _mm512_loadu_si512(wt + 8 * i));
    total0 = _mm512_add_epi64(total0, _mm512_popcnt_epi64(v));
  }
  const __m256i sums = _mm512_cvtepi64_epi32(_mm512_add_epi64(total0, total1));
  _mm256_storeu_si256((__m256i*)pop, _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)pop), sums));
}

static void xnor_block_store_avx512vpopcnt(const uint32_t* pop, int32_t valid, const float* alpha,
                                           float scale, const float* bias, float output_min, float output_max,
                                           float* out) {
  const __m256i dot = _mm256_sub_epi32(_mm256_set1_epi32(valid),
                                       _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)pop), 1));
  __m256 value = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(alpha));
  value = _mm256_mul_ps(value, _mm256_set1_ps(scale));
  value = _mm256_add_ps(value, bias != NULL ? _mm256_loadu_ps(bias) : _mm256_setzero_ps());
  const __m256 lo = _mm256_set1_ps(output_min);
  const __m256 hi = _mm256_set1_ps(output_max);
  value = _mm256_blendv_ps(value, lo, _mm256_cmp_ps(value, lo, _CMP_LT_OQ));
  value = _mm256_blendv_ps(value, hi, _mm256_cmp_ps(value, hi, _CMP_GT_OQ));
  _mm256_storeu_ps(out, value);
}

// 32 channels: four vectors per broadcast input word, which amortizes the per-position work 4 times more.
static void xnor_block32_row_avx512vpopcnt(const uint64_t* x, const uint64_t* wt, size_t words,
                                           uint32_t* pop) {
  __m512i total0 = _mm512_setzero_si512();
  __m512i total1 = _mm512_setzero_si512();
  __m512i total2 = _mm512_setzero_si512();
  __m512i total3 = _mm512_setzero_si512();
  for (size_t i = 0; i < words; i++) {
    const __m512i a = _mm512_set1_epi64((long long)x[i]);
    const uint64_t* w = wt + 32 * i;
    total0 = _mm512_add_epi64(total0, _mm512_popcnt_epi64(_mm512_xor_si512(a, _mm512_loadu_si512(w))));
    total1 = _mm512_add_epi64(total1, _mm512_popcnt_epi64(_mm512_xor_si512(a, _mm512_loadu_si512(w + 8))));
    total2 = _mm512_add_epi64(total2, _mm512_popcnt_epi64(_mm512_xor_si512(a, _mm512_loadu_si512(w + 16))));
    total3 = _mm512_add_epi64(total3, _mm512_popcnt_epi64(_mm512_xor_si512(a, _mm512_loadu_si512(w + 24))));
  }
  const __m512i low = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(total0)),
                                         _mm512_cvtepi64_epi32(total1), 1);
  const __m512i high = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(total2)),
                                          _mm512_cvtepi64_epi32(total3), 1);
  _mm512_storeu_si512(pop, _mm512_add_epi32(_mm512_loadu_si512(pop), low));
  _mm512_storeu_si512(pop + 16, _mm512_add_epi32(_mm512_loadu_si512(pop + 16), high));
}

static void xnor_block32_store_avx512vpopcnt(const uint32_t* pop, int32_t valid, const float* alpha,
                                             float scale, const float* bias, float output_min,
                                             float output_max, float* out) {
  for (size_t j = 0; j < 32; j += 8) {
    xnor_block_store_avx512vpopcnt(pop + j, valid, alpha + j, scale, bias != NULL ? bias + j : NULL,
                                   output_min, output_max, out + j);
  }
}

XNOR_DEFINE_KERNELS2(avx512vpopcnt, xnor_span_popcount_avx512vpopcnt, 32, xnor_block32_row_avx512vpopcnt,
                     xnor_block32_store_avx512vpopcnt, 8, xnor_block_row_avx512vpopcnt,
                     xnor_block_store_avx512vpopcnt)
#endif
