#include <arm_neon.h>
#include <string.h>

#include "qs8_requantize.h"

// 8 channels per block: the 9 weight vectors (int16) stay in registers across the row; inputs are widened
// to int16 (flipped first for uint8) and multiply-accumulated into two int32x4.
void qs8_dwconv3x3_minmax_gemmlowp_ukernel_c8__neon(size_t channels, size_t output_rows, size_t output_width,
                                                    const int8_t* const* input_rows, size_t input_width,
                                                    size_t stride, size_t padding_left, const int8_t* pad,
                                                    const void* packed_w, int8_t* output,
                                                    const qs8_gemmlowp_params* params) {
  const int8x8_t flip = vdup_n_s8((int8_t)params->input_flip);
  for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, 8, 9); b.c0 < channels;
       qs8_dwconv_next_block(&b)) {
    int16x8_t k[9];
    WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) k[t] = vmovl_s8(vld1_s8(b.w + t * 8));
    const int32x4_t bias_lo = vld1q_s32(b.h.bias), bias_hi = vld1q_s32(b.h.bias + 4);
    for (size_t y = 0; y < output_rows; y++) {
      const int8_t* const* rows = input_rows + 3 * y;
      int8_t* out = output + y * output_width * channels + b.c0;
      ptrdiff_t ix = -(ptrdiff_t)padding_left;
      for (size_t x = 0; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) {
        const void* taps[9];
        whittle_dwconv3x3_taps((const void* const*)rows, pad, channels, input_width, ix, taps);
        int32x4_t acc_lo = bias_lo, acc_hi = bias_hi;
        WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
          const int8_t* p = (const int8_t*)taps[t] + b.c0;
          int8x8_t bytes;
          if (b.cols == 8) {
            bytes = vld1_s8(p);
          } else {
            int8_t tmp[8] = {0};
            memcpy(tmp, p, b.cols);
            bytes = vld1_s8(tmp);
          }
          const int16x8_t v = vmovl_s8(veor_s8(bytes, flip));
          acc_lo = vmlal_s16(acc_lo, vget_low_s16(v), vget_low_s16(k[t]));
          acc_hi = vmlal_s16(acc_hi, vget_high_s16(v), vget_high_s16(k[t]));
        }
        const int8x8_t result = qs8_narrow8_neon(qs8_output_neon(acc_lo, &b.h, 0, params),
                                                 qs8_output_neon(acc_hi, &b.h, 4, params), params);
        if (b.cols == 8) {
          vst1_s8(out, result);
        } else {
          int8_t tmp[8];
          vst1_s8(tmp, result);
          memcpy(out, tmp, b.cols);
        }
      }
    }
  }
}
