// Private to the qf8 kernel files: the convolution driver shared by every ISA. Each ISA file supplies only
// the exact int32 dot product of a contiguous span; the driver walks output positions, the output-channel
// range and the valid kernel taps (padding is skipped, which is exact because padding is 0).
#ifndef WHITTLE_QF8_CONV2D_IMPL_H_
#define WHITTLE_QF8_CONV2D_IMPL_H_

#include "qf8_conv2d.h"

// The drivers are inlined into each ISA's kernel so that the ISA's span function, passed as a constant
// function pointer, is inlined too (GCC otherwise clones the driver and keeps an indirect call per span).
#if defined(__GNUC__)
#define QF8_DRIVER static inline __attribute__((always_inline))
#else
#define QF8_DRIVER static inline
#endif

typedef int32_t (*qf8_dot_fn)(const int8_t* x, const int8_t* w, size_t n);

// acc (units 2^-(input_fl + weight_fl)) to the output fractional length: see the header for the rounding.
static inline int32_t qf8_round_shift_saturate(int64_t acc, int32_t shift, int32_t output_min,
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

QF8_DRIVER void qf8_conv2d_drive(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                 const int8_t* input, const int8_t* weights, const int32_t* bias,
                                 int32_t shift, int32_t output_min, int32_t output_max, int8_t* output,
                                 qf8_dot_fn dot) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t reduction = g->kernel_height * g->kernel_width * gic;
  for (size_t n = 0; n < g->batch; n++) {
    const int8_t* image = input + n * g->input_height * g->input_width * input_channels;
    for (size_t oy = 0; oy < g->output_height; oy++) {
      size_t ky0, ky1;
      whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height, &ky0,
                                &ky1);
      for (size_t ox = 0; ox < g->output_width; ox++) {
        size_t kx0, kx1;
        whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width, &kx0,
                                  &kx1);
        int8_t* out = output + ((n * g->output_height + oy) * g->output_width + ox) * output_channels;
        for (size_t o = oc_begin; o < oc_end; o++) {
          const size_t group = o / g->group_output_channels;
          const int8_t* w = weights + o * reduction;
          int64_t acc = bias != NULL ? bias[o] : 0;
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const int8_t* row = image + iy * g->input_width * input_channels + group * gic;
            const size_t ix0 = ox * g->stride_width + kx0 - g->padding_left;
            if (g->groups == 1) {
              // One group: the valid taps of a kernel row are one contiguous span in input and weights.
              acc +=
                  dot(row + ix0 * input_channels, w + (ky * g->kernel_width + kx0) * gic, (kx1 - kx0) * gic);
            } else {
              for (size_t kx = kx0; kx < kx1; kx++) {
                acc +=
                    dot(row + (ix0 + kx - kx0) * input_channels, w + (ky * g->kernel_width + kx) * gic, gic);
              }
            }
          }
          out[o] = (int8_t)qf8_round_shift_saturate(acc, shift, output_min, output_max);
        }
      }
    }
  }
}

// Defines the conv2d and fc kernels of one ISA from its dot product.
// Depthwise driver (group_input_channels = group_output_channels = 1): vectorized across channels rather
// than along the (9-element) reduction. A chunk of up to 64 channels' weights is transposed once per call
// into wt[tap][channel]; each output position then runs, per valid tap, one plain loop over the chunk's
// contiguous channels, which the compiler vectorizes with this file's ISA. Returns oc_end when it computed
// the range, oc_begin when the layer is not depthwise or its kernel has more than 64 taps.
#define QF8_DEPTHWISE_CHUNK 64
#define QF8_DEPTHWISE_MAX_TAPS 64
QF8_DRIVER size_t qf8_conv2d_drive_depthwise(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                             const int8_t* input, const int8_t* weights, const int32_t* bias,
                                             int32_t shift, int32_t output_min, int32_t output_max,
                                             int8_t* output) {
  int8_t wt[QF8_DEPTHWISE_MAX_TAPS * QF8_DEPTHWISE_CHUNK];
  if (g->group_input_channels != 1 || g->group_output_channels != 1 ||
      g->kernel_height * g->kernel_width > QF8_DEPTHWISE_MAX_TAPS) {
    return oc_begin;
  }
  const size_t channels = g->groups;
  const size_t taps = g->kernel_height * g->kernel_width;
  for (size_t c0 = oc_begin; c0 < oc_end; c0 += QF8_DEPTHWISE_CHUNK) {
    const size_t count = oc_end - c0 < QF8_DEPTHWISE_CHUNK ? oc_end - c0 : QF8_DEPTHWISE_CHUNK;
    for (size_t t = 0; t < taps; t++) {
      for (size_t c = 0; c < count; c++) {
        wt[t * QF8_DEPTHWISE_CHUNK + c] = weights[(c0 + c) * taps + t];
      }
    }
    for (size_t n = 0; n < g->batch; n++) {
      for (size_t oy = 0; oy < g->output_height; oy++) {
        size_t ky0, ky1;
        whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height,
                                  &ky0, &ky1);
        for (size_t ox = 0; ox < g->output_width; ox++) {
          size_t kx0, kx1;
          whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width,
                                    &kx0, &kx1);
          int32_t acc[QF8_DEPTHWISE_CHUNK];  // |acc| <= 64 taps * 2^14
          for (size_t c = 0; c < count; c++) {
            acc[c] = 0;
          }
          for (size_t ky = ky0; ky < ky1; ky++) {
            for (size_t kx = kx0; kx < kx1; kx++) {
              const size_t iy = oy * g->stride_height + ky - g->padding_top;
              const size_t ix = ox * g->stride_width + kx - g->padding_left;
              const size_t t = ky * g->kernel_width + kx;
              const int8_t* x = input + ((n * g->input_height + iy) * g->input_width + ix) * channels + c0;
              const int8_t* w = wt + t * QF8_DEPTHWISE_CHUNK;
              for (size_t c = 0; c < count; c++) {
                acc[c] += (int32_t)x[c] * (int32_t)w[c];
              }
            }
          }
          int8_t* out = output + ((n * g->output_height + oy) * g->output_width + ox) * channels + c0;
          for (size_t c = 0; c < count; c++) {
            const int64_t total = (int64_t)acc[c] + (bias != NULL ? bias[c0 + c] : 0);
            out[c] = (int8_t)qf8_round_shift_saturate(total, shift, output_min, output_max);
          }
        }
      }
    }
  }
  return oc_end;
}

// Blocked driver (SIMD): output channels in blocks of B. A block's weights are widened once per call into a
// stack buffer of int16 pairs, wt[k / 2][j][k % 2] for channel j of the block, so one broadcast pair of
// inputs feeds B channels through one pair-multiply-add (vpmaddwd / vmlal). block_span adds
// sum_{i < n} x[i] * w[i][j] to acc[j] (n even, wt at an even k). Only for even group_input_channels, so
// that every span starts at an even k; returns the first channel it did not compute (leftovers, odd or
// oversized reductions, blocks straddling two groups).
#define QF8_EXPANDED_WEIGHTS 16384
#define QF8_MAX_BLOCK 16

typedef void (*qf8_block_span_fn)(const int8_t* x, const int16_t* wt, size_t n, int32_t* acc);

QF8_DRIVER size_t qf8_conv2d_drive_blocked(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
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
            out[j] = (int8_t)qf8_round_shift_saturate(total, shift, output_min, output_max);
          }
        }
      }
    }
  }
  return ob;
}

// Blocks of `block` channels first (if the shape allows), then the one-channel driver.
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
    const whittle_conv2d_geometry geometry = {                                                               \
        batch, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, input_channels, output_channels};                            \
    qf8_conv2d_minmax_rndnu_ukernel__##isa(&geometry, oc_begin, oc_end, input, weights, bias, input_fl,      \
                                           weight_fl, output_fl, output_min, output_max, output);            \
  }

#define QF8_DEFINE_KERNELS(isa, dot)                                                                         \
  void qf8_conv2d_minmax_rndnu_ukernel__##isa(                                                               \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end, const int8_t* restrict input, \
      const int8_t* restrict weights, const int32_t* restrict bias, int32_t input_fl, int32_t weight_fl,     \
      int32_t output_fl, int32_t output_min, int32_t output_max, int8_t* restrict output) {                  \
    const size_t done =                                                                                      \
        qf8_conv2d_drive_depthwise(geometry, oc_begin, oc_end, input, weights, bias,                         \
                                   input_fl + weight_fl - output_fl, output_min, output_max, output);        \
    qf8_conv2d_drive(geometry, done, oc_end, input, weights, bias, input_fl + weight_fl - output_fl,         \
                     output_min, output_max, output, dot);                                                   \
  }                                                                                                          \
  void qf8_fc_minmax_rndnu_ukernel__##isa(size_t batch, size_t input_channels, size_t output_channels,       \
                                          size_t oc_begin, size_t oc_end, const int8_t* restrict input,      \
                                          const int8_t* restrict weights, const int32_t* restrict bias,      \
                                          int32_t input_fl, int32_t weight_fl, int32_t output_fl,            \
                                          int32_t output_min, int32_t output_max, int8_t* restrict output) { \
    const int32_t shift = input_fl + weight_fl - output_fl;                                                  \
    for (size_t n = 0; n < batch; n++) {                                                                     \
      for (size_t o = oc_begin; o < oc_end; o++) {                                                           \
        const int64_t acc = (bias != NULL ? bias[o] : 0) +                                                   \
                            dot(input + n * input_channels, weights + o * input_channels, input_channels);   \
        output[n * output_channels + o] =                                                                    \
            (int8_t)qf8_round_shift_saturate(acc, shift, output_min, output_max);                            \
      }                                                                                                      \
    }                                                                                                        \
  }

#endif  // WHITTLE_QF8_CONV2D_IMPL_H_
