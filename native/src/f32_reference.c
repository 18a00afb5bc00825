// Plain references of the fp32 operators, and the shape helpers every dtype shares. Written for clarity;
// every optimized path is tested against these.
#include <math.h>
#include <string.h>

#include "f32_ops.h"

static size_t effective_kernel(size_t kernel, size_t dilation) { return (kernel - 1) * dilation + 1; }

// A dimension of a shape and its field name, for the shape checks' messages.
typedef struct named_dimension {
  size_t value;
  const char* name;
} named_dimension;
#define NAMED_DIMENSION(s, field) \
  { (s)->field, #field }

// The name of the first dimension outside [1, WHITTLE_MAX_DIMENSION], or NULL.
static const char* first_bad_dimension(const named_dimension* dims, size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (dims[i].value < 1 || dims[i].value > WHITTLE_MAX_DIMENSION) return dims[i].name;
  }
  return NULL;
}

const char* whittle_conv2d_shape_problem(const whittle_conv2d_shape* s) {
  const named_dimension dims[] = {NAMED_DIMENSION(s, batch),           NAMED_DIMENSION(s, input_height),
                                  NAMED_DIMENSION(s, input_width),     NAMED_DIMENSION(s, input_channels),
                                  NAMED_DIMENSION(s, output_channels), NAMED_DIMENSION(s, kernel_height),
                                  NAMED_DIMENSION(s, kernel_width),    NAMED_DIMENSION(s, stride_height),
                                  NAMED_DIMENSION(s, stride_width),    NAMED_DIMENSION(s, dilation_height),
                                  NAMED_DIMENSION(s, dilation_width),  NAMED_DIMENSION(s, groups)};
  const char* bad = first_bad_dimension(dims, sizeof(dims) / sizeof(dims[0]));
  if (bad != NULL) return bad;
  if (s->padding_top > WHITTLE_MAX_DIMENSION) return "padding_top";
  if (s->padding_left > WHITTLE_MAX_DIMENSION) return "padding_left";
  if (s->padding_bottom > WHITTLE_MAX_DIMENSION) return "padding_bottom";
  if (s->padding_right > WHITTLE_MAX_DIMENSION) return "padding_right";
  if (s->input_channels % s->groups != 0) return "input_channels (not a multiple of groups)";
  if (s->output_channels % s->groups != 0) return "output_channels (not a multiple of groups)";
  const size_t padded_h = s->input_height + s->padding_top + s->padding_bottom;
  const size_t padded_w = s->input_width + s->padding_left + s->padding_right;
  if (effective_kernel(s->kernel_height, s->dilation_height) > padded_h)
    return "kernel_height (larger than the padded input)";
  if (effective_kernel(s->kernel_width, s->dilation_width) > padded_w)
    return "kernel_width (larger than the padded input)";
  const double in =
      (double)s->batch * (double)s->input_height * (double)s->input_width * (double)s->input_channels;
  const double out = (double)s->batch * (double)whittle_conv2d_output_height(s) *
                     (double)whittle_conv2d_output_width(s) * (double)s->output_channels;
  const double w = (double)s->output_channels * (double)s->kernel_height * (double)s->kernel_width *
                   (double)(s->input_channels / s->groups);
  if (in > (double)WHITTLE_MAX_ELEMENTS) return "input (too many elements)";
  if (out > (double)WHITTLE_MAX_ELEMENTS) return "output (too many elements)";
  if (w > (double)WHITTLE_MAX_ELEMENTS) return "weights (too many elements)";
  if ((double)s->kernel_height * (double)s->kernel_width * (double)(s->input_channels / s->groups) >
      65536.0) {
    return "kernel_height (kernel_height * kernel_width * input_channels / groups is more than 65536)";
  }
  return NULL;
}

size_t whittle_conv2d_output_height(const whittle_conv2d_shape* s) {
  return (s->input_height + s->padding_top + s->padding_bottom -
          effective_kernel(s->kernel_height, s->dilation_height)) /
             s->stride_height +
         1;
}

size_t whittle_conv2d_output_width(const whittle_conv2d_shape* s) {
  return (s->input_width + s->padding_left + s->padding_right -
          effective_kernel(s->kernel_width, s->dilation_width)) /
             s->stride_width +
         1;
}

whittle_conv2d_geometry whittle_conv2d_shape_geometry(const whittle_conv2d_shape* s) {
  const whittle_conv2d_geometry g = {.batch = s->batch,
                                     .input_height = s->input_height,
                                     .input_width = s->input_width,
                                     .kernel_height = s->kernel_height,
                                     .kernel_width = s->kernel_width,
                                     .stride_height = s->stride_height,
                                     .stride_width = s->stride_width,
                                     .padding_top = s->padding_top,
                                     .padding_left = s->padding_left,
                                     .output_height = whittle_conv2d_output_height(s),
                                     .output_width = whittle_conv2d_output_width(s),
                                     .groups = s->groups,
                                     .group_input_channels = s->input_channels / s->groups,
                                     .group_output_channels = s->output_channels / s->groups};
  return g;
}

bool whittle_conv2d_padded_input_plan(const whittle_conv2d_shape* s, whittle_conv2d_padded_input* padded) {
  padded->height = s->input_height + s->padding_top + s->padding_bottom;
  padded->width = s->input_width + s->padding_left + s->padding_right;
  const double elements =
      (double)s->batch * (double)padded->height * (double)padded->width * (double)s->input_channels;
  const double farthest_tap =
      ((double)(s->kernel_height - 1) * (double)s->dilation_height * (double)padded->width +
       (double)s->kernel_width * (double)s->dilation_width) *
      (double)s->input_channels;
  if (elements > (double)WHITTLE_MAX_ELEMENTS || farthest_tap > (double)INT32_MAX) return false;
  padded->elements = (size_t)elements;
  return true;
}

WHITTLE_HOT void whittle_conv2d_padded_copy(const whittle_conv2d_shape* s,
                                            const whittle_conv2d_padded_input* padded, size_t element_size,
                                            const void* input, uint8_t byte_flip, void* output) {
  const size_t row_bytes = s->input_width * s->input_channels * element_size;
  const size_t pixel_bytes = s->input_channels * element_size;
  const unsigned char* src = input;
  unsigned char* dst = output;
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < s->input_height; y++) {
      unsigned char* row =
          dst + ((n * padded->height + s->padding_top + y) * padded->width + s->padding_left) * pixel_bytes;
      if (byte_flip == 0) {
        memcpy(row, src, row_bytes);
      } else {
        for (size_t i = 0; i < row_bytes; i++) row[i] = (unsigned char)(src[i] ^ byte_flip);
      }
      src += row_bytes;
    }
  }
}

const char* whittle_pool2d_shape_problem(const whittle_pool2d_shape* s) {
  const named_dimension dims[] = {NAMED_DIMENSION(s, batch),         NAMED_DIMENSION(s, input_height),
                                  NAMED_DIMENSION(s, input_width),   NAMED_DIMENSION(s, channels),
                                  NAMED_DIMENSION(s, window_height), NAMED_DIMENSION(s, window_width),
                                  NAMED_DIMENSION(s, stride_height), NAMED_DIMENSION(s, stride_width)};
  const char* bad = first_bad_dimension(dims, sizeof(dims) / sizeof(dims[0]));
  if (bad != NULL) return bad;
  // A padding as large as the window would make windows that see no input at all.
  if (s->padding_top >= s->window_height) return "padding_top (a padding must be smaller than the window)";
  if (s->padding_bottom >= s->window_height)
    return "padding_bottom (a padding must be smaller than the window)";
  if (s->padding_left >= s->window_width) return "padding_left (a padding must be smaller than the window)";
  if (s->padding_right >= s->window_width) return "padding_right (a padding must be smaller than the window)";
  if (s->window_height > s->input_height + s->padding_top + s->padding_bottom)
    return "window_height (larger than the padded input)";
  if (s->window_width > s->input_width + s->padding_left + s->padding_right)
    return "window_width (larger than the padded input)";
  const double in = (double)s->batch * (double)s->input_height * (double)s->input_width * (double)s->channels;
  if (in > (double)WHITTLE_MAX_ELEMENTS) return "input (too many elements)";
  if ((double)s->window_height * (double)s->window_width > 65536.0)
    return "window_height (window_height * window_width is more than 65536)";
  return NULL;
}

WHITTLE_HOT size_t whittle_pool2d_output_height(const whittle_pool2d_shape* s) {
  return (s->input_height + s->padding_top + s->padding_bottom - s->window_height) / s->stride_height + 1;
}

WHITTLE_HOT size_t whittle_pool2d_output_width(const whittle_pool2d_shape* s) {
  return (s->input_width + s->padding_left + s->padding_right - s->window_width) / s->stride_width + 1;
}

static float clampf(float v, float min, float max) { return v < min ? min : (v > max ? max : v); }

// output[n][y][x][o] = clamp(bias[o] + sum_{i,j,c} input[n][y*sh + i*dh - pt][x*sw + j*dw - pl][g*cin_g + c]
//                                                * weights[o][i][j][c], min, max)
void f32_conv2d__reference(const whittle_conv2d_shape* s, const float* input, const float* weights,
                           const float* bias, float min, float max, float* output) {
  const size_t oh = whittle_conv2d_output_height(s), ow = whittle_conv2d_output_width(s);
  const size_t cin_g = s->input_channels / s->groups, cout_g = s->output_channels / s->groups;
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < oh; y++) {
      for (size_t x = 0; x < ow; x++) {
        for (size_t o = 0; o < s->output_channels; o++) {
          const size_t g = o / cout_g;
          double acc = bias != NULL ? bias[o] : 0.0;
          for (size_t i = 0; i < s->kernel_height; i++) {
            const ptrdiff_t iy =
                (ptrdiff_t)(y * s->stride_height + i * s->dilation_height) - (ptrdiff_t)s->padding_top;
            if (iy < 0 || iy >= (ptrdiff_t)s->input_height) continue;
            for (size_t j = 0; j < s->kernel_width; j++) {
              const ptrdiff_t ix =
                  (ptrdiff_t)(x * s->stride_width + j * s->dilation_width) - (ptrdiff_t)s->padding_left;
              if (ix < 0 || ix >= (ptrdiff_t)s->input_width) continue;
              const float* in =
                  input +
                  (((n * s->input_height + (size_t)iy) * s->input_width + (size_t)ix) * s->input_channels) +
                  g * cin_g;
              const float* w = weights + ((o * s->kernel_height + i) * s->kernel_width + j) * cin_g;
              for (size_t c = 0; c < cin_g; c++) acc += (double)in[c] * (double)w[c];
            }
          }
          output[((n * oh + y) * ow + x) * s->output_channels + o] = clampf((float)acc, min, max);
        }
      }
    }
  }
}

void f32_fully_connected__reference(size_t batch, size_t input_channels, size_t output_channels,
                                    const float* input, const float* weights, const float* bias, float min,
                                    float max, float* output) {
  for (size_t n = 0; n < batch; n++) {
    for (size_t o = 0; o < output_channels; o++) {
      double acc = bias != NULL ? bias[o] : 0.0;
      for (size_t i = 0; i < input_channels; i++) {
        acc += (double)input[n * input_channels + i] * (double)weights[o * input_channels + i];
      }
      output[n * output_channels + o] = clampf((float)acc, min, max);
    }
  }
}

static void pool__reference(const whittle_pool2d_shape* s, const float* input, float* output, float min,
                            float max, bool average) {
  const size_t oh = whittle_pool2d_output_height(s), ow = whittle_pool2d_output_width(s);
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < oh; y++) {
      for (size_t x = 0; x < ow; x++) {
        for (size_t c = 0; c < s->channels; c++) {
          double sum = 0.0;
          float best = -INFINITY;
          size_t count = 0;
          for (size_t i = 0; i < s->window_height; i++) {
            const ptrdiff_t iy = (ptrdiff_t)(y * s->stride_height + i) - (ptrdiff_t)s->padding_top;
            if (iy < 0 || iy >= (ptrdiff_t)s->input_height) continue;
            for (size_t j = 0; j < s->window_width; j++) {
              const ptrdiff_t ix = (ptrdiff_t)(x * s->stride_width + j) - (ptrdiff_t)s->padding_left;
              if (ix < 0 || ix >= (ptrdiff_t)s->input_width) continue;
              const float v =
                  input[((n * s->input_height + (size_t)iy) * s->input_width + (size_t)ix) * s->channels + c];
              sum += v;
              best = v > best ? v : best;
              count++;
            }
          }
          if (s->count_padding) count = s->window_height * s->window_width;
          const float value = average ? (float)(sum / (double)count) : best;
          output[((n * oh + y) * ow + x) * s->channels + c] = clampf(value, min, max);
        }
      }
    }
  }
}

void f32_maxpool__reference(const whittle_pool2d_shape* s, const float* input, float* output, float min,
                            float max) {
  pool__reference(s, input, output, min, max, false);
}

void f32_avgpool__reference(const whittle_pool2d_shape* s, const float* input, float* output, float min,
                            float max) {
  pool__reference(s, input, output, min, max, true);
}

void f32_global_avgpool__reference(size_t batch, size_t pixels, size_t channels, const float* input,
                                   float* output, float min, float max) {
  for (size_t n = 0; n < batch; n++) {
    for (size_t c = 0; c < channels; c++) {
      double sum = 0.0;
      for (size_t p = 0; p < pixels; p++) sum += input[(n * pixels + p) * channels + c];
      output[n * channels + c] = clampf((float)(sum / (double)pixels), min, max);
    }
  }
}

void f32_add__reference(size_t n, const float* a, const float* b, float* output, float min, float max) {
  for (size_t i = 0; i < n; i++) output[i] = clampf(a[i] + b[i], min, max);
}

void f32_clamp__reference(size_t n, const float* input, float* output, float min, float max) {
  for (size_t i = 0; i < n; i++) output[i] = clampf(input[i], min, max);
}

void f32_softmax__reference(size_t rows, size_t channels, const float* input, float* output) {
  for (size_t r = 0; r < rows; r++) {
    const float* x = input + r * channels;
    float* y = output + r * channels;
    float m = x[0];
    for (size_t c = 1; c < channels; c++) m = x[c] > m ? x[c] : m;
    double sum = 0.0;
    for (size_t c = 0; c < channels; c++) sum += exp((double)x[c] - (double)m);
    for (size_t c = 0; c < channels; c++) y[c] = (float)(exp((double)x[c] - (double)m) / sum);
  }
}

void f32_sigmoid__reference(size_t n, const float* input, float* output) {
  for (size_t i = 0; i < n; i++) output[i] = (float)(1.0 / (1.0 + exp(-(double)input[i])));
}

void f32_hard_sigmoid__reference(size_t n, const float* input, float* output, float alpha, float beta,
                                 bool swish) {
  for (size_t i = 0; i < n; i++) {
    double gate = (double)alpha * (double)input[i] + (double)beta;
    gate = gate < 0.0 ? 0.0 : (gate > 1.0 ? 1.0 : gate);
    output[i] = (float)(swish ? gate * (double)input[i] : gate);
  }
}

void f32_mul_channels__reference(size_t rows, size_t pixels, size_t channels, const float* a, const float* b,
                                 float* output) {
  for (size_t r = 0; r < rows; r++) {
    for (size_t p = 0; p < pixels; p++) {
      for (size_t c = 0; c < channels; c++) {
        const size_t i = (r * pixels + p) * channels + c;
        output[i] = a[i] * b[r * channels + c];
      }
    }
  }
}

// In double: x * erfc(-x / sqrt 2) / 2, or x * sigmoid(2u) = x * (1 + tanh(u)) / 2 with
// u = sqrt(2 / pi) (x + 0.044715 x^3); both forms keep their relative precision for large negative x.
void f32_gelu__reference(size_t n, const float* input, float* output, bool tanh_form) {
  for (size_t i = 0; i < n; i++) {
    const double x = input[i];
    const double phi = tanh_form ? 1.0 / (1.0 + exp(-1.5957691216057308 * (x + 0.044715 * x * x * x)))
                                 : 0.5 * erfc(-x * 0.7071067811865476);
    output[i] = (float)(x * phi);
  }
}

// In double, the variance of the centred values; the sums in index order (as the TypeScript reference).
void f32_layer_norm__reference(size_t rows, size_t channels, const float* input, const float* scale,
                               const float* bias, double epsilon, float* output) {
  for (size_t r = 0; r < rows; r++) {
    const float* x = input + r * channels;
    double mean = 0.0, variance = 0.0;
    for (size_t c = 0; c < channels; c++) mean += x[c];
    mean /= (double)channels;
    for (size_t c = 0; c < channels; c++) variance += ((double)x[c] - mean) * ((double)x[c] - mean);
    const double inverse = 1.0 / sqrt(variance / (double)channels + epsilon);
    for (size_t c = 0; c < channels; c++) {
      const double shift = bias != NULL ? bias[c] : 0.0;
      output[r * channels + c] = (float)(((double)x[c] - mean) * inverse * scale[c] + shift);
    }
  }
}

void whittle_slice_rows(size_t rows, size_t input_row, size_t offset, size_t output_row, const void* input,
                        size_t element_size, void* output) {
  const size_t bytes = output_row * element_size;
  for (size_t r = 0; r < rows; r++) {
    memcpy((unsigned char*)output + r * bytes,
           (const unsigned char*)input + (r * input_row + offset) * element_size, bytes);
  }
}

void whittle_concat_channels(size_t rows, size_t count, const size_t* channels, const void* const* inputs,
                             size_t element_size, void* output) {
  unsigned char* out = output;
  for (size_t r = 0; r < rows; r++) {
    for (size_t i = 0; i < count; i++) {
      const size_t bytes = channels[i] * element_size;
      memcpy(out, (const unsigned char*)inputs[i] + r * bytes, bytes);
      out += bytes;
    }
  }
}

// One row of the shuffle for a fixed element type: the compiler turns each element into a plain load and
// store (a memcpy call per element of one byte cost more than the whole row).
#define WHITTLE_SHUFFLE_ROW(type)                                                                \
  do {                                                                                           \
    const type* x = (const type*)in + r * channels;                                              \
    type* y = (type*)out + r * channels;                                                         \
    for (size_t g = 0; g < groups; g++) {                                                        \
      for (size_t j = 0; j < group_channels; j++) y[j * groups + g] = x[g * group_channels + j]; \
    }                                                                                            \
  } while (0)

void whittle_channel_shuffle(size_t rows, size_t groups, size_t group_channels, const void* input,
                             size_t element_size, void* output) {
  const size_t channels = groups * group_channels;
  const unsigned char* in = input;
  unsigned char* out = output;
  for (size_t r = 0; r < rows; r++) {
    if (element_size == 1) {
      WHITTLE_SHUFFLE_ROW(uint8_t);
    } else if (element_size == 2) {
      WHITTLE_SHUFFLE_ROW(uint16_t);
    } else if (element_size == 4) {
      WHITTLE_SHUFFLE_ROW(uint32_t);
    } else {
      for (size_t g = 0; g < groups; g++) {
        for (size_t j = 0; j < group_channels; j++) {
          memcpy(out + (r * channels + j * groups + g) * element_size,
                 in + (r * channels + g * group_channels + j) * element_size, element_size);
        }
      }
    }
  }
}

void whittle_resize_nearest(const whittle_resize_shape* s, const void* input, size_t element_size,
                            void* output) {
  const size_t bytes = s->channels * element_size;
  const unsigned char* in = input;
  unsigned char* out = output;
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < s->output_height; y++) {
      for (size_t x = 0; x < s->output_width; x++) {
        memcpy(out, in + whittle_resize_input_offset(s, n, s->rows[2 * y], s->columns[2 * x]) * element_size,
               bytes);
        out += bytes;
      }
    }
  }
}

void f32_resize_bilinear__reference(const whittle_resize_shape* s, const float* input, float* output) {
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < s->output_height; y++) {
      for (size_t x = 0; x < s->output_width; x++) {
        double w[4];
        whittle_resize_corner_weights(s->row_weights[y], s->column_weights[x], w);
        const float* corner[4] = {
            input + whittle_resize_input_offset(s, n, s->rows[2 * y], s->columns[2 * x]),
            input + whittle_resize_input_offset(s, n, s->rows[2 * y + 1], s->columns[2 * x]),
            input + whittle_resize_input_offset(s, n, s->rows[2 * y], s->columns[2 * x + 1]),
            input + whittle_resize_input_offset(s, n, s->rows[2 * y + 1], s->columns[2 * x + 1]),
        };
        float* out = output + ((n * s->output_height + y) * s->output_width + x) * s->channels;
        for (size_t c = 0; c < s->channels; c++) {
          double sum = 0;
          // A zero weight adds nothing (the reference skips it: an infinite input must not make a NaN).
          for (size_t k = 0; k < 4; k++) {
            if (w[k] != 0) sum += w[k] * corner[k][c];
          }
          out[c] = (float)sum;
        }
      }
    }
  }
}
