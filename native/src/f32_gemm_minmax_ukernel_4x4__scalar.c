#include "f32_ops.h"
#include "gemm_tile.h"

// Portable 4x4 tile: 16 accumulators the compiler keeps in registers on every target.
void f32_gemm_minmax_ukernel_4x4__scalar(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                                         const float* w, float* c, size_t c_stride, float min, float max) {
  WHITTLE_GEMM_TILE_ROWS(4, const float, float);
  for (size_t n0 = 0; n0 < nc; n0 += 4) {
    float acc[4][4];
    for (size_t r = 0; r < 4; r++) {
      for (size_t n = 0; n < 4; n++) acc[r][n] = w[n];
    }
    w += 4;
    for (size_t k = 0; k < kc; k++) {
      for (size_t r = 0; r < 4; r++) {
        const float va = a_rows[r][k];
        for (size_t n = 0; n < 4; n++) acc[r][n] += va * w[n];
      }
      w += 4;
    }
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 4);
    for (size_t r = 0; r < 4; r++) {
      for (size_t n = 0; n < cols; n++) {
        float v = acc[r][n] < min ? min : acc[r][n];
        c_rows[r][n0 + n] = v > max ? max : v;
      }
    }
  }
}
