// Private to the xnor kernel files: the convolution drivers shared by every ISA.
//
// Simple driver: output pixel outer, output channel inner; each channel XOR-popcounts the contiguous spans
// of its valid taps with span_popcount (one span per kernel row when groups == 1, one per tap otherwise).
//
// Blocked driver (SIMD): output channels in blocks of B (a multiple of the vector's 64-bit lanes). A block's
// weight rows are transposed once per call into a stack buffer wt[k][B], so one broadcast input word XORed
// with one vector of wt serves B channels; block_row_popcount adds the popcounts of one span to pop[B].
// It returns the first channel it did not compute: the caller continues with a smaller block, then the
// simple driver (leftover channels; rows too long for the buffer). Blocks straddling two groups use the
// simple driver in place.
#ifndef WHITTLE_XNOR_CONV2D_IMPL_H_
#define WHITTLE_XNOR_CONV2D_IMPL_H_

#include "xnor_conv2d.h"

// The drivers are inlined into each ISA's kernel so that the ISA's span function, passed as a constant
// function pointer, is inlined too (GCC otherwise clones the driver and keeps an indirect call per span).
#if defined(__GNUC__)
#define XNOR_DRIVER static inline __attribute__((always_inline))
#else
#define XNOR_DRIVER static inline
#endif

typedef uint32_t (*xnor_span_popcount_fn)(const uint64_t* x, const uint64_t* w, size_t words);
// pop[j] += sum_i popcount(x[i] XOR wt[i * B + j]) for j < B.
typedef void (*xnor_block_row_popcount_fn)(const uint64_t* x, const uint64_t* wt, size_t words,
                                           uint32_t* pop);
// out[j] = xnor_output(valid - 2 * pop[j], alpha[j], scale, bias ? bias[j] : 0, min, max) for j < B, with the
// same roundings and the same comparisons as xnor_output (bit-exact, signed zeros and NaN included).
typedef void (*xnor_block_store_fn)(const uint32_t* pop, int32_t valid, const float* alpha, float scale,
                                    const float* bias, float output_min, float output_max, float* out);

// Capacity of the transposed weight buffer, in words (32 KiB).
#define XNOR_TRANSPOSED_WORDS 4096
#define XNOR_MAX_BLOCK 32

static inline uint32_t xnor_span_popcount_portable(const uint64_t* x, const uint64_t* w, size_t words) {
  uint32_t count = 0;
  for (size_t i = 0; i < words; i++) {
    count += (uint32_t)__builtin_popcountll(x[i] ^ w[i]);
  }
  return count;
}

// Sign bits (x[i] < 0) of the floats x[c..count) ORed into bits at their positions i: the scalar tail every
// ISA's pack finishes a word with, and the whole word on scalar. NaN and -0.0f give 0, as the SIMD compares
// (ordered less-than) do.
static inline uint64_t xnor_sign_bits_tail(const float* x, size_t c, size_t count, uint64_t bits) {
  for (; c < count; c++) bits |= (uint64_t)(x[c] < 0.0f) << c;
  return bits;
}

// The sign bits of one word's count (1..64) consecutive floats, bit i for x[i].
typedef uint64_t (*xnor_word_sign_bits_fn)(const float* x, size_t count);

// Pack driver of every ISA: input fp32 [pixels][groups * group_channels] -> output
// [pixels][groups][xnor_group_words(group_channels)]; a group's last word may hold fewer than 64 channels
// (its high bits are 0).
XNOR_DRIVER void xnor_pack_words(size_t pixels, size_t groups, size_t group_channels, const float* input,
                                 uint64_t* output, xnor_word_sign_bits_fn word_sign_bits) {
  const size_t gw = xnor_group_words(group_channels);
  for (size_t p = 0; p < pixels; p++) {
    for (size_t group = 0; group < groups; group++) {
      const float* x = input + (p * groups + group) * group_channels;
      uint64_t* out = output + (p * groups + group) * gw;
      for (size_t w = 0; w < gw; w++) {
        const size_t count = group_channels - w * 64 < 64 ? group_channels - w * 64 : 64;
        out[w] = word_sign_bits(x + w * 64, count);
      }
    }
  }
}

typedef struct xnor_pixel {
  size_t ky0, ky1, kx0, kx1;
  const uint64_t* image;  // this batch element's input bits
  size_t oy, ox;
  size_t index;  // n * output_height * output_width + oy * output_width + ox
} xnor_pixel;

static inline void xnor_pixel_at(const whittle_conv2d_geometry* g, const uint64_t* input_bits, size_t n,
                                 size_t oy, size_t ox, xnor_pixel* p) {
  const size_t pixel_words = g->groups * xnor_group_words(g->group_input_channels);
  whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height, &p->ky0,
                            &p->ky1);
  whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width, &p->kx0,
                            &p->kx1);
  p->oy = oy;
  p->ox = ox;
  p->image = input_bits + n * g->input_height * g->input_width * pixel_words;
  p->index = (n * g->output_height + oy) * g->output_width + ox;
}

// Popcount of one output channel o at pixel p over its valid taps.
XNOR_DRIVER uint32_t xnor_channel_popcount(const whittle_conv2d_geometry* g, const xnor_pixel* p, size_t o,
                                           const uint64_t* weight_bits, xnor_span_popcount_fn span) {
  const size_t gw = xnor_group_words(g->group_input_channels);
  const size_t pixel_words = g->groups * gw;
  const size_t group = o / g->group_output_channels;
  const uint64_t* w = weight_bits + o * g->kernel_height * g->kernel_width * gw;
  uint32_t count = 0;
  const size_t oy = p->oy;
  const size_t ox = p->ox;
  for (size_t ky = p->ky0; ky < p->ky1; ky++) {
    const size_t iy = oy * g->stride_height + ky - g->padding_top;
    const size_t ix0 = ox * g->stride_width + p->kx0 - g->padding_left;
    const uint64_t* row = p->image + (iy * g->input_width + ix0) * pixel_words + group * gw;
    const uint64_t* wrow = w + (ky * g->kernel_width + p->kx0) * gw;
    if (g->groups == 1) {
      count += span(row, wrow, (p->kx1 - p->kx0) * gw);
    } else {
      for (size_t kx = p->kx0; kx < p->kx1; kx++) {
        count += span(row + (kx - p->kx0) * pixel_words, wrow + (kx - p->kx0) * gw, gw);
      }
    }
  }
  return count;
}

static inline void xnor_store(const whittle_conv2d_geometry* g, const xnor_pixel* p, size_t o, uint32_t count,
                              const float* alpha, const float* input_scale, const float* bias,
                              float output_min, float output_max, float* output) {
  const int32_t valid = (int32_t)((p->ky1 - p->ky0) * (p->kx1 - p->kx0) * g->group_input_channels);
  const int32_t dot = valid - 2 * (int32_t)count;
  output[p->index * g->groups * g->group_output_channels + o] =
      xnor_output(dot, alpha[o], input_scale != NULL ? input_scale[p->index] : 1.0f,
                  bias != NULL ? bias[o] : 0.0f, output_min, output_max);
}

XNOR_DRIVER void xnor_conv2d_drive_simple(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                          const uint64_t* input_bits, const uint64_t* weight_bits,
                                          const float* alpha, const float* input_scale, const float* bias,
                                          float output_min, float output_max, float* output,
                                          xnor_span_popcount_fn span) {
  if (oc_begin >= oc_end) return;  // (the blocked drivers often leave nothing: skip the pixel loop)
  for (size_t n = 0; n < g->batch; n++) {
    for (size_t oy = 0; oy < g->output_height; oy++) {
      for (size_t ox = 0; ox < g->output_width; ox++) {
        xnor_pixel p;
        xnor_pixel_at(g, input_bits, n, oy, ox, &p);
        for (size_t o = oc_begin; o < oc_end; o++) {
          const uint32_t count = xnor_channel_popcount(g, &p, o, weight_bits, span);
          xnor_store(g, &p, o, count, alpha, input_scale, bias, output_min, output_max, output);
        }
      }
    }
  }
}

XNOR_DRIVER size_t xnor_conv2d_drive_blocked(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                             const uint64_t* input_bits, const uint64_t* weight_bits,
                                             const float* alpha, const float* input_scale, const float* bias,
                                             float output_min, float output_max, float* output,
                                             xnor_span_popcount_fn span, size_t block,
                                             xnor_block_row_popcount_fn block_row,
                                             xnor_block_store_fn block_store) {
  const size_t gw = xnor_group_words(g->group_input_channels);
  const size_t pixel_words = g->groups * gw;
  const size_t row_words = g->kernel_height * g->kernel_width * gw;
  if (block * row_words > XNOR_TRANSPOSED_WORDS) {
    return oc_begin;
  }
  uint64_t wt[XNOR_TRANSPOSED_WORDS];
  size_t ob = oc_begin;
  for (; ob + block <= oc_end; ob += block) {
    const size_t group = ob / g->group_output_channels;
    if ((ob + block - 1) / g->group_output_channels != group) {
      xnor_conv2d_drive_simple(g, ob, ob + block, input_bits, weight_bits, alpha, input_scale, bias,
                               output_min, output_max, output, span);
      continue;
    }
    for (size_t k = 0; k < row_words; k++) {
      for (size_t j = 0; j < block; j++) {
        wt[k * block + j] = weight_bits[(ob + j) * row_words + k];
      }
    }
    for (size_t n = 0; n < g->batch; n++) {
      for (size_t oy = 0; oy < g->output_height; oy++) {
        for (size_t ox = 0; ox < g->output_width; ox++) {
          xnor_pixel p;
          xnor_pixel_at(g, input_bits, n, oy, ox, &p);
          uint32_t pop[XNOR_MAX_BLOCK] = {0};
          for (size_t ky = p.ky0; ky < p.ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const size_t ix0 = ox * g->stride_width + p.kx0 - g->padding_left;
            const uint64_t* row = p.image + (iy * g->input_width + ix0) * pixel_words + group * gw;
            const uint64_t* wrow = wt + (ky * g->kernel_width + p.kx0) * gw * block;
            if (g->groups == 1) {
              block_row(row, wrow, (p.kx1 - p.kx0) * gw, pop);
            } else {
              for (size_t kx = p.kx0; kx < p.kx1; kx++) {
                block_row(row + (kx - p.kx0) * pixel_words, wrow + (kx - p.kx0) * gw * block, gw, pop);
              }
            }
          }
          const int32_t valid = (int32_t)((p.ky1 - p.ky0) * (p.kx1 - p.kx0) * g->group_input_channels);
          block_store(pop, valid, alpha + ob, input_scale != NULL ? input_scale[p.index] : 1.0f,
                      bias != NULL ? bias + ob : NULL, output_min, output_max,
                      output + p.index * g->groups * g->group_output_channels + ob);
        }
      }
    }
  }
  return ob;
}

// A fully-connected layer is a 1x1 convolution of a 1x1 image (input_scale [batch] is then per pixel).
static inline whittle_conv2d_geometry xnor_fc_geometry(size_t batch, size_t input_channels,
                                                       size_t output_channels) {
  const whittle_conv2d_geometry g = {batch, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, input_channels, output_channels};
  return g;
}

// block == 0: the simple driver only. Otherwise blocks of `block` channels, then the simple driver.
#define XNOR_DEFINE_KERNELS(isa, span, block, block_row, block_store) \
  XNOR_DEFINE_KERNELS2(isa, span, block, block_row, block_store, 0, NULL, NULL)

// Blocks of `big` channels, then of `block` channels, then the simple driver.
#define XNOR_DEFINE_KERNELS2(isa, span, big, big_row, big_store, block, block_row, block_store)             \
  void xnor_conv2d_minmax_ukernel__##isa(const whittle_conv2d_geometry* geometry, size_t oc_begin,          \
                                         size_t oc_end, const uint64_t* restrict input_bits,                \
                                         const uint64_t* restrict weight_bits, const float* restrict alpha, \
                                         const float* restrict input_scale, const float* restrict bias,     \
                                         float output_min, float output_max, float* restrict output) {      \
    size_t done = oc_begin;                                                                                 \
    if ((big) != 0) {                                                                                       \
      done =                                                                                                \
          xnor_conv2d_drive_blocked(geometry, done, oc_end, input_bits, weight_bits, alpha, input_scale,    \
                                    bias, output_min, output_max, output, span, (big), big_row, big_store); \
    }                                                                                                       \
    if ((block) != 0) {                                                                                     \
      done = xnor_conv2d_drive_blocked(geometry, done, oc_end, input_bits, weight_bits, alpha, input_scale, \
                                       bias, output_min, output_max, output, span, (block), block_row,      \
                                       block_store);                                                        \
    }                                                                                                       \
    xnor_conv2d_drive_simple(geometry, done, oc_end, input_bits, weight_bits, alpha, input_scale, bias,     \
                             output_min, output_max, output, span);                                         \
  }                                                                                                         \
  void xnor_fc_minmax_ukernel__##isa(size_t batch, size_t input_channels, size_t output_channels,           \
                                     size_t oc_begin, size_t oc_end, const uint64_t* restrict input_bits,   \
                                     const uint64_t* restrict weight_bits, const float* restrict alpha,     \
                                     const float* restrict input_scale, const float* restrict bias,         \
                                     float output_min, float output_max, float* restrict output) {          \
    const whittle_conv2d_geometry geometry = xnor_fc_geometry(batch, input_channels, output_channels);      \
    xnor_conv2d_minmax_ukernel__##isa(&geometry, oc_begin, oc_end, input_bits, weight_bits, alpha,          \
                                      input_scale, bias, output_min, output_max, output);                   \
  }

#endif  // WHITTLE_XNOR_CONV2D_IMPL_H_
