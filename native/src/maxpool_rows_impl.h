// Max pooling by rows, NHWC, for any element type whose max is exact (int8, uint8, fp32), written once
// and instantiated by the simple kernel sets (qs8_simple_impl.h, f32_simple_impl.h) in each ISA's
// translation unit. The per-pixel loop is slow when there are few channels (a 2x2 pool over 6 channels
// runs 6-wide loops); here every loop runs along a contiguous row instead, so the ISA's flags vectorize
// it whatever the channel count:
//   1. vertical: the max of the window's input rows, over a run of W pixels x C channels, into `rows`
//      (pixels left or right of the input hold the type's lowest value, which max leaves alone);
//   2. horizontal: h[k] = clamp(max_j rows[k + j * C]) for every pixel start, into `h`;
//   3. compaction: output pixel x is h at pixel x * stride_width.
// Step 2 computes stride_width times the outputs it keeps, at vector speed. A row is taken in chunks of
// output pixels (and of channels when a window's pixels do not fit) so that both buffers stay on the stack.
// The result is the reference's exactly: max does not round, whatever the order, and clamp(max) is
// max(clamp) for a monotone clamp. The caller passes min and max inside T's range and a window at most
// WHITTLE_MAXPOOL_ROWS_BUFFER pixels wide.
#ifndef WHITTLE_MAXPOOL_ROWS_IMPL_H_
#define WHITTLE_MAXPOOL_ROWS_IMPL_H_

#include <stddef.h>

#include "conv2d_geometry.h"

// Elements per buffer: 4 KB of int8 or 16 KB of fp32, two buffers.
#define WHITTLE_MAXPOOL_ROWS_BUFFER 4096

// Defines VMAX (y = max(x, y) over n elements) and NAME (the pool) for element type T.
#define WHITTLE_MAXPOOL_ROWS_DEFINE(NAME, VMAX, T, LOWEST)                                                   \
  static inline void VMAX(size_t n, const T* restrict x, T* restrict y) {                                    \
    for (size_t k = 0; k < n; k++) y[k] = x[k] > y[k] ? x[k] : y[k];                                         \
  }                                                                                                          \
  static void NAME(const whittle_pool2d_shape* s, const T* input, T* output, T min, T max) {                 \
    const size_t oh = whittle_pool2d_output_height(s), ow = whittle_pool2d_output_width(s);                  \
    const size_t channels = s->channels, kw = s->window_width, sw = s->stride_width;                         \
    T rows[WHITTLE_MAXPOOL_ROWS_BUFFER];                                                                     \
    T h[WHITTLE_MAXPOOL_ROWS_BUFFER];                                                                        \
    /* Channels per pass: all of them unless one window's pixels do not fit. */                              \
    const size_t cc_max = WHITTLE_MAXPOOL_ROWS_BUFFER / kw;                                                  \
    for (size_t c0 = 0; c0 < channels; c0 += cc_max) {                                                       \
      const size_t cc = channels - c0 < cc_max ? channels - c0 : cc_max;                                     \
      /* Output pixels per chunk: (xn - 1) * sw + kw pixels of cc channels fit. */                           \
      const size_t fit = WHITTLE_MAXPOOL_ROWS_BUFFER / cc;                                                   \
      const size_t xn_max = (fit - kw) / sw + 1;                                                             \
      for (size_t n = 0; n < s->batch; n++) {                                                                \
        for (size_t y = 0; y < oh; y++) {                                                                    \
          size_t i_begin, i_end;                                                                             \
          whittle_conv2d_valid_taps(y, s->stride_height, s->padding_top, s->window_height, s->input_height,  \
                                    &i_begin, &i_end);                                                       \
          const size_t row0 = y * s->stride_height + i_begin - s->padding_top;                               \
          const size_t row_count = i_end - i_begin;                                                          \
          for (size_t x0 = 0; x0 < ow; x0 += xn_max) {                                                       \
            const size_t xn = ow - x0 < xn_max ? ow - x0 : xn_max;                                           \
            const size_t width = (xn - 1) * sw + kw;                                                         \
            /* Input pixel of rows[0] (may be left of the input) and the part inside the input. */           \
            const ptrdiff_t first = (ptrdiff_t)(x0 * sw) - (ptrdiff_t)s->padding_left;                       \
            const ptrdiff_t lo_px = first < 0 ? 0 : first;                                                   \
            const ptrdiff_t end_px = first + (ptrdiff_t)width;                                               \
            const ptrdiff_t hi_px = end_px > (ptrdiff_t)s->input_width ? (ptrdiff_t)s->input_width : end_px; \
            const size_t pad_before = (size_t)(lo_px - first);                                               \
            const size_t inside = hi_px > lo_px ? (size_t)(hi_px - lo_px) : 0;                               \
            /* Every element starts at the lowest value, so pixels outside the input and NaNs (never */      \
            /* greater) are left out as the reference leaves them. */                                        \
            for (size_t k = 0; k < width * cc; k++) rows[k] = LOWEST;                                        \
            for (size_t r = 0; r < row_count; r++) {                                                         \
              const T* src =                                                                                 \
                  input + ((n * s->input_height + row0 + r) * s->input_width + (size_t)lo_px) * channels +   \
                  c0;                                                                                        \
              T* dst = rows + pad_before * cc;                                                               \
              if (cc == channels) {                                                                          \
                VMAX(inside* cc, src, dst);                                                                  \
              } else {                                                                                       \
                for (size_t p = 0; p < inside; p++) {                                                        \
                  VMAX(cc, src + p * channels, dst + p * cc);                                                \
                }                                                                                            \
              }                                                                                              \
            }                                                                                                \
            /* Horizontal max at every pixel start, then the clamp. */                                       \
            const size_t hn = (width - kw + 1) * cc;                                                         \
            for (size_t k = 0; k < hn; k++) h[k] = rows[k];                                                  \
            for (size_t j = 1; j < kw; j++) VMAX(hn, rows + j * cc, h);                                      \
            for (size_t k = 0; k < hn; k++) {                                                                \
              const T v = h[k] < min ? min : h[k];                                                           \
              h[k] = v > max ? max : v;                                                                      \
            }                                                                                                \
            T* restrict out = output + ((n * oh + y) * ow + x0) * channels + c0;                             \
            if (sw == 1 && cc == channels) {                                                                 \
              for (size_t k = 0; k < xn * cc; k++) out[k] = h[k];                                            \
            } else {                                                                                         \
              for (size_t x = 0; x < xn; x++) {                                                              \
                const T* restrict hp = h + x * sw * cc;                                                      \
                T* restrict op = out + x * channels;                                                         \
                for (size_t k = 0; k < cc; k++) op[k] = hp[k];                                               \
              }                                                                                              \
            }                                                                                                \
          }                                                                                                  \
        }                                                                                                    \
      }                                                                                                      \
    }                                                                                                        \
  }

// Max pooling per output pixel, for layers of at least WHITTLE_MAXPOOL_PIXELS_BLOCK channels (ResNet's 3x3
// stride-2 pool over 64 int8 channels): per block of that many channels, the window's taps inside the input
// are max-ed into one accumulator (registers: the block's size is a constant), clamped and stored once. The
// rows method above computes stride_width times the horizontal maxima it keeps and passes every row through
// its two buffers, which costs more once a pixel fills whole vectors. Same bits: max does not round.
#define WHITTLE_MAXPOOL_PIXELS_BLOCK 64

// One pixel's block of `count` channels of WHITTLE_MAXPOOL_PIXELS_DEFINE (in its scope: window, rows_end,
// row_stride, columns, channels, c0, acc, out, min, max); a whole block's count is a constant, so its loops
// unroll into vectors.
#define WHITTLE_MAXPOOL_PIXELS_CHANNELS(T, count)                                  \
  for (size_t k = 0; k < (count); k++) acc[k] = window[c0 + k];                    \
  for (const T* row = window + c0; row != rows_end + c0; row += row_stride) {      \
    for (const T* p = row; p != row + columns; p += channels) {                    \
      for (size_t k = 0; k < (count); k++) acc[k] = p[k] > acc[k] ? p[k] : acc[k]; \
    }                                                                              \
  }                                                                                \
  for (size_t k = 0; k < (count); k++) {                                           \
    const T v = acc[k] < min ? min : acc[k];                                       \
    out[c0 + k] = v > max ? max : v;                                               \
  }

#define WHITTLE_MAXPOOL_PIXELS_DEFINE(NAME, T)                                                            \
  static void NAME(const whittle_pool2d_shape* s, const T* input, T* output, T min, T max) {              \
    const size_t oh = whittle_pool2d_output_height(s), ow = whittle_pool2d_output_width(s);               \
    const size_t channels = s->channels, block = WHITTLE_MAXPOOL_PIXELS_BLOCK;                            \
    for (size_t n = 0; n < s->batch; n++) {                                                               \
      for (size_t y = 0; y < oh; y++) {                                                                   \
        size_t i_begin, i_end;                                                                            \
        whittle_conv2d_valid_taps(y, s->stride_height, s->padding_top, s->window_height, s->input_height, \
                                  &i_begin, &i_end);                                                      \
        for (size_t x = 0; x < ow; x++) {                                                                 \
          size_t j_begin, j_end;                                                                          \
          whittle_conv2d_valid_taps(x, s->stride_width, s->padding_left, s->window_width, s->input_width, \
                                    &j_begin, &j_end);                                                    \
          /* The window's first tap inside the input; the window always holds one (padding < window). */  \
          const T* window =                                                                               \
              input +                                                                                     \
              ((n * s->input_height + y * s->stride_height + i_begin - s->padding_top) * s->input_width + \
               x * s->stride_width + j_begin - s->padding_left) *                                         \
                  channels;                                                                               \
          const size_t row_stride = s->input_width * channels, columns = (j_end - j_begin) * channels;    \
          const T* rows_end = window + (i_end - i_begin) * row_stride;                                    \
          T* out = output + ((n * oh + y) * ow + x) * channels;                                           \
          for (size_t c0 = 0; c0 < channels; c0 += block) {                                               \
            const size_t cc = channels - c0 < block ? channels - c0 : block;                              \
            T acc[WHITTLE_MAXPOOL_PIXELS_BLOCK];                                                          \
            if (cc == block) {                                                                            \
              WHITTLE_MAXPOOL_PIXELS_CHANNELS(T, WHITTLE_MAXPOOL_PIXELS_BLOCK)                            \
            } else {                                                                                      \
              WHITTLE_MAXPOOL_PIXELS_CHANNELS(T, cc)                                                      \
            }                                                                                             \
          }                                                                                               \
        }                                                                                                 \
      }                                                                                                   \
    }                                                                                                     \
  }

#endif  // WHITTLE_MAXPOOL_ROWS_IMPL_H_
