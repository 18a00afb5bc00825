#include <arm_neon.h>
#include <string.h>

#include "qs8_requantize.h"

// 8 channels per step: VMULL.S8 gives int16 products, VADDW widens them into two int32x4 accumulators.
void qs8_dwconv_minmax_gemmlowp_ukernel_c8__neon(size_t channels, size_t taps, const int8_t* const* input,
                                                 const void* packed_w, int8_t* output,
                                                 const qs8_gemmlowp_params* params) {
  const unsigned char* block = packed_w;
  const int8x8_t flip = vdup_n_s8((int8_t)params->input_flip);
  for (size_t c0 = 0; c0 < channels; c0 += 8) {
    const size_t cols = channels - c0 < 8 ? channels - c0 : 8;
    const qs8_channel_requant h = qs8_block_header(block, 8);
    const int8_t* w = (const int8_t*)(block + 8 * 4 * sizeof(int32_t));
    int32x4_t acc_lo = vld1q_s32(h.bias), acc_hi = vld1q_s32(h.bias + 4);
    for (size_t t = 0; t < taps; t++) {
      int8x8_t x;
      if (cols == 8) {
        x = vld1_s8(input[t] + c0);
      } else {
        int8_t tmp[8] = {0};
        memcpy(tmp, input[t] + c0, cols);
        x = vld1_s8(tmp);
      }
      const int16x8_t product = vmull_s8(veor_s8(x, flip), vld1_s8(w));
      w += 8;
      acc_lo = vaddw_s16(acc_lo, vget_low_s16(product));
      acc_hi = vaddw_s16(acc_hi, vget_high_s16(product));
    }
    const int8x8_t bytes = qs8_narrow8_neon(qs8_output_neon(acc_lo, &h, 0, params),
                                            qs8_output_neon(acc_hi, &h, 4, params), params);
    if (cols == 8) {
      vst1_s8(output + c0, bytes);
    } else {
      int8_t tmp[8];
      vst1_s8(tmp, bytes);
      memcpy(output + c0, tmp, cols);
    }
    block += 8 * 4 * sizeof(int32_t) + taps * 8;
  }
}
