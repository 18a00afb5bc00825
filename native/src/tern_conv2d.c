// tern reference and portable kernels, the variant list, and TWN weight packing.
#include <math.h>

#include "sign_conv2d_impl.h"

// ---- Reference: sign_conv2d_reference (sign_conv2d_impl.h), the definition shared with the binary weights.
// ----

void tern_conv2d_minmax_ukernel__reference(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                           const float* restrict input,
                                           const uint32_t* restrict weight_nonzero,
                                           const uint32_t* restrict weight_sign, const float* restrict alpha,
                                           const float* restrict bias, float output_min, float output_max,
                                           float* restrict output) {
  sign_conv2d_reference(g, oc_begin, oc_end, input, weight_nonzero, weight_sign, alpha, bias, output_min,
                        output_max, output);
}

void tern_fc_minmax_ukernel__reference(size_t batch, size_t input_channels, size_t output_channels,
                                       size_t oc_begin, size_t oc_end, const float* restrict input,
                                       const uint32_t* restrict weight_nonzero,
                                       const uint32_t* restrict weight_sign, const float* restrict alpha,
                                       const float* restrict bias, float output_min, float output_max,
                                       float* restrict output) {
  const whittle_conv2d_geometry g = whittle_fc_geometry(batch, input_channels, output_channels);
  sign_conv2d_reference(&g, oc_begin, oc_end, input, weight_nonzero, weight_sign, alpha, bias, output_min,
                        output_max, output);
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

WHITTLE_DEFINE_VARIANTS(tern_conv2d, tern_conv2d_minmax_ukernel, tern_fc_minmax_ukernel)

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

void tern_expand_weights_f32(size_t output_channels, size_t reduction, const uint32_t* weight_nonzero,
                             const uint32_t* weight_sign, const float* alpha, float* weights) {
  const size_t row_words = bin_row_words(reduction);
  for (size_t o = 0; o < output_channels; o++) {
    for (size_t k = 0; k < reduction; k++) {
      const int32_t t = tern_weight_at(weight_nonzero + o * row_words, weight_sign + o * row_words, k);
      weights[o * reduction + k] = t == 0 ? 0.0f : (t > 0 ? alpha[o] : -alpha[o]);
    }
  }
}

void tern_expand_weights_s8(size_t output_channels, size_t reduction, const uint32_t* weight_nonzero,
                            const uint32_t* weight_sign, int8_t* weights) {
  const size_t row_words = bin_row_words(reduction);
  for (size_t o = 0; o < output_channels; o++) {
    for (size_t k = 0; k < reduction; k++) {
      weights[o * reduction + k] =
          (int8_t)tern_weight_at(weight_nonzero + o * row_words, weight_sign + o * row_words, k);
    }
  }
}
