// cb reference and portable kernels, the variant list, and index packing.
#include "cb_conv2d.h"

#include <string.h>

#include "qs8_format_reference.h"

static inline uint32_t cb_index(const uint8_t* row, size_t row_bytes, size_t k, uint32_t bits) {
  const size_t bit = k * bits;
  const size_t byte = bit / 8;
  uint32_t window = row[byte];
  if (byte + 1 < row_bytes) {
    window |= (uint32_t)row[byte + 1] << 8;
  }
  return (window >> (bit % 8)) & ((UINT32_C(1) << bits) - 1);
}

// ---- Reference: the definition (each weight's centroid times its activation), sums in double. ----

void cb_conv2d_minmax_ukernel__reference(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                         const float* restrict input, const uint8_t* restrict indices,
                                         uint32_t index_bits, const float* restrict codebook,
                                         size_t codebook_size, const float* restrict bias, float output_min,
                                         float output_max, float* restrict workspace,
                                         float* restrict output) {
  (void)codebook_size;
  (void)workspace;
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t row_bytes =
      cb_row_bytes(g->kernel_height * g->kernel_width * g->group_input_channels, index_bits);
  for (size_t p = 0; p < whittle_conv2d_output_pixels(g); p++) {
    const whittle_conv2d_position at = whittle_conv2d_output_position(g, p);
    for (size_t o = oc_begin; o < oc_end; o++) {
      const size_t group = o / g->group_output_channels;
      double acc = 0.0;
      for (size_t ky = 0; ky < g->kernel_height; ky++) {
        for (size_t kx = 0; kx < g->kernel_width; kx++) {
          size_t pixel;
          if (!whittle_conv2d_tap_pixel(g, at, ky, kx, &pixel)) continue;  // padding: 0
          const float* x = input + pixel * input_channels + group * g->group_input_channels;
          for (size_t i = 0; i < g->group_input_channels; i++) {
            const size_t k = (ky * g->kernel_width + kx) * g->group_input_channels + i;
            const float w = codebook[cb_index(indices + o * row_bytes, row_bytes, k, index_bits)];
            acc += (double)w * (double)x[i];
          }
        }
      }
      output[p * output_channels + o] =
          whittle_clamp_f32((float)acc + (bias != NULL ? bias[o] : 0.0f), output_min, output_max);
    }
  }
}

// ---- Portable: bins per centroid. ----

// bins[index_k] += x[j] for the n indices k = first .. first + n - 1. The common widths read whole bytes.
static void cb_accumulate(float* bins, const float* x, const uint8_t* row, size_t row_bytes, size_t first,
                          size_t n, uint32_t bits) {
  if (bits == 8) {
    const uint8_t* idx = row + first;
    for (size_t j = 0; j < n; j++) {
      bins[idx[j]] += x[j];
    }
    return;
  }
  size_t j = 0;
  if (bits == 4) {
    // Leading odd index, then two indices per byte, two bytes per iteration. The 2-byte body keeps this loop
    // (the fully-connected layers' whole time) at the same speed wherever the linker places it: the 1-byte
    // loop ran ~15 % slower when it started in the first 16 bytes of a 64-byte line (AMD Zen 5), which the
    // addon's growth made happen (issue 12). Same additions in the same order as one byte at a time.
    if ((first & 1) != 0 && n > 0) {
      bins[row[first / 2] >> 4] += x[0];
      j = 1;
    }
    const uint8_t* bytes = row + (first + j) / 2;
    const float* xs = x + j;
    const size_t pairs = (n - j) / 2;
    size_t p = 0;
    for (; p + 2 <= pairs; p += 2) {
      const uint8_t b0 = bytes[p];
      const uint8_t b1 = bytes[p + 1];
      bins[b0 & 15] += xs[2 * p];
      bins[b0 >> 4] += xs[2 * p + 1];
      bins[b1 & 15] += xs[2 * p + 2];
      bins[b1 >> 4] += xs[2 * p + 3];
    }
    if (p < pairs) {
      bins[bytes[p] & 15] += xs[2 * p];
      bins[bytes[p] >> 4] += xs[2 * p + 1];
    }
    j += 2 * pairs;
  }
  for (; j < n; j++) {
    bins[cb_index(row, row_bytes, first + j, bits)] += x[j];
  }
}

// Sum over n indices of codebook[index_k] * x[j] (the direct order, for short reductions).
static float cb_direct(const float* codebook, const float* x, const uint8_t* row, size_t row_bytes,
                       size_t first, size_t n, uint32_t bits) {
  float acc = 0.0f;
  for (size_t j = 0; j < n; j++) {
    acc += codebook[cb_index(row, row_bytes, first + j, bits)] * x[j];
  }
  return acc;
}

void cb_conv2d_minmax_ukernel__scalar(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                      const float* restrict input, const uint8_t* restrict indices,
                                      uint32_t index_bits, const float* restrict codebook,
                                      size_t codebook_size, const float* restrict bias, float output_min,
                                      float output_max, float* restrict workspace, float* restrict output) {
  (void)workspace;
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t row_bytes = cb_row_bytes(g->kernel_height * g->kernel_width * gic, index_bits);
  float bins[CB_MAX_CODEBOOK_SIZE];
  for (size_t n = 0; n < g->batch; n++) {
    const float* image = input + n * g->input_height * g->input_width * input_channels;
    for (size_t oy = 0; oy < g->output_height; oy++) {
      size_t ky0, ky1;
      whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height, &ky0,
                                &ky1);
      for (size_t ox = 0; ox < g->output_width; ox++) {
        size_t kx0, kx1;
        whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width, &kx0,
                                  &kx1);
        const size_t valid = (ky1 - ky0) * (kx1 - kx0) * gic;
        const int use_bins = valid >= codebook_size;
        float* out = output + ((n * g->output_height + oy) * g->output_width + ox) * output_channels;
        for (size_t o = oc_begin; o < oc_end; o++) {
          const size_t group = o / g->group_output_channels;
          const uint8_t* row = indices + o * row_bytes;
          float direct = 0.0f;
          if (use_bins) {
            memset(bins, 0, codebook_size * sizeof(float));
          }
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const float* in_row = image + iy * g->input_width * input_channels + group * gic;
            // Taps of one kernel row are contiguous in the input only when there is one group.
            const size_t spans = g->groups == 1 ? 1 : kx1 - kx0;
            const size_t span_length = g->groups == 1 ? (kx1 - kx0) * gic : gic;
            for (size_t s = 0; s < spans; s++) {
              const size_t kx = kx0 + s;
              const size_t ix = ox * g->stride_width + kx - g->padding_left;
              const float* x = in_row + ix * input_channels;
              const size_t first = (ky * g->kernel_width + kx) * gic;
              if (use_bins) {
                cb_accumulate(bins, x, row, row_bytes, first, span_length, index_bits);
              } else {
                direct += cb_direct(codebook, x, row, row_bytes, first, span_length, index_bits);
              }
            }
          }
          float sum = direct;
          if (use_bins) {
            for (size_t c = 0; c < codebook_size; c++) {
              sum += codebook[c] * bins[c];
            }
          }
          out[o] = whittle_clamp_f32(sum + (bias != NULL ? bias[o] : 0.0f), output_min, output_max);
        }
      }
    }
  }
}

// The fully-connected kernels: each conv2d kernel over the layer's 1x1 geometry.
#define CB_DEFINE_FC(isa)                                                                                 \
  void cb_fc_minmax_ukernel__##isa(                                                                       \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,        \
      const float* restrict input, const uint8_t* restrict indices, uint32_t index_bits,                  \
      const float* restrict codebook, size_t codebook_size, const float* restrict bias, float output_min, \
      float output_max, float* restrict output) {                                                         \
    const whittle_conv2d_geometry g = whittle_fc_geometry(batch, input_channels, output_channels);        \
    cb_conv2d_minmax_ukernel__##isa(&g, oc_begin, oc_end, input, indices, index_bits, codebook,           \
                                    codebook_size, bias, output_min, output_max, NULL, output);           \
  }

CB_DEFINE_FC(reference)
CB_DEFINE_FC(scalar)

const cb_conv2d_variant cb_conv2d_variants[] = {
#if defined(__arm__) || defined(__aarch64__)
    {WHITTLE_ISA_NEON, "neon", cb_conv2d_minmax_ukernel__neon, cb_fc_minmax_ukernel__scalar},
#endif
#if defined(__x86_64__) || defined(_M_X64)
    {WHITTLE_ISA_AVX2, "avx2", cb_conv2d_minmax_ukernel__avx2, cb_fc_minmax_ukernel__scalar},
#endif
    {WHITTLE_ISA_SCALAR, "scalar", cb_conv2d_minmax_ukernel__scalar, cb_fc_minmax_ukernel__scalar},
};
WHITTLE_DEFINE_VARIANT_SELECT(cb_conv2d)

void cb_pack_indices(size_t rows, size_t reduction, uint32_t index_bits, const uint8_t* unpacked,
                     uint8_t* packed) {
  const size_t row_bytes = cb_row_bytes(reduction, index_bits);
  memset(packed, 0, rows * row_bytes);
  for (size_t r = 0; r < rows; r++) {
    for (size_t k = 0; k < reduction; k++) {
      const size_t bit = k * index_bits;
      const uint32_t value = (uint32_t)unpacked[r * reduction + k] << (bit % 8);
      packed[r * row_bytes + bit / 8] |= (uint8_t)value;
      if ((value >> 8) != 0) {
        packed[r * row_bytes + bit / 8 + 1] |= (uint8_t)(value >> 8);
      }
    }
  }
}

void cb_expand_weights_f32(size_t rows, size_t reduction, const uint8_t* indices, uint32_t index_bits,
                           const float* codebook, float* weights) {
  const size_t row_bytes = cb_row_bytes(reduction, index_bits);
  for (size_t r = 0; r < rows; r++) {
    for (size_t k = 0; k < reduction; k++) {
      weights[r * reduction + k] = codebook[cb_index(indices + r * row_bytes, row_bytes, k, index_bits)];
    }
  }
}

// ---- int8 activations ----

void cb_expand_weights_s8(size_t rows, size_t reduction, const uint8_t* indices, uint32_t index_bits,
                          const int8_t* codebooks, size_t codebook_size, int8_t* weights) {
  const size_t row_bytes = cb_row_bytes(reduction, index_bits);
  for (size_t r = 0; r < rows; r++) {
    const int8_t* row_codebook = codebooks + r * codebook_size;
    for (size_t k = 0; k < reduction; k++) {
      weights[r * reduction + k] = row_codebook[cb_index(indices + r * row_bytes, row_bytes, k, index_bits)];
    }
  }
}

typedef struct {
  const uint8_t* indices;
  size_t row_bytes;
  uint32_t index_bits;
  const int8_t* codebooks;
  size_t codebook_size;
} cb_qs8_weights;

static int32_t cb_qs8_weight(const void* weights, size_t o, size_t k) {
  const cb_qs8_weights* w = (const cb_qs8_weights*)weights;
  return w->codebooks[o * w->codebook_size +
                      cb_index(w->indices + o * w->row_bytes, w->row_bytes, k, w->index_bits)];
}

void cb_conv2d_qs8_minmax_gemmlowp_ukernel__reference(
    const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end, const int8_t* restrict input,
    int32_t input_zero_point, const uint8_t* restrict indices, uint32_t index_bits,
    const int8_t* restrict codebooks, size_t codebook_size, const int32_t* restrict bias,
    const int32_t* restrict multipliers, const int32_t* restrict shifts, int32_t output_zero_point,
    int32_t output_min, int32_t output_max, int8_t* restrict output) {
  const cb_qs8_weights weights = {
      indices, cb_row_bytes(g->kernel_height * g->kernel_width * g->group_input_channels, index_bits),
      index_bits, codebooks, codebook_size};
  qs8_format_conv2d_reference(g, oc_begin, oc_end, input, input_zero_point, cb_qs8_weight, &weights, bias,
                              multipliers, shifts, output_zero_point, output_min, output_max, output);
}
