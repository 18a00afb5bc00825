// Conv2D forward and gradients as im2col + SGEMM, one image per task.
//   forward:         y_n[oh*ow][oc]  = col_n[oh*ow][fh*fw*ic] * W[fh*fw*ic][oc]   (HWIO is already [K][oc])
//   input gradient:  dcol_n          = dy_n[oh*ow][oc] * W^T, then col2im adds it into dx_n
//   filter gradient: dW[K][oc]       = sum_n col_n^T * dy_n
// A 1x1 conv with stride 1 and no padding uses x itself as col. With fewer output channels than the SGEMM
// microkernel's tile width (LeNet's 6 and 16 against 32 on AVX-512) the forward pass and the filter
// gradient run channel-major instead, so that the wide tile dimension is the pixels:
//   forward:         y_n^T[oc][oh*ow] = W^T * colT_n[K][oh*ow], transposed into y_n with bias and activation
//   filter gradient: dW^T[oc][K]      = sum_n dy_n^T * colT_n^T, transposed into dW at the end
// where colT (im2row) holds each tap's values over all output pixels: for one input channel and stride 1,
// runs of a whole output row copied at once (im2col there copies one float per tap and pixel).
// Images are handed out one at a time on the pool; with fewer images than threads, the SGEMM itself is
// split instead. The filter gradient sums images in fixed blocks (one partial per block, added in block
// order), so its bits do not depend on which thread ran which image.
#include <string.h>

#include "f32_train_ops.h"

static int is_pointwise(const f32_window_shape* s) {
  return s->filter_h == 1 && s->filter_w == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 &&
         s->pad_left == 0 && s->out_h == s->in_h && s->out_w == s->in_w;
}

// Channel-major products (above): a non-pointwise conv whose output channels fill less than one tile.
static int is_channel_major(const f32_train_context* ctx, const f32_window_shape* s) {
  return !is_pointwise(s) && (size_t)s->out_c < ctx->gemm->nr;
}

// The output columns [lo, hi) whose tap at input column offset `first` (the tap's column for output 0)
// lands inside the input, for a stride and input width.
static void inside_span(int first, int stride, int in_w, int out_w, int* lo, int* hi) {
  // ox * stride + first >= 0  <=>  ox >= ceil(-first / stride); ox * stride + first < in_w.
  int l = first >= 0 ? 0 : (-first + stride - 1) / stride;
  int h = in_w - first <= 0 ? 0 : (in_w - first + stride - 1) / stride;
  if (h > out_w) h = out_w;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

// col[oh*ow][fh*fw*ic]: the input patch under each output pixel, zeros where it hangs over the border.
// Without dilation a kernel row's taps are fw*ic consecutive floats of the input, copied as one run.
static void im2col(const f32_window_shape* s, const float* x, float* col) {
  const size_t ic = (size_t)s->in_c;
  const size_t row_len = (size_t)s->filter_h * (size_t)s->filter_w * ic;
  const size_t run = (size_t)s->filter_w * ic;
  for (int oy = 0; oy < s->out_h; oy++) {
    for (int ox = 0; ox < s->out_w; ox++) {
      float* dst = col + ((size_t)oy * (size_t)s->out_w + (size_t)ox) * row_len;
      const int ix0 = ox * s->stride_w - s->pad_left;
      const int whole = s->dilation_w == 1 && ix0 >= 0 && ix0 + s->filter_w <= s->in_w;
      for (int ky = 0; ky < s->filter_h; ky++) {
        const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
        if (iy < 0 || iy >= s->in_h) {
          memset(dst, 0, run * sizeof(float));
          dst += run;
          continue;
        }
        const float* src_row = x + (size_t)iy * (size_t)s->in_w * ic;
        if (whole) {
          const float* src = src_row + (size_t)ix0 * ic;
          for (size_t i = 0; i < run; i++) dst[i] = src[i];
          dst += run;
          continue;
        }
        for (int kx = 0; kx < s->filter_w; kx++) {
          const int ix = ix0 + kx * s->dilation_w;
          if (ix < 0 || ix >= s->in_w) {
            for (size_t c = 0; c < ic; c++) dst[c] = 0.0f;
          } else {
            const float* src = src_row + (size_t)ix * ic;
            for (size_t c = 0; c < ic; c++) dst[c] = src[c];
          }
          dst += ic;
        }
      }
    }
  }
}

// colT[fh*fw*ic][oh*ow] (im2row): the transpose of im2col's col, one row per tap and input channel.
static void im2row(const f32_window_shape* s, const float* x, float* colt) {
  const size_t ic = (size_t)s->in_c, ow = (size_t)s->out_w;
  const size_t pixels = (size_t)s->out_h * ow, step = (size_t)s->stride_w * ic;
  for (int ky = 0; ky < s->filter_h; ky++) {
    for (int kx = 0; kx < s->filter_w; kx++) {
      int lo, hi;
      inside_span(kx * s->dilation_w - s->pad_left, s->stride_w, s->in_w, s->out_w, &lo, &hi);
      for (size_t c = 0; c < ic; c++) {
        float* row = colt + (((size_t)ky * s->filter_w + kx) * ic + c) * pixels;
        for (int oy = 0; oy < s->out_h; oy++) {
          float* dst = row + (size_t)oy * ow;
          const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
          if (iy < 0 || iy >= s->in_h || lo == hi) {
            memset(dst, 0, ow * sizeof(float));
            continue;
          }
          // Output column ox reads input column ox * stride_w + kx * dilation_w - pad_left.
          const float* src =
              x +
              ((size_t)iy * s->in_w + (size_t)(lo * s->stride_w + kx * s->dilation_w - s->pad_left)) * ic + c;
          for (int ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
          if (step == 1) {
            memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof(float));
          } else {
            for (int ox = lo; ox < hi; ox++, src += step) dst[ox] = *src;
          }
          for (int ox = hi; ox < s->out_w; ox++) dst[ox] = 0.0f;
        }
      }
    }
  }
}

// dx += scatter of col (the adjoint of im2col); dx must start zeroed.
static void col2im_add(const f32_window_shape* s, const float* col, float* dx) {
  const size_t ic = (size_t)s->in_c;
  const size_t row_len = (size_t)s->filter_h * (size_t)s->filter_w * ic;
  const size_t run = (size_t)s->filter_w * ic;
  for (int oy = 0; oy < s->out_h; oy++) {
    for (int ox = 0; ox < s->out_w; ox++) {
      const float* src = col + ((size_t)oy * (size_t)s->out_w + (size_t)ox) * row_len;
      const int ix0 = ox * s->stride_w - s->pad_left;
      const int whole = s->dilation_w == 1 && ix0 >= 0 && ix0 + s->filter_w <= s->in_w;
      for (int ky = 0; ky < s->filter_h; ky++) {
        const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
        if (iy < 0 || iy >= s->in_h) {
          src += run;
          continue;
        }
        float* dst_row = dx + (size_t)iy * (size_t)s->in_w * ic;
        if (whole) {
          float* dst = dst_row + (size_t)ix0 * ic;
          for (size_t i = 0; i < run; i++) dst[i] += src[i];
          src += run;
          continue;
        }
        for (int kx = 0; kx < s->filter_w; kx++) {
          const int ix = ix0 + kx * s->dilation_w;
          if (ix >= 0 && ix < s->in_w) {
            float* dst = dst_row + (size_t)ix * ic;
            for (size_t c = 0; c < ic; c++) dst[c] += src[c];
          }
          src += ic;
        }
      }
    }
  }
}

// y[pixel][c] = act(yt[c][pixel] + bias[c]): a channel-major product back to NHWC, one pass per channel.
static void transpose_bias_activation(const float* yt, size_t pixels, size_t channels, const float* bias,
                                      f32_activation act, float* y) {
  for (size_t c = 0; c < channels; c++) {
    const float b = bias != NULL ? bias[c] : 0.0f;
    const float* src = yt + c * pixels;
    float* dst = y + c;
    for (size_t p = 0; p < pixels; p++) {
      float v = src[p] + b;
      if (act != F32_ACT_LINEAR) v = v < 0.0f ? 0.0f : v;  // NaN stays NaN
      if (act == F32_ACT_RELU6) v = v > 6.0f ? 6.0f : v;
      dst[p * channels] = v;
    }
  }
}

typedef struct {
  const f32_train_context* ctx;
  const f32_window_shape* s;
  const float *x, *filter, *bias, *dy;
  f32_activation act;
  float *y, *dx, *dfilter;
  size_t blocks;  // filter gradient: blocks of images, one partial each
} conv_job;

static size_t image_in(const f32_window_shape* s) { return (size_t)s->in_h * s->in_w * s->in_c; }
static size_t image_out(const f32_window_shape* s) { return (size_t)s->out_h * s->out_w * s->out_c; }
static size_t patch_len(const f32_window_shape* s) { return (size_t)s->filter_h * s->filter_w * s->in_c; }

static void forward_task(void* context, size_t thread, size_t begin, size_t end) {
  const conv_job* job = (const conv_job*)context;
  const f32_window_shape* s = job->s;
  const size_t pixels = (size_t)s->out_h * s->out_w, k = patch_len(s), oc = (size_t)s->out_c;
  const int pointwise = is_pointwise(s), channel_major = is_channel_major(job->ctx, s);
  float* col = pointwise ? NULL : f32_train_scratch(thread, 2, pixels * k);
  float* yt = channel_major ? f32_train_scratch(thread, 3, oc * pixels) : NULL;
  for (size_t n = begin; n < end; n++) {
    const float* x = job->x + n * image_in(s);
    float* y = job->y + n * image_out(s);
    if (channel_major) {
      im2row(s, x, col);
      f32_sgemm_on_thread(job->ctx->gemm, thread, 1, 0, oc, pixels, k, job->filter, oc, col, pixels, 0.0f, yt,
                          pixels);
      transpose_bias_activation(yt, pixels, oc, job->bias, job->act, y);
      continue;
    }
    if (!pointwise) im2col(s, x, col);
    f32_sgemm_on_thread(job->ctx->gemm, thread, 0, 0, pixels, oc, k, pointwise ? x : col, k, job->filter, oc,
                        0.0f, y, oc);
    f32_bias_activation(y, pixels, oc, job->bias, job->act);
  }
}

void f32_conv2d_forward(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                        const float* filter, const float* bias, f32_activation act, float* y) {
  conv_job job = {ctx, s, x, filter, bias, NULL, act, y, NULL, NULL, 1};
  if ((size_t)s->batch >= whittle_threadpool_threads(ctx->pool)) {
    whittle_threadpool_parallelize(ctx->pool, forward_task, &job, (size_t)s->batch, 1);
    return;
  }
  // Few images of few channels: too little work to split.
  if (is_channel_major(ctx, s)) {
    forward_task(&job, 0, 0, (size_t)s->batch);
    return;
  }
  // Few images: im2col on this thread, SGEMM across threads.
  const size_t pixels = (size_t)s->out_h * s->out_w, k = patch_len(s), oc = (size_t)s->out_c;
  float* col = is_pointwise(s) ? NULL : f32_train_scratch(0, 2, pixels * k);
  for (int n = 0; n < s->batch; n++) {
    const float* xn = x + (size_t)n * image_in(s);
    float* yn = y + (size_t)n * image_out(s);
    if (col != NULL) im2col(s, xn, col);
    f32_sgemm(ctx, 0, 0, pixels, oc, k, col != NULL ? col : xn, k, filter, oc, 0.0f, yn, oc);
    f32_bias_activation(yn, pixels, oc, bias, act);
  }
}

static void backprop_input_task(void* context, size_t thread, size_t begin, size_t end) {
  const conv_job* job = (const conv_job*)context;
  const f32_window_shape* s = job->s;
  const size_t pixels = (size_t)s->out_h * s->out_w, k = patch_len(s), oc = (size_t)s->out_c;
  const int pointwise = is_pointwise(s);
  float* dcol = pointwise ? NULL : f32_train_scratch(thread, 2, pixels * k);
  for (size_t n = begin; n < end; n++) {
    const float* dy = job->dy + n * image_out(s);
    float* dx = job->dx + n * image_in(s);
    if (pointwise) {
      f32_sgemm_on_thread(job->ctx->gemm, thread, 0, 1, pixels, k, oc, dy, oc, job->filter, oc, 0.0f, dx, k);
    } else {
      f32_sgemm_on_thread(job->ctx->gemm, thread, 0, 1, pixels, k, oc, dy, oc, job->filter, oc, 0.0f, dcol,
                          k);
      memset(dx, 0, image_in(s) * sizeof(float));
      col2im_add(s, dcol, dx);
    }
  }
}

void f32_conv2d_backprop_input(const f32_train_context* ctx, const f32_window_shape* s, const float* dy,
                               const float* filter, float* dx) {
  conv_job job = {ctx, s, NULL, filter, NULL, dy, F32_ACT_LINEAR, NULL, dx, NULL, 1};
  const size_t batch = (size_t)s->batch;
  // Fewer images than threads: one thread does them all (as before the pool was shared).
  whittle_threadpool_parallelize(ctx->pool, backprop_input_task, &job, batch,
                                 batch >= whittle_threadpool_threads(ctx->pool) ? 1 : batch);
}

// Each block of images is summed into its own partial filter gradient (block 0: dfilter itself, except
// channel-major, where every partial is dW^T in scratch); the partials are added in block order at the end.
static void backprop_filter_task(void* context, size_t thread, size_t first_block, size_t end_block) {
  const conv_job* job = (const conv_job*)context;
  const f32_window_shape* s = job->s;
  const size_t pixels = (size_t)s->out_h * s->out_w, k = patch_len(s), oc = (size_t)s->out_c;
  const int pointwise = is_pointwise(s), channel_major = is_channel_major(job->ctx, s);
  float* col = pointwise ? NULL : f32_train_scratch(thread, 2, pixels * k);
  for (size_t block = first_block; block < end_block; block++) {
    float* partial = block == 0 && !channel_major ? job->dfilter : f32_train_scratch(block, 3, k * oc);
    memset(partial, 0, k * oc * sizeof(float));
    const size_t begin = (size_t)s->batch * block / job->blocks;
    const size_t end = (size_t)s->batch * (block + 1) / job->blocks;
    for (size_t n = begin; n < end; n++) {
      const float* x = job->x + n * image_in(s);
      const float* dy = job->dy + n * image_out(s);
      if (channel_major) {
        im2row(s, x, col);
        f32_sgemm_on_thread(job->ctx->gemm, thread, 1, 1, oc, k, pixels, dy, oc, col, pixels, 1.0f, partial,
                            k);
        continue;
      }
      if (!pointwise) im2col(s, x, col);
      f32_sgemm_on_thread(job->ctx->gemm, thread, 1, 0, k, oc, pixels, pointwise ? x : col, k, dy, oc, 1.0f,
                          partial, oc);
    }
  }
}

void f32_conv2d_backprop_filter(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                                const float* dy, float* dfilter) {
  size_t blocks = whittle_threadpool_threads(ctx->pool);
  if ((size_t)s->batch < blocks) blocks = 1;
  conv_job job = {ctx, s, x, NULL, NULL, dy, F32_ACT_LINEAR, NULL, NULL, dfilter, blocks};
  whittle_threadpool_parallelize(ctx->pool, backprop_filter_task, &job, blocks, 1);
  const size_t k = patch_len(s), oc = (size_t)s->out_c;
  if (is_channel_major(ctx, s)) {
    // dfilter[j][c] = sum over blocks, in order, of partial_b[c][j].
    const float* first = f32_train_scratch(0, 3, k * oc);
    for (size_t j = 0; j < k; j++)
      for (size_t c = 0; c < oc; c++) dfilter[j * oc + c] = first[c * k + j];
    for (size_t b = 1; b < blocks; b++) {
      const float* partial = f32_train_scratch(b, 3, k * oc);
      for (size_t j = 0; j < k; j++)
        for (size_t c = 0; c < oc; c++) dfilter[j * oc + c] += partial[c * k + j];
    }
    return;
  }
  for (size_t b = 1; b < blocks; b++) {
    const float* partial = f32_train_scratch(b, 3, k * oc);
    for (size_t i = 0; i < k * oc; i++) dfilter[i] += partial[i];
  }
}
