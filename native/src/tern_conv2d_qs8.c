// Ternary weights with int8 activations: reference and portable kernels (see tern_conv2d.h).
#include "qs8_format_reference.h"
#include "qs8_requantize_gemmlowp.h"
#include "tern_conv2d.h"

// ---- Reference: t * (x - zero point) over every tap, padding skipped (qs8_format_reference.h). ----

typedef struct {
  const uint32_t* nonzero;
  const uint32_t* sign;
  size_t row_words;
} tern_qs8_weights;

static int32_t tern_qs8_weight(const void* weights, size_t o, size_t k) {
  const tern_qs8_weights* w = (const tern_qs8_weights*)weights;
  return tern_weight_at(w->nonzero + o * w->row_words, w->sign + o * w->row_words, k);
}

void tern_conv2d_qs8_minmax_gemmlowp_ukernel__reference(
    const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end, const int8_t* restrict input,
    int32_t input_zero_point, const uint32_t* restrict weight_nonzero, const uint32_t* restrict weight_sign,
    const int32_t* restrict bias, const int32_t* restrict multipliers, const int32_t* restrict shifts,
    int32_t output_zero_point, int32_t output_min, int32_t output_max, int8_t* restrict output) {
  const tern_qs8_weights weights = {
      weight_nonzero, weight_sign,
      bin_row_words(g->kernel_height * g->kernel_width * g->group_input_channels)};
  qs8_format_conv2d_reference(g, oc_begin, oc_end, input, input_zero_point, tern_qs8_weight, &weights, bias,
                              multipliers, shifts, output_zero_point, output_min, output_max, output);
}

// ---- Portable: per 32 weights, the positive and the negative ones are summed separately (adds only). ----

static int32_t tern_qs8_span(const int8_t* x, int32_t zero_point, const uint32_t* nonzero,
                             const uint32_t* sign, size_t row_words, size_t first_bit, size_t n) {
  int32_t positive = 0;
  int32_t negative = 0;
  for (size_t i = 0; i < n; i += 32) {
    const uint32_t nz = bin_load_bits32(nonzero, row_words, first_bit + i);
    const uint32_t neg = bin_load_bits32(sign, row_words, first_bit + i);
    uint32_t plus = nz & ~neg;
    uint32_t minus = nz & neg;
    const size_t m = n - i < 32 ? n - i : 32;
    if (m < 32) {
      plus &= (UINT32_C(1) << m) - 1;
      minus &= (UINT32_C(1) << m) - 1;
    }
    // Visit only the set bits: sparse ternary rows skip their zeros entirely.
    for (; plus != 0; plus &= plus - 1) {
      positive += (int32_t)x[i + (size_t)__builtin_ctz(plus)] - zero_point;
    }
    for (; minus != 0; minus &= minus - 1) {
      negative += (int32_t)x[i + (size_t)__builtin_ctz(minus)] - zero_point;
    }
  }
  return positive - negative;
}

void tern_conv2d_qs8_minmax_gemmlowp_ukernel__scalar(
    const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end, const int8_t* restrict input,
    int32_t input_zero_point, const uint32_t* restrict weight_nonzero, const uint32_t* restrict weight_sign,
    const int32_t* restrict bias, const int32_t* restrict multipliers, const int32_t* restrict shifts,
    int32_t output_zero_point, int32_t output_min, int32_t output_max, int8_t* restrict output) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t row_words = bin_row_words(g->kernel_height * g->kernel_width * gic);
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
          const uint32_t* nonzero = weight_nonzero + o * row_words;
          const uint32_t* sign = weight_sign + o * row_words;
          int32_t acc = 0;
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const int8_t* in_row = image + iy * g->input_width * input_channels + group * gic;
            const size_t ix0 = ox * g->stride_width + kx0 - g->padding_left;
            if (g->groups == 1) {
              acc += tern_qs8_span(in_row + ix0 * input_channels, input_zero_point, nonzero, sign, row_words,
                                   (ky * g->kernel_width + kx0) * gic, (kx1 - kx0) * gic);
            } else {
              for (size_t kx = kx0; kx < kx1; kx++) {
                acc += tern_qs8_span(in_row + (ix0 + kx - kx0) * input_channels, input_zero_point, nonzero,
                                     sign, row_words, (ky * g->kernel_width + kx) * gic, gic);
              }
            }
          }
          out[o] = qs8_finish_gemmlowp(acc, bias != NULL ? bias[o] : 0, multipliers[o], shifts[o],
                                       output_zero_point, output_min, output_max);
        }
      }
    }
  }
}

// The fully-connected kernels: each conv2d kernel over the layer's 1x1 geometry.
#define TERN_QS8_DEFINE_FC(isa)                                                                            \
  void tern_fc_qs8_minmax_gemmlowp_ukernel__##isa(                                                         \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,         \
      const int8_t* restrict input, int32_t input_zero_point, const uint32_t* restrict weight_nonzero,     \
      const uint32_t* restrict weight_sign, const int32_t* restrict bias,                                  \
      const int32_t* restrict multipliers, const int32_t* restrict shifts, int32_t output_zero_point,      \
      int32_t output_min, int32_t output_max, int8_t* restrict output) {                                   \
    const whittle_conv2d_geometry g = whittle_fc_geometry(batch, input_channels, output_channels);         \
    tern_conv2d_qs8_minmax_gemmlowp_ukernel__##isa(&g, oc_begin, oc_end, input, input_zero_point,          \
                                                   weight_nonzero, weight_sign, bias, multipliers, shifts, \
                                                   output_zero_point, output_min, output_max, output);     \
  }

TERN_QS8_DEFINE_FC(reference)
TERN_QS8_DEFINE_FC(scalar)
