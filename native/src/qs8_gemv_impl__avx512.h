// What the AVX-512 GEMV kernels (with and without VNNI) share of qs8_gemv_impl.h's macros: ZMM accumulators
// of 16 int32, and a block's 16 sums in one ZMM (qs8_gemv_add_sums_avx512). Each file adds its step of A and
// multiply-add, then includes qs8_gemv_impl.h.
#include <immintrin.h>

#include "qs8_requantize.h"

typedef __m512i qs8_gemv_acc;
typedef __m512i qs8_gemv_a;
typedef __m512i qs8_gemv_sums;

#define QS8_GEMV_ZERO() _mm512_setzero_si512()
#define QS8_GEMV_ADD(x, y) _mm512_add_epi32(x, y)
#define QS8_GEMV_SUMS_ZERO() _mm512_setzero_si512()
#define QS8_GEMV_ADD_GROUP(sums, g, s0, s1, s2, s3) \
  qs8_gemv_add_sums_avx512(sums, qs8_sum4_avx512(s0, s1, s2, s3))
#define QS8_GEMV_STORE_BLOCK(c, sums, count, h, p) qs8_gemv_store_block_avx512(c, sums, count, h, p)
