// Body of the portable f32 GEMM kernel 4x4; f32_gemm_minmax_ukernel_4x4__scalar.c (and
// f32_igemm_minmax_ukernel_4x4__scalar.c, with WHITTLE_IGEMM: gemm_tile.h) defines the function name, then
// includes this file.
#include "f32_ops.h"
#include "gemm_tile.h"

// Portable 4x4 tile: 16 accumulators the compiler keeps in registers on every target.
void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const float), const float* w,
                         float* c, size_t c_stride, float min, float max) {
  WHITTLE_GEMM_TILE_ROWS(4, const float, float);
  for (size_t n0 = 0; n0 < nc; n0 += 4) {
    float acc[4][4];
    for (size_t r = 0; r < 4; r++) {
      for (size_t n = 0; n < 4; n++) acc[r][n] = w[n];
    }
    w += 4;
    for (size_t k = 0; k < kc; k++) {
      for (size_t r = 0; r < 4; r++) {
        const float va = *WHITTLE_GEMM_A_AT(r, k);
        for (size_t n = 0; n < 4; n++) acc[r][n] += va * w[n];
      }
      w += 4;
    }
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 4);
    for (size_t r = 0; r < 4; r++) {
      for (size_t n = 0; n < cols; n++) c_rows[r][n0 + n] = whittle_clamp_f32(acc[r][n], min, max);
    }
  }
}
