// Max and average pooling, forward and gradients, NHWC, channel axis innermost. Semantics follow
// TensorFlow.js's cpu kernels so the two backends agree: a max gradient goes to the first maximum of the
// window in row-major order; the average counts only cells inside the input, while its gradient divides
// by the full window size (tfjs's AvgPoolGrad does the same).
#include <math.h>
#include <string.h>

#include "f32_train_ops.h"

// The input rows [lo, hi) the pooling window of output row `out` covers, padded rows excluded (or the
// columns of output column `out`, given the width's stride, padding, filter and input size).
typedef struct {
  int lo, hi;
} window_span;

static inline window_span span(int out, int stride, int pad, int filter, int in) {
  const int first = out * stride - pad;
  const window_span w = {first < 0 ? 0 : first, first + filter > in ? in : first + filter};
  return w;
}

typedef struct {
  const f32_window_shape* s;
  const float *x, *dy;
  float *y, *dx;
  int max;
} pool_job;

static void forward_task(void* context, size_t thread, size_t begin, size_t end) {
  const pool_job* job = (const pool_job*)context;
  const f32_window_shape* s = job->s;
  const size_t c = (size_t)s->in_c;
  (void)thread;
  for (size_t n = begin; n < end; n++) {
    const float* x = job->x + n * (size_t)s->in_h * s->in_w * c;
    float* y = job->y + n * (size_t)s->out_h * s->out_w * c;
    for (int oy = 0; oy < s->out_h; oy++) {
      const window_span rows = span(oy, s->stride_h, s->pad_top, s->filter_h, s->in_h);
      const int ylo = rows.lo, yhi = rows.hi;
      for (int ox = 0; ox < s->out_w; ox++) {
        const window_span cols = span(ox, s->stride_w, s->pad_left, s->filter_w, s->in_w);
        const int xlo = cols.lo, xhi = cols.hi;
        float* out = y + ((size_t)oy * s->out_w + ox) * c;
        for (size_t ch = 0; ch < c; ch++) out[ch] = job->max ? -INFINITY : 0.0f;
        for (int iy = ylo; iy < yhi; iy++) {
          for (int ix = xlo; ix < xhi; ix++) {
            const float* in = x + ((size_t)iy * s->in_w + ix) * c;
            if (job->max) {
              for (size_t ch = 0; ch < c; ch++) out[ch] = in[ch] > out[ch] ? in[ch] : out[ch];
            } else {
              for (size_t ch = 0; ch < c; ch++) out[ch] += in[ch];
            }
          }
        }
        if (!job->max) {
          const float scale = 1.0f / (float)((yhi - ylo) * (xhi - xlo));
          for (size_t ch = 0; ch < c; ch++) out[ch] *= scale;
        }
      }
    }
  }
}

static void max_backward_task(void* context, size_t thread, size_t begin, size_t end) {
  const pool_job* job = (const pool_job*)context;
  const f32_window_shape* s = job->s;
  const size_t c = (size_t)s->in_c;
  (void)thread;
  for (size_t n = begin; n < end; n++) {
    const float* x = job->x + n * (size_t)s->in_h * s->in_w * c;
    const float* dy = job->dy + n * (size_t)s->out_h * s->out_w * c;
    float* dx = job->dx + n * (size_t)s->in_h * s->in_w * c;
    memset(dx, 0, (size_t)s->in_h * s->in_w * c * sizeof(float));
    for (int oy = 0; oy < s->out_h; oy++) {
      const window_span rows = span(oy, s->stride_h, s->pad_top, s->filter_h, s->in_h);
      const int ylo = rows.lo, yhi = rows.hi;
      for (int ox = 0; ox < s->out_w; ox++) {
        const window_span cols = span(ox, s->stride_w, s->pad_left, s->filter_w, s->in_w);
        const int xlo = cols.lo, xhi = cols.hi;
        const float* g = dy + ((size_t)oy * s->out_w + ox) * c;
        for (size_t ch = 0; ch < c; ch++) {
          float best = -INFINITY;
          size_t at = (size_t)-1;
          for (int iy = ylo; iy < yhi; iy++)
            for (int ix = xlo; ix < xhi; ix++) {
              const size_t i = ((size_t)iy * s->in_w + ix) * c + ch;
              if (x[i] > best) {
                best = x[i];
                at = i;
              }
            }
          if (at != (size_t)-1) dx[at] += g[ch];
        }
      }
    }
  }
}

static void avg_backward_task(void* context, size_t thread, size_t begin, size_t end) {
  const pool_job* job = (const pool_job*)context;
  const f32_window_shape* s = job->s;
  const size_t c = (size_t)s->in_c;
  const float scale = 1.0f / (float)(s->filter_h * s->filter_w);
  (void)thread;
  for (size_t n = begin; n < end; n++) {
    const float* dy = job->dy + n * (size_t)s->out_h * s->out_w * c;
    float* dx = job->dx + n * (size_t)s->in_h * s->in_w * c;
    memset(dx, 0, (size_t)s->in_h * s->in_w * c * sizeof(float));
    for (int oy = 0; oy < s->out_h; oy++) {
      const window_span rows = span(oy, s->stride_h, s->pad_top, s->filter_h, s->in_h);
      const int ylo = rows.lo, yhi = rows.hi;
      for (int ox = 0; ox < s->out_w; ox++) {
        const window_span cols = span(ox, s->stride_w, s->pad_left, s->filter_w, s->in_w);
        const int xlo = cols.lo, xhi = cols.hi;
        const float* g = dy + ((size_t)oy * s->out_w + ox) * c;
        for (int iy = ylo; iy < yhi; iy++)
          for (int ix = xlo; ix < xhi; ix++) {
            float* d = dx + ((size_t)iy * s->in_w + ix) * c;
            for (size_t ch = 0; ch < c; ch++) d[ch] += g[ch] * scale;
          }
      }
    }
  }
}

// Images one at a time on the pool; with fewer images than threads, all on the calling thread.
static void run(const f32_train_context* ctx, const f32_window_shape* s, whittle_task_fn task,
                pool_job* job) {
  const size_t batch = (size_t)s->batch;
  whittle_threadpool_parallelize(ctx->pool, task, job, batch,
                                 batch >= whittle_threadpool_threads(ctx->pool) ? 1 : batch);
}

void f32_maxpool_forward(const f32_train_context* ctx, const f32_window_shape* s, const float* x, float* y) {
  pool_job job = {s, x, NULL, y, NULL, 1};
  run(ctx, s, forward_task, &job);
}

void f32_maxpool_backward(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                          const float* dy, float* dx) {
  pool_job job = {s, x, dy, NULL, dx, 1};
  run(ctx, s, max_backward_task, &job);
}

void f32_avgpool_forward(const f32_train_context* ctx, const f32_window_shape* s, const float* x, float* y) {
  pool_job job = {s, x, NULL, y, NULL, 0};
  run(ctx, s, forward_task, &job);
}

void f32_avgpool_backward(const f32_train_context* ctx, const f32_window_shape* s, const float* dy,
                          float* dx) {
  pool_job job = {s, NULL, dy, NULL, dx, 0};
  run(ctx, s, avg_backward_task, &job);
}
