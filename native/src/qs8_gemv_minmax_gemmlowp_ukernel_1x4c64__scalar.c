#include "qs8_requantize.h"

// The portable batch-1 fully-connected kernel, on the packing of the GEMV list (qs8_ops.h); A is int8.

void qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__scalar(size_t nc, size_t k, const int8_t* a,
                                                     const void* packed_w, int8_t* c,
                                                     const qs8_gemmlowp_params* params) {
  const size_t kc = (k + 63) / 64 * 64;
  const uint8_t flip = params->input_flip;
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 16) {
    const qs8_channel_requant h = qs8_block_header(block, 16);
    const int8_t* w = (const int8_t*)(block + 16 * 4 * sizeof(int32_t));
    for (size_t n = 0; n < 16 && n0 + n < nc; n++) {
      uint32_t acc = (uint32_t)h.bias[n];
      const int8_t* row = w + n * kc;
      for (size_t i = 0; i < k; i++) {
        acc += (uint32_t)((int32_t)(int8_t)(uint8_t)((uint8_t)a[i] ^ flip) * (int32_t)row[i]);
      }
      c[n0 + n] = qs8_output_scalar((int32_t)acc, h.multiplier[n], h.left_shift[n], h.right_shift[n], params);
    }
    block += 16 * 4 * sizeof(int32_t) + 16 * kc;
  }
}
