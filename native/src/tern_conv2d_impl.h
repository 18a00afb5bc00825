// Private to the tern kernel files: the convolution driver shared by every ISA. An ISA supplies the sum of
// a span of n activations times n ternary weights starting at bit `first_bit` of the two planes' rows.
#ifndef WHITTLE_TERN_CONV2D_IMPL_H_
#define WHITTLE_TERN_CONV2D_IMPL_H_

#include "tern_conv2d.h"

// The drivers are inlined into each ISA's kernel so that the ISA's span function, passed as a constant
// function pointer, is inlined too (GCC otherwise clones the driver and keeps an indirect call per span).
#if defined(__GNUC__)
#define TERN_DRIVER static inline __attribute__((always_inline))
#else
#define TERN_DRIVER static inline
#endif

typedef float (*tern_signed_sum_fn)(const float* x, const uint32_t* nonzero, const uint32_t* sign,
                                    size_t row_words, size_t first_bit, size_t n);

TERN_DRIVER void tern_conv2d_drive(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                   const float* input, const uint32_t* weight_nonzero,
                                   const uint32_t* weight_sign, const float* alpha, const float* bias,
                                   float output_min, float output_max, float* output,
                                   tern_signed_sum_fn signed_sum) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t row_words = bin_row_words(g->kernel_height * g->kernel_width * gic);
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
        float* out = output + ((n * g->output_height + oy) * g->output_width + ox) * output_channels;
        for (size_t o = oc_begin; o < oc_end; o++) {
          const size_t group = o / g->group_output_channels;
          const uint32_t* nonzero = weight_nonzero + o * row_words;
          const uint32_t* sign = weight_sign + o * row_words;
          float acc = 0.0f;
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const float* in_row = image + iy * g->input_width * input_channels + group * gic;
            const size_t ix0 = ox * g->stride_width + kx0 - g->padding_left;
            if (g->groups == 1) {
              acc += signed_sum(in_row + ix0 * input_channels, nonzero, sign, row_words,
                                (ky * g->kernel_width + kx0) * gic, (kx1 - kx0) * gic);
            } else {
              for (size_t kx = kx0; kx < kx1; kx++) {
                acc += signed_sum(in_row + (ix0 + kx - kx0) * input_channels, nonzero, sign, row_words,
                                  (ky * g->kernel_width + kx) * gic, gic);
              }
            }
          }
          out[o] =
              whittle_clamp_f32(alpha[o] * acc + (bias != NULL ? bias[o] : 0.0f), output_min, output_max);
        }
      }
    }
  }
}

// Depthwise driver (group_input_channels = group_output_channels = 1): vectorized across channels rather
// than along the (9-element) reduction. A chunk of up to 64 channels' weights is transposed once per call
// into wt[tap][channel]; each output position then runs, per valid tap, one plain loop over the chunk's
// contiguous channels, which the compiler vectorizes with this file's ISA. Returns oc_end when it computed
// the range, oc_begin when the layer is not depthwise or its kernel has more than 64 taps.
#define TERN_DEPTHWISE_CHUNK 64
#define TERN_DEPTHWISE_MAX_TAPS 64
TERN_DRIVER size_t tern_conv2d_drive_depthwise(const whittle_conv2d_geometry* g, size_t oc_begin,
                                               size_t oc_end, const float* input,
                                               const uint32_t* weight_nonzero, const uint32_t* weight_sign,
                                               const float* alpha, const float* bias, float output_min,
                                               float output_max, float* output) {
  int8_t ternary[TERN_DEPTHWISE_MAX_TAPS * TERN_DEPTHWISE_CHUNK];
  if (g->group_input_channels != 1 || g->group_output_channels != 1 ||
      g->kernel_height * g->kernel_width > TERN_DEPTHWISE_MAX_TAPS) {
    return oc_begin;
  }
  const size_t channels = g->groups;
  const size_t taps = g->kernel_height * g->kernel_width;
  for (size_t c0 = oc_begin; c0 < oc_end; c0 += TERN_DEPTHWISE_CHUNK) {
    const size_t count = oc_end - c0 < TERN_DEPTHWISE_CHUNK ? oc_end - c0 : TERN_DEPTHWISE_CHUNK;
    const size_t row_words = bin_row_words(taps);
    for (size_t t = 0; t < taps; t++) {
      for (size_t c = 0; c < count; c++) {
        const size_t word = (c0 + c) * row_words + t / 32;
        const int nonzero = (int)((weight_nonzero[word] >> (t % 32)) & 1);
        const int negative = (int)((weight_sign[word] >> (t % 32)) & 1);
        ternary[t * TERN_DEPTHWISE_CHUNK + c] = (int8_t)(nonzero ? (negative ? -1 : 1) : 0);
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
          float acc[TERN_DEPTHWISE_CHUNK];
          for (size_t c = 0; c < count; c++) {
            acc[c] = 0.0f;
          }
          for (size_t ky = ky0; ky < ky1; ky++) {
            for (size_t kx = kx0; kx < kx1; kx++) {
              const size_t iy = oy * g->stride_height + ky - g->padding_top;
              const size_t ix = ox * g->stride_width + kx - g->padding_left;
              const size_t t = ky * g->kernel_width + kx;
              const float* x = input + ((n * g->input_height + iy) * g->input_width + ix) * channels + c0;
              const int8_t* s = ternary + t * TERN_DEPTHWISE_CHUNK;
              for (size_t c = 0; c < count; c++) {
                acc[c] += s[c] > 0 ? x[c] : (s[c] < 0 ? -x[c] : 0.0f);
              }
            }
          }
          float* out = output + ((n * g->output_height + oy) * g->output_width + ox) * channels + c0;
          for (size_t c = 0; c < count; c++) {
            out[c] = whittle_clamp_f32(alpha[c0 + c] * acc[c] + (bias != NULL ? bias[c0 + c] : 0.0f),
                                       output_min, output_max);
          }
        }
      }
    }
  }
  return oc_end;
}

// Blocked driver (SIMD): output channels in blocks of B (vector lanes). A block's two planes are expanded
// once per call into stack buffers of lane masks, flips[k][B] (0x80000000 where t = -1) and keeps[k][B]
// (0xFFFFFFFF where t != 0), so one broadcast activation feeds B channels with an XOR, an AND and an add.
// block_span adds sum_i ((x[i] ^ flips[i][j]) & keeps[i][j]) to acc[j]. Returns the first channel it did
// not compute (leftovers, blocks straddling two groups, rows longer than the buffers allow).
#define TERN_EXPANDED_WORDS 8192
#define TERN_MAX_BLOCK 16

typedef void (*tern_block_span_fn)(const float* x, const uint32_t* flips, const uint32_t* keeps, size_t n,
                                   float* acc);

TERN_DRIVER size_t tern_conv2d_drive_blocked(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                             const float* input, const uint32_t* weight_nonzero,
                                             const uint32_t* weight_sign, const float* alpha,
                                             const float* bias, float output_min, float output_max,
                                             float* output, size_t block, tern_block_span_fn block_span) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t reduction = g->kernel_height * g->kernel_width * gic;
  const size_t row_words = bin_row_words(reduction);
  if (block * reduction > TERN_EXPANDED_WORDS) {
    return oc_begin;
  }
  uint32_t flips[TERN_EXPANDED_WORDS];
  uint32_t keeps[TERN_EXPANDED_WORDS];
  size_t ob = oc_begin;
  for (; ob + block <= oc_end; ob += block) {
    const size_t group = ob / g->group_output_channels;
    if ((ob + block - 1) / g->group_output_channels != group) {
      break;  // the caller's one-channel path takes it from here
    }
    for (size_t k = 0; k < reduction; k++) {
      for (size_t j = 0; j < block; j++) {
        const size_t word = (ob + j) * row_words + k / 32;
        const uint32_t nonzero = (weight_nonzero[word] >> (k % 32)) & 1;
        const uint32_t negative = (weight_sign[word] >> (k % 32)) & 1;
        flips[k * block + j] = negative << 31;
        keeps[k * block + j] = nonzero != 0 ? UINT32_MAX : 0;
      }
    }
    for (size_t n = 0; n < g->batch; n++) {
      const float* image = input + n * g->input_height * g->input_width * input_channels;
      for (size_t oy = 0; oy < g->output_height; oy++) {
        size_t ky0, ky1;
        whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height,
                                  &ky0, &ky1);
        for (size_t ox = 0; ox < g->output_width; ox++) {
          size_t kx0, kx1;
          whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width,
                                    &kx0, &kx1);
          float acc[TERN_MAX_BLOCK] = {0};
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const float* in_row = image + iy * g->input_width * input_channels + group * gic;
            const size_t ix0 = ox * g->stride_width + kx0 - g->padding_left;
            if (g->groups == 1) {
              const size_t first = (ky * g->kernel_width + kx0) * gic * block;
              block_span(in_row + ix0 * input_channels, flips + first, keeps + first, (kx1 - kx0) * gic, acc);
            } else {
              for (size_t kx = kx0; kx < kx1; kx++) {
                const size_t first = (ky * g->kernel_width + kx) * gic * block;
                block_span(in_row + (ix0 + kx - kx0) * input_channels, flips + first, keeps + first, gic,
                           acc);
              }
            }
          }
          float* out = output + ((n * g->output_height + oy) * g->output_width + ox) * output_channels + ob;
          for (size_t j = 0; j < block; j++) {
            out[j] = whittle_clamp_f32(alpha[ob + j] * acc[j] + (bias != NULL ? bias[ob + j] : 0.0f),
                                       output_min, output_max);
          }
        }
      }
    }
  }
  return ob;
}

// block == 0: the one-channel driver only; otherwise blocks of `block` channels first.
#define TERN_DEFINE_KERNELS_BLOCKED(isa, signed_sum, block, block_span)                                     \
  void tern_conv2d_minmax_ukernel__##isa(                                                                   \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end, const float* restrict input, \
      const uint32_t* restrict weight_nonzero, const uint32_t* restrict weight_sign,                        \
      const float* restrict alpha, const float* restrict bias, float output_min, float output_max,          \
      float* restrict output) {                                                                             \
    size_t done = tern_conv2d_drive_depthwise(geometry, oc_begin, oc_end, input, weight_nonzero,            \
                                              weight_sign, alpha, bias, output_min, output_max, output);    \
    if ((block) != 0) {                                                                                     \
      done = tern_conv2d_drive_blocked(geometry, done, oc_end, input, weight_nonzero, weight_sign, alpha,   \
                                       bias, output_min, output_max, output, (block), block_span);          \
    }                                                                                                       \
    tern_conv2d_drive(geometry, done, oc_end, input, weight_nonzero, weight_sign, alpha, bias, output_min,  \
                      output_max, output, signed_sum);                                                      \
  }                                                                                                         \
  void tern_fc_minmax_ukernel__##isa(                                                                       \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,          \
      const float* restrict input, const uint32_t* restrict weight_nonzero,                                 \
      const uint32_t* restrict weight_sign, const float* restrict alpha, const float* restrict bias,        \
      float output_min, float output_max, float* restrict output) {                                         \
    const whittle_conv2d_geometry geometry = whittle_fc_geometry(batch, input_channels, output_channels);   \
    tern_conv2d_minmax_ukernel__##isa(&geometry, oc_begin, oc_end, input, weight_nonzero, weight_sign,      \
                                      alpha, bias, output_min, output_max, output);                         \
  }

#define TERN_DEFINE_KERNELS(isa, signed_sum) TERN_DEFINE_KERNELS_BLOCKED(isa, signed_sum, 0, NULL)

#endif  // WHITTLE_TERN_CONV2D_IMPL_H_
