// Body of the qs8 GEMM kernels MRx32c2 for AVX-512; each qs8_gemm_minmax_gemmlowp_ukernel_<MR>x32c2__avx512.c
// defines MR and the function name (as the IGEMM files, with WHITTLE_IGEMM: gemm_tile.h), then includes this
// file.
#include <immintrin.h>

#include "gemm_tile.h"
#include "qs8_gemm_c2_a16.h"
#include "qs8_requantize.h"

// The AVX2 scheme on ZMM registers: MR rows x 32 columns, VPMADDWD on int16 pairs.
void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const int8_t),
                         const void* packed_w, int8_t* c, size_t c_stride,
                         const qs8_gemmlowp_params* params) {
  WHITTLE_GEMM_TILE_ROWS(MR, const int8_t, int8_t);
  // A's rows widened to int16 (qs8_c2_widen_rows): once here when they fit, else per k block below.
  int16_t a16[MR * QS8_C2_A16_BLOCK] __attribute__((aligned(64)));
  const bool widened_once = kc <= QS8_C2_A16_BLOCK;
  if (widened_once) QS8_C2_WIDEN_ROWS(MR, 0, kc, a16);
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 32) {
    const qs8_channel_requant h = qs8_block_header(block, 32);
    const int8_t* w = (const int8_t*)(block + 32 * 4 * sizeof(int32_t));
    const __m512i b0 = _mm512_loadu_si512(h.bias), b1 = _mm512_loadu_si512(h.bias + 16);
    __m512i acc0[MR], acc1[MR];
    for (size_t r = 0; r < MR; r++) {
      acc0[r] = b0;
      acc1[r] = b1;
    }
    for (size_t k0 = 0; k0 < kc; k0 += QS8_C2_A16_BLOCK) {
      const size_t len = kc - k0 < QS8_C2_A16_BLOCK ? kc - k0 : QS8_C2_A16_BLOCK;
      if (!widened_once) QS8_C2_WIDEN_ROWS(MR, k0, len, a16);
      for (size_t k = 0; k < len; k += 2) {
        const __m512i w0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)w));
        const __m512i w1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(w + 32)));
        w += 64;
        for (size_t r = 0; r < MR; r++) {
          const __m512i va = _mm512_set1_epi32(qs8_c2_pair(a16 + r * QS8_C2_A16_BLOCK, k));
          acc0[r] = _mm512_add_epi32(acc0[r], _mm512_madd_epi16(va, w0));
          acc1[r] = _mm512_add_epi32(acc1[r], _mm512_madd_epi16(va, w1));
        }
      }
    }
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 32);
    for (size_t r = 0; r < MR; r++) {
      qs8_store16_avx512(c_rows[r] + n0, qs8_output_avx512(acc0[r], &h, 0, params), cols, params);
      if (cols > 16)
        qs8_store16_avx512(c_rows[r] + n0 + 16, qs8_output_avx512(acc1[r], &h, 16, params), cols - 16,
                           params);
    }
    block += 32 * 4 * sizeof(int32_t) + kc * 32;
  }
}
