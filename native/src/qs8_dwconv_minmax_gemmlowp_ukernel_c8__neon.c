#include <arm_neon.h>
#include <string.h>

#include "qs8_requantize.h"

// 8 channels per step: VMULL.S8 gives int16 products, VADDW widens them into two int32x4 accumulators.
void qs8_dwconv_minmax_gemmlowp_ukernel_c8__neon(size_t channels, size_t taps, const int8_t* const* input,
                                                 const void* packed_w, int8_t* output,
                                                 const qs8_gemmlowp_params* params) {
  const int8x8_t flip = vdup_n_s8((int8_t)params->input_flip);
  for (qs8_dwconv_block b = qs8_dwconv_first_block(packed_w, channels, 8, taps); b.c0 < channels;
       qs8_dwconv_next_block(&b)) {
    int32x4_t acc_lo = vld1q_s32(b.h.bias), acc_hi = vld1q_s32(b.h.bias + 4);
    for (size_t t = 0; t < taps; t++) {
      int8x8_t x;
      if (b.cols == 8) {
        x = vld1_s8(input[t] + b.c0);
      } else {
        int8_t tmp[8] = {0};
        memcpy(tmp, input[t] + b.c0, b.cols);
        x = vld1_s8(tmp);
      }
      const int16x8_t product = vmull_s8(veor_s8(x, flip), vld1_s8(b.w));
      b.w += 8;
      acc_lo = vaddw_s16(acc_lo, vget_low_s16(product));
      acc_hi = vaddw_s16(acc_hi, vget_high_s16(product));
    }
    const int8x8_t bytes = qs8_narrow8_neon(qs8_output_neon(acc_lo, &b.h, 0, params),
                                            qs8_output_neon(acc_hi, &b.h, 4, params), params);
    if (b.cols == 8) {
      vst1_s8(output + b.c0, bytes);
    } else {
      int8_t tmp[8];
      vst1_s8(tmp, bytes);
      memcpy(output + b.c0, tmp, b.cols);
    }
  }
}
