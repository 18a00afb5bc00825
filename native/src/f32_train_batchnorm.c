// Batch normalization over the last axis, forward and gradients (see f32_train.h for the formulas).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "f32_train_ops.h"

void f32_batchnorm_forward(size_t count, size_t channels, const float* x, const float* mean, const float* var,
                           const float* scale, const float* offset, float eps, float* y) {
  float* mul = f32_train_scratch(0, 2, 2 * channels);
  float* add = mul + channels;
  for (size_t c = 0; c < channels; c++) {
    const float r = 1.0f / sqrtf(var[c] + eps);
    mul[c] = (scale != NULL ? scale[c] : 1.0f) * r;
    add[c] = (offset != NULL ? offset[c] : 0.0f) - mean[c] * mul[c];
  }
  for (size_t i = 0; i < count; i++) {
    const float* xi = x + i * channels;
    float* yi = y + i * channels;
    for (size_t c = 0; c < channels; c++) yi[c] = xi[c] * mul[c] + add[c];
  }
}

void f32_batchnorm_backward(size_t count, size_t channels, const float* x, const float* mean,
                            const float* var, const float* scale, const float* dy, float eps, float* dx,
                            float* dmean, float* dvar, float* dscale, float* doffset) {
  // sums[0][c] = sum(dy), sums[1][c] = sum(dy * (x - mean)), accumulated in double for long batches.
  double* sums = (double*)calloc(2 * channels, sizeof(double));
  float* r = f32_train_scratch(0, 2, 2 * channels);
  float* g = r + channels;
  for (size_t c = 0; c < channels; c++) {
    r[c] = 1.0f / sqrtf(var[c] + eps);
    g[c] = (scale != NULL ? scale[c] : 1.0f) * r[c];
  }
  for (size_t i = 0; i < count; i++) {
    const float* xi = x + i * channels;
    const float* gi = dy + i * channels;
    float* di = dx + i * channels;
    for (size_t c = 0; c < channels; c++) di[c] = gi[c] * g[c];
    if (sums != NULL)
      for (size_t c = 0; c < channels; c++) {
        sums[c] += gi[c];
        sums[channels + c] += (double)gi[c] * (xi[c] - mean[c]);
      }
  }
  for (size_t c = 0; c < channels; c++) {
    const double sum_dy = sums != NULL ? sums[c] : 0.0, sum_dyx = sums != NULL ? sums[channels + c] : 0.0;
    const double sc = scale != NULL ? scale[c] : 1.0;
    if (doffset != NULL) doffset[c] = (float)sum_dy;
    if (dscale != NULL) dscale[c] = (float)(sum_dyx * r[c]);
    if (dmean != NULL) dmean[c] = (float)(-sum_dy * sc * r[c]);
    if (dvar != NULL) dvar[c] = (float)(-0.5 * sum_dyx * sc * (double)r[c] * r[c] * r[c]);
  }
  free(sums);
}

int f32_batchnorm_moments(size_t count, size_t channels, const float* x, float* mean, float* var) {
  // Two passes (mean, then squared deviations) with double sums: the biased batch variance tfjs's
  // moments() computes, without the cancellation of E[x^2] - E[x]^2.
  double* sums = (double*)calloc(channels, sizeof(double));
  if (sums == NULL) return -1;
  for (size_t i = 0; i < count; i++) {
    const float* xi = x + i * channels;
    for (size_t c = 0; c < channels; c++) sums[c] += xi[c];
  }
  for (size_t c = 0; c < channels; c++) {
    mean[c] = (float)(sums[c] / (double)count);
    sums[c] = 0.0;
  }
  for (size_t i = 0; i < count; i++) {
    const float* xi = x + i * channels;
    for (size_t c = 0; c < channels; c++) {
      const double d = (double)xi[c] - mean[c];
      sums[c] += d * d;
    }
  }
  for (size_t c = 0; c < channels; c++) var[c] = (float)(sums[c] / (double)count);
  free(sums);
  return 0;
}

int f32_batchnorm_train_backward(size_t count, size_t channels, const float* x, const float* mean,
                                 const float* var, const float* scale, const float* dy, float eps, float* dx,
                                 float* dscale, float* doffset) {
  // With xhat = (x - mean) r, r = 1 / sqrt(var + eps), and mean and var the batch's own moments:
  //   doffset = sum(dy), dscale = sum(dy xhat),
  //   dx = scale r (dy - doffset / count - xhat dscale / count)
  // i.e. dx = a dy + k1 + k2 x per channel, with a = scale r.
  double* sums = (double*)calloc(2 * channels, sizeof(double));
  float* coef = (float*)malloc(4 * channels * sizeof(float));
  if (sums == NULL || coef == NULL) {
    free(sums);
    free(coef);
    return -1;
  }
  float *r = coef, *a = coef + channels, *k1 = coef + 2 * channels, *k2 = coef + 3 * channels;
  for (size_t i = 0; i < count; i++) {
    const float* xi = x + i * channels;
    const float* gi = dy + i * channels;
    for (size_t c = 0; c < channels; c++) {
      sums[c] += gi[c];
      sums[channels + c] += (double)gi[c] * (xi[c] - mean[c]);
    }
  }
  for (size_t c = 0; c < channels; c++) {
    r[c] = 1.0f / sqrtf(var[c] + eps);
    a[c] = (scale != NULL ? scale[c] : 1.0f) * r[c];
    doffset[c] = (float)sums[c];
    dscale[c] = (float)(sums[channels + c] * r[c]);
    const double b = (double)a[c] * r[c] * (sums[channels + c] * r[c]) / (double)count;
    k1[c] = (float)(-(double)a[c] * sums[c] / (double)count + mean[c] * b);
    k2[c] = (float)(-b);
  }
  for (size_t i = 0; i < count; i++) {
    const float* xi = x + i * channels;
    const float* gi = dy + i * channels;
    float* di = dx + i * channels;
    for (size_t c = 0; c < channels; c++) di[c] = a[c] * gi[c] + k1[c] + xi[c] * k2[c];
  }
  free(sums);
  free(coef);
  return 0;
}
