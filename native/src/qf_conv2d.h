// Fixed-point Q(IL.FL) kernels with per-layer dynamic fractional lengths (Gupta et al. 2015; Courbariaux et
// al. 2014), in two word sizes that share one definition and one driver, and the float -> fixed quantizers of
// the trainer:
//   qf16: int16 inputs, weights and outputs, int64 bias;
//   qf8:  int8 inputs, weights and outputs, int32 bias.
//
// A value q with fractional length FL means q * 2^-FL. Every layer has its own FL for weights, inputs and
// outputs. The accumulator sum(input * weight) + bias has FL = input_fl + weight_fl and is moved to the
// output FL by one shift, shift = input_fl + weight_fl - output_fl:
//   shift > 0: round to nearest, ties toward +infinity (floor((acc + 2^(shift-1)) / 2^shift)), the rounding
//              of NEON's VRSHR and XNNPACK's "rndnu" (hence the kernel name);
//   shift <= 0: exact multiplication by 2^-shift;
// then saturation to [output_min, output_max] (a fused ReLU is output_min = 0).
// Accumulation is exact:
//   qf16 in int64: the scalar paths accumulate int64, the SIMD ones accumulate each pair product (pmaddwd) in
//        int32 and widen before adding, which is exact because weights are in [-32767, 32767] (|x*w| < 2^30,
//        a pair sum < 2^31);
//   qf8 in int32: |x*w| <= 2^14 and at most QF8_MAX_REDUCTION products, so every partial sum of the dot
//        product stays below 2^30; the bias is added in int64.
//
// Naming grammar: <dtype>_<op>_<activation>_<rounding>_ukernel__<isa>; isa names follow
// cpu/cpu-features.h. The lists qf16_conv2d_variants and qf8_conv2d_variants drive dispatch, tests and
// benchmarks; the variant rule is kernel_abi.h's.
//
// Functions the binding exposes, for TAG in {qf16, qf8}:
//   TAG_conv2d_select(level) -> {conv2d, fc}: TAG_conv2d_minmax_rndnu_ukernel__{scalar,avx2,neon} (qf16 also
//   avx512, qf8 also neondot), TAG_fc_minmax_rndnu_ukernel__{...} (the .fc field of the same list)
//   TAG_quantize_nearest, TAG_quantize_stochastic, TAG_dequantize
//   TAG_conv2d_minmax_rndnu_ukernel__reference and TAG_fc_..._reference (tests only)
#ifndef WHITTLE_QF_CONV2D_H_
#define WHITTLE_QF_CONV2D_H_

#include "conv2d_geometry.h"

WHITTLE_EXTERN_C_BEGIN

// Largest kernel_height * kernel_width * group_input_channels (and FC input_channels).
//   qf16: with |x*w| < 2^30 the exact sum stays below 2^54 and the bias (|bias| <= QF16_MAX_ABS_BIAS) cannot
//         overflow int64;
//   qf8:  2^16 * 2^14 = 2^30, so the int32 dot product never overflows.
#define QF16_MAX_REDUCTION (UINT32_C(1) << 24)
#define QF16_MAX_ABS_BIAS (INT64_C(1) << 56)
#define QF8_MAX_REDUCTION (UINT32_C(1) << 16)
// Range of input_fl + weight_fl - output_fl.
#define QF16_MIN_SHIFT (-32)
#define QF16_MAX_SHIFT 62
#define QF8_MIN_SHIFT (-32)
#define QF8_MAX_SHIFT 62
// The quantizers produce symmetric values in [-WEIGHT_MAX, WEIGHT_MAX]. qf16 weights must stay in that
// range (the SIMD pair sums rely on it); inputs may use the full int16 range. The qf8 kernels accept the full
// int8 range for inputs and weights.
#define QF16_WEIGHT_MAX 32767
#define QF8_WEIGHT_MAX 127

// The word and bias types of each family, named so that one macro declares and defines both families.
typedef int16_t qf16_word;
typedef int64_t qf16_bias;
typedef int8_t qf8_word;
typedef int32_t qf8_bias;

// conv2d: output[n][oy][ox][o] = clamp(round_shift(bias[o] + sum_{ky,kx,i} input[...] *
// weights[o][ky][kx][i])) for output channels o in [oc_begin, oc_end) only (other channels are not written),
// so a thread pool can split the output channels. bias ([groups * group_output_channels], in units of
// 2^-(input_fl + weight_fl)) may be NULL. output_min <= output_max within the word's range. Preconditions
// (the caller checks them; the kernel does not): the geometry fields >= 1 (paddings >= 0), K = kernel_height
// * kernel_width * group_input_channels <= TAG_MAX_REDUCTION, shift = input_fl + weight_fl
// - output_fl in [TAG_MIN_SHIFT, TAG_MAX_SHIFT], qf16 weights in [-QF16_WEIGHT_MAX, QF16_WEIGHT_MAX] and
// |bias| <= QF16_MAX_ABS_BIAS, 0 <= oc_begin <= oc_end <= groups * group_output_channels, and the output not
// overlapping any input.
// fc: input [batch][input_channels], weights [output_channels][input_channels], output
// [batch][output_channels]; otherwise as conv2d.
#define QF_CONV2D_DECLARE(tag, isa)                                                                    \
  void tag##_conv2d_minmax_rndnu_ukernel__##isa(                                                       \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                         \
      const tag##_word* WHITTLE_RESTRICT input, const tag##_word* WHITTLE_RESTRICT weights,            \
      const tag##_bias* WHITTLE_RESTRICT bias, int32_t input_fl, int32_t weight_fl, int32_t output_fl, \
      int32_t output_min, int32_t output_max, tag##_word* WHITTLE_RESTRICT output);                    \
  void tag##_fc_minmax_rndnu_ukernel__##isa(                                                           \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,     \
      const tag##_word* WHITTLE_RESTRICT input, const tag##_word* WHITTLE_RESTRICT weights,            \
      const tag##_bias* WHITTLE_RESTRICT bias, int32_t input_fl, int32_t weight_fl, int32_t output_fl, \
      int32_t output_min, int32_t output_max, tag##_word* WHITTLE_RESTRICT output);

// The family's function types, variant list and quantizers:
//   TAG_quantize_nearest: round to nearest (ties toward +infinity) and saturate to [-WEIGHT_MAX, WEIGHT_MAX]:
//     output[i] = q with q * 2^-fractional_length nearest to input[i]; NaN -> 0. fractional_length in
//     [-64, 64].
//   TAG_quantize_stochastic (Gupta et al. 2015): output[i] = floor(input[i] * 2^fl + u_i), saturated to
//     [-WEIGHT_MAX, WEIGHT_MAX], with u_i = whittle_fixed_point_uniform24(seed, first_index + i) in [0, 1) on
//     a 2^-24 grid, so E[output * 2^-fl] = input up to 2^-24 of a step (inside the range). Counter-based: any
//     split of the array across threads gives the same bits, and quantizeStochastic in
//     agent/runtime/number/fixed-point.ts gives the same bits too.
//   TAG_dequantize: output[i] = input[i] * 2^-fractional_length (exact for |fractional_length| <= 100).
#define QF_CONV2D_DECLARE_FAMILY(tag)                                                                        \
  typedef void (*tag##_conv2d_fn)(                                                                           \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end, const tag##_word* input,      \
      const tag##_word* weights, const tag##_bias* bias, int32_t input_fl, int32_t weight_fl,                \
      int32_t output_fl, int32_t output_min, int32_t output_max, tag##_word* output);                        \
  typedef void (*tag##_fc_fn)(                                                                               \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,           \
      const tag##_word* input, const tag##_word* weights, const tag##_bias* bias, int32_t input_fl,          \
      int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max, tag##_word* output);     \
  typedef struct tag##_conv2d_variant {                                                                      \
    whittle_isa isa;                                                                                         \
    const char* name;                                                                                        \
    tag##_conv2d_fn conv2d;                                                                                  \
    tag##_fc_fn fc;                                                                                          \
  } tag##_conv2d_variant;                                                                                    \
  /* Every compiled-in variant except the reference. */                                                      \
  WHITTLE_DECLARE_VARIANTS(tag##_conv2d)                                                                     \
  void tag##_quantize_nearest(size_t count, const float* input, int32_t fractional_length,                   \
                              tag##_word* output);                                                           \
  void tag##_quantize_stochastic(size_t count, const float* input, int32_t fractional_length, uint32_t seed, \
                                 uint32_t first_index, tag##_word* output);                                  \
  void tag##_dequantize(size_t count, const tag##_word* input, int32_t fractional_length, float* output);

QF_CONV2D_DECLARE_FAMILY(qf16)
QF_CONV2D_DECLARE_FAMILY(qf8)

QF_CONV2D_DECLARE(qf16, reference)
QF_CONV2D_DECLARE(qf16, scalar)
QF_CONV2D_DECLARE(qf8, reference)
QF_CONV2D_DECLARE(qf8, scalar)
#if defined(__x86_64__) || defined(_M_X64)
QF_CONV2D_DECLARE(qf16, avx2)
QF_CONV2D_DECLARE(qf16, avx512)
QF_CONV2D_DECLARE(qf8, avx2)
#endif
#if defined(__arm__) || defined(__aarch64__)
QF_CONV2D_DECLARE(qf16, neon)
QF_CONV2D_DECLARE(qf8, neon)
#endif
#if defined(__aarch64__)
QF_CONV2D_DECLARE(qf8, neondot)
#endif

// The uniform draw of the stochastic quantizers: lowbias32(index ^ lowbias32(seed)) >> 8, times 2^-24.
double whittle_fixed_point_uniform24(uint32_t seed, uint32_t index);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_QF_CONV2D_H_
