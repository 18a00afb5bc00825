#include "f32_ops.h"

// Portable 4x4 tile: 16 accumulators the compiler keeps in registers on every target.
void f32_gemm_minmax_ukernel_4x4__scalar(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                                         const float* w, float* c, size_t c_stride, float min, float max) {
  const float* a_rows[4];
  float* c_rows[4];
  for (size_t r = 0; r < 4; r++) {
    // Rows past mr repeat the last valid row: same result, written to the same place.
    const size_t row = r < mr ? r : mr - 1;
    a_rows[r] = a + row * a_stride;
    c_rows[r] = c + row * c_stride;
  }
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
    const size_t cols = nc - n0 < 4 ? nc - n0 : 4;
    for (size_t r = 0; r < 4; r++) {
      for (size_t n = 0; n < cols; n++) {
        float v = acc[r][n] < min ? min : acc[r][n];
        c_rows[r][n0 + n] = v > max ? max : v;
      }
    }
  }
}
