#include "qs8_requantize.h"

void qs8_dwconv3x3_minmax_gemmlowp_ukernel_c4__scalar(size_t channels, size_t output_rows,
                                                      size_t output_width, const int8_t* const* input_rows,
                                                      size_t input_width, size_t stride, size_t padding_left,
                                                      const int8_t* pad, const void* packed_w, int8_t* output,
                                                      const qs8_gemmlowp_params* params) {
  const uint8_t flip = params->input_flip;
  for (size_t y = 0; y < output_rows; y++) {
    const int8_t* const* rows = input_rows + 3 * y;
    int8_t* const output_row = output + y * output_width * channels;
    for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, 4, 9); b.c0 < channels;
         qs8_dwconv_next_block(&b)) {
      int8_t* out = output_row + b.c0;
      ptrdiff_t ix = -(ptrdiff_t)padding_left;
      for (size_t x = 0; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) {
        const void* taps[9];
        whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix, taps);
        for (size_t c = 0; c < b.cols; c++) {
          uint32_t acc = (uint32_t)b.h.bias[c];
          for (size_t t = 0; t < 9; t++) {
            const int32_t v = (int8_t)(uint8_t)((uint8_t)((const int8_t*)taps[t])[b.c0 + c] ^ flip);
            acc += (uint32_t)(v * (int32_t)b.w[t * 4 + c]);
          }
          out[c] = qs8_output_scalar((int32_t)acc, b.h.multiplier[c], b.h.left_shift[c], b.h.right_shift[c],
                                     params);
        }
      }
    }
  }
}
