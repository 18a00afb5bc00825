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
        const float scale = average ? 1.0f / (float)((i_end - i_begin) * (j_end - j_begin)) : 1.0f;
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

// 1 / (1 + exp(-x)) in straight-line float and integer arithmetic the compiler vectorizes (expf is a call per
// element): exp(z) = 2^k * exp(r), k = round(z / ln 2) by the 1.5 * 2^23 rounding trick (whose low mantissa
// bits then hold k), r = z - k ln 2 in two parts (|r| <= ln 2 / 2), exp(r) by its degree-6 Taylor polynomial
// (relative error below 2e-7), and 2^k built in the exponent bits. z is clamped to [-87, 87], where 2^k
// stays a normal float: beyond it the result is within 2e-38 of 0 or 1. NaN stays NaN.
static inline float WHITTLE_FN(sigmoid_)(float x) {
  float z = -x;
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
  return 1.0f / (1.0f + p * scale);
}

void WHITTLE_FN(f32_vsigmoid_ukernel__)(size_t n, const float* restrict x, float* restrict y) {
  for (size_t i = 0; i < n; i++) y[i] = WHITTLE_FN(sigmoid_)(x[i]);
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

const f32_simple_ukernels WHITTLE_FN(f32_simple_ukernels__) = {
    .name = "f32_simple_ukernels__" WHITTLE_SUFFIX_NAME,
    .vclamp = WHITTLE_FN(f32_vclamp_ukernel__),
    .vadd = WHITTLE_FN(f32_vadd_minmax_ukernel__),
    .maxpool = WHITTLE_FN(f32_maxpool_minmax_ukernel__),
    .avgpool = WHITTLE_FN(f32_avgpool_minmax_ukernel__),
    .softmax = WHITTLE_FN(f32_softmax_ukernel__),
    .vsigmoid = WHITTLE_FN(f32_vsigmoid_ukernel__),
    .vhard_sigmoid = WHITTLE_FN(f32_vhard_sigmoid_ukernel__),
    .vmul_channels = WHITTLE_FN(f32_vmul_channels_ukernel__),
};
