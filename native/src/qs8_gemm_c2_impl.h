// Body of the qs8 GEMM kernels MR x NR, KR = 2, for AVX2 (NR = 16) and AVX-512 (NR = 32).
// qs8_gemm_c2_impl__<isa>.h defines the vector type and operations of its ISA, then includes this file; each
// qs8_gemm_minmax_gemmlowp_ukernel_<MR>x<NR>c2__<isa>.c (and the IGEMM files, with WHITTLE_IGEMM:
// gemm_tile.h) defines MR and the function name, then includes that header.
//
// The ISA header defines:
//   qs8_c2_vec                       a vector of NR / 2 int32 (or NR / 2 int16 pairs);
//   QS8_C2_NR                        the columns of a block;
//   QS8_C2_LOAD_BIAS(p)              NR / 2 int32 of bias;
//   QS8_C2_LOAD_W(p)                 NR / 2 pairs of int8 weights, sign-extended to int16;
//   QS8_C2_MADD(acc, pair, w)        acc + VPMADDWD(broadcast int16 pair, w);
// and, before them, qs8_c2_store_row(c, acc0, acc1, h, cols, params): requantizes a row's two vectors and
// stores its first cols bytes.
#include "gemm_tile.h"
#include "qs8_gemm_c2_a16.h"
#include "qs8_requantize.h"

// MR rows x NR columns: each step multiplies a broadcast pair (a[k], a[k+1]) of int16 by NR columns x 2 k of
// sign-extended weights with VPMADDWD, which sums the pair into one int32 per column.
void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const int8_t),
                         const void* packed_w, int8_t* c, size_t c_stride,
                         const qs8_gemmlowp_params* params) {
  WHITTLE_GEMM_TILE_ROWS(MR, const int8_t, int8_t);
  // A's rows widened to int16 (qs8_c2_widen_rows): once here when they fit, else per k block below.
  int16_t a16[MR * QS8_C2_A16_BLOCK] __attribute__((aligned(64)));
  const bool widened_once = kc <= QS8_C2_A16_BLOCK;
  if (widened_once) QS8_C2_WIDEN_ROWS(MR, 0, kc, a16);
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += QS8_C2_NR) {
    const qs8_channel_requant h = qs8_block_header(block, QS8_C2_NR);
    const int8_t* w = (const int8_t*)(block + QS8_C2_NR * 4 * sizeof(int32_t));
    const qs8_c2_vec b0 = QS8_C2_LOAD_BIAS(h.bias), b1 = QS8_C2_LOAD_BIAS(h.bias + QS8_C2_NR / 2);
    qs8_c2_vec acc0[MR], acc1[MR];
    for (size_t r = 0; r < MR; r++) {
      acc0[r] = b0;
      acc1[r] = b1;
    }
    for (size_t k0 = 0; k0 < kc; k0 += QS8_C2_A16_BLOCK) {
      const size_t len = kc - k0 < QS8_C2_A16_BLOCK ? kc - k0 : QS8_C2_A16_BLOCK;
      if (!widened_once) QS8_C2_WIDEN_ROWS(MR, k0, len, a16);
      for (size_t k = 0; k < len; k += 2) {
        const qs8_c2_vec w0 = QS8_C2_LOAD_W(w), w1 = QS8_C2_LOAD_W(w + QS8_C2_NR);
        w += 2 * QS8_C2_NR;
        for (size_t r = 0; r < MR; r++) {
          const int32_t pair = qs8_c2_pair(a16 + r * QS8_C2_A16_BLOCK, k);
          acc0[r] = QS8_C2_MADD(acc0[r], pair, w0);
          acc1[r] = QS8_C2_MADD(acc1[r], pair, w1);
        }
      }
    }
    const size_t cols = whittle_gemm_tile_cols(nc, n0, QS8_C2_NR);
    for (size_t r = 0; r < MR; r++) qs8_c2_store_row(c_rows[r] + n0, acc0[r], acc1[r], &h, cols, params);
    block += QS8_C2_NR * 4 * sizeof(int32_t) + kc * QS8_C2_NR;
  }
}
