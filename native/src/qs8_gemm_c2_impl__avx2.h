// The qs8 GEMM kernels MRx16c2 for AVX2: qs8_gemm_c2_impl.h on YMM vectors of 8 int32; each
// qs8_gemm_minmax_gemmlowp_ukernel_<MR>x16c2__avx2.c defines MR and the function name (as the IGEMM files,
// with WHITTLE_IGEMM: gemm_tile.h), then includes this file.
#include <immintrin.h>
#include <string.h>

#include "qs8_requantize.h"

// Both halves narrowed to 16 bytes; a tail of fewer columns goes through a buffer.
static inline void qs8_c2_store_row(int8_t* out, __m256i acc0, __m256i acc1, const qs8_channel_requant* h,
                                    size_t cols, const qs8_gemmlowp_params* params) {
  const __m128i bytes =
      qs8_narrow16_avx2(qs8_output_avx2(acc0, h, 0, params), qs8_output_avx2(acc1, h, 8, params), params);
  if (cols == 16) {
    _mm_storeu_si128((__m128i*)out, bytes);
  } else {
    int8_t tmp[16];
    _mm_storeu_si128((__m128i*)tmp, bytes);
    memcpy(out, tmp, cols);
  }
}

typedef __m256i qs8_c2_vec;
#define QS8_C2_NR 16
#define QS8_C2_LOAD_BIAS(p) _mm256_loadu_si256((const __m256i*)(p))
#define QS8_C2_LOAD_W(p) _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(p)))
#define QS8_C2_MADD(acc, pair, w) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_set1_epi32(pair), w))

#include "qs8_gemm_c2_impl.h"
