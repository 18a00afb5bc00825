#include <arm_neon.h>
#include <string.h>

#include "f32_mla__neon.h"
#include "f32_ops.h"

// A block of 8 channels runs as two halves of 4: the 9 weight vectors of a half stay in registers across
// the row (ARMv7 has 16 quad registers).
void f32_dwconv3x3_minmax_ukernel_c8__neon(size_t channels, size_t output_width, const float* const* rows,
                                           size_t input_width, size_t stride, size_t padding_left,
                                           const float* pad, const float* w, float* output, float min,
                                           float max) {
  const float32x4_t vmin = vdupq_n_f32(min), vmax = vdupq_n_f32(max);
  for (size_t c0 = 0; c0 < channels; c0 += 8) {
    for (size_t h = 0; h < 8 && c0 + h < channels; h += 4) {
      const size_t cols = channels - c0 - h < 4 ? channels - c0 - h : 4;
      const float32x4_t bias = vld1q_f32(w + h);
      float32x4_t k[9];
      WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) k[t] = vld1q_f32(w + 8 + t * 8 + h);
      float* out = output + c0 + h;
      ptrdiff_t ix = -(ptrdiff_t)padding_left;
      for (size_t x = 0; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) {
        const void* taps[9];
        whittle_dwconv3x3_taps((const void* const*)rows, pad, channels * sizeof(float), input_width, ix,
                               taps);
        float32x4_t acc = bias;
        WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
          const float* p = (const float*)taps[t] + c0 + h;
          float32x4_t v;
          if (cols == 4) {
            v = vld1q_f32(p);
          } else {
            // Copy the tail so no float past the last channel is read.
            float tmp[4] = {0};
            memcpy(tmp, p, cols * sizeof(float));
            v = vld1q_f32(tmp);
          }
          acc = WHITTLE_VMLA(acc, v, k[t]);
        }
        acc = vminq_f32(vmaxq_f32(acc, vmin), vmax);
        if (cols == 4) {
          vst1q_f32(out, acc);
        } else {
          float tmp[4];
          vst1q_f32(tmp, acc);
          memcpy(out, tmp, cols * sizeof(float));
        }
      }
    }
    w += 8 * 10;
  }
}
