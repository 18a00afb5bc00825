// Private to the qf16 kernel files: the convolution driver shared by every ISA. Each ISA file supplies only
// the exact int64 dot product of a contiguous span; the driver walks output positions, the output-channel
// range and the valid kernel taps (padding is skipped, which is exact because padding is 0).
#ifndef WHITTLE_QF16_CONV2D_IMPL_H_
#define WHITTLE_QF16_CONV2D_IMPL_H_

#include "qf16_conv2d.h"

// The drivers are inlined into each ISA's kernel so that the ISA's span function, passed as a constant
// function pointer, is inlined too (GCC otherwise clones the driver and keeps an indirect call per span).
#if defined(__GNUC__)
#define QF16_DRIVER static inline __attribute__((always_inline))
#else
#define QF16_DRIVER static inline
#endif

typedef int64_t (*qf16_dot_fn)(const int16_t* x, const int16_t* w, size_t n);

// acc (units 2^-(input_fl + weight_fl)) to the output fractional length: see the header for the rounding.
static inline int32_t qf16_round_shift_saturate(int64_t acc, int32_t shift, int32_t output_min,
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

QF16_DRIVER void qf16_conv2d_drive(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                   const int16_t* input, const int16_t* weights, const int64_t* bias,
                                   int32_t shift, int32_t output_min, int32_t output_max, int16_t* output,
                                   qf16_dot_fn dot) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t reduction = g->kernel_height * g->kernel_width * gic;
  for (size_t n = 0; n < g->batch; n++) {
    const int16_t* image = input + n * g->input_height * g->input_width * input_channels;
    for (size_t oy = 0; oy < g->output_height; oy++) {
      size_t ky0, ky1;
      whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height, &ky0,
                                &ky1);
      for (size_t ox = 0; ox < g->output_width; ox++) {
        size_t kx0, kx1;
        whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width, &kx0,
                                  &kx1);
        int16_t* out = output + ((n * g->output_height + oy) * g->output_width + ox) * output_channels;
        for (size_t o = oc_begin; o < oc_end; o++) {
          const size_t group = o / g->group_output_channels;
          const int16_t* w = weights + o * reduction;
          int64_t acc = bias != NULL ? bias[o] : 0;
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const int16_t* row = image + iy * g->input_width * input_channels + group * gic;
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
          out[o] = (int16_t)qf16_round_shift_saturate(acc, shift, output_min, output_max);
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
#define QF16_DEPTHWISE_CHUNK 64
#define QF16_DEPTHWISE_MAX_TAPS 64
QF16_DRIVER size_t qf16_conv2d_drive_depthwise(const whittle_conv2d_geometry* g, size_t oc_begin,
                                               size_t oc_end, const int16_t* input, const int16_t* weights,
                                               const int64_t* bias, int32_t shift, int32_t output_min,
                                               int32_t output_max, int16_t* output) {
  int16_t wt[QF16_DEPTHWISE_MAX_TAPS * QF16_DEPTHWISE_CHUNK];
  if (g->group_input_channels != 1 || g->group_output_channels != 1 ||
      g->kernel_height * g->kernel_width > QF16_DEPTHWISE_MAX_TAPS) {
    return oc_begin;
  }
  const size_t channels = g->groups;
  const size_t taps = g->kernel_height * g->kernel_width;
  for (size_t c0 = oc_begin; c0 < oc_end; c0 += QF16_DEPTHWISE_CHUNK) {
    const size_t count = oc_end - c0 < QF16_DEPTHWISE_CHUNK ? oc_end - c0 : QF16_DEPTHWISE_CHUNK;
    for (size_t t = 0; t < taps; t++) {
      for (size_t c = 0; c < count; c++) {
        wt[t * QF16_DEPTHWISE_CHUNK + c] = weights[(c0 + c) * taps + t];
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
          int64_t acc[QF16_DEPTHWISE_CHUNK];
          for (size_t c = 0; c < count; c++) {
            acc[c] = bias != NULL ? bias[c0 + c] : 0;
          }
          for (size_t ky = ky0; ky < ky1; ky++) {
            for (size_t kx = kx0; kx < kx1; kx++) {
              const size_t iy = oy * g->stride_height + ky - g->padding_top;
              const size_t ix = ox * g->stride_width + kx - g->padding_left;
              const size_t t = ky * g->kernel_width + kx;
              const int16_t* x = input + ((n * g->input_height + iy) * g->input_width + ix) * channels + c0;
              const int16_t* w = wt + t * QF16_DEPTHWISE_CHUNK;
              for (size_t c = 0; c < count; c++) {
                acc[c] += (int32_t)x[c] * (int32_t)w[c];
              }
            }
          }
          int16_t* out = output + ((n * g->output_height + oy) * g->output_width + ox) * channels + c0;
          for (size_t c = 0; c < count; c++) {
            out[c] = (int16_t)qf16_round_shift_saturate(acc[c], shift, output_min, output_max);
          }
        }
      }
    }
  }
  return oc_end;
}

#define QF16_DEFINE_KERNELS(isa, dot)                                                                        \
  void qf16_conv2d_minmax_rndnu_ukernel__##isa(                                                              \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                               \
      const int16_t* restrict input, const int16_t* restrict weights, const int64_t* restrict bias,          \
      int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,        \
      int16_t* restrict output) {                                                                            \
    const int32_t shift = input_fl + weight_fl - output_fl;                                                  \
    const size_t done = qf16_conv2d_drive_depthwise(geometry, oc_begin, oc_end, input, weights, bias, shift, \
                                                    output_min, output_max, output);                         \
    qf16_conv2d_drive(geometry, done, oc_end, input, weights, bias, input_fl + weight_fl - output_fl,        \
                      output_min, output_max, output, dot);                                                  \
  }                                                                                                          \
  void qf16_fc_minmax_rndnu_ukernel__##isa(                                                                  \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,           \
      const int16_t* restrict input, const int16_t* restrict weights, const int64_t* restrict bias,          \
      int32_t input_fl, int32_t weight_fl, int32_t output_fl, int32_t output_min, int32_t output_max,        \
      int16_t* restrict output) {                                                                            \
    const int32_t shift = input_fl + weight_fl - output_fl;                                                  \
    for (size_t n = 0; n < batch; n++) {                                                                     \
      for (size_t o = oc_begin; o < oc_end; o++) {                                                           \
        const int64_t acc = (bias != NULL ? bias[o] : 0) +                                                   \
                            dot(input + n * input_channels, weights + o * input_channels, input_channels);   \
        output[n * output_channels + o] =                                                                    \
            (int16_t)qf16_round_shift_saturate(acc, shift, output_min, output_max);                          \
      }                                                                                                      \
    }                                                                                                        \
  }

#endif  // WHITTLE_QF16_CONV2D_IMPL_H_
