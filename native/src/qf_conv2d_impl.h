// Private to the qf kernel files: what every ISA of both word sizes shares. qf_conv2d_template.h is
// instantiated here for qf16 and qf8 (drivers, references, quantizers); each ISA file then supplies only its
// dot product (and, for qf8's SIMD paths, a block span) and defines its kernels with QF_DEFINE_KERNELS or
// QF8_DEFINE_KERNELS_BLOCKED.
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

// Blocked driver (SIMD): output channels in blocks of B. A block's weights are widened once per call into a
// stack buffer of int16 pairs, wt[k / 2][j][k % 2] for channel j of the block, so one broadcast pair of
// inputs feeds B channels through one pair-multiply-add (vpmaddwd / vmlal). block_span adds
// sum_{i < n} x[i] * w[i][j] to acc[j] (n even, wt at an even k). Only for even group_input_channels, so
// that every span starts at an even k; returns the first channel it did not compute (leftovers, odd or
// oversized reductions, blocks straddling two groups).
#define QF8_EXPANDED_WEIGHTS 16384
#define QF8_MAX_BLOCK 16

typedef void (*qf8_block_span_fn)(const int8_t* x, const int16_t* wt, size_t n, int32_t* acc);

QF_DRIVER size_t qf8_conv2d_drive_blocked(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                          const int8_t* input, const int8_t* weights, const int32_t* bias,
                                          int32_t shift, int32_t output_min, int32_t output_max,
                                          int8_t* output, size_t block, qf8_block_span_fn block_span) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t reduction = g->kernel_height * g->kernel_width * gic;
  if (gic % 2 != 0 || block * reduction > QF8_EXPANDED_WEIGHTS) {
    return oc_begin;
  }
  int16_t wt[QF8_EXPANDED_WEIGHTS];
  size_t ob = oc_begin;
  for (; ob + block <= oc_end; ob += block) {
    const size_t group = ob / g->group_output_channels;
    if ((ob + block - 1) / g->group_output_channels != group) {
      break;  // the caller's one-channel path takes it from here
    }
    for (size_t k = 0; k < reduction; k++) {
      for (size_t j = 0; j < block; j++) {
        wt[(k / 2) * block * 2 + j * 2 + k % 2] = weights[(ob + j) * reduction + k];
      }
    }
    for (size_t n = 0; n < g->batch; n++) {
      const int8_t* image = input + n * g->input_height * g->input_width * input_channels;
      for (size_t oy = 0; oy < g->output_height; oy++) {
        size_t ky0, ky1;
        whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height,
                                  &ky0, &ky1);
        for (size_t ox = 0; ox < g->output_width; ox++) {
          size_t kx0, kx1;
          whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width,
                                    &kx0, &kx1);
          int32_t acc[QF8_MAX_BLOCK] = {0};
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const int8_t* in_row = image + iy * g->input_width * input_channels + group * gic;
            const size_t ix0 = ox * g->stride_width + kx0 - g->padding_left;
            if (g->groups == 1) {
              block_span(in_row + ix0 * input_channels, wt + (ky * g->kernel_width + kx0) * gic * block,
                         (kx1 - kx0) * gic, acc);
            } else {
              for (size_t kx = kx0; kx < kx1; kx++) {
                block_span(in_row + (ix0 + kx - kx0) * input_channels,
                           wt + (ky * g->kernel_width + kx) * gic * block, gic, acc);
              }
            }
          }
          int8_t* out = output + ((n * g->output_height + oy) * g->output_width + ox) * output_channels + ob;
          for (size_t j = 0; j < block; j++) {
            const int64_t total = (int64_t)acc[j] + (bias != NULL ? bias[ob + j] : 0);
            out[j] = (int8_t)qf_round_shift_saturate(total, shift, output_min, output_max);
          }
        }
      }
    }
  }
  return ob;
}

// qf16 blocked driver (AVX-512): the qf8 driver's layout (wt[k / 2][j][k % 2], one broadcast input pair per
// pair-multiply-add for B channels) with int16 weights, and exact int64 accumulation without widening every
// pair: |a pair sum| <= 2 * 2^15 * max|w| (max over the block's weights), so flush = (2^15 - 1) / max|w|
// pair sums (>= 1, as max|w| <= QF16_WEIGHT_MAX) add in int32 below 2^31 before they are widened to int64.
// block_span adds sum_{i < n} x[i] * w[i][j] to acc[j] (n even, wt at an even k). Only for even
// group_input_channels; returns the first channel it did not compute, as the qf8 driver does.
#define QF16_EXPANDED_WEIGHTS 16384
#define QF16_MAX_BLOCK 16

typedef void (*qf16_block_span_fn)(const int16_t* x, const int16_t* wt, size_t n, size_t flush, int64_t* acc);

QF_DRIVER size_t qf16_conv2d_drive_blocked(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                           const int16_t* input, const int16_t* weights, const int64_t* bias,
                                           int32_t shift, int32_t output_min, int32_t output_max,
                                           int16_t* output, size_t block, qf16_block_span_fn block_span) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t reduction = g->kernel_height * g->kernel_width * gic;
  if (gic % 2 != 0 || block * reduction > QF16_EXPANDED_WEIGHTS) {
    return oc_begin;
  }
  int16_t wt[QF16_EXPANDED_WEIGHTS];
  size_t ob = oc_begin;
  for (; ob + block <= oc_end; ob += block) {
    const size_t group = ob / g->group_output_channels;
    if ((ob + block - 1) / g->group_output_channels != group) {
      break;  // the caller's one-channel path takes it from here
    }
    for (size_t k = 0; k < reduction; k++) {
      for (size_t j = 0; j < block; j++) {
        wt[(k / 2) * block * 2 + j * 2 + k % 2] = weights[(ob + j) * reduction + k];
      }
    }
    int32_t max_abs = 1;  // the block's rows are contiguous: one vectorizable pass
    for (size_t i = ob * reduction; i < (ob + block) * reduction; i++) {
      const int32_t w = weights[i] < 0 ? -(int32_t)weights[i] : weights[i];
      max_abs = w > max_abs ? w : max_abs;
    }
    const size_t flush = (size_t)(((INT32_C(1) << 15) - 1) / max_abs);
    for (size_t n = 0; n < g->batch; n++) {
      const int16_t* image = input + n * g->input_height * g->input_width * input_channels;
      for (size_t oy = 0; oy < g->output_height; oy++) {
        size_t ky0, ky1;
        whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height,
                                  &ky0, &ky1);
        for (size_t ox = 0; ox < g->output_width; ox++) {
          size_t kx0, kx1;
          whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width,
                                    &kx0, &kx1);
          int64_t acc[QF16_MAX_BLOCK] = {0};
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const int16_t* in_row = image + iy * g->input_width * input_channels + group * gic;
            const size_t ix0 = ox * g->stride_width + kx0 - g->padding_left;
            if (g->groups == 1) {
              block_span(in_row + ix0 * input_channels, wt + (ky * g->kernel_width + kx0) * gic * block,
                         (kx1 - kx0) * gic, flush, acc);
            } else {
              for (size_t kx = kx0; kx < kx1; kx++) {
                block_span(in_row + (ix0 + kx - kx0) * input_channels,
                           wt + (ky * g->kernel_width + kx) * gic * block, gic, flush, acc);
              }
            }
          }
          int16_t* out = output + ((n * g->output_height + oy) * g->output_width + ox) * output_channels + ob;
          for (size_t j = 0; j < block; j++) {
            const int64_t total = acc[j] + (bias != NULL ? bias[ob + j] : 0);
            out[j] = (int16_t)qf_round_shift_saturate(total, shift, output_min, output_max);
          }
        }
      }
    }
  }
  return ob;
}

// qf16 kernels with a blocked SIMD path: depthwise driver, then blocks of `block` channels (if the shape
// allows), then the one-channel driver; fc is the 1x1 convolution.
#define QF16_DEFINE_KERNELS_BLOCKED(isa, dot, block, block_span)                                           \
  void qf16_conv2d_minmax_rndnu_ukernel__##isa(                                                            \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                             \
      const int16_t* restrict input, const int16_t* restrict weights, const int64_t* restrict bias,        \
      int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,      \
      int16_t* restrict output) {                                                                          \
    const int32_t shift = input_fl + weight_fl - output_fl;                                                \
    size_t done = qf16_conv2d_drive_depthwise(geometry, oc_begin, oc_end, input, weights, bias, shift,     \
                                              output_min, output_max, output);                             \
    done = qf16_conv2d_drive_blocked(geometry, done, oc_end, input, weights, bias, shift, output_min,      \
                                     output_max, output, (block), block_span);                             \
    qf16_conv2d_drive(geometry, done, oc_end, input, weights, bias, shift, output_min, output_max, output, \
                      dot);                                                                                \
  }                                                                                                        \
  void qf16_fc_minmax_rndnu_ukernel__##isa(                                                                \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,         \
      const int16_t* restrict input, const int16_t* restrict weights, const int64_t* restrict bias,        \
      int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,      \
      int16_t* restrict output) {                                                                          \
    const whittle_conv2d_geometry geometry = whittle_fc_geometry(batch, input_channels, output_channels);  \
    qf16_conv2d_minmax_rndnu_ukernel__##isa(&geometry, oc_begin, oc_end, input, weights, bias, input_fl,   \
                                            weight_fl, output_fl, output_min, output_max, output);         \
  }

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

// qf8 kernels with a blocked SIMD path: depthwise driver, then blocks of `block` channels (if the shape
// allows), then the one-channel driver for what is left; fc is the 1x1 convolution.
#define QF8_DEFINE_KERNELS_BLOCKED(isa, dot, block, block_span)                                              \
  void qf8_conv2d_minmax_rndnu_ukernel__##isa(                                                               \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end, const int8_t* restrict input, \
      const int8_t* restrict weights, const int32_t* restrict bias, int32_t input_fl, int32_t weight_fl,     \
      int32_t output_fl, int32_t output_min, int32_t output_max, int8_t* restrict output) {                  \
    const int32_t shift = input_fl + weight_fl - output_fl;                                                  \
    size_t done = qf8_conv2d_drive_depthwise(geometry, oc_begin, oc_end, input, weights, bias, shift,        \
                                             output_min, output_max, output);                                \
    done = qf8_conv2d_drive_blocked(geometry, done, oc_end, input, weights, bias, shift, output_min,         \
                                    output_max, output, (block), block_span);                                \
    qf8_conv2d_drive(geometry, done, oc_end, input, weights, bias, shift, output_min, output_max, output,    \
                     dot);                                                                                   \
  }                                                                                                          \
  void qf8_fc_minmax_rndnu_ukernel__##isa(size_t batch, size_t input_channels, size_t output_channels,       \
                                          size_t oc_begin, size_t oc_end, const int8_t* restrict input,      \
                                          const int8_t* restrict weights, const int32_t* restrict bias,      \
                                          int32_t input_fl, int32_t weight_fl, int32_t output_fl,            \
                                          int32_t output_min, int32_t output_max, int8_t* restrict output) { \
    const whittle_conv2d_geometry geometry = whittle_fc_geometry(batch, input_channels, output_channels);    \
    qf8_conv2d_minmax_rndnu_ukernel__##isa(&geometry, oc_begin, oc_end, input, weights, bias, input_fl,      \
                                           weight_fl, output_fl, output_min, output_max, output);            \
  }

#endif  // WHITTLE_QF_CONV2D_IMPL_H_
