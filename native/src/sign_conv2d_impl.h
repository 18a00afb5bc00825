// Private to the binary-weight (bin_) and ternary (tern_) kernel files: one set of convolution drivers for
// both, since a binary weight is a ternary one that is never 0. The weights are bit planes with the row
// layout of bin_conv2d.h: a sign plane (1 = -1) and, for ternary, a nonzero plane (1 = t != 0). A NULL
// nonzero plane means binary weights; every kernel passes a literal NULL or a pointer, so after inlining
// the binary paths carry no trace of the second plane (no load, no test).
//
// An ISA supplies
//   signed_sum(x, nonzero_row, sign_row, row_words, first_bit, n): the sum of n activations times the n
//     weights starting at bit first_bit of the channel's rows (nonzero_row NULL for binary);
//   block_span(x, flips, keeps, n, acc) (SIMD only): acc[j] += sum_i ((x[i] ^ flips[i][j]) & keeps[i][j]),
//     keeps NULL for binary (no AND).
#ifndef WHITTLE_SIGN_CONV2D_IMPL_H_
#define WHITTLE_SIGN_CONV2D_IMPL_H_

#include "bin_conv2d.h"
#include "tern_conv2d.h"

// The drivers are inlined into each ISA's kernel so that the ISA's span function, passed as a constant
// function pointer, is inlined too (GCC otherwise clones the driver and keeps an indirect call per span).
#if defined(__GNUC__)
#define SIGN_DRIVER static inline __attribute__((always_inline))
#else
#define SIGN_DRIVER static inline
#endif

typedef float (*sign_signed_sum_fn)(const float* x, const uint32_t* nonzero, const uint32_t* sign,
                                    size_t row_words, size_t first_bit, size_t n);
typedef void (*sign_block_span_fn)(const float* x, const uint32_t* flips, const uint32_t* keeps, size_t n,
                                   float* acc);

// One output channel at a time over the valid taps (padding is skipped: it reads 0).
SIGN_DRIVER void sign_conv2d_drive(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                   const float* input, const uint32_t* weight_nonzero,
                                   const uint32_t* weight_sign, const float* alpha, const float* bias,
                                   float output_min, float output_max, float* output,
                                   sign_signed_sum_fn signed_sum) {
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
          const uint32_t* nonzero = weight_nonzero != NULL ? weight_nonzero + o * row_words : NULL;
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
// into w[tap][channel] (binary: 1 where the weight is -1; ternary: t itself); each output position then runs,
// per valid tap, one plain loop over the chunk's contiguous channels, which the compiler vectorizes with
// this file's ISA. Returns oc_end when it computed the range, oc_begin when the layer is not depthwise or
// its kernel has more than 64 taps.
#define SIGN_DEPTHWISE_CHUNK 64
#define SIGN_DEPTHWISE_MAX_TAPS 64
SIGN_DRIVER size_t sign_conv2d_drive_depthwise(const whittle_conv2d_geometry* g, size_t oc_begin,
                                               size_t oc_end, const float* input,
                                               const uint32_t* weight_nonzero, const uint32_t* weight_sign,
                                               const float* alpha, const float* bias, float output_min,
                                               float output_max, float* output) {
  int8_t wt[SIGN_DEPTHWISE_MAX_TAPS * SIGN_DEPTHWISE_CHUNK];
  if (g->group_input_channels != 1 || g->group_output_channels != 1 ||
      g->kernel_height * g->kernel_width > SIGN_DEPTHWISE_MAX_TAPS) {
    return oc_begin;
  }
  const size_t channels = g->groups;
  const size_t taps = g->kernel_height * g->kernel_width;
  for (size_t c0 = oc_begin; c0 < oc_end; c0 += SIGN_DEPTHWISE_CHUNK) {
    const size_t count = oc_end - c0 < SIGN_DEPTHWISE_CHUNK ? oc_end - c0 : SIGN_DEPTHWISE_CHUNK;
    const size_t row_words = bin_row_words(taps);
    for (size_t t = 0; t < taps; t++) {
      for (size_t c = 0; c < count; c++) {
        const size_t word = (c0 + c) * row_words + t / 32;
        const int negative = (int)((weight_sign[word] >> (t % 32)) & 1);
        if (weight_nonzero == NULL) {
          wt[t * SIGN_DEPTHWISE_CHUNK + c] = (int8_t)negative;
        } else {
          const int nonzero = (int)((weight_nonzero[word] >> (t % 32)) & 1);
          wt[t * SIGN_DEPTHWISE_CHUNK + c] = (int8_t)(nonzero ? (negative ? -1 : 1) : 0);
        }
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
          float acc[SIGN_DEPTHWISE_CHUNK];
          for (size_t c = 0; c < count; c++) {
            acc[c] = 0.0f;
          }
          for (size_t ky = ky0; ky < ky1; ky++) {
            for (size_t kx = kx0; kx < kx1; kx++) {
              const size_t iy = oy * g->stride_height + ky - g->padding_top;
              const size_t ix = ox * g->stride_width + kx - g->padding_left;
              const size_t t = ky * g->kernel_width + kx;
              const float* x = input + ((n * g->input_height + iy) * g->input_width + ix) * channels + c0;
              const int8_t* s = wt + t * SIGN_DEPTHWISE_CHUNK;
              if (weight_nonzero == NULL) {
                for (size_t c = 0; c < count; c++) {
                  acc[c] += s[c] ? -x[c] : x[c];
                }
              } else {
                for (size_t c = 0; c < count; c++) {
                  acc[c] += s[c] > 0 ? x[c] : (s[c] < 0 ? -x[c] : 0.0f);
                }
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

// Blocked driver (SIMD): output channels in blocks of B (vector lanes). A block's planes are expanded once
// per call into one stack buffer of lane masks: flips[k][B] (0x80000000 where the weight is negative) and,
// for ternary, keeps[k][B] (0xFFFFFFFF where t != 0) after them. One broadcast activation then feeds B
// channels with an XOR (and an AND) and an add, no multiply. Binary rows may use the whole buffer, ternary
// rows half each. Returns the first channel it did not compute (leftovers, blocks straddling two groups,
// rows longer than the buffer allows are left to the caller's next path).
#define SIGN_EXPANDED_WORDS 16384
#define SIGN_MAX_BLOCK 16

SIGN_DRIVER size_t sign_conv2d_drive_blocked(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                             const float* input, const uint32_t* weight_nonzero,
                                             const uint32_t* weight_sign, const float* alpha,
                                             const float* bias, float output_min, float output_max,
                                             float* output, size_t block, sign_block_span_fn block_span) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t reduction = g->kernel_height * g->kernel_width * gic;
  const size_t row_words = bin_row_words(reduction);
  const size_t planes = weight_nonzero == NULL ? 1 : 2;
  if (block * reduction > SIGN_EXPANDED_WORDS / planes) {
    return oc_begin;
  }
  uint32_t expanded[SIGN_EXPANDED_WORDS];
  uint32_t* flips = expanded;
  uint32_t* keeps = weight_nonzero == NULL ? NULL : expanded + block * reduction;
  size_t ob = oc_begin;
  for (; ob + block <= oc_end; ob += block) {
    const size_t group = ob / g->group_output_channels;
    if ((ob + block - 1) / g->group_output_channels != group) {
      break;  // the caller's one-channel path takes it from here
    }
    // One word of each of the block's rows at a time, then its 32 bits for all lanes: the lane loop is a
    // plain shift-and-mask over contiguous words, which the compiler vectorizes.
    for (size_t w = 0; w < row_words; w++) {
      uint32_t signs[SIGN_MAX_BLOCK], nonzeros[SIGN_MAX_BLOCK];
      for (size_t j = 0; j < block; j++) {
        signs[j] = weight_sign[(ob + j) * row_words + w];
        if (keeps != NULL) nonzeros[j] = weight_nonzero[(ob + j) * row_words + w];
      }
      const size_t bits = reduction - w * 32 < 32 ? reduction - w * 32 : 32;
      for (size_t b = 0; b < bits; b++) {
        uint32_t* flip = flips + (w * 32 + b) * block;
        for (size_t j = 0; j < block; j++) flip[j] = (signs[j] << (31 - b)) & UINT32_C(0x80000000);
        if (keeps != NULL) {
          uint32_t* keep = keeps + (w * 32 + b) * block;
          for (size_t j = 0; j < block; j++) keep[j] = 0u - ((nonzeros[j] >> b) & 1);
        }
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
          float acc[SIGN_MAX_BLOCK] = {0};
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const float* in_row = image + iy * g->input_width * input_channels + group * gic;
            const size_t ix0 = ox * g->stride_width + kx0 - g->padding_left;
            if (g->groups == 1) {
              const size_t first = (ky * g->kernel_width + kx0) * gic * block;
              block_span(in_row + ix0 * input_channels, flips + first, keeps != NULL ? keeps + first : NULL,
                         (kx1 - kx0) * gic, acc);
            } else {
              for (size_t kx = kx0; kx < kx1; kx++) {
                const size_t first = (ky * g->kernel_width + kx) * gic * block;
                block_span(in_row + (ix0 + kx - kx0) * input_channels, flips + first,
                           keeps != NULL ? keeps + first : NULL, gic, acc);
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

// The definition, written for clarity (sums in double, taps in k order): the reference both families'
// kernels are tested against. t = 0 where the nonzero plane (if any) has a 0, else -1 where the sign plane
// has a 1, else +1.
static inline void sign_conv2d_reference(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                         const float* input, const uint32_t* weight_nonzero,
                                         const uint32_t* weight_sign, const float* alpha, const float* bias,
                                         float output_min, float output_max, float* output) {
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t reduction = g->kernel_height * g->kernel_width * g->group_input_channels;
  const size_t row_words = bin_row_words(reduction);
  for (size_t p = 0; p < whittle_conv2d_output_pixels(g); p++) {
    const whittle_conv2d_position at = whittle_conv2d_output_position(g, p);
    for (size_t o = oc_begin; o < oc_end; o++) {
      const size_t group = o / g->group_output_channels;
      double acc = 0.0;
      for (size_t k = 0; k < reduction; k++) {
        size_t index;
        if (!whittle_conv2d_tap_input(g, at, group, k, &index)) continue;  // padding: 0
        const size_t word = o * row_words + k / 32;
        const bool zero = weight_nonzero != NULL && ((weight_nonzero[word] >> (k % 32)) & 1) == 0;
        const bool negative = ((weight_sign[word] >> (k % 32)) & 1) != 0;
        acc += (zero ? 0.0 : (negative ? -1.0 : 1.0)) * (double)input[index];
      }
      output[p * output_channels + o] =
          whittle_clamp_f32(alpha[o] * (float)acc + (bias != NULL ? bias[o] : 0.0f), output_min, output_max);
    }
  }
}

// The three drivers in order: depthwise, blocks of `block` channels (block 0: none), one channel at a time.
SIGN_DRIVER void sign_conv2d_run(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                 const float* input, const uint32_t* weight_nonzero,
                                 const uint32_t* weight_sign, const float* alpha, const float* bias,
                                 float output_min, float output_max, float* output,
                                 sign_signed_sum_fn signed_sum, size_t block, sign_block_span_fn block_span) {
  size_t done = sign_conv2d_drive_depthwise(g, oc_begin, oc_end, input, weight_nonzero, weight_sign, alpha,
                                            bias, output_min, output_max, output);
  if (block != 0) {
    done = sign_conv2d_drive_blocked(g, done, oc_end, input, weight_nonzero, weight_sign, alpha, bias,
                                     output_min, output_max, output, block, block_span);
  }
  sign_conv2d_drive(g, done, oc_end, input, weight_nonzero, weight_sign, alpha, bias, output_min, output_max,
                    output, signed_sum);
}

// The conv2d and fc kernels of one ISA for each family; block == 0 (and block_span NULL): no blocked path.
#define BIN_DEFINE_KERNELS_BLOCKED(isa, signed_sum, block, block_span)                                      \
  void bin_conv2d_minmax_ukernel__##isa(                                                                    \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end, const float* restrict input, \
      const uint32_t* restrict weight_bits, const float* restrict alpha, const float* restrict bias,        \
      float output_min, float output_max, float* restrict output) {                                         \
    sign_conv2d_run(geometry, oc_begin, oc_end, input, NULL, weight_bits, alpha, bias, output_min,          \
                    output_max, output, signed_sum, (block), block_span);                                   \
  }                                                                                                         \
  void bin_fc_minmax_ukernel__##isa(                                                                        \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,          \
      const float* restrict input, const uint32_t* restrict weight_bits, const float* restrict alpha,       \
      const float* restrict bias, float output_min, float output_max, float* restrict output) {             \
    const whittle_conv2d_geometry geometry = whittle_fc_geometry(batch, input_channels, output_channels);   \
    sign_conv2d_run(&geometry, oc_begin, oc_end, input, NULL, weight_bits, alpha, bias, output_min,         \
                    output_max, output, signed_sum, (block), block_span);                                   \
  }
#define BIN_DEFINE_KERNELS(isa, signed_sum) BIN_DEFINE_KERNELS_BLOCKED(isa, signed_sum, 0, NULL)

#define TERN_DEFINE_KERNELS_BLOCKED(isa, signed_sum, block, block_span)                                      \
  void tern_conv2d_minmax_ukernel__##isa(                                                                    \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end, const float* restrict input,  \
      const uint32_t* restrict weight_nonzero, const uint32_t* restrict weight_sign,                         \
      const float* restrict alpha, const float* restrict bias, float output_min, float output_max,           \
      float* restrict output) {                                                                              \
    sign_conv2d_run(geometry, oc_begin, oc_end, input, weight_nonzero, weight_sign, alpha, bias, output_min, \
                    output_max, output, signed_sum, (block), block_span);                                    \
  }                                                                                                          \
  void tern_fc_minmax_ukernel__##isa(                                                                        \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,           \
      const float* restrict input, const uint32_t* restrict weight_nonzero,                                  \
      const uint32_t* restrict weight_sign, const float* restrict alpha, const float* restrict bias,         \
      float output_min, float output_max, float* restrict output) {                                          \
    const whittle_conv2d_geometry geometry = whittle_fc_geometry(batch, input_channels, output_channels);    \
    sign_conv2d_run(&geometry, oc_begin, oc_end, input, weight_nonzero, weight_sign, alpha, bias,            \
                    output_min, output_max, output, signed_sum, (block), block_span);                        \
  }
#define TERN_DEFINE_KERNELS(isa, signed_sum) TERN_DEFINE_KERNELS_BLOCKED(isa, signed_sum, 0, NULL)

#endif  // WHITTLE_SIGN_CONV2D_IMPL_H_
