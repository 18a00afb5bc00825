// Fixed-point Q(IL.FL) kernels with 16-bit words and per-layer dynamic fractional lengths
// (Gupta et al. 2015; Courbariaux et al. 2014), and the float -> fixed quantizers of the trainer.
//
// A value q with fractional length FL means q * 2^-FL. Every layer has its own FL for weights, inputs and
// outputs. The accumulator sum(input * weight) + bias has FL = input_fl + weight_fl and is moved to the
// output FL by one shift, shift = input_fl + weight_fl - output_fl:
//   shift > 0: round to nearest, ties toward +infinity (floor((acc + 2^(shift-1)) / 2^shift)), the rounding
//              of NEON's VRSHR and XNNPACK's "rndnu" (hence the kernel name);
//   shift <= 0: exact multiplication by 2^-shift;
// then saturation to [output_min, output_max] (a fused ReLU is output_min = 0).
// Accumulation is exact in int64: the scalar paths accumulate int64, the SIMD ones accumulate each pair
// product (pmaddwd) in int32 and widen before adding, which is exact because weights are in
// [-32767, 32767] (|x*w| < 2^30, a pair sum < 2^31).
//
// Naming grammar: <dtype>_<op>_<activation>_<rounding>_ukernel__<isa>; isa names follow
// cpu/cpu-features.h. The list qf16_conv2d_variants below drives dispatch, tests and benchmarks.
//
// Functions the binding exposes:
//   qf16_conv2d_select(level) -> {conv2d, fc}: qf16_conv2d_minmax_rndnu_ukernel__{scalar,avx2,neon}
//   qf16_fc_minmax_rndnu_ukernel__{scalar,avx2,neon}       (the .fc field of the same list)
//   qf16_quantize_nearest, qf16_quantize_stochastic, qf16_dequantize
//   qf16_conv2d_minmax_rndnu_ukernel__reference and qf16_fc_..._reference (tests only)
#ifndef WHITTLE_QF16_CONV2D_H_
#define WHITTLE_QF16_CONV2D_H_

#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu-features.h"

#ifdef __cplusplus
#define WHITTLE_RESTRICT __restrict
extern "C" {
#else
#define WHITTLE_RESTRICT restrict
#endif

#ifndef WHITTLE_CONV2D_GEOMETRY_DEFINED
#define WHITTLE_CONV2D_GEOMETRY_DEFINED
// NHWC convolution geometry, the same struct in every format's header (guarded so that several headers can
// be included together).
//   input   [batch][input_height][input_width][groups * group_input_channels]
//   output  [batch][output_height][output_width][groups * group_output_channels]
//   weights per output channel o (group o / group_output_channels):
//   [kernel_height][kernel_width][group_input_channels]
// Output position (oy, ox) reads input rows oy * stride_height - padding_top + ky and columns
// ox * stride_width - padding_left + kx; any row or column outside the input is padding with real value 0
// (bottom and right padding follow from the output size). Depthwise: group_input_channels = 1 and
// groups = channels. Every field except the paddings is >= 1; kernels never read outside the input for any
// geometry. Structured pruning needs no kernel: a pruned layer is a smaller dense layer (fewer channels).
typedef struct whittle_conv2d_geometry {
  size_t batch;
  size_t input_height;
  size_t input_width;
  size_t kernel_height;
  size_t kernel_width;
  size_t stride_height;
  size_t stride_width;
  size_t padding_top;
  size_t padding_left;
  size_t output_height;
  size_t output_width;
  size_t groups;
  size_t group_input_channels;
  size_t group_output_channels;
} whittle_conv2d_geometry;

// The kernel taps [*first, *last) of one output coordinate that land inside the input (the others read
// padding). Shared by every format's driver, hence inside the same guard.
static inline void whittle_conv2d_valid_taps(size_t output_index, size_t stride, size_t padding,
                                             size_t kernel_size, size_t input_size, size_t* first,
                                             size_t* last) {
  const ptrdiff_t origin = (ptrdiff_t)(output_index * stride) - (ptrdiff_t)padding;
  ptrdiff_t lo = -origin;
  ptrdiff_t hi = (ptrdiff_t)input_size - origin;
  lo = lo < 0 ? 0 : lo;
  hi = hi > (ptrdiff_t)kernel_size ? (ptrdiff_t)kernel_size : hi;
  *first = (size_t)lo;
  *last = hi > lo ? (size_t)hi : (size_t)lo;
}
#endif

// Largest kernel_height * kernel_width * group_input_channels (and FC input_channels): with |x*w| < 2^30
// the exact sum stays below 2^54 and the bias (|bias| <= QF16_MAX_ABS_BIAS) cannot overflow int64.
#define QF16_MAX_REDUCTION (UINT32_C(1) << 24)
#define QF16_MAX_ABS_BIAS (INT64_C(1) << 56)
// Range of input_fl + weight_fl - output_fl.
#define QF16_MIN_SHIFT (-32)
#define QF16_MAX_SHIFT 62
// Weights are symmetric: [-QF16_WEIGHT_MAX, QF16_WEIGHT_MAX]. Inputs may use the full int16 range.
#define QF16_WEIGHT_MAX 32767

// output[n][oy][ox][o] = clamp(round_shift(bias[o] + sum_{ky,kx,i} input[...] * weights[o][ky][kx][i]))
// for output channels o in [oc_begin, oc_end) only (other channels are not written), so a thread pool can
// split the output channels. bias (int64 [groups * group_output_channels], in units of
// 2^-(input_fl + weight_fl)) may be NULL. output_min <= output_max within [-32768, 32767].
// Preconditions (the caller checks them; the kernel does not): the geometry fields >= 1 (paddings >= 0),
// K = kernel_height * kernel_width * group_input_channels <= QF16_MAX_REDUCTION, shift = input_fl + weight_fl
// - output_fl in [QF16_MIN_SHIFT, QF16_MAX_SHIFT], weights in [-QF16_WEIGHT_MAX, QF16_WEIGHT_MAX], |bias| <=
// QF16_MAX_ABS_BIAS, 0 <= oc_begin <= oc_end <= groups * group_output_channels, and the output not
// overlapping any input.
typedef void (*qf16_conv2d_fn)(const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,
                               const int16_t* input, const int16_t* weights, const int64_t* bias,
                               int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min,
                               int32_t output_max, int16_t* output);

#define QF16_CONV2D_DECLARE(isa)                                                                    \
  void qf16_conv2d_minmax_rndnu_ukernel__##isa(                                                     \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                      \
      const int16_t* WHITTLE_RESTRICT input, const int16_t* WHITTLE_RESTRICT weights,               \
      const int64_t* WHITTLE_RESTRICT bias, int32_t input_fl, int32_t weight_fl, int32_t output_fl, \
      int32_t output_min, int32_t output_max, int16_t* WHITTLE_RESTRICT output);                    \
  void qf16_fc_minmax_rndnu_ukernel__##isa(                                                         \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,  \
      const int16_t* WHITTLE_RESTRICT input, const int16_t* WHITTLE_RESTRICT weights,               \
      const int64_t* WHITTLE_RESTRICT bias, int32_t input_fl, int32_t weight_fl, int32_t output_fl, \
      int32_t output_min, int32_t output_max, int16_t* WHITTLE_RESTRICT output);

// Fully connected: input [batch][input_channels], weights [output_channels][input_channels],
// output [batch][output_channels]; otherwise as conv2d.
typedef void (*qf16_fc_fn)(size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin,
                           size_t oc_end, const int16_t* input, const int16_t* weights, const int64_t* bias,
                           int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min,
                           int32_t output_max, int16_t* output);

QF16_CONV2D_DECLARE(reference)
QF16_CONV2D_DECLARE(scalar)
#if defined(__x86_64__) || defined(_M_X64)
QF16_CONV2D_DECLARE(avx2)
#endif
#if defined(__arm__) || defined(__aarch64__)
QF16_CONV2D_DECLARE(neon)
#endif

typedef struct qf16_conv2d_variant {
  whittle_isa isa;
  const char* name;
  qf16_conv2d_fn conv2d;
  qf16_fc_fn fc;
} qf16_conv2d_variant;

// Every compiled-in variant except the reference, best last; terminated by an entry with name NULL.
extern const qf16_conv2d_variant qf16_conv2d_variants[];
// The best variant that `level` allows (whittle_isa_allows) and this CPU supports; never NULL (scalar always
// qualifies). Dispatch: qf16_conv2d_select(whittle_isa_selected()).
const qf16_conv2d_variant* qf16_conv2d_select(whittle_isa level);

// Round to nearest (ties toward +infinity) and saturate to [-32767, 32767]: output[i] = q with
// q * 2^-fractional_length nearest to input[i]; NaN -> 0. fractional_length in [-64, 64].
void qf16_quantize_nearest(size_t count, const float* input, int32_t fractional_length, int16_t* output);

// Stochastic rounding (Gupta et al. 2015): output[i] = floor(input[i] * 2^fl + u_i), saturated to
// [-32767, 32767], with u_i = whittle_fixed_point_uniform24(seed, first_index + i) in [0, 1) on a 2^-24 grid,
// so E[output * 2^-fl] = input up to 2^-24 of a step (inside the range). Counter-based: any split of the
// array across threads gives the same bits, and agent/runtime/number/fixed-point.ts gives the same bits.
void qf16_quantize_stochastic(size_t count, const float* input, int32_t fractional_length, uint32_t seed,
                              uint32_t first_index, int16_t* output);

// output[i] = input[i] * 2^-fractional_length (exact for |fractional_length| <= 100).
void qf16_dequantize(size_t count, const int16_t* input, int32_t fractional_length, float* output);

// The uniform draw of the stochastic quantizers: lowbias32(index ^ lowbias32(seed)) >> 8, times 2^-24.
double whittle_fixed_point_uniform24(uint32_t seed, uint32_t index);

#ifdef __cplusplus
}
#endif

#endif  // WHITTLE_QF16_CONV2D_H_
