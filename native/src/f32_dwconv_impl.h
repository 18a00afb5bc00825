// Body of the SIMD f32 depthwise kernels (f32_ops.h: f32_dwconv_ukernel_fn) with blocks of CB = 2 x F32V_W
// channels, two vector accumulators per block; a tail block reads and writes only its channels
// (f32v_load_n, f32v_store_n). Each f32_dwconv_minmax_ukernel_c<CB>__<isa>.c includes its ISA's vector
// operations (f32_vec__<isa>.h), defines the function name, then includes this file.
#include "f32_ops.h"

void WHITTLE_KERNEL_NAME(size_t channels, size_t taps, const float* const* input, const float* w,
                         float* output, float min, float max) {
  const size_t cb = 2 * F32V_W;
  const f32v vmin = F32V_SPLAT(min), vmax = F32V_SPLAT(max);
  for (size_t c0 = 0; c0 < channels; c0 += cb) {
    const size_t cols = channels - c0 < cb ? channels - c0 : cb;
    const size_t n0 = cols < F32V_W ? cols : F32V_W, n1 = cols - n0;
    f32v acc0 = F32V_LOAD(w), acc1 = F32V_LOAD(w + F32V_W);
    w += cb;
    for (size_t t = 0; t < taps; t++) {
      const float* x = input[t] + c0;
      acc0 = F32V_FMA(f32v_load_n(x, n0), F32V_LOAD(w), acc0);
      acc1 = F32V_FMA(f32v_load_n(x + F32V_W, n1), F32V_LOAD(w + F32V_W), acc1);
      w += cb;
    }
    f32v_store_n(output + c0, F32V_CLAMP(acc0, vmin, vmax), n0);
    f32v_store_n(output + c0 + F32V_W, F32V_CLAMP(acc1, vmin, vmax), n1);
  }
}
