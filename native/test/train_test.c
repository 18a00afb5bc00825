// Test driver of the fp32 training kernels (f32_train_ops.h): the SGEMM (every transpose, beta 0 and 1,
// edges and K/N blocking), conv2d, depthwise conv2d and pooling forward and gradients, and batch norm,
// against plain double-precision references written here, on fixed-seed random data, on every ISA level
// this CPU supports (the SGEMM microkernel each level selects), with 1 and 3 threads. fp32 results must be
// within 1e-4 relative of the reference (see close_enough: the kernels sum in float, in another order).
//
// Usage: train_test [-v]. WHITTLE_ISA, when set, limits the run to that level (an unsupported value is a
// failure). The last line is "N passed, M failed"; the exit status is 1 on any failure.
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/f32_train_ops.h"

#define TEST_RNG_SEED 0x2545F4914F6CDD1Dull
#include "test_support.h"

static float* random_floats(size_t n) {
  float* p = xmalloc(n * sizeof(float));
  fill_float(p, n);
  return p;
}

static double* zeros(size_t n) {
  double* p = xmalloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) p[i] = 0.0;
  return p;
}

// fp32 within 1e-4 relative (test_support.h: the kernels sum in float, in another order) plus 1e-6: the
// absolute term covers results that cancel to zero everywhere (a batch of one: dx = 0), where only the
// terms' size (every input here is in [-1, 1]) bounds the rounding.
DEFINE_CLOSE_ENOUGH(close_enough, double, 1e-4, 1e-6)

static void expect_close(const char* what, const float* got, const double* want, size_t n) {
  size_t where = 0;
  const bool ok = close_enough(got, want, n, &where);
  if (ok) {
    report(true, "%s", what);
  } else {
    report(false, "%s: [%zu] = %.9g, reference %.9g", what, where, got[where], want[where]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// SGEMM

static void test_sgemm(const f32_train_context* ctx, size_t m, size_t n, size_t k, int trans_a, int trans_b,
                       float beta) {
  const size_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  float* a = random_floats(m * k);
  float* b = random_floats(k * n);
  float* c = random_floats(m * n);
  double* want = zeros(m * n);
  for (size_t i = 0; i < m; i++) {
    for (size_t j = 0; j < n; j++) {
      double sum = beta != 0.0f ? c[i * n + j] : 0.0;
      for (size_t p = 0; p < k; p++) {
        const double av = trans_a ? a[p * lda + i] : a[i * lda + p];
        const double bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        sum += av * bv;
      }
      want[i * n + j] = sum;
    }
  }
  f32_sgemm(ctx, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, n);
  char what[96];
  snprintf(what, sizeof(what), "sgemm %zux%zux%zu trans %d%d beta %g", m, n, k, trans_a, trans_b, beta);
  expect_close(what, c, want, m * n);
  free(a);
  free(b);
  free(c);
  free(want);
}

// ---------------------------------------------------------------------------------------------------------
// Window ops: conv, depthwise conv, pooling

static size_t in_size(const f32_window_shape* s) { return (size_t)s->batch * s->in_h * s->in_w * s->in_c; }
static size_t out_size(const f32_window_shape* s) {
  return (size_t)s->batch * s->out_h * s->out_w * s->out_c;
}

// The input index under output (n, oy, ox) and tap (ky, kx), or -1 in the padding.
static long tap_index(const f32_window_shape* s, int n, int oy, int ox, int ky, int kx, int c) {
  const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
  const int ix = ox * s->stride_w - s->pad_left + kx * s->dilation_w;
  if (iy < 0 || iy >= s->in_h || ix < 0 || ix >= s->in_w) return -1;
  return (((long)n * s->in_h + iy) * s->in_w + ix) * s->in_c + c;
}

static long out_index(const f32_window_shape* s, int n, int oy, int ox, int c) {
  return (((long)n * s->out_h + oy) * s->out_w + ox) * s->out_c + c;
}

// A random window shape; depthwise: out_c a multiple of in_c; pool: out_c = in_c and no dilation.
static f32_window_shape random_window(int kind, int max_batch) {
  for (;;) {
    f32_window_shape s;
    s.batch = rand_range(1, max_batch);
    s.in_h = rand_range(3, 12);
    s.in_w = rand_range(3, 12);
    s.in_c = rand_range(1, 9);
    s.out_c = kind == 0 ? rand_range(1, 37) : (kind == 1 ? s.in_c * rand_range(1, 3) : s.in_c);
    s.filter_h = rand_range(1, 5);
    s.filter_w = rand_range(1, 5);
    s.stride_h = rand_range(1, 2);
    s.stride_w = rand_range(1, 2);
    s.dilation_h = kind == 2 ? 1 : rand_range(1, 2);
    s.dilation_w = kind == 2 ? 1 : rand_range(1, 2);
    s.pad_top = rand_range(0, s.filter_h - 1);
    s.pad_left = rand_range(0, s.filter_w - 1);
    const int span_h = s.dilation_h * (s.filter_h - 1) + 1, span_w = s.dilation_w * (s.filter_w - 1) + 1;
    s.out_h = (s.in_h + 2 * s.pad_top - span_h) / s.stride_h + 1;
    s.out_w = (s.in_w + 2 * s.pad_left - span_w) / s.stride_w + 1;
    if (s.out_h >= 1 && s.out_w >= 1) return s;
  }
}

static void describe(char* buffer, size_t size, const char* op, const f32_window_shape* s) {
  snprintf(buffer, size, "%s x[%d,%d,%d,%d] f%dx%d s%d,%d d%d,%d p%d,%d -> [%d,%d,%d]", op, s->batch, s->in_h,
           s->in_w, s->in_c, s->filter_h, s->filter_w, s->stride_h, s->stride_w, s->dilation_h, s->dilation_w,
           s->pad_top, s->pad_left, s->out_h, s->out_w, s->out_c);
}

// conv (depthwise = false: filter [fh][fw][ic][oc]) or depthwise conv (filter [fh][fw][ic][mult]): forward
// with bias and ReLU, input gradient and filter gradient.
static void test_conv(const f32_train_context* ctx, const f32_window_shape* s, bool depthwise) {
  const size_t filter_len =
      (size_t)s->filter_h * s->filter_w * (depthwise ? (size_t)s->out_c : (size_t)s->in_c * s->out_c);
  const int mult = s->out_c / s->in_c;
  float* x = random_floats(in_size(s));
  float* filter = random_floats(filter_len);
  float* bias = random_floats((size_t)s->out_c);
  float* dy = random_floats(out_size(s));
  float* y = random_floats(out_size(s));
  float* dx = random_floats(in_size(s));
  float* dfilter = random_floats(filter_len);
  double* want_y = zeros(out_size(s));
  double* want_dx = zeros(in_size(s));
  double* want_df = zeros(filter_len);
  for (int n = 0; n < s->batch; n++)
    for (int oy = 0; oy < s->out_h; oy++)
      for (int ox = 0; ox < s->out_w; ox++)
        for (int oc = 0; oc < s->out_c; oc++) {
          const long o = out_index(s, n, oy, ox, oc);
          double sum = bias[oc];
          for (int ky = 0; ky < s->filter_h; ky++)
            for (int kx = 0; kx < s->filter_w; kx++) {
              const int ic_first = depthwise ? oc / mult : 0, ic_end = depthwise ? oc / mult + 1 : s->in_c;
              for (int ic = ic_first; ic < ic_end; ic++) {
                const long i = tap_index(s, n, oy, ox, ky, kx, ic);
                if (i < 0) continue;
                const size_t f = depthwise ? ((size_t)ky * s->filter_w + kx) * s->out_c + oc
                                           : (((size_t)ky * s->filter_w + kx) * s->in_c + ic) * s->out_c + oc;
                sum += (double)x[i] * filter[f];
                want_dx[i] += (double)dy[o] * filter[f];
                want_df[f] += (double)x[i] * dy[o];
              }
            }
          want_y[o] = sum < 0.0 ? 0.0 : sum;
        }
  char what[160];
  const char* op = depthwise ? "dwconv" : "conv";
  if (depthwise) {
    f32_dwconv2d_forward(ctx, s, x, filter, bias, F32_ACT_RELU, y);
    f32_dwconv2d_backprop_input(ctx, s, dy, filter, dx);
    f32_dwconv2d_backprop_filter(ctx, s, x, dy, dfilter);
  } else {
    f32_conv2d_forward(ctx, s, x, filter, bias, F32_ACT_RELU, y);
    f32_conv2d_backprop_input(ctx, s, dy, filter, dx);
    f32_conv2d_backprop_filter(ctx, s, x, dy, dfilter);
  }
  char name[32];
  snprintf(name, sizeof(name), "%s forward", op);
  describe(what, sizeof(what), name, s);
  expect_close(what, y, want_y, out_size(s));
  snprintf(name, sizeof(name), "%s input gradient", op);
  describe(what, sizeof(what), name, s);
  expect_close(what, dx, want_dx, in_size(s));
  snprintf(name, sizeof(name), "%s filter gradient", op);
  describe(what, sizeof(what), name, s);
  expect_close(what, dfilter, want_df, filter_len);
  free(x);
  free(filter);
  free(bias);
  free(dy);
  free(y);
  free(dx);
  free(dfilter);
  free(want_y);
  free(want_dx);
  free(want_df);
}

// Max and average pooling, forward and gradients, with tfjs's semantics (f32_train_ops.h).
static void test_pool(const f32_train_context* ctx, const f32_window_shape* s) {
  float* x = random_floats(in_size(s));
  float* dy = random_floats(out_size(s));
  float* y = random_floats(out_size(s));
  float* dx = random_floats(in_size(s));
  double* want_max = zeros(out_size(s));
  double* want_avg = zeros(out_size(s));
  double* want_max_dx = zeros(in_size(s));
  double* want_avg_dx = zeros(in_size(s));
  for (int n = 0; n < s->batch; n++)
    for (int oy = 0; oy < s->out_h; oy++)
      for (int ox = 0; ox < s->out_w; ox++)
        for (int c = 0; c < s->out_c; c++) {
          const long o = out_index(s, n, oy, ox, c);
          double best = -INFINITY, sum = 0.0;
          long at = -1, inside = 0;
          for (int ky = 0; ky < s->filter_h; ky++)
            for (int kx = 0; kx < s->filter_w; kx++) {
              const long i = tap_index(s, n, oy, ox, ky, kx, c);
              if (i < 0) continue;
              if (x[i] > best) {
                best = x[i];
                at = i;
              }
              sum += x[i];
              inside++;
              want_avg_dx[i] += (double)dy[o] / (s->filter_h * s->filter_w);
            }
          want_max[o] = best;
          want_avg[o] = inside ? sum / (double)inside : 0.0;
          if (at >= 0) want_max_dx[at] += dy[o];
        }
  char what[160];
  f32_maxpool_forward(ctx, s, x, y);
  describe(what, sizeof(what), "maxpool", s);
  expect_close(what, y, want_max, out_size(s));
  f32_maxpool_backward(ctx, s, x, dy, dx);
  describe(what, sizeof(what), "maxpool gradient", s);
  expect_close(what, dx, want_max_dx, in_size(s));
  f32_avgpool_forward(ctx, s, x, y);
  describe(what, sizeof(what), "avgpool", s);
  expect_close(what, y, want_avg, out_size(s));
  f32_avgpool_backward(ctx, s, dy, dx);
  describe(what, sizeof(what), "avgpool gradient", s);
  expect_close(what, dx, want_avg_dx, in_size(s));
  free(x);
  free(dy);
  free(y);
  free(dx);
  free(want_max);
  free(want_avg);
  free(want_max_dx);
  free(want_avg_dx);
}

// ---------------------------------------------------------------------------------------------------------
// Batch norm over the last axis (single-threaded kernels; run once, not per path)

static void test_batchnorm(size_t count, size_t channels) {
  const float eps = 1e-3f;
  const size_t size = count * channels;
  float* x = random_floats(size);
  float* dy = random_floats(size);
  float* mean = random_floats(channels);
  float* var = random_floats(channels);
  float* scale = random_floats(channels);
  float* offset = random_floats(channels);
  for (size_t c = 0; c < channels; c++) var[c] = var[c] * var[c] + 0.1f;
  float* y = random_floats(size);
  float* dx = random_floats(size);
  float* grads[5];
  for (int g = 0; g < 5; g++) grads[g] = random_floats(channels);
  double* want = zeros(size);
  double* want_c[5];
  for (int g = 0; g < 5; g++) want_c[g] = zeros(channels);
  char what[96];

  // Forward and its gradient with mean and var as inputs.
  for (size_t c = 0; c < channels; c++) {
    const double r = 1.0 / sqrt((double)var[c] + eps);
    double sum_dy = 0.0, sum_dyx = 0.0;
    for (size_t i = 0; i < count; i++) {
      const size_t at = i * channels + c;
      want[at] = ((double)x[at] - mean[c]) * scale[c] * r + offset[c];
      sum_dy += dy[at];
      sum_dyx += (double)dy[at] * ((double)x[at] - mean[c]);
    }
    want_c[0][c] = -sum_dy * scale[c] * r;
    want_c[1][c] = -0.5 * sum_dyx * scale[c] * r * r * r;
    want_c[2][c] = sum_dyx * r;
    want_c[3][c] = sum_dy;
  }
  f32_batchnorm_forward(count, channels, x, mean, var, scale, offset, eps, y);
  snprintf(what, sizeof(what), "batchnorm forward [%zu][%zu]", count, channels);
  expect_close(what, y, want, size);
  f32_batchnorm_backward(count, channels, x, mean, var, scale, dy, eps, dx, grads[0], grads[1], grads[2],
                         grads[3]);
  for (size_t i = 0; i < size; i++) {
    const size_t c = i % channels;
    want[i] = (double)dy[i] * scale[c] / sqrt((double)var[c] + eps);
  }
  const char* names[4] = {"dmean", "dvar", "dscale", "doffset"};
  snprintf(what, sizeof(what), "batchnorm backward dx [%zu][%zu]", count, channels);
  expect_close(what, dx, want, size);
  for (int g = 0; g < 4; g++) {
    snprintf(what, sizeof(what), "batchnorm backward %s [%zu][%zu]", names[g], count, channels);
    expect_close(what, grads[g], want_c[g], channels);
  }

  // Training mode: the batch's own moments, and the gradient through them.
  f32_batchnorm_moments(count, channels, x, mean, var);
  for (size_t c = 0; c < channels; c++) {
    double sum = 0.0, squares = 0.0;
    for (size_t i = 0; i < count; i++) sum += x[i * channels + c];
    want_c[0][c] = sum / (double)count;
    for (size_t i = 0; i < count; i++) {
      const double d = x[i * channels + c] - want_c[0][c];
      squares += d * d;
    }
    want_c[1][c] = squares / (double)count;
  }
  snprintf(what, sizeof(what), "batchnorm moments mean [%zu][%zu]", count, channels);
  expect_close(what, mean, want_c[0], channels);
  snprintf(what, sizeof(what), "batchnorm moments variance [%zu][%zu]", count, channels);
  expect_close(what, var, want_c[1], channels);
  f32_batchnorm_train_backward(count, channels, x, mean, var, scale, dy, eps, dx, grads[2], grads[3]);
  for (size_t c = 0; c < channels; c++) {
    // xhat = (x - mean) r; dx = scale r (dy - mean(dy) - xhat mean(dy xhat)).
    const double r = 1.0 / sqrt((double)var[c] + eps);
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (size_t i = 0; i < count; i++) {
      const size_t at = i * channels + c;
      sum_dy += dy[at];
      sum_dy_xhat += (double)dy[at] * ((double)x[at] - mean[c]) * r;
    }
    want_c[2][c] = sum_dy_xhat;
    want_c[3][c] = sum_dy;
    for (size_t i = 0; i < count; i++) {
      const size_t at = i * channels + c;
      const double xhat = ((double)x[at] - mean[c]) * r;
      want[at] = scale[c] * r * (dy[at] - sum_dy / (double)count - xhat * sum_dy_xhat / (double)count);
    }
  }
  snprintf(what, sizeof(what), "batchnorm training gradient dx [%zu][%zu]", count, channels);
  expect_close(what, dx, want, size);
  snprintf(what, sizeof(what), "batchnorm training gradient dscale [%zu][%zu]", count, channels);
  expect_close(what, grads[2], want_c[2], channels);
  snprintf(what, sizeof(what), "batchnorm training gradient doffset [%zu][%zu]", count, channels);
  expect_close(what, grads[3], want_c[3], channels);

  free(x);
  free(dy);
  free(mean);
  free(var);
  free(scale);
  free(offset);
  free(y);
  free(dx);
  free(want);
  for (int g = 0; g < 5; g++) {
    free(grads[g]);
    free(want_c[g]);
  }
}

// ---------------------------------------------------------------------------------------------------------

static void run_path(whittle_isa level, whittle_threadpool* pool) {
  const f32_train_context ctx = {pool, f32_ppmm_ukernel_select(level)};
  char name[128];
  snprintf(name, sizeof(name), "%s %s %zut", whittle_isa_name(level), ctx.gemm->name,
           whittle_threadpool_threads(pool));
  report_where = name;
  // Edges of every tile size, K past one KC block (256), N past one NC block (1024), every transpose.
  for (int t = 0; t < 4; t++) {
    test_sgemm(&ctx, 37, 53, 300, t & 1, t >> 1, 0.0f);
    test_sgemm(&ctx, 7, 1100, 260, t & 1, t >> 1, 1.0f);
  }
  test_sgemm(&ctx, 1, 1, 1, 0, 0, 0.0f);
  test_sgemm(&ctx, 64, 48, 96, 0, 0, 1.0f);
  // Random shapes with batches below and above the thread count (image-parallel vs SGEMM-parallel), a
  // pointwise conv (no im2col), and one large enough for the SGEMM to split with a batch of 1.
  for (int i = 0; i < 6; i++) {
    const f32_window_shape conv = random_window(0, 4);
    test_conv(&ctx, &conv, false);
    const f32_window_shape dw = random_window(1, 4);
    test_conv(&ctx, &dw, true);
    const f32_window_shape pool_shape = random_window(2, 4);
    test_pool(&ctx, &pool_shape);
  }
  const f32_window_shape pointwise = {2, 6, 5, 19, 6, 5, 45, 1, 1, 1, 1, 1, 1, 0, 0};
  test_conv(&ctx, &pointwise, false);
  const f32_window_shape large = {1, 16, 16, 32, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, 1};
  test_conv(&ctx, &large, false);
  // LeNet-5's convolutions (6 and 16 output channels: channel-major on the wider tiles) at a batch of 5.
  const f32_window_shape lenet_conv1 = {5, 28, 28, 1, 28, 28, 6, 5, 5, 1, 1, 1, 1, 2, 2};
  test_conv(&ctx, &lenet_conv1, false);
  const f32_window_shape lenet_conv2 = {5, 14, 14, 6, 10, 10, 16, 5, 5, 1, 1, 1, 1, 0, 0};
  test_conv(&ctx, &lenet_conv2, false);
  // Channel-major with stride 2, dilation 2 and padding on both sides, one image and several.
  const f32_window_shape strided = {3, 11, 9, 3, 6, 4, 5, 3, 3, 2, 2, 2, 2, 2, 1};
  test_conv(&ctx, &strided, false);
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0) verbose = true;
  }
  const char* error = whittle_isa_selection_error();
  if (error != NULL) {
    fprintf(stderr, "train_test: %s\n", error);
    return 1;
  }
  whittle_threadpool* pools[2] = {NULL, whittle_threadpool_create(3)};
  if (pools[1] == NULL) {
    fprintf(stderr, "train_test: cannot start 3 threads\n");
    return 1;
  }
  // Tests are small: split every job the kernels may split (as kernels_test does).
  whittle_threadpool_set_min_task_work(0);
  const bool forced = getenv("WHITTLE_ISA") != NULL;
  for (int level = 0; level < WHITTLE_ISA_COUNT; level++) {
    if (forced ? level != (int)whittle_isa_selected() : !whittle_isa_supported((whittle_isa)level)) continue;
    for (int p = 0; p < 2; p++) run_path((whittle_isa)level, pools[p]);
  }
  report_where = "single-threaded";
  test_batchnorm(1, 1);
  test_batchnorm(37, 13);
  test_batchnorm(500, 8);
  whittle_threadpool_destroy(pools[1]);
  printf("%zu passed, %zu failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
