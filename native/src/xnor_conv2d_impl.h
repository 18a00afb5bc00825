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

#include <string.h>

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

// The same for int8 activations x = scale * (q - zero_point), scale > 0: x < 0 exactly when q < zero_point.
static inline uint64_t xnor_qs8_sign_bits_tail(const int8_t* q, size_t c, size_t count, int32_t zero_point,
                                               uint64_t bits) {
  for (; c < count; c++) bits |= (uint64_t)(q[c] < zero_point) << c;
  return bits;
}

// The sign bits of one word's count (1..64) consecutive elements, bit i for x[i]: floats (zero_point unused)
// or int8 (x[i] < zero_point).
typedef uint64_t (*xnor_word_sign_bits_fn)(const void* x, size_t count, int32_t zero_point);

// Pack driver of every ISA: input [pixels][groups * group_channels] of element_bytes elements (4: fp32, 1:
// int8 with zero_point) -> output [pixels][groups][xnor_group_words(group_channels)]; a group's last word
// may hold fewer than 64 channels (its high bits are 0).
XNOR_DRIVER void xnor_pack_words(size_t pixels, size_t groups, size_t group_channels, const void* input,
                                 size_t element_bytes, int32_t zero_point, uint64_t* output,
                                 xnor_word_sign_bits_fn word_sign_bits) {
  if (group_channels == 1) {
    // One channel per word (depthwise, one-channel images): a plain compare per element, which the compiler
    // vectorizes with this file's ISA, instead of one word function call per channel.
    if (element_bytes == 1) {
      const int8_t* q = (const int8_t*)input;
      for (size_t i = 0; i < pixels * groups; i++) output[i] = (uint64_t)(q[i] < zero_point);
    } else {
      const float* x = (const float*)input;
      for (size_t i = 0; i < pixels * groups; i++) output[i] = (uint64_t)(x[i] < 0.0f);
    }
    return;
  }
  const size_t gw = xnor_group_words(group_channels);
  const char* bytes = (const char*)input;
  for (size_t p = 0; p < pixels; p++) {
    for (size_t group = 0; group < groups; group++) {
      const char* x = bytes + (p * groups + group) * group_channels * element_bytes;
      uint64_t* out = output + (p * groups + group) * gw;
      for (size_t w = 0; w < gw; w++) {
        const size_t count = group_channels - w * 64 < 64 ? group_channels - w * 64 : 64;
        out[w] = word_sign_bits(x + w * 64 * element_bytes, count, zero_point);
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

// Single-bit driver: one input channel per group (depthwise layers, one-channel images), so every tap of
// every channel is one word holding one bit and popcount(x ^ w) is x ^ w. Vectorized across output channels
// rather than along the (few-tap) reduction, in byte lanes (a popcount of at most XNOR_SINGLE_BIT_MAX_TAPS
// fits a byte): a chunk of XNOR_SINGLE_BIT_CHUNK channels' weight bits is transposed once per call into
// wt[tap][channel] bytes, and each output position XORs and adds, per valid tap, one chunk of input bytes.
// Every channel loop has the constant trip count XNOR_SINGLE_BIT_CHUNK (a last partial chunk computes zero
// padded lanes and stores only its channels), so the compiler keeps the counts in vector registers and
// vectorizes the narrowing and the epilogue with the including file's ISA. The input byte of output channel o
// is its group's bit, o / group_output_channels:
//   depthwise (group_output_channels == 1): contiguous channels. Each input row's words are narrowed once
//     per chunk to bytes into a ring of kernel_height rows (XNOR_SINGLE_BIT_RING_BYTES);
//   groups == 1: one broadcast byte per pixel.
// Returns oc_end when it computed the range, oc_begin when the layer is neither, its kernel has more than
// XNOR_SINGLE_BIT_MAX_TAPS taps, or a depthwise ring of kernel_height rows does not fit.
#define XNOR_SINGLE_BIT_CHUNK 64
#define XNOR_SINGLE_BIT_MAX_TAPS 49
#define XNOR_SINGLE_BIT_RING_BYTES 32768

// The chunk [c0, c0 + count), count <= XNOR_SINGLE_BIT_CHUNK.
XNOR_DRIVER void xnor_single_bit_chunk(const whittle_conv2d_geometry* g, size_t c0, size_t count,
                                       const uint64_t* input_bits, const uint64_t* weight_bits,
                                       const float* alpha, const float* input_scale, const float* bias,
                                       float output_min, float output_max, float* output) {
  enum { L = XNOR_SINGLE_BIT_CHUNK };
  const size_t taps = g->kernel_height * g->kernel_width;
  const bool depthwise = g->group_output_channels == 1;
  const size_t row_bytes = g->input_width * L;
  uint8_t ring[XNOR_SINGLE_BIT_RING_BYTES];
  uint8_t wt[XNOR_SINGLE_BIT_MAX_TAPS * L];
  float chunk_alpha[L], chunk_bias[L], values[L];
  const size_t channels = g->groups * g->group_output_channels;
  for (size_t t = 0; t < taps; t++) {
    for (size_t c = 0; c < L; c++) wt[t * L + c] = c < count ? (uint8_t)weight_bits[(c0 + c) * taps + t] : 0;
  }
  for (size_t c = 0; c < L; c++) {
    chunk_alpha[c] = c < count ? alpha[c0 + c] : 0.0f;
    chunk_bias[c] = c < count && bias != NULL ? bias[c0 + c] : 0.0f;
  }
  for (size_t n = 0; n < g->batch; n++) {
    const uint64_t* image = input_bits + n * g->input_height * g->input_width * g->groups;
    size_t next_row = 0;  // depthwise: the first input row not yet in the ring
    for (size_t oy = 0; oy < g->output_height; oy++) {
      size_t ky0, ky1;
      whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height, &ky0,
                                &ky1);
      const size_t row_end = oy * g->stride_height + ky1 - g->padding_top;
      if (depthwise) {
        const size_t row_begin = oy * g->stride_height + ky0 - g->padding_top;
        for (size_t iy = row_begin > next_row ? row_begin : next_row; iy < row_end; iy++) {
          uint8_t* slot = ring + (iy % g->kernel_height) * row_bytes;
          for (size_t ix = 0; ix < g->input_width; ix++) {
            const uint64_t* x = image + (iy * g->input_width + ix) * channels + c0;
            if (count == L) {
              for (size_t c = 0; c < L; c++) slot[ix * L + c] = (uint8_t)x[c];
            } else {
              for (size_t c = 0; c < L; c++) slot[ix * L + c] = c < count ? (uint8_t)x[c] : 0;
            }
          }
        }
        if (row_end > next_row) next_row = row_end;
      }
      for (size_t ox = 0; ox < g->output_width; ox++) {
        size_t kx0, kx1;
        whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width, &kx0,
                                  &kx1);
        uint8_t pop[L];
        for (size_t c = 0; c < L; c++) pop[c] = 0;
        for (size_t ky = ky0; ky < ky1; ky++) {
          const size_t iy = oy * g->stride_height + ky - g->padding_top;
          for (size_t kx = kx0; kx < kx1; kx++) {
            const size_t ix = ox * g->stride_width + kx - g->padding_left;
            const uint8_t* w = wt + (ky * g->kernel_width + kx) * L;
            if (depthwise) {
              const uint8_t* x = ring + (iy % g->kernel_height) * row_bytes + ix * L;
              for (size_t c = 0; c < L; c++) pop[c] += (uint8_t)(x[c] ^ w[c]);
            } else {
              const uint8_t x = (uint8_t)image[iy * g->input_width + ix];
              for (size_t c = 0; c < L; c++) pop[c] += (uint8_t)(x ^ w[c]);
            }
          }
        }
        const int32_t valid = (int32_t)((ky1 - ky0) * (kx1 - kx0));
        const size_t index = (n * g->output_height + oy) * g->output_width + ox;
        const float scale = input_scale != NULL ? input_scale[index] : 1.0f;
        float* out = output + index * channels + c0;
        if (count == L) {
          for (size_t c = 0; c < L; c++) {
            out[c] = xnor_output(valid - 2 * (int32_t)pop[c], chunk_alpha[c], scale, chunk_bias[c],
                                 output_min, output_max);
          }
        } else {
          for (size_t c = 0; c < L; c++) {
            values[c] = xnor_output(valid - 2 * (int32_t)pop[c], chunk_alpha[c], scale, chunk_bias[c],
                                    output_min, output_max);
          }
          memcpy(out, values, count * sizeof(float));
        }
      }
    }
  }
}

XNOR_DRIVER size_t xnor_conv2d_drive_single_bit(const whittle_conv2d_geometry* g, size_t oc_begin,
                                                size_t oc_end, const uint64_t* input_bits,
                                                const uint64_t* weight_bits, const float* alpha,
                                                const float* input_scale, const float* bias, float output_min,
                                                float output_max, float* output) {
  const size_t taps = g->kernel_height * g->kernel_width;
  const bool depthwise = g->group_output_channels == 1;
  if (g->group_input_channels != 1 || taps > XNOR_SINGLE_BIT_MAX_TAPS || (!depthwise && g->groups != 1) ||
      (depthwise && g->kernel_height * g->input_width * XNOR_SINGLE_BIT_CHUNK > XNOR_SINGLE_BIT_RING_BYTES)) {
    return oc_begin;
  }
  for (size_t c0 = oc_begin; c0 < oc_end; c0 += XNOR_SINGLE_BIT_CHUNK) {
    const size_t count = oc_end - c0 < XNOR_SINGLE_BIT_CHUNK ? oc_end - c0 : XNOR_SINGLE_BIT_CHUNK;
    xnor_single_bit_chunk(g, c0, count, input_bits, weight_bits, alpha, input_scale, bias, output_min,
                          output_max, output);
  }
  return oc_end;
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
    size_t done = xnor_conv2d_drive_single_bit(geometry, oc_begin, oc_end, input_bits, weight_bits, alpha,  \
                                               input_scale, bias, output_min, output_max, output);          \
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
