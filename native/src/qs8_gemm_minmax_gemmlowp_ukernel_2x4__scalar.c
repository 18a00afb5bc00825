#include "qs8_requantize.h"

// Portable 2x4 tile, KR = 1: weights [kc][4].
void qs8_gemm_minmax_gemmlowp_ukernel_2x4__scalar(size_t mr, size_t nc, size_t kc, const int8_t* a,
                                                  size_t a_stride, const void* packed_w, int8_t* c,
                                                  size_t c_stride, const qs8_gemmlowp_params* params) {
  const int8_t* a0 = a;
  const int8_t* a1 = mr > 1 ? a + a_stride : a0;
  int8_t* c0 = c;
  int8_t* c1 = mr > 1 ? c + c_stride : c0;
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 4) {
    const qs8_channel_requant h = qs8_block_header(block, 4);
    const int8_t* w = (const int8_t*)(block + 4 * 4 * sizeof(int32_t));
    uint32_t acc0[4], acc1[4];
    for (size_t n = 0; n < 4; n++) acc0[n] = acc1[n] = (uint32_t)h.bias[n];
    for (size_t k = 0; k < kc; k++) {
      const int32_t va0 = a0[k], va1 = a1[k];
      for (size_t n = 0; n < 4; n++) {
        acc0[n] += (uint32_t)(va0 * (int32_t)w[n]);
        acc1[n] += (uint32_t)(va1 * (int32_t)w[n]);
      }
      w += 4;
    }
    const size_t cols = nc - n0 < 4 ? nc - n0 : 4;
    for (size_t n = 0; n < cols; n++) {
      c0[n0 + n] =
          qs8_output_scalar((int32_t)acc0[n], h.multiplier[n], h.left_shift[n], h.right_shift[n], params);
      c1[n0 + n] =
          qs8_output_scalar((int32_t)acc1[n], h.multiplier[n], h.left_shift[n], h.right_shift[n], params);
    }
    block += 4 * 4 * sizeof(int32_t) + kc * 4;
  }
}
