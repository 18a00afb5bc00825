// The reference of the compressed-format layers with int8 activations whose weights are int8 values a
// format stores its own way (ternary planes, codebook indices into per-channel int8 tables): the dense int8
// definition of qs8_ops.h over a function that reads weight k of output channel o, summed exactly in int64.
//   acc = sum over the valid taps of w(o, k) * (x_k - input_zero_point)   (padding: x = input_zero_point)
//   output = clamp(output_zero_point + qs8_requantize_gemmlowp(acc + bias[o], multipliers[o], shifts[o]))
// (qs8_finish_gemmlowp: the bias add wraps modulo 2^32). Written once for every such format.
#ifndef WHITTLE_QS8_FORMAT_REFERENCE_H_
#define WHITTLE_QS8_FORMAT_REFERENCE_H_

#include "conv2d_geometry.h"
#include "qs8_requantize_gemmlowp.h"

WHITTLE_EXTERN_C_BEGIN

// Weight k (the reduction index of native/formats.md) of output channel o, from the format's storage.
typedef int32_t (*qs8_format_weight_fn)(const void* weights, size_t o, size_t k);

static inline void qs8_format_conv2d_reference(const whittle_conv2d_geometry* g, size_t oc_begin,
                                               size_t oc_end, const int8_t* input, int32_t input_zero_point,
                                               qs8_format_weight_fn weight, const void* weights,
                                               const int32_t* bias, const int32_t* multipliers,
                                               const int32_t* shifts, int32_t output_zero_point,
                                               int32_t output_min, int32_t output_max, int8_t* output) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  for (size_t p = 0; p < whittle_conv2d_output_pixels(g); p++) {
    const whittle_conv2d_position at = whittle_conv2d_output_position(g, p);
    for (size_t o = oc_begin; o < oc_end; o++) {
      const size_t group = o / g->group_output_channels;
      int64_t acc = 0;
      for (size_t ky = 0; ky < g->kernel_height; ky++) {
        for (size_t kx = 0; kx < g->kernel_width; kx++) {
          size_t pixel;
          // Padding is x = input_zero_point, which contributes 0.
          if (!whittle_conv2d_tap_pixel(g, at, ky, kx, &pixel)) continue;
          const int8_t* x = input + pixel * input_channels + group * g->group_input_channels;
          for (size_t i = 0; i < g->group_input_channels; i++) {
            const size_t k = (ky * g->kernel_width + kx) * g->group_input_channels + i;
            acc += (int64_t)weight(weights, o, k) * ((int64_t)x[i] - input_zero_point);
          }
        }
      }
      output[p * output_channels + o] =
          qs8_finish_gemmlowp((int32_t)acc, bias != NULL ? bias[o] : 0, multipliers[o], shifts[o],
                              output_zero_point, output_min, output_max);
    }
  }
}

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_QS8_FORMAT_REFERENCE_H_
