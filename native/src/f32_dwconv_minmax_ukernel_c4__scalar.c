#include "f32_ops.h"

void f32_dwconv_minmax_ukernel_c4__scalar(size_t pixels, size_t channels, size_t taps,
                                          const float* const* input, const float* w, float* output, float min,
                                          float max) {
  for (size_t p = 0; p < pixels; p++, input += taps, output += channels) {
    const float* wb = w;
    for (size_t c0 = 0; c0 < channels; c0 += 4) {
      const size_t cols = channels - c0 < 4 ? channels - c0 : 4;
      float acc[4] = {wb[0], wb[1], wb[2], wb[3]};
      wb += 4;
      for (size_t t = 0; t < taps; t++) {
        for (size_t c = 0; c < cols; c++) acc[c] += input[t][c0 + c] * wb[c];
        wb += 4;
      }
      for (size_t c = 0; c < cols; c++) {
        const float v = acc[c] < min ? min : acc[c];
        output[c0 + c] = v > max ? max : v;
      }
    }
  }
}
