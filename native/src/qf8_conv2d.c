// qf8 reference and portable kernels, the variant list, and the 8-bit quantizers.
#include <math.h>

#include "qf8_conv2d_impl.h"

// ---- Reference: the definition, written for clarity. ----

void qf8_conv2d_minmax_rndnu_ukernel__reference(const whittle_conv2d_geometry* g, size_t oc_begin,
                                                size_t oc_end, const int8_t* restrict input,
                                                const int8_t* restrict weights, const int32_t* restrict bias,
                                                int32_t input_fl, int32_t weight_fl, int32_t output_fl,
                                                int32_t output_min, int32_t output_max,
                                                int8_t* restrict output) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  for (size_t n = 0; n < g->batch; n++) {
    for (size_t oy = 0; oy < g->output_height; oy++) {
      for (size_t ox = 0; ox < g->output_width; ox++) {
        for (size_t o = oc_begin; o < oc_end; o++) {
          const size_t group = o / g->group_output_channels;
          int64_t acc = bias != NULL ? bias[o] : 0;
          for (size_t ky = 0; ky < g->kernel_height; ky++) {
            for (size_t kx = 0; kx < g->kernel_width; kx++) {
              // Signed coordinates: negative or too large means padding, whose value 0 adds nothing.
              const ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_height + ky) - (ptrdiff_t)g->padding_top;
              const ptrdiff_t ix = (ptrdiff_t)(ox * g->stride_width + kx) - (ptrdiff_t)g->padding_left;
              if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)g->input_height || ix >= (ptrdiff_t)g->input_width) {
                continue;
              }
              for (size_t i = 0; i < g->group_input_channels; i++) {
                const int8_t x = input[((n * g->input_height + (size_t)iy) * g->input_width + (size_t)ix) *
                                           input_channels +
                                       group * g->group_input_channels + i];
                const int8_t w =
                    weights[((o * g->kernel_height + ky) * g->kernel_width + kx) * g->group_input_channels +
                            i];
                acc += (int64_t)x * (int64_t)w;
              }
            }
          }
          output[((n * g->output_height + oy) * g->output_width + ox) * output_channels + o] =
              (int8_t)qf8_round_shift_saturate(acc, input_fl + weight_fl - output_fl, output_min, output_max);
        }
      }
    }
  }
}

void qf8_fc_minmax_rndnu_ukernel__reference(size_t batch, size_t input_channels, size_t output_channels,
                                            size_t oc_begin, size_t oc_end, const int8_t* restrict input,
                                            const int8_t* restrict weights, const int32_t* restrict bias,
                                            int32_t input_fl, int32_t weight_fl, int32_t output_fl,
                                            int32_t output_min, int32_t output_max, int8_t* restrict output) {
  for (size_t n = 0; n < batch; n++) {
    for (size_t o = oc_begin; o < oc_end; o++) {
      int64_t acc = bias != NULL ? bias[o] : 0;
      for (size_t i = 0; i < input_channels; i++) {
        acc += (int64_t)input[n * input_channels + i] * (int64_t)weights[o * input_channels + i];
      }
      output[n * output_channels + o] =
          (int8_t)qf8_round_shift_saturate(acc, input_fl + weight_fl - output_fl, output_min, output_max);
    }
  }
}

// ---- Portable: int32 accumulation, exact by QF8_MAX_REDUCTION. ----

static int32_t qf8_dot_scalar(const int8_t* x, const int8_t* w, size_t n) {
  int32_t acc = 0;
  for (size_t i = 0; i < n; i++) {
    acc += (int32_t)x[i] * (int32_t)w[i];
  }
  return acc;
}

QF8_DEFINE_KERNELS(scalar, qf8_dot_scalar)

const qf8_conv2d_variant qf8_conv2d_variants[] = {
    {WHITTLE_ISA_SCALAR, "scalar", qf8_conv2d_minmax_rndnu_ukernel__scalar,
     qf8_fc_minmax_rndnu_ukernel__scalar},
#if defined(__x86_64__) || defined(_M_X64)
    {WHITTLE_ISA_AVX2, "avx2", qf8_conv2d_minmax_rndnu_ukernel__avx2, qf8_fc_minmax_rndnu_ukernel__avx2},
#endif
#if defined(__arm__) || defined(__aarch64__)
    {WHITTLE_ISA_NEON, "neon", qf8_conv2d_minmax_rndnu_ukernel__neon, qf8_fc_minmax_rndnu_ukernel__neon},
#endif
#if defined(__aarch64__)
    {WHITTLE_ISA_NEONDOT, "neondot", qf8_conv2d_minmax_rndnu_ukernel__neondot,
     qf8_fc_minmax_rndnu_ukernel__neondot},
#endif
    {WHITTLE_ISA_SCALAR, NULL, NULL, NULL},
};

// ---- Quantizers ----

// floor(value) saturated to [-limit, limit]; NaN -> 0. value is a double computed exactly from a float.
static int32_t saturate_floor(double value, int32_t limit) {
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

void qf8_quantize_nearest(size_t count, const float* input, int32_t fractional_length, int8_t* output) {
  for (size_t i = 0; i < count; i++) {
    output[i] = (int8_t)saturate_floor(ldexp((double)input[i], fractional_length) + 0.5, QF8_WEIGHT_MAX);
  }
}

void qf8_quantize_stochastic(size_t count, const float* input, int32_t fractional_length, uint32_t seed,
                             uint32_t first_index, int8_t* output) {
  for (size_t i = 0; i < count; i++) {
    const double u = whittle_fixed_point_uniform24(seed, first_index + (uint32_t)i);
    output[i] = (int8_t)saturate_floor(ldexp((double)input[i], fractional_length) + u, QF8_WEIGHT_MAX);
  }
}

void qf8_dequantize(size_t count, const int8_t* input, int32_t fractional_length, float* output) {
  for (size_t i = 0; i < count; i++) {
    output[i] = (float)ldexp((double)input[i], -fractional_length);
  }
}

const qf8_conv2d_variant* qf8_conv2d_select(whittle_isa level) {
  const qf8_conv2d_variant* best = &qf8_conv2d_variants[0];
  for (const qf8_conv2d_variant* v = qf8_conv2d_variants; v->name != NULL; v++) {
    if (whittle_isa_allows(level, v->isa) && whittle_isa_supported(v->isa)) {
      best = v;
    }
  }
  return best;
}
