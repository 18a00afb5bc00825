// qf16 and qf8: reference and portable kernels, the variant lists, and the quantizers. The bodies live once
// in qf_conv2d_template.h; this file gives them their public names.
#include "qf_conv2d_impl.h"

// The public reference, portable kernels and quantizers of family `tag` (variant lists below).
#define QF_DEFINE_BASE(tag)                                                                                  \
  void tag##_conv2d_minmax_rndnu_ukernel__reference(                                                         \
      const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end, const tag##_word* restrict input,    \
      const tag##_word* restrict weights, const tag##_bias* restrict bias, int32_t input_fl,                 \
      int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,                          \
      tag##_word* restrict output) {                                                                         \
    tag##_conv2d_reference(g, oc_begin, oc_end, input, weights, bias, input_fl + weight_fl - output_fl,      \
                           output_min, output_max, output);                                                  \
  }                                                                                                          \
  void tag##_fc_minmax_rndnu_ukernel__reference(                                                             \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,           \
      const tag##_word* restrict input, const tag##_word* restrict weights, const tag##_bias* restrict bias, \
      int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,        \
      tag##_word* restrict output) {                                                                         \
    tag##_fc_reference(batch, input_channels, output_channels, oc_begin, oc_end, input, weights, bias,       \
                       input_fl + weight_fl - output_fl, output_min, output_max, output);                    \
  }                                                                                                          \
  QF_DEFINE_KERNELS(tag, scalar, tag##_dot_scalar)                                                           \
  void tag##_quantize_nearest(size_t count, const float* input, int32_t fractional_length,                   \
                              tag##_word* output) {                                                          \
    tag##_quantize_nearest_impl(count, input, fractional_length, output);                                    \
  }                                                                                                          \
  void tag##_quantize_stochastic(size_t count, const float* input, int32_t fractional_length, uint32_t seed, \
                                 uint32_t first_index, tag##_word* output) {                                 \
    tag##_quantize_stochastic_impl(count, input, fractional_length, seed, first_index, output);              \
  }                                                                                                          \
  void tag##_dequantize(size_t count, const tag##_word* input, int32_t fractional_length, float* output) {   \
    tag##_dequantize_impl(count, input, fractional_length, output);                                          \
  }

QF_DEFINE_BASE(qf16)
QF_DEFINE_BASE(qf8)

// Best first, scalar last (kernel_abi.h).
WHITTLE_DEFINE_VARIANTS(qf16_conv2d, qf16_conv2d_minmax_rndnu_ukernel, qf16_fc_minmax_rndnu_ukernel)

const qf8_conv2d_variant qf8_conv2d_variants[] = {
#if defined(__aarch64__)
    {WHITTLE_ISA_NEONDOT, "neondot", qf8_conv2d_minmax_rndnu_ukernel__neondot,
     qf8_fc_minmax_rndnu_ukernel__neondot},
#endif
#if defined(__arm__) || defined(__aarch64__)
    {WHITTLE_ISA_NEON, "neon", qf8_conv2d_minmax_rndnu_ukernel__neon, qf8_fc_minmax_rndnu_ukernel__neon},
#endif
#if defined(__x86_64__) || defined(_M_X64)
    {WHITTLE_ISA_AVX2, "avx2", qf8_conv2d_minmax_rndnu_ukernel__avx2, qf8_fc_minmax_rndnu_ukernel__avx2},
#endif
    {WHITTLE_ISA_SCALAR, "scalar", qf8_conv2d_minmax_rndnu_ukernel__scalar,
     qf8_fc_minmax_rndnu_ukernel__scalar},
};
WHITTLE_DEFINE_VARIANT_SELECT(qf8_conv2d)

// lowbias32 (Chris Wellons' 32-bit integer hash): good avalanche with 32-bit multiplies only, so the
// TypeScript twin computes it with Math.imul.
static uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16;
  x *= UINT32_C(0x7feb352d);
  x ^= x >> 15;
  x *= UINT32_C(0x846ca68b);
  x ^= x >> 16;
  return x;
}

double whittle_fixed_point_uniform24(uint32_t seed, uint32_t index) {
  return (double)(lowbias32(index ^ lowbias32(seed)) >> 8) * 0x1p-24;
}
