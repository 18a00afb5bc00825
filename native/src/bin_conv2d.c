// bin reference and portable kernels, the variant list, and weight packing.
#include <math.h>

#include "sign_conv2d_impl.h"

// ---- Reference: sign_conv2d_reference (sign_conv2d_impl.h), the definition shared with the ternary weights.
// ----

void bin_conv2d_minmax_ukernel__reference(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                          const float* restrict input, const uint32_t* restrict weight_bits,
                                          const float* restrict alpha, const float* restrict bias,
                                          float output_min, float output_max, float* restrict output) {
  sign_conv2d_reference(g, oc_begin, oc_end, input, NULL, weight_bits, alpha, bias, output_min, output_max,
                        output);
}

void bin_fc_minmax_ukernel__reference(size_t batch, size_t input_channels, size_t output_channels,
                                      size_t oc_begin, size_t oc_end, const float* restrict input,
                                      const uint32_t* restrict weight_bits, const float* restrict alpha,
                                      const float* restrict bias, float output_min, float output_max,
                                      float* restrict output) {
  const whittle_conv2d_geometry g = whittle_fc_geometry(batch, input_channels, output_channels);
  sign_conv2d_reference(&g, oc_begin, oc_end, input, NULL, weight_bits, alpha, bias, output_min, output_max,
                        output);
}

// ---- Portable: 32 sign bits per load, a conditional negation per activation. ----

static float bin_signed_sum_scalar(const float* x, const uint32_t* nonzero, const uint32_t* row,
                                   size_t row_words, size_t first_bit, size_t n) {
  (void)nonzero;  // NULL: binary weights are never 0
  float acc0 = 0.0f;
  float acc1 = 0.0f;
  for (size_t i = 0; i < n; i += 32) {
    uint32_t bits = bin_load_bits32(row, row_words, first_bit + i);
    const size_t m = n - i < 32 ? n - i : 32;
    size_t j = 0;
    for (; j + 2 <= m; j += 2, bits >>= 2) {
      acc0 += (bits & 1) ? -x[i + j] : x[i + j];
      acc1 += (bits & 2) ? -x[i + j + 1] : x[i + j + 1];
    }
    if (j < m) {
      acc0 += (bits & 1) ? -x[i + j] : x[i + j];
    }
  }
  return acc0 + acc1;
}

BIN_DEFINE_KERNELS(scalar, bin_signed_sum_scalar)

WHITTLE_DEFINE_VARIANTS(bin_conv2d, bin_conv2d_minmax_ukernel, bin_fc_minmax_ukernel)

void bin_pack_weights(size_t output_channels, size_t reduction, const float* weights, uint32_t* weight_bits,
                      float* alpha) {
  const size_t row_words = bin_row_words(reduction);
  for (size_t o = 0; o < output_channels; o++) {
    double abs_sum = 0.0;
    for (size_t w = 0; w < row_words; w++) {
      weight_bits[o * row_words + w] = 0;
    }
    for (size_t k = 0; k < reduction; k++) {
      const float w = weights[o * reduction + k];
      abs_sum += fabs((double)w);
      if (w < 0.0f) {
        weight_bits[o * row_words + k / 32] |= UINT32_C(1) << (k % 32);
      }
    }
    alpha[o] = (float)(abs_sum / (double)reduction);
  }
}
