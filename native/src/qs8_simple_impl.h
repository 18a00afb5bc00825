// Element-wise and pooling kernels for int8/uint8, written once and compiled per ISA: each
// qs8_simple_ukernels__<isa>.c defines WHITTLE_SUFFIX and includes this file; the channel loops are
// unit-stride so the ISA's flags let the compiler vectorize them. The arithmetic is the reference's, in
// integers, so every build is bit-exact. Each body is instantiated for int8 and for uint8 (the `is_unsigned`
// argument is a constant after inlining).
#include <math.h>

#include "maxpool_rows_impl.h"
#include "qs8_ops.h"

#define WHITTLE_CAT2(a, b) a##b
#define WHITTLE_CAT(a, b) WHITTLE_CAT2(a, b)
#define WHITTLE_FN(name) WHITTLE_CAT(name, WHITTLE_SUFFIX)
#define WHITTLE_INLINE static inline __attribute__((always_inline))

WHITTLE_INLINE int32_t WHITTLE_FN(load_)(const void* p, size_t i, bool is_unsigned) {
  return is_unsigned ? (int32_t)((const uint8_t*)p)[i] : (int32_t)((const int8_t*)p)[i];
}

WHITTLE_INLINE void WHITTLE_FN(store_)(void* p, size_t i, int32_t v, bool is_unsigned) {
  if (is_unsigned) {
    ((uint8_t*)p)[i] = (uint8_t)v;
  } else {
    ((int8_t*)p)[i] = (int8_t)v;
  }
}

WHITTLE_INLINE void WHITTLE_FN(vclamp_)(size_t n, const void* x, void* y, bool u, int32_t min, int32_t max) {
  for (size_t i = 0; i < n; i++) {
    int32_t v = WHITTLE_FN(load_)(x, i, u);
    v = v < min ? min : v;
    WHITTLE_FN(store_)(y, i, v > max ? max : v, u);
  }
}

void WHITTLE_FN(qs8_vclamp_ukernel__)(size_t n, const void* x, void* y, bool u, int32_t min, int32_t max) {
  if (u) {
    WHITTLE_FN(vclamp_)(n, x, y, true, min, max);
  } else {
    WHITTLE_FN(vclamp_)(n, x, y, false, min, max);
  }
}

// An ISA file may define WHITTLE_VADD_VECTORS(n, a, b, y, p, u), a vector loop giving the same bits (the same
// three requantizations, qs8_requantize.h), which returns how many leading elements it added; the rest are
// added here.
WHITTLE_INLINE void WHITTLE_FN(vadd_)(size_t n, const void* a, const void* b, void* y,
                                      const qs8_add_params* p, bool u) {
#ifdef WHITTLE_VADD_VECTORS
  size_t i = WHITTLE_VADD_VECTORS(n, a, b, y, p, u);
#else
  size_t i = 0;
#endif
  for (; i < n; i++) {
    const int32_t xa = (WHITTLE_FN(load_)(a, i, u) - p->a_zero_point) * (1 << QS8_ADD_LEFT_SHIFT);
    const int32_t xb = (WHITTLE_FN(load_)(b, i, u) - p->b_zero_point) * (1 << QS8_ADD_LEFT_SHIFT);
    const int32_t sa = qs8_requantize_gemmlowp_inline(xa, p->a_multiplier, p->a_shift);
    const int32_t sb = qs8_requantize_gemmlowp_inline(xb, p->b_multiplier, p->b_shift);
    const int32_t sum = (int32_t)((uint32_t)sa + (uint32_t)sb);
    int64_t v = (int64_t)qs8_requantize_gemmlowp_inline(sum, p->output_multiplier, p->output_shift) +
                p->output_zero_point;
    v = v < p->output_min ? p->output_min : v;
    v = v > p->output_max ? p->output_max : v;
    WHITTLE_FN(store_)(y, i, (int32_t)v, u);
  }
}

void WHITTLE_FN(qs8_vadd_minmax_gemmlowp_ukernel__)(size_t n, const void* a, const void* b, void* y,
                                                    const qs8_add_params* p) {
  if (p->unsigned_activations) {
    WHITTLE_FN(vadd_)(n, a, b, y, p, true);
  } else {
    WHITTLE_FN(vadd_)(n, a, b, y, p, false);
  }
}

// Pooling accumulates per output pixel in an int32 row on the stack, CHUNK channels at a time.
#define WHITTLE_POOL_CHUNK 256

WHITTLE_INLINE void WHITTLE_FN(pool_)(const whittle_pool2d_shape* s, const void* input, void* output, bool u,
                                      int32_t min, int32_t max, bool average) {
  const size_t oh = whittle_pool2d_output_height(s), ow = whittle_pool2d_output_width(s);
  const size_t channels = s->channels;
  int32_t acc[WHITTLE_POOL_CHUNK];
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < oh; y++) {
      // The window rows inside the input (pooling shapes keep every window non-empty).
      size_t i_begin, i_end;
      whittle_conv2d_valid_taps(y, s->stride_height, s->padding_top, s->window_height, s->input_height,
                                &i_begin, &i_end);
      for (size_t x = 0; x < ow; x++) {
        size_t j_begin, j_end;
        whittle_conv2d_valid_taps(x, s->stride_width, s->padding_left, s->window_width, s->input_width,
                                  &j_begin, &j_end);
        const int32_t inside = (int32_t)((i_end - i_begin) * (j_end - j_begin));
        const int32_t count = s->count_padding ? (int32_t)(s->window_height * s->window_width) : inside;
        // The padded positions' part of the sum (count_padding: each counts as padding_value).
        const int32_t padded_sum = (count - inside) * s->padding_value;
        const size_t out_base = ((n * oh + y) * ow + x) * channels;
        for (size_t c0 = 0; c0 < channels; c0 += WHITTLE_POOL_CHUNK) {
          const size_t cn = channels - c0 < WHITTLE_POOL_CHUNK ? channels - c0 : WHITTLE_POOL_CHUNK;
          for (size_t c = 0; c < cn; c++) acc[c] = average ? padded_sum : INT32_MIN;
          for (size_t i = i_begin; i < i_end; i++) {
            for (size_t j = j_begin; j < j_end; j++) {
              const size_t base =
                  ((n * s->input_height + (y * s->stride_height + i - s->padding_top)) * s->input_width +
                   (x * s->stride_width + j - s->padding_left)) *
                      channels +
                  c0;
              if (average) {
                for (size_t c = 0; c < cn; c++) acc[c] += WHITTLE_FN(load_)(input, base + c, u);
              } else {
                for (size_t c = 0; c < cn; c++) {
                  const int32_t v = WHITTLE_FN(load_)(input, base + c, u);
                  acc[c] = v > acc[c] ? v : acc[c];
                }
              }
            }
          }
          for (size_t c = 0; c < cn; c++) {
            int32_t v = acc[c];
            if (average) v = qs8_average_round_half_even(v, count);
            v = v < min ? min : v;
            WHITTLE_FN(store_)(output, out_base + c0 + c, v > max ? max : v, u);
          }
        }
      }
    }
  }
}

WHITTLE_MAXPOOL_ROWS_DEFINE(WHITTLE_FN(qs8_maxpool_rows_), WHITTLE_FN(qs8_vmax_), int8_t, INT8_MIN)
WHITTLE_MAXPOOL_ROWS_DEFINE(WHITTLE_FN(qu8_maxpool_rows_), WHITTLE_FN(qu8_vmax_), uint8_t, 0)
WHITTLE_MAXPOOL_PIXELS_DEFINE(WHITTLE_FN(qs8_maxpool_pixels_), int8_t)
WHITTLE_MAXPOOL_PIXELS_DEFINE(WHITTLE_FN(qu8_maxpool_pixels_), uint8_t)

void WHITTLE_FN(qs8_maxpool_minmax_ukernel__)(const whittle_pool2d_shape* s, const void* input, void* output,
                                              bool u, int32_t min, int32_t max) {
  // Per output pixel (many channels) or by rows (maxpool_rows_impl.h) when the clamp bounds are elements of
  // the type; the pooling loop keeps the reference's truncating store for any others.
  const int32_t lowest = u ? 0 : INT8_MIN, highest = u ? UINT8_MAX : INT8_MAX;
  const bool in_range = min >= lowest && min <= highest && max >= lowest && max <= highest;
  if (in_range && s->channels >= WHITTLE_MAXPOOL_PIXELS_BLOCK) {
    if (u) {
      WHITTLE_FN(qu8_maxpool_pixels_)(s, input, output, (uint8_t)min, (uint8_t)max);
    } else {
      WHITTLE_FN(qs8_maxpool_pixels_)(s, input, output, (int8_t)min, (int8_t)max);
    }
  } else if (in_range && s->window_width <= WHITTLE_MAXPOOL_ROWS_BUFFER) {
    if (u) {
      WHITTLE_FN(qu8_maxpool_rows_)(s, input, output, (uint8_t)min, (uint8_t)max);
    } else {
      WHITTLE_FN(qs8_maxpool_rows_)(s, input, output, (int8_t)min, (int8_t)max);
    }
  } else if (u) {
    WHITTLE_FN(pool_)(s, input, output, true, min, max, false);
  } else {
    WHITTLE_FN(pool_)(s, input, output, false, min, max, false);
  }
}

void WHITTLE_FN(qs8_avgpool_minmax_ukernel__)(const whittle_pool2d_shape* s, const void* input, void* output,
                                              bool u, int32_t min, int32_t max) {
  if (u) {
    WHITTLE_FN(pool_)(s, input, output, true, min, max, true);
  } else {
    WHITTLE_FN(pool_)(s, input, output, false, min, max, true);
  }
}

// Per channel chunk: the int32 sums over the pixels (unit-stride rows, vectorized), then the output stage.
WHITTLE_INLINE void WHITTLE_FN(global_avgpool_requant_)(size_t batch, size_t pixels, size_t channels,
                                                        const void* input, void* output,
                                                        const qs8_global_avgpool_params* p, bool u) {
  int32_t acc[WHITTLE_POOL_CHUNK];
  const int32_t offset = (int32_t)pixels * p->input_zero_point;
  for (size_t n = 0; n < batch; n++) {
    for (size_t c0 = 0; c0 < channels; c0 += WHITTLE_POOL_CHUNK) {
      const size_t cn = channels - c0 < WHITTLE_POOL_CHUNK ? channels - c0 : WHITTLE_POOL_CHUNK;
      for (size_t c = 0; c < cn; c++) acc[c] = -offset;
      for (size_t i = 0; i < pixels; i++) {
        const size_t base = (n * pixels + i) * channels + c0;
        for (size_t c = 0; c < cn; c++) acc[c] += WHITTLE_FN(load_)(input, base + c, u);
      }
      for (size_t c = 0; c < cn; c++) {
        int32_t v = qs8_requantize_gemmlowp_inline(acc[c], p->multiplier, p->shift);
        // Clamped to [min - zp, max - zp] before the zero point is added: no overflow (qs8_requantize.h).
        const int32_t lo = p->output_min - p->output_zero_point, hi = p->output_max - p->output_zero_point;
        v = v < lo ? lo : v > hi ? hi : v;
        WHITTLE_FN(store_)(output, n * channels + c0 + c, v + p->output_zero_point, u);
      }
    }
  }
}

void WHITTLE_FN(qs8_global_avgpool_requant_ukernel__)(size_t batch, size_t pixels, size_t channels,
                                                      const void* input, void* output,
                                                      const qs8_global_avgpool_params* p) {
  if (p->unsigned_activations) {
    WHITTLE_FN(global_avgpool_requant_)(batch, pixels, channels, input, output, p, true);
  } else {
    WHITTLE_FN(global_avgpool_requant_)(batch, pixels, channels, input, output, p, false);
  }
}

// One value as the reference quantizes it: q = x / scale rounded half to even, plus the zero point,
// saturated; NaN gives 0.
WHITTLE_INLINE void WHITTLE_FN(quantize_store_)(void* restrict y, size_t i, double q, double zero_point,
                                                bool u) {
  const double lo = u ? 0.0 : -128.0, hi = u ? 255.0 : 127.0;
  double v = __builtin_rint(q) + zero_point;
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  // NaN fails both comparisons above; the reference stores it as 0.
  v = v == v ? v : 0.0;
  WHITTLE_FN(store_)(y, i, (int32_t)v, u);
}

// One channel's run of `inner` values, with the reference's result: round_half_even((double)x / scale). An
// ISA file may define WHITTLE_QUANTIZE_VECTORS(n, x, y, scale, zero_point, u), a vector loop giving the same
// bits, which returns how many leading values it quantized; the rest divide here.
WHITTLE_INLINE void WHITTLE_FN(quantize_run_)(size_t n, const float* restrict x, void* restrict y,
                                              double scale, double zero_point, bool u) {
#ifdef WHITTLE_QUANTIZE_VECTORS
  size_t i = WHITTLE_QUANTIZE_VECTORS(n, x, y, scale, zero_point, u);
#else
  size_t i = 0;
#endif
  for (; i < n; i++) WHITTLE_FN(quantize_store_)(y, i, (double)x[i] / scale, zero_point, u);
}

void WHITTLE_FN(qs8_quantize_ukernel__)(const qs8_quantization_layout* l, const float* input, void* output) {
  for (size_t o = 0; o < l->outer; o++) {
    for (size_t c = 0; c < l->channels; c++) {
      const size_t at = (o * l->channels + c) * l->inner;
      void* y = (unsigned char*)output + at;
      if (l->unsigned_values) {
        WHITTLE_FN(quantize_run_)(l->inner, input + at, y, l->scales[c], l->zero_points[c], true);
      } else {
        WHITTLE_FN(quantize_run_)(l->inner, input + at, y, l->scales[c], l->zero_points[c], false);
      }
    }
  }
}

WHITTLE_INLINE void WHITTLE_FN(dequantize_run_)(size_t n, const void* restrict x, float* restrict y,
                                                double scale, int32_t zero_point, bool u) {
  for (size_t i = 0; i < n; i++) y[i] = (float)((double)(WHITTLE_FN(load_)(x, i, u) - zero_point) * scale);
}

void WHITTLE_FN(qs8_dequantize_ukernel__)(const qs8_quantization_layout* l, const void* input,
                                          float* output) {
  for (size_t o = 0; o < l->outer; o++) {
    for (size_t c = 0; c < l->channels; c++) {
      const size_t at = (o * l->channels + c) * l->inner;
      const void* x = (const unsigned char*)input + at;
      if (l->unsigned_values) {
        WHITTLE_FN(dequantize_run_)(l->inner, x, output + at, l->scales[c], l->zero_points[c], true);
      } else {
        WHITTLE_FN(dequantize_run_)(l->inner, x, output + at, l->scales[c], l->zero_points[c], false);
      }
    }
  }
}

void WHITTLE_FN(qs8_vlut_ukernel__)(size_t n, const uint8_t* x, uint8_t* y, const uint8_t* table) {
  for (size_t i = 0; i < n; i++) y[i] = table[x[i]];
}

// qs8_requantize_gemmlowp for a non-negative multiplier with the shift split into left_shift in [0, 30] and
// right_shift in [0, 31], in a branch-free form the compiler vectorizes (64-bit products of 32-bit lanes):
// SaturatingRoundingDoublingHighMul is floor((a * b + 2^30) / 2^31) whenever b != INT32_MIN
// (qs8_requantize.h), an arithmetic shift; RoundingDivideByPOT as the scalar code.
WHITTLE_INLINE int32_t WHITTLE_FN(requantize_lanes_)(int32_t x, int32_t multiplier, int32_t left_shift,
                                                     int32_t right_shift, int32_t mask, int32_t half) {
  const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
  const int32_t high = (int32_t)(((int64_t)shifted * multiplier + (INT64_C(1) << 30)) >> 31);
  const int32_t threshold = half + (high < 0 ? 1 : 0);
  return (high >> right_shift) + ((high & mask) > threshold ? 1 : 0);
}

// Per row: b's offsets from its zero point once, then each pixel's channels against them (unit stride).
WHITTLE_INLINE void WHITTLE_FN(vmul_channels_)(size_t rows, size_t pixels, size_t channels, const void* a,
                                               const void* b, void* y, const qs8_mul_params* p, bool u) {
  int32_t scale[WHITTLE_POOL_CHUNK];
  const int32_t lo = p->output_min - p->output_zero_point, hi = p->output_max - p->output_zero_point;
  const int32_t left = p->shift > 0 ? p->shift : 0, right = p->shift > 0 ? 0 : -p->shift;
  const int32_t mask = (int32_t)((INT64_C(1) << right) - 1), half = mask >> 1;
  for (size_t r = 0; r < rows; r++) {
    for (size_t c0 = 0; c0 < channels; c0 += WHITTLE_POOL_CHUNK) {
      const size_t cn = channels - c0 < WHITTLE_POOL_CHUNK ? channels - c0 : WHITTLE_POOL_CHUNK;
      for (size_t c = 0; c < cn; c++)
        scale[c] = WHITTLE_FN(load_)(b, r * channels + c0 + c, u) - p->b_zero_point;
      for (size_t px = 0; px < pixels; px++) {
        const size_t base = (r * pixels + px) * channels + c0;
        for (size_t c = 0; c < cn; c++) {
          const int32_t product = (WHITTLE_FN(load_)(a, base + c, u) - p->a_zero_point) * scale[c];
          int32_t v = WHITTLE_FN(requantize_lanes_)(product, p->multiplier, left, right, mask, half);
          // Clamped to [min - zp, max - zp] before the zero point is added: no overflow.
          v = v < lo ? lo : v > hi ? hi : v;
          WHITTLE_FN(store_)(y, base + c, v + p->output_zero_point, u);
        }
      }
    }
  }
}

void WHITTLE_FN(qs8_vmul_channels_ukernel__)(size_t rows, size_t pixels, size_t channels, const void* a,
                                             const void* b, void* y, const qs8_mul_params* p) {
  if (p->unsigned_activations) {
    WHITTLE_FN(vmul_channels_)(rows, pixels, channels, a, b, y, p, true);
  } else {
    WHITTLE_FN(vmul_channels_)(rows, pixels, channels, a, b, y, p, false);
  }
}

// The reference's double arithmetic per channel (qs8_resize_bilinear__reference). GCC does not vectorize this
// loop (int8 -> double in one step); a chunked form that does (int8 widened to int32 in a buffer, the double
// sums, floor from a truncation) was slower on a segmentation head's few channels (5 classes, 8x8 -> 128x128:
// 280 against 150 us on AVX-512), where the per-pixel set-up dominates, so the plain loop stays.
WHITTLE_INLINE void WHITTLE_FN(resize_bilinear_)(const whittle_resize_shape* s, const void* input,
                                                 void* output, bool u) {
  const size_t channels = s->channels;
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < s->output_height; y++) {
      for (size_t x = 0; x < s->output_width; x++) {
        double w[4];
        whittle_resize_corner_weights(s->row_weights[y], s->column_weights[x], w);
        const double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        const size_t tl = whittle_resize_input_offset(s, n, s->rows[2 * y], s->columns[2 * x]);
        const size_t bl = whittle_resize_input_offset(s, n, s->rows[2 * y + 1], s->columns[2 * x]);
        const size_t tr = whittle_resize_input_offset(s, n, s->rows[2 * y], s->columns[2 * x + 1]);
        const size_t br = whittle_resize_input_offset(s, n, s->rows[2 * y + 1], s->columns[2 * x + 1]);
        const size_t out = ((n * s->output_height + y) * s->output_width + x) * channels;
        for (size_t c = 0; c < channels; c++) {
          const double sum =
              (((0.0 + w0 * WHITTLE_FN(load_)(input, tl + c, u)) + w1 * WHITTLE_FN(load_)(input, bl + c, u)) +
               w2 * WHITTLE_FN(load_)(input, tr + c, u)) +
              w3 * WHITTLE_FN(load_)(input, br + c, u);
          const double f = floor(sum);
          WHITTLE_FN(store_)(output, out + c, (int32_t)f + (sum - f >= 0.5), u);
        }
      }
    }
  }
}

void WHITTLE_FN(qs8_resize_bilinear_ukernel__)(const whittle_resize_shape* s, const void* input, void* output,
                                               bool unsigned_activations) {
  if (unsigned_activations) {
    WHITTLE_FN(resize_bilinear_)(s, input, output, true);
  } else {
    WHITTLE_FN(resize_bilinear_)(s, input, output, false);
  }
}

const qs8_simple_ukernels WHITTLE_FN(qs8_simple_ukernels__) = {
    .name = "qs8_simple_ukernels__" WHITTLE_SUFFIX_NAME,
    .vclamp = WHITTLE_FN(qs8_vclamp_ukernel__),
    .vadd = WHITTLE_FN(qs8_vadd_minmax_gemmlowp_ukernel__),
    .maxpool = WHITTLE_FN(qs8_maxpool_minmax_ukernel__),
    .avgpool = WHITTLE_FN(qs8_avgpool_minmax_ukernel__),
    .global_avgpool_requant = WHITTLE_FN(qs8_global_avgpool_requant_ukernel__),
    .quantize = WHITTLE_FN(qs8_quantize_ukernel__),
    .dequantize = WHITTLE_FN(qs8_dequantize_ukernel__),
    .vlut = WHITTLE_FN(qs8_vlut_ukernel__),
    .vmul_channels = WHITTLE_FN(qs8_vmul_channels_ukernel__),
    .resize_bilinear = WHITTLE_FN(qs8_resize_bilinear_ukernel__),
};
