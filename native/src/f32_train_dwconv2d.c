// Depthwise Conv2D forward and gradients, direct loops over NHWC with the channel axis innermost so the
// compiler vectorizes it. Output channel c * multiplier + q reads input channel c and filter [ky][kx][c][q].
#include <string.h>

#include "f32_train_ops.h"

typedef struct {
  const f32_window_shape* s;
  const float *x, *filter, *bias, *dy;
  f32_activation act;
  float *y, *dx, *dfilter;
  size_t blocks;  // filter gradient: blocks of images, one partial each (added in block order)
} dw_job;

// Images one at a time on the pool; with fewer images than threads, all on the calling thread.
static void run_images(const f32_train_context* ctx, const f32_window_shape* s, whittle_task_fn task,
                       dw_job* job) {
  const size_t batch = (size_t)s->batch;
  whittle_threadpool_parallelize(ctx->pool, task, job, batch,
                                 batch >= whittle_threadpool_threads(ctx->pool) ? 1 : batch);
}

static void forward_task(void* context, size_t thread, size_t begin, size_t end) {
  (void)thread;
  const dw_job* job = (const dw_job*)context;
  const f32_window_shape* s = job->s;
  const size_t ic = (size_t)s->in_c, oc = (size_t)s->out_c, mult = oc / ic;
  for (size_t n = begin; n < end; n++) {
    const float* x = job->x + n * (size_t)s->in_h * s->in_w * ic;
    float* y = job->y + n * (size_t)s->out_h * s->out_w * oc;
    for (int oy = 0; oy < s->out_h; oy++) {
      for (int ox = 0; ox < s->out_w; ox++) {
        float* out = y + ((size_t)oy * s->out_w + ox) * oc;
        memset(out, 0, oc * sizeof(float));
        for (int ky = 0; ky < s->filter_h; ky++) {
          const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
          if (iy < 0 || iy >= s->in_h) continue;
          for (int kx = 0; kx < s->filter_w; kx++) {
            const int ix = ox * s->stride_w - s->pad_left + kx * s->dilation_w;
            if (ix < 0 || ix >= s->in_w) continue;
            const float* in = x + ((size_t)iy * s->in_w + ix) * ic;
            const float* f = job->filter + ((size_t)ky * s->filter_w + kx) * oc;
            if (mult == 1) {
              for (size_t c = 0; c < ic; c++) out[c] += in[c] * f[c];
            } else {
              for (size_t c = 0; c < ic; c++)
                for (size_t q = 0; q < mult; q++) out[c * mult + q] += in[c] * f[c * mult + q];
            }
          }
        }
      }
    }
    f32_bias_activation(y, (size_t)s->out_h * s->out_w, oc, job->bias, job->act);
  }
}

void f32_dwconv2d_forward(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                          const float* filter, const float* bias, f32_activation act, float* y) {
  dw_job job = {s, x, filter, bias, NULL, act, y, NULL, NULL, 1};
  run_images(ctx, s, forward_task, &job);
}

static void backprop_input_task(void* context, size_t thread, size_t begin, size_t end) {
  (void)thread;
  const dw_job* job = (const dw_job*)context;
  const f32_window_shape* s = job->s;
  const size_t ic = (size_t)s->in_c, oc = (size_t)s->out_c, mult = oc / ic;
  for (size_t n = begin; n < end; n++) {
    const float* dy = job->dy + n * (size_t)s->out_h * s->out_w * oc;
    float* dx = job->dx + n * (size_t)s->in_h * s->in_w * ic;
    memset(dx, 0, (size_t)s->in_h * s->in_w * ic * sizeof(float));
    for (int oy = 0; oy < s->out_h; oy++) {
      for (int ox = 0; ox < s->out_w; ox++) {
        const float* g = dy + ((size_t)oy * s->out_w + ox) * oc;
        for (int ky = 0; ky < s->filter_h; ky++) {
          const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
          if (iy < 0 || iy >= s->in_h) continue;
          for (int kx = 0; kx < s->filter_w; kx++) {
            const int ix = ox * s->stride_w - s->pad_left + kx * s->dilation_w;
            if (ix < 0 || ix >= s->in_w) continue;
            float* d = dx + ((size_t)iy * s->in_w + ix) * ic;
            const float* f = job->filter + ((size_t)ky * s->filter_w + kx) * oc;
            if (mult == 1) {
              for (size_t c = 0; c < ic; c++) d[c] += g[c] * f[c];
            } else {
              for (size_t c = 0; c < ic; c++)
                for (size_t q = 0; q < mult; q++) d[c] += g[c * mult + q] * f[c * mult + q];
            }
          }
        }
      }
    }
  }
}

void f32_dwconv2d_backprop_input(const f32_train_context* ctx, const f32_window_shape* s, const float* dy,
                                 const float* filter, float* dx) {
  dw_job job = {s, NULL, filter, NULL, dy, F32_ACT_LINEAR, NULL, dx, NULL, 1};
  run_images(ctx, s, backprop_input_task, &job);
}

static void backprop_filter_block(const dw_job* job, size_t block) {
  const f32_window_shape* s = job->s;
  const size_t ic = (size_t)s->in_c, oc = (size_t)s->out_c, mult = oc / ic;
  const size_t size = (size_t)s->filter_h * s->filter_w * oc;
  float* partial = block == 0 ? job->dfilter : f32_train_scratch(block, 3, size);
  memset(partial, 0, size * sizeof(float));
  const size_t begin = (size_t)s->batch * block / job->blocks;
  const size_t end = (size_t)s->batch * (block + 1) / job->blocks;
  for (size_t n = begin; n < end; n++) {
    const float* x = job->x + n * (size_t)s->in_h * s->in_w * ic;
    const float* dy = job->dy + n * (size_t)s->out_h * s->out_w * oc;
    for (int oy = 0; oy < s->out_h; oy++) {
      for (int ox = 0; ox < s->out_w; ox++) {
        const float* g = dy + ((size_t)oy * s->out_w + ox) * oc;
        for (int ky = 0; ky < s->filter_h; ky++) {
          const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
          if (iy < 0 || iy >= s->in_h) continue;
          for (int kx = 0; kx < s->filter_w; kx++) {
            const int ix = ox * s->stride_w - s->pad_left + kx * s->dilation_w;
            if (ix < 0 || ix >= s->in_w) continue;
            const float* in = x + ((size_t)iy * s->in_w + ix) * ic;
            float* df = partial + ((size_t)ky * s->filter_w + kx) * oc;
            if (mult == 1) {
              for (size_t c = 0; c < ic; c++) df[c] += in[c] * g[c];
            } else {
              for (size_t c = 0; c < ic; c++)
                for (size_t q = 0; q < mult; q++) df[c * mult + q] += in[c] * g[c * mult + q];
            }
          }
        }
      }
    }
  }
}

static void backprop_filter_task(void* context, size_t thread, size_t first_block, size_t end_block) {
  (void)thread;
  for (size_t block = first_block; block < end_block; block++) backprop_filter_block(context, block);
}

void f32_dwconv2d_backprop_filter(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                                  const float* dy, float* dfilter) {
  size_t blocks = whittle_threadpool_threads(ctx->pool);
  if ((size_t)s->batch < blocks) blocks = 1;
  dw_job job = {s, x, NULL, NULL, dy, F32_ACT_LINEAR, NULL, NULL, dfilter, blocks};
  whittle_threadpool_parallelize(ctx->pool, backprop_filter_task, &job, blocks, 1);
  const size_t size = (size_t)s->filter_h * s->filter_w * (size_t)s->out_c;
  for (size_t b = 1; b < blocks; b++) {
    const float* partial = f32_train_scratch(b, 3, size);
    for (size_t i = 0; i < size; i++) dfilter[i] += partial[i];
  }
}
