#include <arm_neon.h>
#include <string.h>

#include "f32_mla__neon.h"
#include "f32_ops.h"

void f32_dwconv_minmax_ukernel_c8__neon(size_t channels, size_t taps, const float* const* input,
                                        const float* w, float* output, float min, float max) {
  const float32x4_t vmin = vdupq_n_f32(min), vmax = vdupq_n_f32(max);
  for (size_t c0 = 0; c0 < channels; c0 += 8) {
    const size_t cols = channels - c0 < 8 ? channels - c0 : 8;
    float32x4_t acc0 = vld1q_f32(w), acc1 = vld1q_f32(w + 4);
    w += 8;
    for (size_t t = 0; t < taps; t++) {
      const float* x = input[t] + c0;
      float32x4_t x0, x1;
      if (cols == 8) {
        x0 = vld1q_f32(x);
        x1 = vld1q_f32(x + 4);
      } else {
        // Copy the tail so no float past the last channel is read.
        float tmp[8] = {0};
        memcpy(tmp, x, cols * sizeof(float));
        x0 = vld1q_f32(tmp);
        x1 = vld1q_f32(tmp + 4);
      }
      acc0 = WHITTLE_VMLA(acc0, x0, vld1q_f32(w));
      acc1 = WHITTLE_VMLA(acc1, x1, vld1q_f32(w + 4));
      w += 8;
    }
    acc0 = vminq_f32(vmaxq_f32(acc0, vmin), vmax);
    acc1 = vminq_f32(vmaxq_f32(acc1, vmin), vmax);
    if (cols == 8) {
      vst1q_f32(output + c0, acc0);
      vst1q_f32(output + c0 + 4, acc1);
    } else {
      float tmp[8];
      vst1q_f32(tmp, acc0);
      vst1q_f32(tmp + 4, acc1);
      memcpy(output + c0, tmp, cols * sizeof(float));
    }
  }
}
