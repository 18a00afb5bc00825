// Body of the portable qs8 GEMM kernel 2x4 (KR = 1, weights [kc][4]);
// qs8_gemm_minmax_gemmlowp_ukernel_2x4__scalar.c (and qs8_igemm_minmax_gemmlowp_ukernel_2x4__scalar.c, with
// WHITTLE_IGEMM: gemm_tile.h) defines the function name, then includes this file.
#include "gemm_tile.h"
#include "qs8_requantize.h"

void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const int8_t),
                         const void* packed_w, int8_t* c, size_t c_stride,
                         const qs8_gemmlowp_params* params) {
  WHITTLE_GEMM_TILE_ROWS(2, const int8_t, int8_t);
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 4) {
    const qs8_channel_requant h = qs8_block_header(block, 4);
    const int8_t* w = (const int8_t*)(block + 4 * 4 * sizeof(int32_t));
    uint32_t acc0[4], acc1[4];
    for (size_t n = 0; n < 4; n++) acc0[n] = acc1[n] = (uint32_t)h.bias[n];
    for (size_t k = 0; k < kc; k++) {
      const int32_t va0 = *WHITTLE_GEMM_A_AT(0, k), va1 = *WHITTLE_GEMM_A_AT(1, k);
      for (size_t n = 0; n < 4; n++) {
        acc0[n] += (uint32_t)(va0 * (int32_t)w[n]);
        acc1[n] += (uint32_t)(va1 * (int32_t)w[n]);
      }
      w += 4;
    }
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 4);
    for (size_t n = 0; n < cols; n++) {
      c_rows[0][n0 + n] =
          qs8_output_scalar((int32_t)acc0[n], h.multiplier[n], h.left_shift[n], h.right_shift[n], params);
      c_rows[1][n0 + n] =
          qs8_output_scalar((int32_t)acc1[n], h.multiplier[n], h.left_shift[n], h.right_shift[n], params);
    }
    block += 4 * 4 * sizeof(int32_t) + kc * 4;
  }
}
