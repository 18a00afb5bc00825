// The qs8 GEMM kernels MRx32c2 for AVX-512: qs8_gemm_c2_impl.h on ZMM vectors of 16 int32; each
// qs8_gemm_minmax_gemmlowp_ukernel_<MR>x32c2__avx512.c defines MR and the function name (as the IGEMM files,
// with WHITTLE_IGEMM: gemm_tile.h), then includes this file.
#include <immintrin.h>

#include "qs8_requantize.h"

// Each half of 16 columns stored on its own, the second only when the block reaches it.
static inline void qs8_c2_store_row(int8_t* out, __m512i acc0, __m512i acc1, const qs8_channel_requant* h,
                                    size_t cols, const qs8_gemmlowp_params* params) {
  qs8_store16_bytes_avx512(out, qs8_output_avx512(acc0, h, 0, params), cols);
  if (cols > 16) qs8_store16_bytes_avx512(out + 16, qs8_output_avx512(acc1, h, 16, params), cols - 16);
}

typedef __m512i qs8_c2_vec;
#define QS8_C2_NR 32
#define QS8_C2_LOAD_BIAS(p) _mm512_loadu_si512(p)
#define QS8_C2_LOAD_W(p) _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(p)))
#define QS8_C2_MADD(acc, pair, w) _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_set1_epi32(pair), w))

#include "qs8_gemm_c2_impl.h"
