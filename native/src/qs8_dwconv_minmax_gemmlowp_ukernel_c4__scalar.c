#include "qs8_requantize.h"

void qs8_dwconv_minmax_gemmlowp_ukernel_c4__scalar(size_t channels, size_t taps, const int8_t* const* input,
                                                   const void* packed_w, int8_t* output,
                                                   const qs8_gemmlowp_params* params) {
  const uint8_t flip = params->input_flip;
  for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, 4, taps); b.c0 < channels;
       qs8_dwconv_next_block(&b)) {
    uint32_t acc[4];
    for (size_t c = 0; c < 4; c++) acc[c] = (uint32_t)b.h.bias[c];
    for (size_t t = 0; t < taps; t++) {
      for (size_t c = 0; c < b.cols; c++) {
        const int32_t x = (int8_t)(uint8_t)((uint8_t)input[t][b.c0 + c] ^ flip);
        acc[c] += (uint32_t)(x * (int32_t)b.w[c]);
      }
      b.w += 4;
    }
    for (size_t c = 0; c < b.cols; c++) {
      output[b.c0 + c] = qs8_output_scalar((int32_t)acc[c], b.h.multiplier[c], b.h.left_shift[c],
                                           b.h.right_shift[c], params);
    }
  }
}
