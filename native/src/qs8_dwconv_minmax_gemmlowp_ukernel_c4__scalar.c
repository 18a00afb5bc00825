#include "qs8_requantize.h"

void qs8_dwconv_minmax_gemmlowp_ukernel_c4__scalar(size_t channels, size_t taps, const int8_t* const* input,
                                                   const void* packed_w, int8_t* output,
                                                   const qs8_gemmlowp_params* params) {
  const unsigned char* block = packed_w;
  const uint8_t flip = params->input_flip;
  for (size_t c0 = 0; c0 < channels; c0 += 4) {
    const size_t cols = channels - c0 < 4 ? channels - c0 : 4;
    const qs8_channel_requant h = qs8_block_header(block, 4);
    const int8_t* w = (const int8_t*)(block + 4 * 4 * sizeof(int32_t));
    uint32_t acc[4];
    for (size_t c = 0; c < 4; c++) acc[c] = (uint32_t)h.bias[c];
    for (size_t t = 0; t < taps; t++) {
      for (size_t c = 0; c < cols; c++) {
        const int32_t x = (int8_t)(uint8_t)((uint8_t)input[t][c0 + c] ^ flip);
        acc[c] += (uint32_t)(x * (int32_t)w[c]);
      }
      w += 4;
    }
    for (size_t c = 0; c < cols; c++) {
      output[c0 + c] =
          qs8_output_scalar((int32_t)acc[c], h.multiplier[c], h.left_shift[c], h.right_shift[c], params);
    }
    block += 4 * 4 * sizeof(int32_t) + taps * 4;
  }
}
