// Kernel micro-benchmark (a program, not a test): GOPS of the fp32 and int8 conv / fully-connected paths on
// the shapes of issue 3, for every ISA level this CPU supports, at 1 and 2 threads. Prints the CPU's
// features first and one row per shape x format x ISA x threads. Operations are 2 * MACs.
// Usage: kernels_bench [seconds per measurement, default 0.3]
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/f32_ops.h"
#include "../src/qs8_ops.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct {
  const char* name;
  whittle_conv2d_shape s;
} bench_shape;

static const bench_shape shapes[] = {
    {"lenet conv2 6->16 5x5 14x14", {1, 14, 14, 6, 16, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
    {"mobilenet pointwise 128->128 12x12", {1, 12, 12, 128, 128, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
    {"depthwise 3x3 128 12x12", {1, 12, 12, 128, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 128}},
    {"vgg 64->64 3x3 16x16", {1, 16, 16, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
    {"fc 400->120", {1, 1, 1, 400, 120, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
    {"fc 2048->10", {1, 1, 1, 2048, 10, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
};

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? atof(argv[1]) : 0.3;
  char features[256];
  whittle_cpu_features_describe(features, sizeof(features));
  printf("cpu features: %s\n", features);
  printf("%-36s %-6s %-14s %-7s %9s  %s\n", "shape", "format", "isa", "threads", "GOPS", "kernel");
  whittle_threadpool* pools[2] = {whittle_threadpool_create(1), whittle_threadpool_create(2)};
  for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
    const whittle_conv2d_shape* s = &shapes[si].s;
    const size_t oh = whittle_conv2d_output_height(s), ow = whittle_conv2d_output_width(s);
    const size_t in_n = s->batch * s->input_height * s->input_width * s->input_channels;
    const size_t out_n = s->batch * oh * ow * s->output_channels;
    const size_t k = s->kernel_height * s->kernel_width * (s->input_channels / s->groups);
    const size_t w_n = s->output_channels * k;
    const double ops = 2.0 * (double)out_n * (double)k;
    int8_t* in8 = calloc(in_n, 1);
    int8_t* w8 = calloc(w_n, 1);
    int8_t* out8 = calloc(out_n, 1);
    float* in32 = calloc(in_n, sizeof(float));
    float* w32 = calloc(w_n, sizeof(float));
    float* out32 = calloc(out_n, sizeof(float));
    int32_t* bias = calloc(s->output_channels, sizeof(int32_t));
    int32_t* multipliers = calloc(s->output_channels, sizeof(int32_t));
    int32_t* shifts = calloc(s->output_channels, sizeof(int32_t));
    for (size_t i = 0; i < in_n; i++) in8[i] = (int8_t)(i * 7), in32[i] = (float)(i % 13) * 0.1f;
    for (size_t i = 0; i < w_n; i++) w8[i] = (int8_t)(i * 5), w32[i] = (float)(i % 7) * 0.1f;
    for (size_t o = 0; o < s->output_channels; o++) multipliers[o] = 1 << 30, shifts[o] = -8;
    const qs8_activation_quantization q = {false, 0, 0, -128, 127};
    for (int level = 0; level < WHITTLE_ISA_COUNT; level++) {
      if (!whittle_isa_supported((whittle_isa)level)) continue;
      qs8_conv2d_op* op8 = qs8_conv2d_create(s, w8, bias, multipliers, shifts, &q, (whittle_isa)level);
      f32_conv2d_op* op32 = f32_conv2d_create(s, w32, NULL, -1e30f, 1e30f, (whittle_isa)level);
      for (size_t p = 0; p < 2; p++) {
        for (int format = 0; format < 2; format++) {
          size_t iterations = 0;
          const double start = now();
          double elapsed;
          do {
            if (format == 0) {
              f32_conv2d_run(op32, in32, out32, pools[p]);
            } else {
              qs8_conv2d_run(op8, in8, out8, pools[p]);
            }
            iterations++;
          } while ((elapsed = now() - start) < seconds);
          printf("%-36s %-6s %-14s %-7zu %9.2f  %s\n", shapes[si].name, format == 0 ? "fp32" : "int8",
                 whittle_isa_name((whittle_isa)level), p + 1, ops * (double)iterations / elapsed / 1e9,
                 format == 0 ? f32_conv2d_kernel_name(op32) : qs8_conv2d_kernel_name(op8));
        }
      }
      qs8_conv2d_destroy(op8);
      f32_conv2d_destroy(op32);
    }
    free(in8);
    free(w8);
    free(out8);
    free(in32);
    free(w32);
    free(out32);
    free(bias);
    free(multipliers);
    free(shifts);
  }
  whittle_threadpool_destroy(pools[0]);
  whittle_threadpool_destroy(pools[1]);
  return 0;
}
