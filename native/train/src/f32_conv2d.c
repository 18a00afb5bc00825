// Conv2D forward and gradients as im2col + SGEMM, one image per task.
//   forward:        y_n[oh*ow][oc]   = col_n[oh*ow][fh*fw*ic] * W[fh*fw*ic][oc]      (HWIO is already
//   [K][oc]) input gradient: dcol_n            = dy_n[oh*ow][oc] * W^T, then col2im adds it into dx_n filter
//   gradient: dW[K][oc]        = sum_n col_n^T * dy_n
// A 1x1 conv with stride 1 and no padding uses x itself as col. With fewer images than threads, the
// SGEMM itself is split instead.
#include <string.h>

#include "train_internal.h"

static int is_pointwise(const f32_window_shape* s) {
  return s->filter_h == 1 && s->filter_w == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 &&
         s->pad_left == 0 && s->out_h == s->in_h && s->out_w == s->in_w;
}

// col[oh*ow][fh*fw*ic]: the input patch under each output pixel, zeros where it hangs over the border.
static void im2col(const f32_window_shape* s, const float* x, float* col) {
  const size_t ic = (size_t)s->in_c;
  const size_t row_len = (size_t)s->filter_h * (size_t)s->filter_w * ic;
  for (int oy = 0; oy < s->out_h; oy++) {
    for (int ox = 0; ox < s->out_w; ox++) {
      float* dst = col + ((size_t)oy * (size_t)s->out_w + (size_t)ox) * row_len;
      for (int ky = 0; ky < s->filter_h; ky++) {
        const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
        for (int kx = 0; kx < s->filter_w; kx++) {
          const int ix = ox * s->stride_w - s->pad_left + kx * s->dilation_w;
          if (iy < 0 || iy >= s->in_h || ix < 0 || ix >= s->in_w) {
            memset(dst, 0, ic * sizeof(float));
          } else {
            memcpy(dst, x + ((size_t)iy * (size_t)s->in_w + (size_t)ix) * ic, ic * sizeof(float));
          }
          dst += ic;
        }
      }
    }
  }
}

// dx += scatter of col (the adjoint of im2col); dx must start zeroed.
static void col2im_add(const f32_window_shape* s, const float* col, float* dx) {
  const size_t ic = (size_t)s->in_c;
  const size_t row_len = (size_t)s->filter_h * (size_t)s->filter_w * ic;
  for (int oy = 0; oy < s->out_h; oy++) {
    for (int ox = 0; ox < s->out_w; ox++) {
      const float* src = col + ((size_t)oy * (size_t)s->out_w + (size_t)ox) * row_len;
      for (int ky = 0; ky < s->filter_h; ky++) {
        const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
        for (int kx = 0; kx < s->filter_w; kx++) {
          const int ix = ox * s->stride_w - s->pad_left + kx * s->dilation_w;
          if (iy >= 0 && iy < s->in_h && ix >= 0 && ix < s->in_w) {
            float* dst = dx + ((size_t)iy * (size_t)s->in_w + (size_t)ix) * ic;
            for (size_t c = 0; c < ic; c++) dst[c] += src[c];
          }
          src += ic;
        }
      }
    }
  }
}

typedef struct {
  const f32_window_shape* s;
  const float *x, *filter, *bias, *dy;
  f32_activation act;
  float *y, *dx, *dfilter;
  int gemm_threads;  // > 1 when images are fewer than threads
} conv_job;

static size_t image_in(const f32_window_shape* s) { return (size_t)s->in_h * s->in_w * s->in_c; }
static size_t image_out(const f32_window_shape* s) { return (size_t)s->out_h * s->out_w * s->out_c; }
static size_t patch_len(const f32_window_shape* s) { return (size_t)s->filter_h * s->filter_w * s->in_c; }

static void image_range(const f32_window_shape* s, int thread, int threads, size_t* begin, size_t* end) {
  *begin = (size_t)s->batch * (size_t)thread / (size_t)threads;
  *end = (size_t)s->batch * (size_t)(thread + 1) / (size_t)threads;
}

static void forward_task(void* context, int thread, int threads) {
  const conv_job* job = (const conv_job*)context;
  const f32_window_shape* s = job->s;
  const size_t pixels = (size_t)s->out_h * s->out_w, k = patch_len(s), oc = (size_t)s->out_c;
  const int pointwise = is_pointwise(s);
  float* col = pointwise ? NULL : f32_scratch(thread, 2, pixels * k);
  size_t begin, end;
  image_range(s, thread, threads, &begin, &end);
  for (size_t n = begin; n < end; n++) {
    const float* x = job->x + n * image_in(s);
    float* y = job->y + n * image_out(s);
    if (!pointwise) im2col(s, x, col);
    f32_sgemm_on_thread(thread, 0, 0, pixels, oc, k, pointwise ? x : col, k, job->filter, oc, 0.0f, y, oc);
    f32_bias_activation(y, pixels, oc, job->bias, job->act);
  }
}

void f32_conv2d_forward(const f32_window_shape* s, const float* x, const float* filter, const float* bias,
                        f32_activation act, float* y) {
  conv_job job = {s, x, filter, bias, NULL, act, y, NULL, NULL, 1};
  const int threads = f32_train_threads();
  if (s->batch >= threads) {
    f32_parallel(threads, forward_task, &job);
    return;
  }
  // Few images: im2col on this thread, SGEMM across threads.
  const size_t pixels = (size_t)s->out_h * s->out_w, k = patch_len(s), oc = (size_t)s->out_c;
  float* col = is_pointwise(s) ? NULL : f32_scratch(0, 2, pixels * k);
  for (int n = 0; n < s->batch; n++) {
    const float* xn = x + (size_t)n * image_in(s);
    float* yn = y + (size_t)n * image_out(s);
    if (col != NULL) im2col(s, xn, col);
    f32_sgemm(0, 0, pixels, oc, k, col != NULL ? col : xn, k, filter, oc, 0.0f, yn, oc, threads);
    f32_bias_activation(yn, pixels, oc, bias, act);
  }
}

static void backprop_input_task(void* context, int thread, int threads) {
  const conv_job* job = (const conv_job*)context;
  const f32_window_shape* s = job->s;
  const size_t pixels = (size_t)s->out_h * s->out_w, k = patch_len(s), oc = (size_t)s->out_c;
  const int pointwise = is_pointwise(s);
  float* dcol = pointwise ? NULL : f32_scratch(thread, 2, pixels * k);
  size_t begin, end;
  image_range(s, thread, threads, &begin, &end);
  for (size_t n = begin; n < end; n++) {
    const float* dy = job->dy + n * image_out(s);
    float* dx = job->dx + n * image_in(s);
    if (pointwise) {
      f32_sgemm_on_thread(thread, 0, 1, pixels, k, oc, dy, oc, job->filter, oc, 0.0f, dx, k);
    } else {
      f32_sgemm_on_thread(thread, 0, 1, pixels, k, oc, dy, oc, job->filter, oc, 0.0f, dcol, k);
      memset(dx, 0, image_in(s) * sizeof(float));
      col2im_add(s, dcol, dx);
    }
  }
}

void f32_conv2d_backprop_input(const f32_window_shape* s, const float* dy, const float* filter, float* dx) {
  conv_job job = {s, NULL, filter, NULL, dy, F32_ACT_LINEAR, NULL, dx, NULL, 1};
  const int threads = f32_train_threads();
  f32_parallel(s->batch >= threads ? threads : 1, backprop_input_task, &job);
}

// Each thread sums its images into its own partial filter gradient; thread partials are added at the end.
static void backprop_filter_task(void* context, int thread, int threads) {
  const conv_job* job = (const conv_job*)context;
  const f32_window_shape* s = job->s;
  const size_t pixels = (size_t)s->out_h * s->out_w, k = patch_len(s), oc = (size_t)s->out_c;
  const int pointwise = is_pointwise(s);
  float* col = pointwise ? NULL : f32_scratch(thread, 2, pixels * k);
  float* partial = thread == 0 ? job->dfilter : f32_scratch(thread, 3, k * oc);
  memset(partial, 0, k * oc * sizeof(float));
  size_t begin, end;
  image_range(s, thread, threads, &begin, &end);
  for (size_t n = begin; n < end; n++) {
    const float* x = job->x + n * image_in(s);
    const float* dy = job->dy + n * image_out(s);
    if (!pointwise) im2col(s, x, col);
    f32_sgemm_on_thread(thread, 1, 0, k, oc, pixels, pointwise ? x : col, k, dy, oc, 1.0f, partial, oc);
  }
}

void f32_conv2d_backprop_filter(const f32_window_shape* s, const float* x, const float* dy, float* dfilter) {
  conv_job job = {s, x, NULL, NULL, dy, F32_ACT_LINEAR, NULL, NULL, dfilter, 1};
  int threads = f32_train_threads();
  if (s->batch < threads) threads = 1;
  f32_parallel(threads, backprop_filter_task, &job);
  const size_t size = patch_len(s) * (size_t)s->out_c;
  for (int t = 1; t < threads; t++) {
    const float* partial = f32_scratch(t, 3, size);
    for (size_t i = 0; i < size; i++) dfilter[i] += partial[i];
  }
}
