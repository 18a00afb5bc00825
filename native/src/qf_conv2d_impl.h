// Private to the qf kernel files: what every ISA of both word sizes shares. qf_conv2d_template.h is
// instantiated here for qf16 and qf8 (drivers, references, quantizers); each ISA file then supplies only its
// dot product (and, for qf8's SIMD paths, a block span) and defines its kernels with QF_DEFINE_KERNELS or
// QF_DEFINE_KERNELS_BLOCKED.
#ifndef WHITTLE_QF_CONV2D_IMPL_H_
#define WHITTLE_QF_CONV2D_IMPL_H_

#include <math.h>

#include "qf_conv2d.h"

// The drivers are inlined into each ISA's kernel so that the ISA's span function, passed as a constant
// function pointer, is inlined too (GCC otherwise clones the driver and keeps an indirect call per span).
#if defined(__GNUC__)
#define QF_DRIVER static inline __attribute__((always_inline))
#else
#define QF_DRIVER static inline
#endif

// acc (units 2^-(input_fl + weight_fl)) to the output fractional length: see qf_conv2d.h for the rounding.
static inline int32_t qf_round_shift_saturate(int64_t acc, int32_t shift, int32_t output_min,
                                              int32_t output_max) {
  int64_t value;
  if (shift > 0) {
    // >> of a negative int64 is an arithmetic shift on every supported compiler, so this is a floor.
    value = (acc + (INT64_C(1) << (shift - 1))) >> shift;
  } else {
    // Beyond +-2^24 the result saturates anyway; clamping first keeps the product inside int64.
    const int64_t limit = INT64_C(1) << 24;
    acc = acc < -limit ? -limit : (acc > limit ? limit : acc);
    value = acc * (INT64_C(1) << -shift);
  }
  value = value < output_min ? output_min : value;
  value = value > output_max ? output_max : value;
  return (int32_t)value;
}

// floor(value) saturated to [-limit, limit]; NaN -> 0. value is a double computed exactly from a float.
static inline int32_t qf_saturate_floor(double value, int32_t limit) {
  if (!(value == value)) {
    return 0;
  }
  if (value >= (double)limit) {
    return limit;
  }
  if (value <= -(double)limit) {
    return -limit;
  }
  return (int32_t)floor(value);
}

#define QF_DEPTHWISE_CHUNK 64
#define QF_DEPTHWISE_MAX_TAPS 64
// Capacity of the blocked driver's widened weights (int16) and its largest block of output channels.
#define QF_EXPANDED_WEIGHTS 16384
#define QF_MAX_BLOCK 16

#define QF_TAG qf16
#define QF_DOT int64_t
#define QF_WEIGHT_LIMIT QF16_WEIGHT_MAX
#include "qf_conv2d_template.h"
#undef QF_WEIGHT_LIMIT
#undef QF_DOT
#undef QF_TAG

#define QF_TAG qf8
#define QF_DOT int32_t
#define QF_WEIGHT_LIMIT QF8_WEIGHT_MAX
#include "qf_conv2d_template.h"
#undef QF_WEIGHT_LIMIT
#undef QF_DOT
#undef QF_TAG

// The conv2d and fc kernels of one ISA of family `tag` from its dot product: depthwise layers on the
// depthwise driver, the rest one output channel at a time.
#define QF_DEFINE_KERNELS(tag, isa, dot)                                                                     \
  void tag##_conv2d_minmax_rndnu_ukernel__##isa(                                                             \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                               \
      const tag##_word* restrict input, const tag##_word* restrict weights, const tag##_bias* restrict bias, \
      int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,        \
      tag##_word* restrict output) {                                                                         \
    const int32_t shift = input_fl + weight_fl - output_fl;                                                  \
    const size_t done = tag##_conv2d_drive_depthwise(geometry, oc_begin, oc_end, input, weights, bias,       \
                                                     shift, output_min, output_max, output);                 \
    tag##_conv2d_drive(geometry, done, oc_end, input, weights, bias, shift, output_min, output_max, output,  \
                       dot);                                                                                 \
  }                                                                                                          \
  void tag##_fc_minmax_rndnu_ukernel__##isa(                                                                 \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,           \
      const tag##_word* restrict input, const tag##_word* restrict weights, const tag##_bias* restrict bias, \
      int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,        \
      tag##_word* restrict output) {                                                                         \
    const int32_t shift = input_fl + weight_fl - output_fl;                                                  \
    for (size_t n = 0; n < batch; n++) {                                                                     \
      for (size_t o = oc_begin; o < oc_end; o++) {                                                           \
        const int64_t acc = (bias != NULL ? bias[o] : 0) +                                                   \
                            dot(input + n * input_channels, weights + o * input_channels, input_channels);   \
        output[n * output_channels + o] =                                                                    \
            (tag##_word)qf_round_shift_saturate(acc, shift, output_min, output_max);                         \
      }                                                                                                      \
    }                                                                                                        \
  }

// Kernels of family `tag` with a blocked SIMD path: depthwise driver, then blocks of `block` channels (if
// the shape allows, tag_conv2d_drive_blocked), then the one-channel driver for what is left; fc is the 1x1
// convolution.
#define QF_DEFINE_KERNELS_BLOCKED(tag, isa, dot, block, block_span)                                          \
  void tag##_conv2d_minmax_rndnu_ukernel__##isa(                                                             \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                               \
      const tag##_word* restrict input, const tag##_word* restrict weights, const tag##_bias* restrict bias, \
      int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,        \
      tag##_word* restrict output) {                                                                         \
    const int32_t shift = input_fl + weight_fl - output_fl;                                                  \
    size_t done = tag##_conv2d_drive_depthwise(geometry, oc_begin, oc_end, input, weights, bias, shift,      \
                                               output_min, output_max, output);                              \
    done = tag##_conv2d_drive_blocked(geometry, done, oc_end, input, weights, bias, shift, output_min,       \
                                      output_max, output, (block), block_span);                              \
    tag##_conv2d_drive(geometry, done, oc_end, input, weights, bias, shift, output_min, output_max, output,  \
                       dot);                                                                                 \
  }                                                                                                          \
  void tag##_fc_minmax_rndnu_ukernel__##isa(                                                                 \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,           \
      const tag##_word* restrict input, const tag##_word* restrict weights, const tag##_bias* restrict bias, \
      int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,        \
      tag##_word* restrict output) {                                                                         \
    const whittle_conv2d_geometry geometry = whittle_fc_geometry(batch, input_channels, output_channels);    \
    tag##_conv2d_minmax_rndnu_ukernel__##isa(&geometry, oc_begin, oc_end, input, weights, bias, input_fl,    \
                                             weight_fl, output_fl, output_min, output_max, output);          \
  }

#endif  // WHITTLE_QF_CONV2D_IMPL_H_
