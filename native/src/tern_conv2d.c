// tern reference and portable kernels, the variant list, and TWN weight packing.
#include <math.h>

#include "sign_conv2d_impl.h"

// ---- Reference: the definition, sums in double. ----

static int tern_bit(const uint32_t* row, size_t k) { return (int)((row[k / 32] >> (k % 32)) & 1); }

void tern_conv2d_minmax_ukernel__reference(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                           const float* restrict input,
                                           const uint32_t* restrict weight_nonzero,
                                           const uint32_t* restrict weight_sign, const float* restrict alpha,
                                           const float* restrict bias, float output_min, float output_max,
                                           float* restrict output) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t row_words = bin_row_words(g->kernel_height * g->kernel_width * g->group_input_channels);
  for (size_t n = 0; n < g->batch; n++) {
    for (size_t oy = 0; oy < g->output_height; oy++) {
      for (size_t ox = 0; ox < g->output_width; ox++) {
        for (size_t o = oc_begin; o < oc_end; o++) {
          const size_t group = o / g->group_output_channels;
          double acc = 0.0;
          for (size_t ky = 0; ky < g->kernel_height; ky++) {
            for (size_t kx = 0; kx < g->kernel_width; kx++) {
              const ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_height + ky) - (ptrdiff_t)g->padding_top;
              const ptrdiff_t ix = (ptrdiff_t)(ox * g->stride_width + kx) - (ptrdiff_t)g->padding_left;
              if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)g->input_height || ix >= (ptrdiff_t)g->input_width) {
                continue;  // padding: the activation is 0
              }
              for (size_t i = 0; i < g->group_input_channels; i++) {
                const size_t k = (ky * g->kernel_width + kx) * g->group_input_channels + i;
                const double t = tern_bit(weight_nonzero + o * row_words, k)
                                     ? (tern_bit(weight_sign + o * row_words, k) ? -1.0 : 1.0)
                                     : 0.0;
                const float x = input[((n * g->input_height + (size_t)iy) * g->input_width + (size_t)ix) *
                                          input_channels +
                                      group * g->group_input_channels + i];
                acc += t * (double)x;
              }
            }
          }
          output[((n * g->output_height + oy) * g->output_width + ox) * output_channels + o] =
              whittle_clamp_f32(alpha[o] * (float)acc + (bias != NULL ? bias[o] : 0.0f), output_min,
                                output_max);
        }
      }
    }
  }
}

void tern_fc_minmax_ukernel__reference(size_t batch, size_t input_channels, size_t output_channels,
                                       size_t oc_begin, size_t oc_end, const float* restrict input,
                                       const uint32_t* restrict weight_nonzero,
                                       const uint32_t* restrict weight_sign, const float* restrict alpha,
                                       const float* restrict bias, float output_min, float output_max,
                                       float* restrict output) {
  const whittle_conv2d_geometry g = whittle_fc_geometry(batch, input_channels, output_channels);
  tern_conv2d_minmax_ukernel__reference(&g, oc_begin, oc_end, input, weight_nonzero, weight_sign, alpha, bias,
                                        output_min, output_max, output);
}

// ---- Portable: 32 bits of each plane per load; skip, add or subtract. ----

static float tern_signed_sum_scalar(const float* x, const uint32_t* nonzero, const uint32_t* sign,
                                    size_t row_words, size_t first_bit, size_t n) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; i += 32) {
    uint32_t nz = bin_load_bits32(nonzero, row_words, first_bit + i);
    uint32_t neg = bin_load_bits32(sign, row_words, first_bit + i);
    const size_t m = n - i < 32 ? n - i : 32;
    for (size_t j = 0; j < m; j++, nz >>= 1, neg >>= 1) {
      if (nz & 1) {
        acc += (neg & 1) ? -x[i + j] : x[i + j];
      }
    }
  }
  return acc;
}

TERN_DEFINE_KERNELS(scalar, tern_signed_sum_scalar)

const tern_conv2d_variant tern_conv2d_variants[] = {
#if defined(__arm__) || defined(__aarch64__)
    {WHITTLE_ISA_NEON, "neon", tern_conv2d_minmax_ukernel__neon, tern_fc_minmax_ukernel__neon},
#endif
#if defined(__x86_64__) || defined(_M_X64)
    {WHITTLE_ISA_AVX512, "avx512", tern_conv2d_minmax_ukernel__avx512, tern_fc_minmax_ukernel__avx512},
    {WHITTLE_ISA_AVX2, "avx2", tern_conv2d_minmax_ukernel__avx2, tern_fc_minmax_ukernel__avx2},
#endif
    {WHITTLE_ISA_SCALAR, "scalar", tern_conv2d_minmax_ukernel__scalar, tern_fc_minmax_ukernel__scalar},
};
const size_t tern_conv2d_variant_count = sizeof(tern_conv2d_variants) / sizeof(tern_conv2d_variants[0]);

void tern_pack_weights(size_t output_channels, size_t reduction, const float* weights, const float* threshold,
                       uint32_t* weight_nonzero, uint32_t* weight_sign, float* alpha) {
  const size_t row_words = bin_row_words(reduction);
  for (size_t o = 0; o < output_channels; o++) {
    double abs_sum = 0.0;
    size_t nonzero = 0;
    for (size_t w = 0; w < row_words; w++) {
      weight_nonzero[o * row_words + w] = 0;
      weight_sign[o * row_words + w] = 0;
    }
    for (size_t k = 0; k < reduction; k++) {
      const float w = weights[o * reduction + k];
      if (fabsf(w) > threshold[o]) {
        weight_nonzero[o * row_words + k / 32] |= UINT32_C(1) << (k % 32);
        if (w < 0.0f) {
          weight_sign[o * row_words + k / 32] |= UINT32_C(1) << (k % 32);
        }
        abs_sum += fabs((double)w);
        nonzero++;
      }
    }
    alpha[o] = nonzero > 0 ? (float)(abs_sum / (double)nonzero) : 0.0f;
  }
}

const tern_conv2d_variant* tern_conv2d_select(whittle_isa level) {
  return WHITTLE_KERNEL_LIST_SELECT(tern_conv2d_variant, tern_conv2d_variants, tern_conv2d_variant_count,
                                    level);
}
