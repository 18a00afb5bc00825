#include "f32_ops.h"

void f32_dwconv3x3_minmax_ukernel_c4__scalar(size_t channels, size_t output_width, const float* const* rows,
                                             size_t input_width, size_t stride, size_t padding_left,
                                             const float* pad, const float* w, float* output, float min,
                                             float max) {
  for (size_t c0 = 0; c0 < channels; c0 += 4) {
    const size_t cols = channels - c0 < 4 ? channels - c0 : 4;
    float* out = output + c0;
    ptrdiff_t ix = -(ptrdiff_t)padding_left;
    for (size_t x = 0; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) {
      const void* taps[9];
      whittle_dwconv3x3_taps((const void* const*)rows, pad, channels * sizeof(float), input_width, ix, taps);
      for (size_t c = 0; c < cols; c++) {
        // The same order of operations as the per-pixel kernel: bias first, then the taps in order.
        float acc = w[c];
        for (size_t t = 0; t < 9; t++) acc += ((const float*)taps[t])[c0 + c] * w[4 + t * 4 + c];
        out[c] = whittle_clamp_f32(acc, min, max);
      }
    }
    w += 4 * 10;
  }
}
