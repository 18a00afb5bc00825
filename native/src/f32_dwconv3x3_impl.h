// Body of the SIMD f32 3x3 depthwise row kernels (f32_ops.h: f32_dwconv3x3_ukernel_fn) with blocks of
// CB = 2 x F32V_W channels: each block runs as two halves of one vector, whose 9 weight vectors, bias and
// clamp stay in registers across the row (16 registers on AVX2 and ARMv7 NEON), so each multiply-add loads
// only its input. Each f32_dwconv3x3_minmax_ukernel_c<CB>__<isa>.c includes its ISA's vector operations
// (f32_vec__<isa>.h), defines the function name, then includes this file.
#include "f32_ops.h"

void WHITTLE_KERNEL_NAME(size_t channels, size_t output_width, const float* const* rows, size_t input_width,
                         size_t stride, size_t padding_left, const float* pad, const float* w, float* output,
                         float min, float max) {
  const size_t cb = 2 * F32V_W;
  const f32v vmin = F32V_SPLAT(min), vmax = F32V_SPLAT(max);
  for (size_t c0 = 0; c0 < channels; c0 += cb) {
    for (size_t h = 0; h < cb && c0 + h < channels; h += F32V_W) {
      const size_t cols = channels - c0 - h < F32V_W ? channels - c0 - h : F32V_W;
      const f32v bias = F32V_LOAD(w + h);
      f32v k[9];
      WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) k[t] = F32V_LOAD(w + cb + t * cb + h);
      float* out = output + c0 + h;
      ptrdiff_t ix = -(ptrdiff_t)padding_left;
      for (size_t x = 0; x < output_width; x++, ix += (ptrdiff_t)stride, out += channels) {
        const void* taps[9];
        whittle_dwconv3x3_taps((const void* const*)rows, pad, channels * sizeof(float), input_width, ix,
                               taps);
        f32v acc = bias;
        if (cols == F32V_W) {
          WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
            acc = F32V_FMA(F32V_LOAD((const float*)taps[t] + c0 + h), k[t], acc);
          }
          F32V_STORE(out, F32V_CLAMP(acc, vmin, vmax));
        } else {
          WHITTLE_UNROLL9 for (size_t t = 0; t < 9; t++) {
            acc = F32V_FMA(f32v_load_n((const float*)taps[t] + c0 + h, cols), k[t], acc);
          }
          f32v_store_n(out, F32V_CLAMP(acc, vmin, vmax), cols);
        }
      }
    }
    w += cb * 10;
  }
}
