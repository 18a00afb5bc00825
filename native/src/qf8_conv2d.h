// Fixed-point Q(IL.FL) kernels with 8-bit words and per-layer dynamic fractional lengths
// (Gupta et al. 2015; Courbariaux et al. 2014), and the float -> fixed quantizers of the trainer.
//
// A value q with fractional length FL means q * 2^-FL. Every layer has its own FL for weights, inputs and
// outputs. The accumulator sum(input * weight) + bias has FL = input_fl + weight_fl and is moved to the
// output FL by one shift, shift = input_fl + weight_fl - output_fl:
//   shift > 0: round to nearest, ties toward +infinity (floor((acc + 2^(shift-1)) / 2^shift)), the rounding
//              of NEON's VRSHR and XNNPACK's "rndnu" (hence the kernel name);
//   shift <= 0: exact multiplication by 2^-shift;
// then saturation to [output_min, output_max] (a fused ReLU is output_min = 0).
// Accumulation is exact in int32: |x*w| <= 2^14 and at most QF8_MAX_REDUCTION products, so every partial
// sum of the dot product stays below 2^30; the bias is added in int64.
//
// Naming grammar: <dtype>_<op>_<activation>_<rounding>_ukernel__<isa>; isa names follow
// cpu/cpu-features.h. The list qf8_conv2d_variants below drives dispatch, tests and benchmarks.
//
// Functions the binding exposes:
//   qf8_conv2d_select(level) -> {conv2d, fc}: qf8_conv2d_minmax_rndnu_ukernel__{scalar,avx2,neon,neondot}
//   qf8_fc_minmax_rndnu_ukernel__{scalar,avx2,neon,neondot}       (the .fc field of the same list)
//   qf8_quantize_nearest, qf8_quantize_stochastic, qf8_dequantize
//   qf8_conv2d_minmax_rndnu_ukernel__reference and qf8_fc_..._reference (tests only)
#ifndef WHITTLE_QF8_CONV2D_H_
#define WHITTLE_QF8_CONV2D_H_

#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu-features.h"
#include "qf16_conv2d.h"

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

// Largest kernel_height * kernel_width * group_input_channels (and FC input_channels): 2^16 * 2^14 = 2^30,
// so the int32 dot product never overflows.
#define QF8_MAX_REDUCTION (UINT32_C(1) << 16)
// Range of input_fl + weight_fl - output_fl.
#define QF8_MIN_SHIFT (-32)
#define QF8_MAX_SHIFT 62
// The quantizers produce symmetric values in [-QF8_WEIGHT_MAX, QF8_WEIGHT_MAX]; the kernels accept the
// full int8 range for inputs and weights.
#define QF8_WEIGHT_MAX 127

// output[n][oy][ox][o] = clamp(round_shift(bias[o] + sum_{ky,kx,i} input[...] * weights[o][ky][kx][i]))
// for output channels o in [oc_begin, oc_end) only (other channels are not written), so a thread pool can
// split the output channels. bias (int32 [groups * group_output_channels], in units of
// 2^-(input_fl + weight_fl)) may be NULL. output_min <= output_max within [-128, 127].
// Preconditions (the caller checks them; the kernel does not): the geometry fields >= 1 (paddings >= 0),
// K = kernel_height * kernel_width * group_input_channels <= QF8_MAX_REDUCTION, shift = input_fl + weight_fl
// - output_fl in [QF8_MIN_SHIFT, QF8_MAX_SHIFT], 0 <= oc_begin <= oc_end <= groups * group_output_channels,
// and the output not overlapping any input.
typedef void (*qf8_conv2d_fn)(const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,
                              const int8_t* input, const int8_t* weights, const int32_t* bias,
                              int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min,
                              int32_t output_max, int8_t* output);

#define QF8_CONV2D_DECLARE(isa)                                                                     \
  void qf8_conv2d_minmax_rndnu_ukernel__##isa(                                                      \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                      \
      const int8_t* WHITTLE_RESTRICT input, const int8_t* WHITTLE_RESTRICT weights,                 \
      const int32_t* WHITTLE_RESTRICT bias, int32_t input_fl, int32_t weight_fl, int32_t output_fl, \
      int32_t output_min, int32_t output_max, int8_t* WHITTLE_RESTRICT output);                     \
  void qf8_fc_minmax_rndnu_ukernel__##isa(                                                          \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,  \
      const int8_t* WHITTLE_RESTRICT input, const int8_t* WHITTLE_RESTRICT weights,                 \
      const int32_t* WHITTLE_RESTRICT bias, int32_t input_fl, int32_t weight_fl, int32_t output_fl, \
      int32_t output_min, int32_t output_max, int8_t* WHITTLE_RESTRICT output);

// Fully connected: input [batch][input_channels], weights [output_channels][input_channels],
// output [batch][output_channels]; otherwise as conv2d.
typedef void (*qf8_fc_fn)(size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin,
                          size_t oc_end, const int8_t* input, const int8_t* weights, const int32_t* bias,
                          int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min,
                          int32_t output_max, int8_t* output);

QF8_CONV2D_DECLARE(reference)
QF8_CONV2D_DECLARE(scalar)
#if defined(__x86_64__) || defined(_M_X64)
QF8_CONV2D_DECLARE(avx2)
#endif
#if defined(__arm__) || defined(__aarch64__)
QF8_CONV2D_DECLARE(neon)
#endif
#if defined(__aarch64__)
QF8_CONV2D_DECLARE(neondot)
#endif

typedef struct qf8_conv2d_variant {
  whittle_isa isa;
  const char* name;
  qf8_conv2d_fn conv2d;
  qf8_fc_fn fc;
} qf8_conv2d_variant;

// Every compiled-in variant except the reference, best last; terminated by an entry with name NULL.
extern const qf8_conv2d_variant qf8_conv2d_variants[];
// The best variant that `level` allows (whittle_isa_allows) and this CPU supports; never NULL (scalar always
// qualifies). Dispatch: qf8_conv2d_select(whittle_isa_selected()).
const qf8_conv2d_variant* qf8_conv2d_select(whittle_isa level);

// Round to nearest (ties toward +infinity) and saturate to [-127, 127]: output[i] = q with
// q * 2^-fractional_length nearest to input[i]; NaN -> 0. fractional_length in [-64, 64].
void qf8_quantize_nearest(size_t count, const float* input, int32_t fractional_length, int8_t* output);

// Stochastic rounding (Gupta et al. 2015): output[i] = floor(input[i] * 2^fl + u_i), saturated to
// [-127, 127], with u_i = whittle_fixed_point_uniform24(seed, first_index + i) in [0, 1) on a 2^-24 grid, so
// E[output * 2^-fl] = input up to 2^-24 of a step (inside the range). Counter-based: any split of the
// array across threads gives the same bits, and agent/runtime/number/fixed-point.ts gives the same bits.
void qf8_quantize_stochastic(size_t count, const float* input, int32_t fractional_length, uint32_t seed,
                             uint32_t first_index, int8_t* output);

// output[i] = input[i] * 2^-fractional_length (exact for |fractional_length| <= 100).
void qf8_dequantize(size_t count, const int8_t* input, int32_t fractional_length, float* output);

// whittle_fixed_point_uniform24 is declared in qf16_conv2d.h and shared by both word sizes.

#ifdef __cplusplus
}
#endif

#endif  // WHITTLE_QF8_CONV2D_H_
