// Body of the SIMD f32 depthwise kernels (f32_ops.h: f32_dwconv_ukernel_fn) with blocks of CB = 2 x F32V_W
// channels, two vector accumulators per block and pixel; a tail block reads and writes only its channels
// (f32v_load_n, f32v_store_n). Each f32_dwconv_minmax_ukernel_c<CB>__<isa>.c includes its ISA's vector
// operations (f32_vec__<isa>.h), defines the function name, then includes this file.
//
// Four pixels at a time: 8 independent multiply-add chains, enough to hide the FMA latency (one pixel's two
// chains of 25 taps left a 5x5 kernel waiting on it), and each weight vector is loaded once for the four.
// Every pixel sums its taps in order, so the result does not depend on how pixels are grouped.
#include "f32_ops.h"

#define F32_DWCONV_TAP(acc0, acc1, x)                        \
  do {                                                       \
    const float* x_ = (x) + c0;                              \
    acc0 = F32V_FMA(f32v_load_n(x_, n0), w0, acc0);          \
    acc1 = F32V_FMA(f32v_load_n(x_ + F32V_W, n1), w1, acc1); \
  } while (0)
#define F32_DWCONV_STORE(out, acc0, acc1)                           \
  do {                                                              \
    f32v_store_n((out), F32V_CLAMP(acc0, vmin, vmax), n0);          \
    f32v_store_n((out) + F32V_W, F32V_CLAMP(acc1, vmin, vmax), n1); \
  } while (0)

void WHITTLE_KERNEL_NAME(size_t pixels, size_t channels, size_t taps, const float* const* input,
                         const float* w, float* output, float min, float max) {
  const size_t cb = 2 * F32V_W;
  const f32v vmin = F32V_SPLAT(min), vmax = F32V_SPLAT(max);
  for (size_t c0 = 0; c0 < channels; c0 += cb, w += cb * (taps + 1)) {
    const size_t cols = channels - c0 < cb ? channels - c0 : cb;
    const size_t n0 = cols < F32V_W ? cols : F32V_W, n1 = cols - n0;
    const f32v b0 = F32V_LOAD(w), b1 = F32V_LOAD(w + F32V_W);
    size_t p = 0;
    for (; p + 4 <= pixels; p += 4) {
      const float* const* in = input + p * taps;
      f32v a0 = b0, a1 = b1, c0a = b0, c1a = b1, d0 = b0, d1 = b1, e0 = b0, e1 = b1;
      const float* wt = w + cb;
      for (size_t t = 0; t < taps; t++, wt += cb) {
        const f32v w0 = F32V_LOAD(wt), w1 = F32V_LOAD(wt + F32V_W);
        F32_DWCONV_TAP(a0, a1, in[t]);
        F32_DWCONV_TAP(c0a, c1a, in[taps + t]);
        F32_DWCONV_TAP(d0, d1, in[2 * taps + t]);
        F32_DWCONV_TAP(e0, e1, in[3 * taps + t]);
      }
      float* out = output + p * channels + c0;
      F32_DWCONV_STORE(out, a0, a1);
      F32_DWCONV_STORE(out + channels, c0a, c1a);
      F32_DWCONV_STORE(out + 2 * channels, d0, d1);
      F32_DWCONV_STORE(out + 3 * channels, e0, e1);
    }
    for (; p < pixels; p++) {
      const float* const* in = input + p * taps;
      f32v a0 = b0, a1 = b1;
      const float* wt = w + cb;
      for (size_t t = 0; t < taps; t++, wt += cb) {
        const f32v w0 = F32V_LOAD(wt), w1 = F32V_LOAD(wt + F32V_W);
        F32_DWCONV_TAP(a0, a1, in[t]);
      }
      F32_DWCONV_STORE(output + p * channels + c0, a0, a1);
    }
  }
}

#undef F32_DWCONV_TAP
#undef F32_DWCONV_STORE
