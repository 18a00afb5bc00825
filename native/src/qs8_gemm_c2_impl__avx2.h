// Body of the qs8 GEMM kernels MRx16c2 for AVX2; each qs8_gemm_minmax_gemmlowp_ukernel_<MR>x16c2__avx2.c
// defines MR and the function name (as the IGEMM files, with WHITTLE_IGEMM: gemm_tile.h), then includes this
// file.
#include <immintrin.h>
#include <string.h>

#include "gemm_tile.h"
#include "qs8_gemm_c2_a16.h"
#include "qs8_requantize.h"

// MR rows x 16 columns, KR = 2: each step multiplies a broadcast pair (a[k], a[k+1]) of int16 by 16 columns x
// 2 k of sign-extended weights with VPMADDWD, which sums the pair into one int32 per column.
void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const int8_t),
                         const void* packed_w, int8_t* c, size_t c_stride,
                         const qs8_gemmlowp_params* params) {
  WHITTLE_GEMM_TILE_ROWS(MR, const int8_t, int8_t);
  // A's rows widened to int16 (qs8_c2_widen_rows): once here when they fit, else per k block below.
  int16_t a16[MR * QS8_C2_A16_BLOCK] __attribute__((aligned(64)));
  const bool widened_once = kc <= QS8_C2_A16_BLOCK;
  if (widened_once) QS8_C2_WIDEN_ROWS(MR, 0, kc, a16);
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 16) {
    const qs8_channel_requant h = qs8_block_header(block, 16);
    const int8_t* w = (const int8_t*)(block + 16 * 4 * sizeof(int32_t));
    const __m256i b0 = _mm256_loadu_si256((const __m256i*)h.bias);
    const __m256i b1 = _mm256_loadu_si256((const __m256i*)(h.bias + 8));
    __m256i acc0[MR], acc1[MR];
    for (size_t r = 0; r < MR; r++) {
      acc0[r] = b0;
      acc1[r] = b1;
    }
    for (size_t k0 = 0; k0 < kc; k0 += QS8_C2_A16_BLOCK) {
      const size_t len = kc - k0 < QS8_C2_A16_BLOCK ? kc - k0 : QS8_C2_A16_BLOCK;
      if (!widened_once) QS8_C2_WIDEN_ROWS(MR, k0, len, a16);
      for (size_t k = 0; k < len; k += 2) {
        const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)w));
        const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(w + 16)));
        w += 32;
        for (size_t r = 0; r < MR; r++) {
          const __m256i va = _mm256_set1_epi32(qs8_c2_pair(a16 + r * QS8_C2_A16_BLOCK, k));
          acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(va, w0));
          acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(va, w1));
        }
      }
    }
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 16);
    for (size_t r = 0; r < MR; r++) {
      const __m128i bytes = qs8_narrow16_avx2(qs8_output_avx2(acc0[r], &h, 0, params),
                                              qs8_output_avx2(acc1[r], &h, 8, params), params);
      if (cols == 16) {
        _mm_storeu_si128((__m128i*)(c_rows[r] + n0), bytes);
      } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i*)tmp, bytes);
        memcpy(c_rows[r] + n0, tmp, cols);
      }
    }
    block += 16 * 4 * sizeof(int32_t) + kc * 16;
  }
}
