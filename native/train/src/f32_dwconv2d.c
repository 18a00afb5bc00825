// Depthwise Conv2D forward and gradients, direct loops over NHWC with the channel axis innermost so the
// compiler vectorizes it. Output channel c * multiplier + q reads input channel c and filter [ky][kx][c][q].
#include <string.h>

#include "train_internal.h"

typedef struct {
  const f32_window_shape* s;
  const float *x, *filter, *bias, *dy;
  f32_activation act;
  float *y, *dx, *dfilter;
} dw_job;

static void image_range(const f32_window_shape* s, int thread, int threads, size_t* begin, size_t* end) {
  *begin = (size_t)s->batch * (size_t)thread / (size_t)threads;
  *end = (size_t)s->batch * (size_t)(thread + 1) / (size_t)threads;
}

static void forward_task(void* context, int thread, int threads) {
  const dw_job* job = (const dw_job*)context;
  const f32_window_shape* s = job->s;
  const size_t ic = (size_t)s->in_c, oc = (size_t)s->out_c, mult = oc / ic;
  size_t begin, end;
  image_range(s, thread, threads, &begin, &end);
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

void f32_dwconv2d_forward(const f32_window_shape* s, const float* x, const float* filter, const float* bias,
                          f32_activation act, float* y) {
  dw_job job = {s, x, filter, bias, NULL, act, y, NULL, NULL};
  const int threads = f32_train_threads();
  f32_parallel(s->batch >= threads ? threads : 1, forward_task, &job);
}

static void backprop_input_task(void* context, int thread, int threads) {
  const dw_job* job = (const dw_job*)context;
  const f32_window_shape* s = job->s;
  const size_t ic = (size_t)s->in_c, oc = (size_t)s->out_c, mult = oc / ic;
  size_t begin, end;
  image_range(s, thread, threads, &begin, &end);
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

void f32_dwconv2d_backprop_input(const f32_window_shape* s, const float* dy, const float* filter, float* dx) {
  dw_job job = {s, NULL, filter, NULL, dy, F32_ACT_LINEAR, NULL, dx, NULL};
  const int threads = f32_train_threads();
  f32_parallel(s->batch >= threads ? threads : 1, backprop_input_task, &job);
}

static void backprop_filter_task(void* context, int thread, int threads) {
  const dw_job* job = (const dw_job*)context;
  const f32_window_shape* s = job->s;
  const size_t ic = (size_t)s->in_c, oc = (size_t)s->out_c, mult = oc / ic;
  const size_t size = (size_t)s->filter_h * s->filter_w * oc;
  float* partial = thread == 0 ? job->dfilter : f32_scratch(thread, 3, size);
  memset(partial, 0, size * sizeof(float));
  size_t begin, end;
  image_range(s, thread, threads, &begin, &end);
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

void f32_dwconv2d_backprop_filter(const f32_window_shape* s, const float* x, const float* dy,
                                  float* dfilter) {
  dw_job job = {s, x, NULL, NULL, dy, F32_ACT_LINEAR, NULL, NULL, dfilter};
  int threads = f32_train_threads();
  if (s->batch < threads) threads = 1;
  f32_parallel(threads, backprop_filter_task, &job);
  const size_t size = (size_t)s->filter_h * s->filter_w * (size_t)s->out_c;
  for (int t = 1; t < threads; t++) {
    const float* partial = f32_scratch(t, 3, size);
    for (size_t i = 0; i < size; i++) dfilter[i] += partial[i];
  }
}
