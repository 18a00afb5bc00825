// Element-wise and pooling kernels for fp32, written once and compiled per ISA: each
// f32_simple_ukernels__<isa>.c defines WHITTLE_SUFFIX and includes this file, and the ISA's flags let the
// compiler vectorize the channel loops (the inner loops are unit-stride over channels for that reason).
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "f32_ops.h"
#include "maxpool_rows_impl.h"

#define WHITTLE_CAT2(a, b) a##b
#define WHITTLE_CAT(a, b) WHITTLE_CAT2(a, b)
#define WHITTLE_FN(name) WHITTLE_CAT(name, WHITTLE_SUFFIX)

void WHITTLE_FN(f32_vclamp_ukernel__)(size_t n, const float* restrict x, float* restrict y, float min,
                                      float max) {
  for (size_t i = 0; i < n; i++) {
    const float v = x[i] < min ? min : x[i];
    y[i] = v > max ? max : v;
  }
}

void WHITTLE_FN(f32_vadd_minmax_ukernel__)(size_t n, const float* a, const float* b, float* y, float min,
                                           float max) {
  for (size_t i = 0; i < n; i++) {
    float v = a[i] + b[i];
    v = v < min ? min : v;
    y[i] = v > max ? max : v;
  }
}

static void WHITTLE_FN(pool_)(const whittle_pool2d_shape* s, const float* input, float* output, float min,
                              float max, bool average) {
  const size_t oh = whittle_pool2d_output_height(s), ow = whittle_pool2d_output_width(s);
  const size_t channels = s->channels;
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
        float* restrict out = output + ((n * oh + y) * ow + x) * channels;
        for (size_t c = 0; c < channels; c++) out[c] = average ? 0.0f : -INFINITY;
        for (size_t i = i_begin; i < i_end; i++) {
          for (size_t j = j_begin; j < j_end; j++) {
            const float* restrict in =
                input +
                ((n * s->input_height + (y * s->stride_height + i - s->padding_top)) * s->input_width +
                 (x * s->stride_width + j - s->padding_left)) *
                    channels;
            if (average) {
              for (size_t c = 0; c < channels; c++) out[c] += in[c];
            } else {
              for (size_t c = 0; c < channels; c++) out[c] = in[c] > out[c] ? in[c] : out[c];
            }
          }
        }
        const size_t count =
            s->count_padding ? s->window_height * s->window_width : (i_end - i_begin) * (j_end - j_begin);
        const float scale = average ? 1.0f / (float)count : 1.0f;
        for (size_t c = 0; c < channels; c++) {
          float v = out[c] * scale;
          v = v < min ? min : v;
          out[c] = v > max ? max : v;
        }
      }
    }
  }
}

WHITTLE_MAXPOOL_ROWS_DEFINE(WHITTLE_FN(f32_maxpool_rows_), WHITTLE_FN(f32_vmax_), float, -INFINITY)

void WHITTLE_FN(f32_maxpool_minmax_ukernel__)(const whittle_pool2d_shape* s, const float* input,
                                              float* output, float min, float max) {
  // By rows (maxpool_rows_impl.h); the per-pixel loop for windows wider than its buffers.
  if (s->window_width <= WHITTLE_MAXPOOL_ROWS_BUFFER) {
    WHITTLE_FN(f32_maxpool_rows_)(s, input, output, min, max);
  } else {
    WHITTLE_FN(pool_)(s, input, output, min, max, false);
  }
}

void WHITTLE_FN(f32_avgpool_minmax_ukernel__)(const whittle_pool2d_shape* s, const float* input,
                                              float* output, float min, float max) {
  WHITTLE_FN(pool_)(s, input, output, min, max, true);
}

void WHITTLE_FN(f32_softmax_ukernel__)(size_t rows, size_t channels, const float* input, float* output) {
  for (size_t r = 0; r < rows; r++) {
    const float* restrict x = input + r * channels;
    float* restrict y = output + r * channels;
    float m = x[0];
    for (size_t c = 1; c < channels; c++) m = x[c] > m ? x[c] : m;
    float sum = 0.0f;
    for (size_t c = 0; c < channels; c++) {
      y[c] = expf(x[c] - m);
      sum += y[c];
    }
    const float inverse = 1.0f / sum;
    for (size_t c = 0; c < channels; c++) y[c] *= inverse;
  }
}

// exp(z) in straight-line float and integer arithmetic the compiler vectorizes (expf is a call per element):
// exp(z) = 2^k * exp(r), k = round(z / ln 2) by the 1.5 * 2^23 rounding trick (whose low mantissa bits then
// hold k), r = z - k ln 2 in two parts (|r| <= ln 2 / 2), exp(r) by its degree-6 Taylor polynomial (relative
// error below 2e-7), and 2^k built in the exponent bits. z is clamped to [-87, 87], where 2^k stays a normal
// float: beyond it exp is within 2e-38 of 0 (the activations below then are within 2e-38 of their limits).
static inline float WHITTLE_FN(exp_)(float z) {
  z = z < -87.0f ? -87.0f : z;
  z = z > 87.0f ? 87.0f : z;
  const float magic = 12582912.0f;  // 1.5 * 2^23
  const float t = z * 1.44269504f + magic;
  const float k = t - magic;
  const float r = (z - k * 0.693359375f) + k * 2.12194440e-4f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits;
  memcpy(&bits, &t, sizeof(bits));
  const int32_t scale_bits = (bits - 0x4B400000 + 127) * (1 << 23);
  float scale;
  memcpy(&scale, &scale_bits, sizeof(scale));
  return p * scale;
}

// 1 / (1 + exp(-x)). NaN stays NaN.
static inline float WHITTLE_FN(sigmoid_)(float x) { return 1.0f / (1.0f + WHITTLE_FN(exp_)(-x)); }

void WHITTLE_FN(f32_vsigmoid_ukernel__)(size_t n, const float* restrict x, float* restrict y) {
  for (size_t i = 0; i < n; i++) y[i] = WHITTLE_FN(sigmoid_)(x[i]);
}

// GELU, x * Phi(x). Exact form: Phi(x) = erfc(-x / sqrt 2) / 2, erfc(z) for z = |x| / sqrt 2 >= 0 by the
// Chebyshev fit of Numerical Recipes (erfcc: t exp(-z^2 + P(t)), t = 1 / (1 + z / 2), relative error below
// 1.2e-7 for every z, so the small negative side keeps its relative precision); Phi(x) = 1 - erfc(z) / 2 for
// x >= 0 and erfc(z) / 2 below. tanh form: Phi(x) ~ (1 + tanh(u)) / 2 = sigmoid(2u),
// u = sqrt(2 / pi) (x + 0.044715 x^3). One loop per form, each without a test per element, so both vectorize.
void WHITTLE_FN(f32_vgelu_ukernel__)(size_t n, const float* restrict x, float* restrict y, bool tanh_form) {
  if (tanh_form) {
    for (size_t i = 0; i < n; i++) {
      const float v = x[i];
      const float u2 = 1.59576912f * (v + 0.044715f * v * v * v);  // 2u
      y[i] = v * WHITTLE_FN(sigmoid_)(u2);
    }
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const float v = x[i];
    const float z = fabsf(v) * 0.707106781f;
    const float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    const float half_erfc = 0.5f * t * WHITTLE_FN(exp_)(p - z * z);
    y[i] = v * (v >= 0.0f ? 1.0f - half_erfc : half_erfc);
  }
}

// Layer normalization of each row, in double and in the order of the runtime's TypeScript reference
// (agent/runtime/ops/normalization.ts): the mean, the variance of the centred values, then
// ((x - mean) * inverse) * scale + bias, rounded to float once. Bit-exact with f32_layer_norm__reference and
// with the TypeScript reference, so that an int8 package's fp32 layer-norm island quantizes to the same codes
// on both executors. The two sums are sequential (their order is part of the result); the last loop
// vectorizes.
void WHITTLE_FN(f32_layer_norm_ukernel__)(size_t rows, size_t channels, const float* restrict input,
                                          const float* restrict scale, const float* restrict bias,
                                          double epsilon, float* restrict output) {
  for (size_t r = 0; r < rows; r++) {
    const float* restrict x = input + r * channels;
    float* restrict y = output + r * channels;
    double mean = 0.0, variance = 0.0;
    for (size_t c = 0; c < channels; c++) mean += (double)x[c];
    mean /= (double)channels;
    for (size_t c = 0; c < channels; c++) variance += ((double)x[c] - mean) * ((double)x[c] - mean);
    const double inverse = 1.0 / sqrt(variance / (double)channels + epsilon);
    if (bias != NULL) {
      for (size_t c = 0; c < channels; c++)
        y[c] = (float)(((double)x[c] - mean) * inverse * (double)scale[c] + (double)bias[c]);
    } else {
      for (size_t c = 0; c < channels; c++)
        y[c] = (float)(((double)x[c] - mean) * inverse * (double)scale[c] + 0.0);
    }
  }
}

// Two loops rather than a test per element, so that each vectorizes.
void WHITTLE_FN(f32_vhard_sigmoid_ukernel__)(size_t n, const float* restrict x, float* restrict y,
                                             float alpha, float beta, bool swish) {
  if (swish) {
    for (size_t i = 0; i < n; i++) {
      float gate = alpha * x[i] + beta;
      gate = gate < 0.0f ? 0.0f : gate;
      gate = gate > 1.0f ? 1.0f : gate;
      y[i] = x[i] * gate;
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      float gate = alpha * x[i] + beta;
      gate = gate < 0.0f ? 0.0f : gate;
      y[i] = gate > 1.0f ? 1.0f : gate;
    }
  }
}

void WHITTLE_FN(f32_vmul_channels_ukernel__)(size_t rows, size_t pixels, size_t channels,
                                             const float* restrict a, const float* restrict b,
                                             float* restrict y) {
  for (size_t r = 0; r < rows; r++) {
    const float* restrict scale = b + r * channels;
    for (size_t p = 0; p < pixels; p++) {
      const size_t at = (r * pixels + p) * channels;
      for (size_t c = 0; c < channels; c++) y[at + c] = a[at + c] * scale[c];
    }
  }
}

// Winograd F(2x2, 3x3) transforms (f32_conv2d.c), channel by channel: the loops run over channels, unit
// stride, so they vectorize; every sum is written out in the order the C states (no FMA contraction). Their
// 16 input and 4 output rows never overlap, which GCC cannot prove (it gives up on the 16-way alias checks,
// restrict or not): WHITTLE_NO_ALIAS_LOOP tells it. Clang's equivalent (vectorize(assume_safety)) warns
// wherever vectorization is off (-O1, the sanitizer builds), so clang keeps its own alias checks.
#if defined(__GNUC__) && !defined(__clang__)
#define WHITTLE_NO_ALIAS_LOOP _Pragma("GCC ivdep")
#else
#define WHITTLE_NO_ALIAS_LOOP
#endif
// Input: the 4x4 input patch d of one tile (rows[i * 4 + j]: input row i, column j of the patch, each
// `channels` floats; a zero row outside the image) becomes V = B^T d B, position p at v + p * stride.
void WHITTLE_FN(f32_winograd_input_ukernel__)(size_t channels, const float* const* rows, float* restrict v,
                                              size_t stride) {
  WHITTLE_NO_ALIAS_LOOP
  for (size_t c = 0; c < channels; c++) {
    // B^T on the columns (rows of the patch combined), then on the rows.
    float t[4][4];
    for (size_t j = 0; j < 4; j++) {
      const float x0 = rows[j][c], x1 = rows[4 + j][c], x2 = rows[8 + j][c], x3 = rows[12 + j][c];
      t[0][j] = x0 - x2;
      t[1][j] = x1 + x2;
      t[2][j] = x2 - x1;
      t[3][j] = x1 - x3;
    }
    for (size_t i = 0; i < 4; i++) {
      v[(4 * i) * stride + c] = t[i][0] - t[i][2];
      v[(4 * i + 1) * stride + c] = t[i][1] + t[i][2];
      v[(4 * i + 2) * stride + c] = t[i][2] - t[i][1];
      v[(4 * i + 3) * stride + c] = t[i][1] - t[i][3];
    }
  }
}

// Output: the 16 products of one tile (position p at m + p * stride) become its 2x2 outputs A^T m A, plus
// the bias, clamped to [min, max]; out[q] is output pixel q (row q / 2, column q % 2), a scratch row for a
// pixel past the image's edge. With `addend`, then y = clamp(y + addend[q], add_min, add_max), the f32 add.
void WHITTLE_FN(f32_winograd_output_ukernel__)(size_t channels, const float* restrict m, size_t stride,
                                               const float* restrict bias, float min, float max,
                                               float* const* out, const float* const* addend, float add_min,
                                               float add_max) {
  // One loop per case, so each vectorizes without a test per element.
  WHITTLE_NO_ALIAS_LOOP
  for (size_t c = 0; c < channels; c++) {
    // A^T on the columns (rows of the products combined), then on the rows.
    float s[2][4];
    for (size_t j = 0; j < 4; j++) {
      s[0][j] = (m[j * stride + c] + m[(4 + j) * stride + c]) + m[(8 + j) * stride + c];
      s[1][j] = (m[(4 + j) * stride + c] - m[(8 + j) * stride + c]) - m[(12 + j) * stride + c];
    }
    for (size_t i = 0; i < 2; i++) {
      float r[2] = {((s[i][0] + s[i][1]) + s[i][2]) + bias[c], ((s[i][1] - s[i][2]) - s[i][3]) + bias[c]};
      for (size_t q = 0; q < 2; q++) {
        r[q] = r[q] < min ? min : r[q];
        out[2 * i + q][c] = r[q] > max ? max : r[q];
      }
    }
  }
  if (addend == NULL) return;
  WHITTLE_NO_ALIAS_LOOP
  for (size_t c = 0; c < channels; c++) {
    for (size_t q = 0; q < 4; q++) {
      const float r = out[q][c] + addend[q][c];
      const float low = r < add_min ? add_min : r;
      out[q][c] = low > add_max ? add_max : low;
    }
  }
}

void WHITTLE_FN(f32_resize_bilinear_ukernel__)(const whittle_resize_shape* s, const float* input,
                                               float* output) {
  const size_t channels = s->channels;
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < s->output_height; y++) {
      for (size_t x = 0; x < s->output_width; x++) {
        double w[4];
        whittle_resize_corner_weights(s->row_weights[y], s->column_weights[x], w);
        const float w0 = (float)w[0], w1 = (float)w[1], w2 = (float)w[2], w3 = (float)w[3];
        const float* restrict tl =
            input + whittle_resize_input_offset(s, n, s->rows[2 * y], s->columns[2 * x]);
        const float* restrict bl =
            input + whittle_resize_input_offset(s, n, s->rows[2 * y + 1], s->columns[2 * x]);
        const float* restrict tr =
            input + whittle_resize_input_offset(s, n, s->rows[2 * y], s->columns[2 * x + 1]);
        const float* restrict br =
            input + whittle_resize_input_offset(s, n, s->rows[2 * y + 1], s->columns[2 * x + 1]);
        float* restrict out = output + ((n * s->output_height + y) * s->output_width + x) * channels;
        for (size_t c = 0; c < channels; c++) out[c] = ((w0 * tl[c] + w1 * bl[c]) + w2 * tr[c]) + w3 * br[c];
      }
    }
  }
}

const f32_simple_ukernels WHITTLE_FN(f32_simple_ukernels__) = {
    .name = "f32_simple_ukernels__" WHITTLE_SUFFIX_NAME,
    .vclamp = WHITTLE_FN(f32_vclamp_ukernel__),
    .vadd = WHITTLE_FN(f32_vadd_minmax_ukernel__),
    .maxpool = WHITTLE_FN(f32_maxpool_minmax_ukernel__),
    .avgpool = WHITTLE_FN(f32_avgpool_minmax_ukernel__),
    .softmax = WHITTLE_FN(f32_softmax_ukernel__),
    .vsigmoid = WHITTLE_FN(f32_vsigmoid_ukernel__),
    .vhard_sigmoid = WHITTLE_FN(f32_vhard_sigmoid_ukernel__),
    .vgelu = WHITTLE_FN(f32_vgelu_ukernel__),
    .layer_norm = WHITTLE_FN(f32_layer_norm_ukernel__),
    .vmul_channels = WHITTLE_FN(f32_vmul_channels_ukernel__),
    .winograd_input = WHITTLE_FN(f32_winograd_input_ukernel__),
    .winograd_output = WHITTLE_FN(f32_winograd_output_ukernel__),
    .resize_bilinear = WHITTLE_FN(f32_resize_bilinear_ukernel__),
};
