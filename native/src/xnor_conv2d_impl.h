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

#include <math.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

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

// The pack's view of a layer: one-channel groups (depthwise layers) are packed as one group of `groups`
// channels (xnor_pixel_words), so that every ISA's pack takes its whole-word paths.
static inline void xnor_pack_shape(size_t* groups, size_t* group_channels) {
  if (*group_channels == 1) {
    *group_channels = *groups;
    *groups = 1;
  }
}

// Pack driver of every ISA: input [pixels][groups * group_channels] of element_bytes elements (4: fp32, 1:
// int8 with zero_point) -> output [pixels][xnor_pixel_words(groups, group_channels)]; a group's last word
// may hold fewer than 64 channels (its high bits are 0).
XNOR_DRIVER void xnor_pack_words(size_t pixels, size_t groups, size_t group_channels, const void* input,
                                 size_t element_bytes, int32_t zero_point, uint64_t* output,
                                 xnor_word_sign_bits_fn word_sign_bits) {
  xnor_pack_shape(&groups, &group_channels);
  if (group_channels == 1) {
    // One-channel images: one bit per pixel, a plain compare per element, which the compiler vectorizes
    // with this file's ISA, instead of one word function call per pixel.
    if (element_bytes == 1) {
      const int8_t* q = (const int8_t*)input;
      for (size_t i = 0; i < pixels; i++) output[i] = (uint64_t)(q[i] < zero_point);
    } else {
      const float* x = (const float*)input;
      for (size_t i = 0; i < pixels; i++) output[i] = (uint64_t)(x[i] < 0.0f);
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

// Single-bit driver: one input channel per group (depthwise layers, their channel multipliers, one-channel
// images). The pack stores such a layer's activations across its groups (xnor_pixel_words): input channel c
// of a pixel is bit c % 64 of word c / 64, so a 128-channel pixel is 2 words, not 128 one-bit words.
//
// Output channels are taken XNOR_SB_LANES at a time as the bits of one lane word (bit j: output channel
// c0 + j). xnor_sb_lanes gathers, from one input pixel's words, the input bit of each lane's group (a funnel
// shift for a depthwise layer, a broadcast for a one-channel image, bit by bit for a channel multiplier);
// wt[tap] holds the lanes' weight bits. Each valid tap gives the mismatch word x ^ wt[tap], and the words are
// added bit-sliced into `planes` bit planes (bit j of plane k is bit k of lane j's count: 4 planes up to 15
// taps, 6 up to 63, 8 up to XNOR_SB_MAX_TAPS): a full adder per pair of taps, its carry rippled up. The
// planes become the per-channel dots valid - 2 * count in the epilogue xnor_output, the expression of every
// other path: xnor_sb_store_avx512 / _avx2 (at most 6 planes) or xnor_sb_expand + xnor_sb_store.
//
// Strips: each output row is computed XNOR_SB_STRIP pixels at a time (a GCC / Clang vector of lane words:
// one AVX-512 register, two AVX2 ones; a row's last pixels, when at most half a strip, on half vectors), in
// segments of XNOR_SB_SEGMENT strips: every strip's planes, then every pixel's store. The lane words of the
// input rows are gathered once per chunk of lanes into a ring of kernel_height rows over the padded input
// columns u = ix + padding_left, stored by u % stride_width first (pos = (u % s) * row_span + u / s), so a
// tap reads the strip's pixels contiguously at any stride; padded columns hold 0 and a 0 mask, so a padded
// tap adds no mismatch, and each pixel's valid-tap count comes from its own tap range. Pixels: one pixel at a
// time, the lane words gathered per tap, in batches of XNOR_SB_MAX_TAPS taps: the fallback when the ring does
// not fit or the kernel has more than XNOR_SB_MAX_TAPS taps.
#define XNOR_SB_LANES 64
#define XNOR_SB_STRIP 8
#define XNOR_SB_MAX_TAPS 255
#define XNOR_SB_RING_WORDS 4096
#define XNOR_SB_SEGMENT 16

// A strip's lane words (GCC / Clang vector extension: one AVX-512 register, two AVX2 ones, four NEON ones).
typedef uint64_t xnor_sb_vec __attribute__((vector_size(XNOR_SB_STRIP * sizeof(uint64_t))));
// Half a strip: a row's last pixels when they are at most XNOR_SB_STRIP / 2.
typedef uint64_t xnor_sb_vec_half __attribute__((vector_size(XNOR_SB_STRIP / 2 * sizeof(uint64_t))));

typedef struct xnor_sb_chunk {
  const whittle_conv2d_geometry* g;
  const uint64_t* input_bits;
  const uint64_t* weight_bits;
  const float* input_scale;
  float output_min, output_max;
  bool clamp;  // a bound is finite (without, the clamps change no float and are left out)
  float* output;
  size_t c0, count;               // the lanes' channels [c0, c0 + count), count <= XNOR_SB_LANES
  uint64_t wt[XNOR_SB_MAX_TAPS];  // the lanes' weight bits per tap (kernels of at most XNOR_SB_MAX_TAPS taps)
  float alpha[XNOR_SB_LANES], bias[XNOR_SB_LANES];  // 0 past count
} xnor_sb_chunk;

// The lanes' weight bits of tap t (bit j: bit 0 of output channel c0 + j's word of that tap).
static inline uint64_t xnor_sb_weight_word(const xnor_sb_chunk* k, size_t t) {
  const size_t taps = k->g->kernel_height * k->g->kernel_width;
  uint64_t w = 0;
  for (size_t j = 0; j < k->count; j++) w |= (k->weight_bits[(k->c0 + j) * taps + t] & 1) << j;
  return w;
}

// The lanes' input bits at one input pixel x (xnor_pixel_words words): lane j reads input channel
// (c0 + j) / group_output_channels. Lanes past count get any bits (their results are not stored).
static inline uint64_t xnor_sb_lanes(const whittle_conv2d_geometry* g, const uint64_t* x, size_t c0,
                                     size_t count) {
  if (g->groups == 1) return (uint64_t)0 - (x[0] & 1);
  const size_t m = g->group_output_channels;
  if (m == 1) {
    const size_t w = c0 / 64, s = c0 % 64;
    uint64_t v = x[w] >> s;
    if (s != 0 && w + 1 < xnor_group_words(g->groups)) v |= x[w + 1] << (64 - s);
    return v;
  }
  uint64_t v = 0;
  for (size_t j = 0; j < count; j++) {
    const size_t c = (c0 + j) / m;
    v |= ((x[c / 64] >> (c % 64)) & 1) << j;
  }
  return v;
}

// Adds the one-bit word v into the planes (ripple carry).
XNOR_DRIVER void xnor_sb_add(uint64_t* b, size_t planes, uint64_t v) {
  for (size_t k = 0; k < planes; k++) {
    const uint64_t carry = b[k] & v;
    b[k] ^= v;
    v = carry;
  }
}

// cnt[j] = the count of lane j held in b[0..planes) (bit j of b[k] is its bit k), for the 32-lane halves
// holding the first count lanes. In 32-bit halves, so that the compiler vectorizes the lanes with 32-bit
// shifts.
XNOR_DRIVER void xnor_sb_expand(const uint64_t* b, size_t planes, size_t count, uint32_t* cnt) {
  for (size_t h = 0; h < (count + 31) / 32; h++) {
    uint32_t half[8];
    for (size_t k = 0; k < planes; k++) half[k] = (uint32_t)(b[k] >> (32 * h));
    for (size_t c = 0; c < 32; c++) {
      uint32_t v = 0;
      for (size_t k = 0; k < planes; k++) v |= ((half[k] >> c) & 1) << k;
      cnt[32 * h + c] = v;
    }
  }
}

// The epilogue of output pixel `index` (n, oy, ox flattened) from its lanes' counts.
XNOR_DRIVER void xnor_sb_store(const xnor_sb_chunk* k, size_t index, int32_t valid, const uint32_t* cnt) {
  const whittle_conv2d_geometry* g = k->g;
  const float scale = k->input_scale != NULL ? k->input_scale[index] : 1.0f;
  float* out = k->output + index * g->groups * g->group_output_channels + k->c0;
  if (k->count == XNOR_SB_LANES) {
    for (size_t c = 0; c < XNOR_SB_LANES; c++) {
      out[c] = xnor_output(valid - 2 * (int32_t)cnt[c], k->alpha[c], scale, k->bias[c], k->output_min,
                           k->output_max);
    }
  } else {
    // The first half only when it holds every channel (the lanes' counts past it are not computed).
    float values[XNOR_SB_LANES];
    for (size_t c = 0; c < XNOR_SB_LANES / 2; c++) {
      values[c] = xnor_output(valid - 2 * (int32_t)cnt[c], k->alpha[c], scale, k->bias[c], k->output_min,
                              k->output_max);
    }
    if (k->count > XNOR_SB_LANES / 2) {
      for (size_t c = XNOR_SB_LANES / 2; c < XNOR_SB_LANES; c++) {
        values[c] = xnor_output(valid - 2 * (int32_t)cnt[c], k->alpha[c], scale, k->bias[c], k->output_min,
                                k->output_max);
      }
    }
    memcpy(out, values, k->count * sizeof(float));
  }
}

#if defined(__AVX512BW__)
// The store from at most 6 planes (at most 63 taps) on AVX-512 BW: the dots valid - 2 * count of the 64
// lanes as bytes (plane k's bits are an opmask that subtracts 2^(k+1) from its lanes, modulo 256: the final
// dots lie in [-63, 63]), widened 16 at a time into the epilogue. The clamps are MAXPS(lo, value) and
// MINPS(hi, value), which return value when it is NaN or when both are zeros of either sign: exactly
// xnor_output's comparisons. Without an input scale the multiply by 1.0f, which changes no float, is left
// out, and so are the clamps when both bounds are infinite.
XNOR_DRIVER __m512 xnor_sb_value16_avx512(const xnor_sb_chunk* k, __m128i dots, size_t q) {
  return _mm512_add_ps(
      _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(dots)), _mm512_loadu_ps(k->alpha + 16 * q)),
      _mm512_loadu_ps(k->bias + 16 * q));
}

XNOR_DRIVER void xnor_sb_store_avx512(const xnor_sb_chunk* k, size_t index, int32_t valid, const uint64_t* b,
                                      size_t planes) {
  const whittle_conv2d_geometry* g = k->g;
  __m512i dot = _mm512_set1_epi8((char)valid);
  for (size_t p = 0; p < planes; p++) {
    dot = _mm512_mask_sub_epi8(dot, _cvtu64_mask64(b[p]), dot, _mm512_set1_epi8((char)(2 << p)));
  }
  float* out = k->output + index * g->groups * g->group_output_channels + k->c0;
  int8_t dots[XNOR_SB_LANES];
  _mm512_storeu_si512(dots, dot);
  if (k->count == XNOR_SB_LANES && !k->clamp && k->input_scale == NULL) {
    // The common case: no scale, no clamps, 64 channels: four stores, unrolled.
    for (size_t q = 0; q < 4; q++) {
      _mm512_storeu_ps(out + 16 * q,
                       xnor_sb_value16_avx512(k, _mm_loadu_si128((const __m128i*)(dots + 16 * q)), q));
    }
    return;
  }
  const __m512 lo = _mm512_set1_ps(k->output_min), hi = _mm512_set1_ps(k->output_max);
  const uint64_t stored = k->count == XNOR_SB_LANES ? ~(uint64_t)0 : (UINT64_C(1) << k->count) - 1;
  for (size_t q = 0; q < (k->count + 15) / 16; q++) {
    const __m128i d = _mm_loadu_si128((const __m128i*)(dots + 16 * q));
    __m512 value =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(d)), _mm512_loadu_ps(k->alpha + 16 * q));
    if (k->input_scale != NULL) value = _mm512_mul_ps(value, _mm512_set1_ps(k->input_scale[index]));
    value = _mm512_add_ps(value, _mm512_loadu_ps(k->bias + 16 * q));
    if (k->clamp) value = _mm512_min_ps(hi, _mm512_max_ps(lo, value));
    _mm512_mask_storeu_ps(out + 16 * q, _cvtu32_mask16((uint32_t)(stored >> (16 * q)) & 0xffff), value);
  }
}
#elif defined(__AVX2__)
// The same on AVX2: plane k's 32-bit halves spread to bytes (VPSHUFB copies byte i of the half into lanes
// 8i..8i+7, AND + compare with each lane's bit gives 0xFF where the bit is set), 2^(k+1) subtracted there.
XNOR_DRIVER void xnor_sb_store_avx2(const xnor_sb_chunk* k, size_t index, int32_t valid, const uint64_t* b,
                                    size_t planes) {
  const whittle_conv2d_geometry* g = k->g;
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2,
                                          2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201);
  int8_t dots[XNOR_SB_LANES];
  for (size_t h = 0; h < (k->count + 31) / 32; h++) {
    __m256i dot = _mm256_set1_epi8((char)valid);
    for (size_t p = 0; p < planes; p++) {
      const __m256i half = _mm256_set1_epi32((int)(uint32_t)(b[p] >> (32 * h)));
      const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(half, spread), bit), bit);
      dot = _mm256_sub_epi8(dot, _mm256_and_si256(set, _mm256_set1_epi8((char)(2 << p))));
    }
    _mm256_storeu_si256((__m256i*)(dots + 32 * h), dot);
  }
  float* out = k->output + index * g->groups * g->group_output_channels + k->c0;
  const float scale = k->input_scale != NULL ? k->input_scale[index] : 1.0f;
  const __m256 lo = _mm256_set1_ps(k->output_min), hi = _mm256_set1_ps(k->output_max);
  float values[8];
  for (size_t q = 0; q < (k->count + 7) / 8; q++) {
    const __m256i d = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(dots + 8 * q)));
    __m256 value = _mm256_mul_ps(_mm256_cvtepi32_ps(d), _mm256_loadu_ps(k->alpha + 8 * q));
    if (k->input_scale != NULL) value = _mm256_mul_ps(value, _mm256_set1_ps(scale));
    value = _mm256_add_ps(value, _mm256_loadu_ps(k->bias + 8 * q));
    if (k->clamp) value = _mm256_min_ps(hi, _mm256_max_ps(lo, value));
    if (8 * q + 8 <= k->count) {
      _mm256_storeu_ps(out + 8 * q, value);
    } else {
      _mm256_storeu_ps(values, value);
      memcpy(out + 8 * q, values, (k->count - 8 * q) * sizeof(float));
    }
  }
}
#endif

// One output pixel, the lane words gathered per tap.
XNOR_DRIVER void xnor_sb_pixel(const xnor_sb_chunk* k, size_t n, size_t oy, size_t ox) {
  const whittle_conv2d_geometry* g = k->g;
  const size_t pixel_words = xnor_group_words(g->groups);
  const uint64_t* image = k->input_bits + n * g->input_height * g->input_width * pixel_words;
  const bool stored = g->kernel_height * g->kernel_width <= XNOR_SB_MAX_TAPS;
  size_t ky0, ky1, kx0, kx1;
  whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height, &ky0,
                            &ky1);
  whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width, &kx0,
                            &kx1);
  uint32_t cnt[XNOR_SB_LANES] = {0}, batch[XNOR_SB_LANES] = {0};
  uint64_t b[8] = {0};
  size_t added = 0;
  for (size_t ky = ky0; ky < ky1; ky++) {
    const size_t iy = oy * g->stride_height + ky - g->padding_top;
    for (size_t kx = kx0; kx < kx1; kx++) {
      const size_t ix = ox * g->stride_width + kx - g->padding_left;
      const size_t t = ky * g->kernel_width + kx;
      const uint64_t x = xnor_sb_lanes(g, image + (iy * g->input_width + ix) * pixel_words, k->c0, k->count);
      xnor_sb_add(b, 8, x ^ (stored ? k->wt[t] : xnor_sb_weight_word(k, t)));
      if (++added == XNOR_SB_MAX_TAPS) {
        xnor_sb_expand(b, 8, k->count, batch);
        for (size_t c = 0; c < XNOR_SB_LANES; c++) cnt[c] += batch[c];
        memset(b, 0, sizeof b);
        added = 0;
      }
    }
  }
  if (added != 0) {
    xnor_sb_expand(b, 8, k->count, batch);
    for (size_t c = 0; c < XNOR_SB_LANES; c++) cnt[c] += batch[c];
  }
  xnor_sb_store(k, (n * g->output_height + oy) * g->output_width + ox, (int32_t)((ky1 - ky0) * (kx1 - kx0)),
                cnt);
}

// Adds the one-bit vector carry into b[first..planes), rippling it up (the count never overflows the planes).
#define XNOR_SB_RIPPLE(V, b, carry, first)    \
  for (size_t p = (first); p < planes; p++) { \
    const V next = (b)[p] & (carry);          \
    (b)[p] ^= (carry);                        \
    (carry) = next;                           \
  }

// b[0..planes) += the mismatch bits of the row's taps for the pixels ox.. of a strip, V being the strip's
// vector type (8 pixels, or 4 for a row's last few): per tap (lane words XOR the tap's weights) AND the
// columns' mask; per pair of taps a full adder into plane 0 (b[0] + v0 + v1 = b[0]' + 2 * carry, bitwise),
// its carry rippled up (the count never overflows the planes). A macro over the vector type, with no
// vector function arguments (which change the ABI in files without AVX-512, Clang warns).
#define XNOR_SB_ADD_TAPS(V, b, ox)                                \
  do {                                                            \
    size_t t = 0;                                                 \
    for (; t + 2 <= taps; t += 2) {                               \
      V x0, x1, m0, m1;                                           \
      memcpy(&x0, ring + at[t] + (ox), sizeof x0);                \
      memcpy(&x1, ring + at[t + 1] + (ox), sizeof x1);            \
      memcpy(&m0, mask + mask_at[t] + (ox), sizeof m0);           \
      memcpy(&m1, mask + mask_at[t + 1] + (ox), sizeof m1);       \
      const V v0 = (x0 ^ wt[t]) & m0, v1 = (x1 ^ wt[t + 1]) & m1; \
      const V u = b[0] ^ v0;                                      \
      V carry = (b[0] & v0) | (u & v1);                           \
      b[0] = u ^ v1;                                              \
      XNOR_SB_RIPPLE(V, b, carry, 1);                             \
    }                                                             \
    if (t < taps) {                                               \
      V x, m;                                                     \
      memcpy(&x, ring + at[t] + (ox), sizeof x);                  \
      memcpy(&m, mask + mask_at[t] + (ox), sizeof m);             \
      V carry = (x ^ wt[t]) & m;                                  \
      XNOR_SB_RIPPLE(V, b, carry, 0);                             \
    }                                                             \
  } while (0)

// The strip geometry: padded columns per ring row (row_span per stride phase, stride_width phases).
static inline size_t xnor_sb_row_span(const whittle_conv2d_geometry* g) {
  const size_t strips = (g->output_width + XNOR_SB_STRIP - 1) / XNOR_SB_STRIP;
  const size_t columns = g->stride_width * (strips * XNOR_SB_STRIP - 1) + g->kernel_width;
  return (columns + g->stride_width - 1) / g->stride_width;
}

// Every output pixel of the chunk in strips (planes: 4 or 8, a constant after inlining).
XNOR_DRIVER void xnor_sb_strips(const xnor_sb_chunk* k, size_t planes, uint64_t* ring, uint64_t* mask) {
  enum { S = XNOR_SB_STRIP };
  const whittle_conv2d_geometry* g = k->g;
  const size_t sx = g->stride_width;
  const size_t span = xnor_sb_row_span(g);
  const size_t row_words = sx * span;
  const size_t pixel_words = xnor_group_words(g->groups);
  // Column u = q * sx + r of a ring row is at r * span + q; ix = u - padding_left wraps for the left padding.
  for (size_t r = 0; r < sx; r++) {
    for (size_t q = 0; q < span; q++) {
      const size_t u = q * sx + r;
      mask[r * span + q] = u >= g->padding_left && u - g->padding_left < g->input_width ? ~(uint64_t)0 : 0;
    }
  }
  uint8_t columns[XNOR_SB_RING_WORDS];  // output column ox -> its valid kernel columns (<= 255)
  for (size_t ox = 0; ox < g->output_width; ox++) {
    size_t kx0, kx1;
    whittle_conv2d_valid_taps(ox, sx, g->padding_left, g->kernel_width, g->input_width, &kx0, &kx1);
    columns[ox] = (uint8_t)(kx1 - kx0);
  }
  const bool aligned = g->group_output_channels == 1 && g->groups > 1 && k->c0 % 64 == 0;
  size_t tap_at[XNOR_SB_MAX_TAPS];  // kernel column kx -> its offset in a ring row (before + ox)
  for (size_t kx = 0; kx < g->kernel_width; kx++) tap_at[kx] = (kx % sx) * span + kx / sx;
  for (size_t n = 0; n < g->batch; n++) {
    const uint64_t* image = k->input_bits + n * g->input_height * g->input_width * pixel_words;
    size_t next_row = 0;  // the first input row not yet in the ring
    for (size_t oy = 0; oy < g->output_height; oy++) {
      size_t ky0, ky1;
      whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height, &ky0,
                                &ky1);
      const size_t row_begin = oy * g->stride_height + ky0 - g->padding_top;
      const size_t row_end = oy * g->stride_height + ky1 - g->padding_top;
      for (size_t iy = row_begin > next_row ? row_begin : next_row; iy < row_end; iy++) {
        uint64_t* slot = ring + (iy % g->kernel_height) * row_words;
        if (aligned) {
          // Depthwise, lanes on a word boundary: the lane word is the pixel's word c0 / 64.
          const uint64_t* x = image + iy * g->input_width * pixel_words + k->c0 / 64;
          for (size_t r = 0; r < sx; r++) {
            for (size_t q = 0; q < span; q++) {
              slot[r * span + q] =
                  mask[r * span + q] != 0 ? x[(q * sx + r - g->padding_left) * pixel_words] : 0;
            }
          }
          continue;
        }
        for (size_t r = 0; r < sx; r++) {
          for (size_t q = 0; q < span; q++) {
            const size_t ix = q * sx + r - g->padding_left;
            slot[r * span + q] =
                mask[r * span + q] != 0
                    ? xnor_sb_lanes(g, image + (iy * g->input_width + ix) * pixel_words, k->c0, k->count)
                    : 0;
          }
        }
      }
      if (row_end > next_row) next_row = row_end;
      // The row's valid taps: ring offset (before + ox), mask offset, weight word.
      size_t at[XNOR_SB_MAX_TAPS], mask_at[XNOR_SB_MAX_TAPS];
      uint64_t wt[XNOR_SB_MAX_TAPS];
      size_t taps = 0;
      for (size_t ky = ky0; ky < ky1; ky++) {
        const size_t row = (oy * g->stride_height + ky - g->padding_top) % g->kernel_height * row_words;
        for (size_t kx = 0; kx < g->kernel_width; kx++, taps++) {
          at[taps] = row + tap_at[kx];
          mask_at[taps] = tap_at[kx];
          wt[taps] = k->wt[ky * g->kernel_width + kx];
        }
      }
      // The row in segments of XNOR_SB_SEGMENT strips: every strip's planes first, then every pixel's store
      // (two short loops, each with its registers to itself).
      for (size_t ox0 = 0; ox0 < g->output_width; ox0 += XNOR_SB_SEGMENT * S) {
        xnor_sb_vec segment[XNOR_SB_SEGMENT][8];
        const size_t end =
            g->output_width - ox0 < XNOR_SB_SEGMENT * S ? g->output_width : ox0 + XNOR_SB_SEGMENT * S;
        for (size_t ox = ox0; ox < end; ox += S) {
          // Planes in registers while the taps are added, then stored to the segment.
          if (end - ox <= S / 2) {
            xnor_sb_vec_half b[8];
            for (size_t p = 0; p < planes; p++) b[p] = (xnor_sb_vec_half){0};
            XNOR_SB_ADD_TAPS(xnor_sb_vec_half, b, ox);
            for (size_t p = 0; p < planes; p++) memcpy(&segment[(ox - ox0) / S][p], &b[p], sizeof b[p]);
          } else {
            xnor_sb_vec b[8];
            for (size_t p = 0; p < planes; p++) b[p] = (xnor_sb_vec){0};
            XNOR_SB_ADD_TAPS(xnor_sb_vec, b, ox);
            for (size_t p = 0; p < planes; p++) segment[(ox - ox0) / S][p] = b[p];
          }
        }
        const size_t row_index = (n * g->output_height + oy) * g->output_width;
        for (size_t ox = ox0; ox < end; ox++) {
          const xnor_sb_vec* b = segment[(ox - ox0) / S];
          uint64_t planes_j[8];
          for (size_t p = 0; p < planes; p++) planes_j[p] = b[p][(ox - ox0) % S];
          const int32_t valid = (int32_t)((ky1 - ky0) * columns[ox]);
#if defined(__AVX512BW__)
          if (planes <= 6) {
            xnor_sb_store_avx512(k, row_index + ox, valid, planes_j, planes);
            continue;
          }
#elif defined(__AVX2__)
          if (planes <= 6) {
            xnor_sb_store_avx2(k, row_index + ox, valid, planes_j, planes);
            continue;
          }
#endif
          uint32_t cnt[XNOR_SB_LANES];
          xnor_sb_expand(planes_j, planes, k->count, cnt);
          xnor_sb_store(k, row_index + ox, valid, cnt);
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
  if (g->group_input_channels != 1) return oc_begin;
  const size_t taps = g->kernel_height * g->kernel_width;
  const size_t row_words = g->stride_width * xnor_sb_row_span(g);
  // The ring's kernel_height rows and the mask row share one buffer.
  const bool strips = taps <= XNOR_SB_MAX_TAPS && (g->kernel_height + 1) * row_words <= XNOR_SB_RING_WORDS;
  uint64_t ring[XNOR_SB_RING_WORDS];
  xnor_sb_chunk k;
  k.g = g;
  k.input_bits = input_bits;
  k.weight_bits = weight_bits;
  k.input_scale = input_scale;
  k.output_min = output_min;
  k.output_max = output_max;
  k.clamp = output_min != -INFINITY || output_max != INFINITY;
  k.output = output;
  for (size_t c0 = oc_begin; c0 < oc_end; c0 += XNOR_SB_LANES) {
    k.c0 = c0;
    k.count = oc_end - c0 < XNOR_SB_LANES ? oc_end - c0 : XNOR_SB_LANES;
    if (taps <= XNOR_SB_MAX_TAPS) {
      // xnor_sb_weight_word for every tap: XNOR_SB_STRIP taps at a time in one vector, the rest one by one.
      size_t t = 0;
      for (; t + XNOR_SB_STRIP <= taps; t += XNOR_SB_STRIP) {
        xnor_sb_vec words = {0};
        for (size_t j = 0; j < k.count; j++) {
          xnor_sb_vec w;
          memcpy(&w, weight_bits + (c0 + j) * taps + t, sizeof w);
          words |= (w & 1) << j;
        }
        memcpy(k.wt + t, &words, sizeof words);
      }
      for (; t < taps; t++) k.wt[t] = xnor_sb_weight_word(&k, t);
    }
    for (size_t c = 0; c < XNOR_SB_LANES; c++) {
      k.alpha[c] = c < k.count ? alpha[c0 + c] : 0.0f;
      k.bias[c] = c < k.count && bias != NULL ? bias[c0 + c] : 0.0f;
    }
    if (strips && taps <= 15) {
      xnor_sb_strips(&k, 4, ring, ring + g->kernel_height * row_words);
    } else if (strips && taps <= 63) {
      xnor_sb_strips(&k, 6, ring, ring + g->kernel_height * row_words);
    } else if (strips) {
      xnor_sb_strips(&k, 8, ring, ring + g->kernel_height * row_words);
    } else {
      for (size_t n = 0; n < g->batch; n++) {
        for (size_t oy = 0; oy < g->output_height; oy++) {
          for (size_t ox = 0; ox < g->output_width; ox++) xnor_sb_pixel(&k, n, oy, ox);
        }
      }
    }
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
