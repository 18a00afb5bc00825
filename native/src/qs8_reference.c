// Plain references of the int8 operators: direct loops in the raw domain (int8 or uint8), one value at a
// time through qs8_requantize_gemmlowp. Every optimized path must match these bit for bit.
#include <math.h>

#include "qs8_ops.h"

const char* qs8_activation_quantization_problem(const qs8_activation_quantization* q) {
  const int32_t lo = q->unsigned_activations ? 0 : INT8_MIN;
  const int32_t hi = q->unsigned_activations ? UINT8_MAX : INT8_MAX;
  if (q->input_zero_point < lo || q->input_zero_point > hi) return "input_zero_point";
  if (q->output_zero_point < lo || q->output_zero_point > hi) return "output_zero_point";
  if (q->output_min < lo || q->output_min > hi) return "output_min";
  if (q->output_max < q->output_min || q->output_max > hi) return "output_max";
  return NULL;
}

static int32_t load(const void* p, size_t i, bool is_unsigned) {
  return is_unsigned ? (int32_t)((const uint8_t*)p)[i] : (int32_t)((const int8_t*)p)[i];
}

static void store(void* p, size_t i, int32_t v, bool is_unsigned) {
  if (is_unsigned) {
    ((uint8_t*)p)[i] = (uint8_t)v;
  } else {
    ((int8_t*)p)[i] = (int8_t)v;
  }
}

static int32_t clamp32(int64_t v, int32_t min, int32_t max) {
  return (int32_t)(v < min ? min : (v > max ? max : v));
}

// Shared by conv and fully-connected: acc = bias + sum (x - zp) * w, wrapping in int32 like TFLite.
static int32_t output_value(uint32_t acc, int32_t multiplier, int32_t shift,
                            const qs8_activation_quantization* q) {
  const int64_t v = (int64_t)qs8_requantize_gemmlowp((int32_t)acc, multiplier, shift) + q->output_zero_point;
  return clamp32(v, q->output_min, q->output_max);
}

void qs8_conv2d__reference(const whittle_conv2d_shape* s, const void* input, const int8_t* weights,
                           const int32_t* bias, const int32_t* multipliers, const int32_t* shifts,
                           const qs8_activation_quantization* q, void* output) {
  const size_t oh = whittle_conv2d_output_height(s), ow = whittle_conv2d_output_width(s);
  const size_t cin_g = s->input_channels / s->groups, cout_g = s->output_channels / s->groups;
  const bool u = q->unsigned_activations;
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < oh; y++) {
      for (size_t x = 0; x < ow; x++) {
        for (size_t o = 0; o < s->output_channels; o++) {
          const size_t g = o / cout_g;
          int32_t sum = 0;  // exact: at most 65536 terms of |255 * 128|
          for (size_t i = 0; i < s->kernel_height; i++) {
            const ptrdiff_t iy =
                (ptrdiff_t)(y * s->stride_height + i * s->dilation_height) - (ptrdiff_t)s->padding_top;
            if (iy < 0 || iy >= (ptrdiff_t)s->input_height) continue;
            for (size_t j = 0; j < s->kernel_width; j++) {
              const ptrdiff_t ix =
                  (ptrdiff_t)(x * s->stride_width + j * s->dilation_width) - (ptrdiff_t)s->padding_left;
              if (ix < 0 || ix >= (ptrdiff_t)s->input_width) continue;
              const size_t base =
                  ((n * s->input_height + (size_t)iy) * s->input_width + (size_t)ix) * s->input_channels +
                  g * cin_g;
              const int8_t* w = weights + ((o * s->kernel_height + i) * s->kernel_width + j) * cin_g;
              for (size_t c = 0; c < cin_g; c++)
                sum += (load(input, base + c, u) - q->input_zero_point) * (int32_t)w[c];
            }
          }
          const uint32_t acc = (uint32_t)sum + (uint32_t)(bias != NULL ? bias[o] : 0);
          store(output, ((n * oh + y) * ow + x) * s->output_channels + o,
                output_value(acc, multipliers[o], shifts[o], q), u);
        }
      }
    }
  }
}

void qs8_fully_connected__reference(size_t batch, size_t input_channels, size_t output_channels,
                                    const void* input, const int8_t* weights, const int32_t* bias,
                                    const int32_t* multipliers, const int32_t* shifts,
                                    const qs8_activation_quantization* q, void* output) {
  const bool u = q->unsigned_activations;
  for (size_t n = 0; n < batch; n++) {
    for (size_t o = 0; o < output_channels; o++) {
      int32_t sum = 0;
      for (size_t i = 0; i < input_channels; i++) {
        sum += (load(input, n * input_channels + i, u) - q->input_zero_point) *
               (int32_t)weights[o * input_channels + i];
      }
      const uint32_t acc = (uint32_t)sum + (uint32_t)(bias != NULL ? bias[o] : 0);
      store(output, n * output_channels + o, output_value(acc, multipliers[o], shifts[o], q), u);
    }
  }
}

static void pool__reference(const whittle_pool2d_shape* s, const void* input, void* output, bool u,
                            int32_t min, int32_t max, bool average) {
  const size_t oh = whittle_pool2d_output_height(s), ow = whittle_pool2d_output_width(s);
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < oh; y++) {
      for (size_t x = 0; x < ow; x++) {
        for (size_t c = 0; c < s->channels; c++) {
          int32_t sum = 0, best = INT32_MIN, count = 0;
          for (size_t i = 0; i < s->window_height; i++) {
            const ptrdiff_t iy = (ptrdiff_t)(y * s->stride_height + i) - (ptrdiff_t)s->padding_top;
            if (iy < 0 || iy >= (ptrdiff_t)s->input_height) continue;
            for (size_t j = 0; j < s->window_width; j++) {
              const ptrdiff_t ix = (ptrdiff_t)(x * s->stride_width + j) - (ptrdiff_t)s->padding_left;
              if (ix < 0 || ix >= (ptrdiff_t)s->input_width) continue;
              const int32_t v = load(
                  input, ((n * s->input_height + (size_t)iy) * s->input_width + (size_t)ix) * s->channels + c,
                  u);
              sum += v;
              best = v > best ? v : best;
              count++;
            }
          }
          if (s->count_padding) {
            const int32_t window = (int32_t)(s->window_height * s->window_width);
            sum += (window - count) * s->padding_value;
            count = window;
          }
          const int32_t value = !average ? best : qs8_average_round_half_even(sum, count);
          store(output, ((n * oh + y) * ow + x) * s->channels + c, clamp32(value, min, max), u);
        }
      }
    }
  }
}

void qs8_maxpool__reference(const whittle_pool2d_shape* s, const void* input, void* output, bool u,
                            int32_t min, int32_t max) {
  pool__reference(s, input, output, u, min, max, false);
}

void qs8_avgpool__reference(const whittle_pool2d_shape* s, const void* input, void* output, bool u,
                            int32_t min, int32_t max) {
  pool__reference(s, input, output, u, min, max, true);
}

void qs8_global_avgpool__reference(size_t batch, size_t pixels, size_t channels, const void* input,
                                   void* output, bool u, int32_t min, int32_t max) {
  const whittle_pool2d_shape s = whittle_global_pool2d_shape(batch, pixels, channels);
  pool__reference(&s, input, output, u, min, max, true);
}

void qs8_global_avgpool_requant__reference(size_t batch, size_t pixels, size_t channels, const void* input,
                                           void* output, const qs8_global_avgpool_params* p) {
  const bool u = p->unsigned_activations;
  for (size_t n = 0; n < batch; n++) {
    for (size_t c = 0; c < channels; c++) {
      int32_t sum = 0;
      for (size_t i = 0; i < pixels; i++)
        sum += load(input, (n * pixels + i) * channels + c, u) - p->input_zero_point;
      const int64_t v = (int64_t)qs8_requantize_gemmlowp(sum, p->multiplier, p->shift) + p->output_zero_point;
      store(output, n * channels + c, clamp32(v, p->output_min, p->output_max), u);
    }
  }
}

void qs8_quantize__reference(const qs8_quantization_layout* l, const float* input, void* output) {
  const double lo = l->unsigned_values ? 0 : -128, hi = l->unsigned_values ? 255 : 127;
  const size_t n = l->outer * l->channels * l->inner;
  for (size_t i = 0; i < n; i++) {
    const size_t c = i / l->inner % l->channels;
    const double v = rint((double)input[i] / l->scales[c]) + l->zero_points[c];
    const int32_t q = isnan(v) ? 0 : (int32_t)(v < lo ? lo : v > hi ? hi : v);
    store(output, i, q, l->unsigned_values);
  }
}

void qs8_dequantize__reference(const qs8_quantization_layout* l, const void* input, float* output) {
  const size_t n = l->outer * l->channels * l->inner;
  for (size_t i = 0; i < n; i++) {
    const size_t c = i / l->inner % l->channels;
    output[i] = (float)((double)(load(input, i, l->unsigned_values) - l->zero_points[c]) * l->scales[c]);
  }
}

void qs8_add__reference(size_t n, const void* a, const void* b, void* output, const qs8_add_params* p) {
  const bool u = p->unsigned_activations;
  for (size_t i = 0; i < n; i++) {
    const int32_t xa = (load(a, i, u) - p->a_zero_point) * (1 << QS8_ADD_LEFT_SHIFT);
    const int32_t xb = (load(b, i, u) - p->b_zero_point) * (1 << QS8_ADD_LEFT_SHIFT);
    const int32_t sa = qs8_requantize_gemmlowp(xa, p->a_multiplier, p->a_shift);
    const int32_t sb = qs8_requantize_gemmlowp(xb, p->b_multiplier, p->b_shift);
    const int32_t sum = (int32_t)((uint32_t)sa + (uint32_t)sb);
    const int64_t v =
        (int64_t)qs8_requantize_gemmlowp(sum, p->output_multiplier, p->output_shift) + p->output_zero_point;
    store(output, i, clamp32(v, p->output_min, p->output_max), u);
  }
}

void qs8_clamp__reference(size_t n, const void* input, void* output, bool u, int32_t min, int32_t max) {
  for (size_t i = 0; i < n; i++) store(output, i, clamp32(load(input, i, u), min, max), u);
}

void qs8_lut__reference(size_t n, const uint8_t* input, uint8_t* output, const uint8_t* table) {
  for (size_t i = 0; i < n; i++) output[i] = table[input[i]];
}

void qs8_mul_channels__reference(size_t rows, size_t pixels, size_t channels, const void* a, const void* b,
                                 void* output, const qs8_mul_params* p) {
  const bool u = p->unsigned_activations;
  for (size_t r = 0; r < rows; r++) {
    for (size_t px = 0; px < pixels; px++) {
      for (size_t c = 0; c < channels; c++) {
        const size_t i = (r * pixels + px) * channels + c;
        const int32_t product =
            (load(a, i, u) - p->a_zero_point) * (load(b, r * channels + c, u) - p->b_zero_point);
        const int64_t v =
            (int64_t)qs8_requantize_gemmlowp(product, p->multiplier, p->shift) + p->output_zero_point;
        store(output, i, clamp32(v, p->output_min, p->output_max), u);
      }
    }
  }
}

// JavaScript's Math.round: the nearest integer, halves up (floor(v) + 1 when v - floor(v) >= 0.5, which is
// exact in double, unlike floor(v + 0.5)).
static int32_t round_half_up(double v) {
  const double f = floor(v);
  return (int32_t)f + (v - f >= 0.5);
}

void qs8_resize_bilinear__reference(const whittle_resize_shape* s, const void* input, void* output, bool u) {
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < s->output_height; y++) {
      for (size_t x = 0; x < s->output_width; x++) {
        double w[4];
        whittle_resize_corner_weights(s->row_weights[y], s->column_weights[x], w);
        const size_t corner[4] = {
            whittle_resize_input_offset(s, n, s->rows[2 * y], s->columns[2 * x]),
            whittle_resize_input_offset(s, n, s->rows[2 * y + 1], s->columns[2 * x]),
            whittle_resize_input_offset(s, n, s->rows[2 * y], s->columns[2 * x + 1]),
            whittle_resize_input_offset(s, n, s->rows[2 * y + 1], s->columns[2 * x + 1]),
        };
        const size_t out = ((n * s->output_height + y) * s->output_width + x) * s->channels;
        for (size_t c = 0; c < s->channels; c++) {
          double sum = 0;
          for (size_t k = 0; k < 4; k++) sum += w[k] * load(input, corner[k] + c, u);
          store(output, out + c, round_half_up(sum), u);
        }
      }
    }
  }
}

void qs8_softmax__reference(size_t rows, size_t channels, const void* input, float input_scale,
                            int32_t input_zero_point, float output_scale, int32_t output_zero_point, bool u,
                            void* output) {
  const int32_t lo = u ? 0 : INT8_MIN, hi = u ? UINT8_MAX : INT8_MAX;
  for (size_t r = 0; r < rows; r++) {
    int32_t m = INT32_MIN;
    for (size_t c = 0; c < channels; c++) {
      const int32_t v = load(input, r * channels + c, u);
      m = v > m ? v : m;
    }
    double sum = 0.0;
    for (size_t c = 0; c < channels; c++) {
      sum += exp((double)input_scale * (double)(load(input, r * channels + c, u) - m));
    }
    for (size_t c = 0; c < channels; c++) {
      const double p = exp((double)input_scale * (double)(load(input, r * channels + c, u) - m)) / sum;
      const double q = floor(p / (double)output_scale + 0.5) + (double)output_zero_point;
      store(output, r * channels + c, clamp32((int64_t)(q < lo ? lo : (q > hi ? hi : q)), lo, hi), u);
    }
  }
  (void)input_zero_point;  // cancels: softmax is shift-invariant, so only the scale matters
}

void qs8_softmax(size_t rows, size_t channels, const void* input, float input_scale, int32_t input_zero_point,
                 float output_scale, int32_t output_zero_point, bool u, void* output) {
  qs8_softmax__reference(rows, channels, input, input_scale, input_zero_point, output_scale,
                         output_zero_point, u, output);
}
