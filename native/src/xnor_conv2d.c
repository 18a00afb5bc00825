// xnor reference and portable kernels, activation and weight packing, the input-scale map, variant lists.
#include <math.h>

#include "xnor_conv2d_impl.h"

// ---- Reference: unpack every bit to +-1 and multiply; padding contributes 0. ----

static int32_t xnor_sign_of_bit(const uint64_t* words, size_t bit) {
  return ((words[bit / 64] >> (bit % 64)) & 1) ? -1 : 1;
}

void xnor_conv2d_minmax_ukernel__reference(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                           const uint64_t* restrict input_bits,
                                           const uint64_t* restrict weight_bits, const float* restrict alpha,
                                           const float* restrict input_scale, const float* restrict bias,
                                           float output_min, float output_max, float* restrict output) {
  const size_t gw = xnor_group_words(g->group_input_channels);
  const size_t pixel_words = xnor_pixel_words(g->groups, g->group_input_channels);
  // One channel per group: the groups' bits are packed together (group g is bit g of the pixel's words).
  const bool across = g->group_input_channels == 1;
  const size_t output_channels = g->groups * g->group_output_channels;
  for (size_t p = 0; p < whittle_conv2d_output_pixels(g); p++) {
    const whittle_conv2d_position at = whittle_conv2d_output_position(g, p);
    for (size_t o = oc_begin; o < oc_end; o++) {
      const size_t group = o / g->group_output_channels;
      int32_t dot = 0;
      for (size_t ky = 0; ky < g->kernel_height; ky++) {
        for (size_t kx = 0; kx < g->kernel_width; kx++) {
          size_t pixel;
          if (!whittle_conv2d_tap_pixel(g, at, ky, kx, &pixel)) continue;  // padding: real value 0
          const uint64_t* a = input_bits + pixel * pixel_words + (across ? 0 : group * gw);
          const uint64_t* w = weight_bits + ((o * g->kernel_height + ky) * g->kernel_width + kx) * gw;
          for (size_t i = 0; i < g->group_input_channels; i++) {
            dot += xnor_sign_of_bit(a, across ? group : i) * xnor_sign_of_bit(w, i);
          }
        }
      }
      output[p * output_channels + o] =
          xnor_output(dot, alpha[o], input_scale != NULL ? input_scale[p] : 1.0f,
                      bias != NULL ? bias[o] : 0.0f, output_min, output_max);
    }
  }
}

void xnor_fc_minmax_ukernel__reference(size_t batch, size_t input_channels, size_t output_channels,
                                       size_t oc_begin, size_t oc_end, const uint64_t* restrict input_bits,
                                       const uint64_t* restrict weight_bits, const float* restrict alpha,
                                       const float* restrict input_scale, const float* restrict bias,
                                       float output_min, float output_max, float* restrict output) {
  const whittle_conv2d_geometry g = xnor_fc_geometry(batch, input_channels, output_channels);
  xnor_conv2d_minmax_ukernel__reference(&g, oc_begin, oc_end, input_bits, weight_bits, alpha, input_scale,
                                        bias, output_min, output_max, output);
}

// ---- Portable: one popcount per 64-bit word. ----

static uint32_t xnor_span_popcount_scalar(const uint64_t* x, const uint64_t* w, size_t words) {
  return xnor_span_popcount_portable(x, w, words);
}

XNOR_DEFINE_KERNELS(scalar, xnor_span_popcount_scalar, 0, NULL, NULL)

static uint64_t xnor_word_sign_bits_scalar(const void* x, size_t count, int32_t zero_point) {
  (void)zero_point;
  return xnor_sign_bits_tail((const float*)x, 0, count, 0);
}

void xnor_pack_ukernel__scalar(size_t pixels, size_t groups, size_t group_channels,
                               const float* restrict input, uint64_t* restrict output) {
  xnor_pack_words(pixels, groups, group_channels, input, sizeof(float), 0, output,
                  xnor_word_sign_bits_scalar);
}

static uint64_t xnor_word_qs8_sign_bits_scalar(const void* q, size_t count, int32_t zero_point) {
  return xnor_qs8_sign_bits_tail((const int8_t*)q, 0, count, zero_point, 0);
}

void xnor_pack_qs8_ukernel__scalar(size_t pixels, size_t groups, size_t group_channels,
                                   const int8_t* restrict input, int32_t zero_point,
                                   uint64_t* restrict output) {
  xnor_pack_words(pixels, groups, group_channels, input, 1, zero_point, output,
                  xnor_word_qs8_sign_bits_scalar);
}

const xnor_conv2d_variant xnor_conv2d_variants[] = {
#if defined(__arm__) || defined(__aarch64__)
    {WHITTLE_ISA_NEON, "neon", xnor_conv2d_minmax_ukernel__neon, xnor_fc_minmax_ukernel__neon},
#endif
#if defined(__x86_64__) || defined(_M_X64)
    {WHITTLE_ISA_AVX512VPOPCNT, "avx512vpopcnt", xnor_conv2d_minmax_ukernel__avx512vpopcnt,
     xnor_fc_minmax_ukernel__avx512vpopcnt},
    {WHITTLE_ISA_AVX512, "avx512", xnor_conv2d_minmax_ukernel__avx512, xnor_fc_minmax_ukernel__avx512},
    {WHITTLE_ISA_AVX2, "avx2", xnor_conv2d_minmax_ukernel__avx2, xnor_fc_minmax_ukernel__avx2},
#endif
    {WHITTLE_ISA_SCALAR, "scalar", xnor_conv2d_minmax_ukernel__scalar, xnor_fc_minmax_ukernel__scalar},
};
WHITTLE_DEFINE_VARIANT_SELECT(xnor_conv2d)

WHITTLE_DEFINE_VARIANTS(xnor_pack, xnor_pack_ukernel, xnor_pack_qs8_ukernel)

void xnor_pack_weights(size_t output_channels, size_t taps, size_t group_channels, const float* weights,
                       uint64_t* weight_bits, float* alpha) {
  xnor_pack_ukernel__scalar(output_channels * taps, 1, group_channels, weights, weight_bits);
  for (size_t o = 0; o < output_channels; o++) {
    double abs_sum = 0.0;
    for (size_t k = 0; k < taps * group_channels; k++) {
      abs_sum += fabs((double)weights[o * taps * group_channels + k]);
    }
    alpha[o] = (float)(abs_sum / (double)(taps * group_channels));
  }
}

void xnor_input_scale_map(const whittle_conv2d_geometry* g, const float* input, float* k_map) {
  const size_t channels = g->groups * g->group_input_channels;
  const double window = (double)(g->kernel_height * g->kernel_width);
  for (size_t n = 0; n < g->batch; n++) {
    for (size_t oy = 0; oy < g->output_height; oy++) {
      for (size_t ox = 0; ox < g->output_width; ox++) {
        size_t ky0, ky1, kx0, kx1;
        whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height,
                                  &ky0, &ky1);
        whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width, &kx0,
                                  &kx1);
        double sum = 0.0;
        for (size_t ky = ky0; ky < ky1; ky++) {
          for (size_t kx = kx0; kx < kx1; kx++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const size_t ix = ox * g->stride_width + kx - g->padding_left;
            const float* x = input + ((n * g->input_height + iy) * g->input_width + ix) * channels;
            double mean = 0.0;
            for (size_t c = 0; c < channels; c++) {
              mean += fabs((double)x[c]);
            }
            sum += mean / (double)channels;
          }
        }
        k_map[(n * g->output_height + oy) * g->output_width + ox] = (float)(sum / window);
      }
    }
  }
}
