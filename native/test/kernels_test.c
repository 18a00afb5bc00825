// Kernel test driver: every fp32 and int8 operator, on every ISA level this CPU supports, against the plain
// __reference functions, on fixed-seed random data and edge-case shapes (1x1, odd sizes, channel counts
// that are not multiples of any SIMD width, padding, stride 2, dilation, groups, depthwise, batch > 1), with
// 1 and 3 threads. int8 must be bit-exact; fp32 within 1e-5 relative (see close_enough).
//
// Usage: kernels_test [-v]. WHITTLE_ISA, when set, limits the run to that level (an unsupported value is a
// failure, as it is for the binding). The last line is "N passed, M failed"; the exit status is 1 on any
// failure.
#define _POSIX_C_SOURCE 199309L  // nanosleep

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../src/cb_conv2d.h"
#include "../src/f32_ops.h"
#include "../src/frame_source.h"
#include "../src/qs8_ops.h"
#include "../src/tern_conv2d.h"

#define TEST_RNG_SEED 0x9E3779B97F4A7C15ull
#include "test_support.h"

static void fill_bytes(void* p, size_t n) {
  for (size_t i = 0; i < n; i++) ((uint8_t*)p)[i] = (uint8_t)rand_u32();
}

// fp32 within 1e-5 relative (test_support.h); the tiny absolute term only lets exact zeros match.
DEFINE_CLOSE_ENOUGH(close_enough, float, 1e-5, 1e-30)

static bool first_difference(const void* a, const void* b, size_t n, size_t* where) {
  for (size_t i = 0; i < n; i++) {
    if (((const uint8_t*)a)[i] != ((const uint8_t*)b)[i]) {
      *where = i;
      return true;
    }
  }
  return false;
}

static const char* level_name;  // for messages
static whittle_threadpool* pools[2];
static const size_t pool_threads[2] = {1, 3};

// ---------------------------------------------------------------------------------------------------------
// Shapes

typedef struct {
  const char* name;
  whittle_conv2d_shape s;
} conv_case;

#define CONV(name, n, h, w, c, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, g) \
  {                                                                           \
    name, { n, h, w, c, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, g }       \
  }

static const conv_case conv_cases[] = {
    CONV("1x1 everything", 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("odd 3x3 pad", 1, 5, 7, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("stride 2 asym pad batch 2", 2, 8, 9, 17, 33, 3, 3, 2, 2, 1, 1, 1, 0, 1, 1, 1),
    CONV("pointwise", 1, 6, 6, 16, 16, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("pointwise odd", 2, 3, 5, 19, 45, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("pointwise stride 2", 1, 7, 7, 8, 9, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1),
    // Tiles of the 1x1 GEMM: 4 pixels (the 4-row kernel), 9 (MR + 3 rows), 9 pixels of 10 channels (the
    // narrow indirect kernel), 4 pixels with a reduction of 576.
    CONV("pointwise 2x2", 1, 2, 2, 96, 40, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("pointwise 3x3", 1, 3, 3, 48, 70, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("pointwise 3x3 narrow", 1, 3, 3, 64, 10, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("pointwise 2x2 k576", 1, 2, 2, 576, 96, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),

    // Layers of 3 and 4 output pixels: the GEMM's short variant (fn_short) for every tile, one block of 16
    // columns or fewer and a partial one.
    CONV("pointwise 2x2 c72 oc 80", 1, 2, 2, 72, 80, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("pointwise 1x3 c20 oc 12", 1, 1, 3, 20, 12, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("depthwise 3x3", 1, 7, 7, 24, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 24),
    CONV("depthwise odd stride 2 batch 2", 2, 9, 9, 37, 37, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 37),
    // The 3x3 row kernels: channel tails of every block size, paddings wider than 1 and uneven, width 1.
    CONV("depthwise 3x3 c130 stride 2 pad 2/0/1/2", 1, 6, 5, 130, 130, 3, 3, 2, 2, 1, 1, 2, 0, 1, 2, 130),
    CONV("depthwise 3x3 c64 width 1 batch 2", 2, 5, 1, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64),
    CONV("depthwise 3x3 c17 stride 1x2", 1, 7, 8, 17, 17, 3, 3, 1, 2, 1, 1, 2, 1, 0, 1, 17),
    // The VNNI row kernel by columns (stride 1 and 2): widths 2 and 3 (no interior pixel), pad 0 and 2.
    CONV("depthwise 3x3 c96 width 2", 1, 2, 2, 96, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 96),
    CONV("depthwise 3x3 c40 stride 2 width 3 pad 2", 1, 7, 3, 40, 40, 3, 3, 2, 2, 1, 1, 2, 2, 2, 2, 40),
    CONV("depthwise 3x3 c33 width 9 no pad", 1, 5, 9, 33, 33, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 33),
    // 16 channels at stride 1 (the AVX-512 VNNI row kernel computes two pixels per vector): widths around
    // its steps of 4 pixels, with and without padding.
    CONV("depthwise 3x3 c16 width 11", 1, 5, 11, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 16),
    CONV("depthwise 3x3 c16 width 8 no pad", 2, 4, 8, 16, 16, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 16),
    CONV("depthwise 3x3 c16 width 6 pad 2/1/0/2", 1, 5, 6, 16, 16, 3, 3, 1, 1, 1, 1, 2, 1, 0, 2, 16),
    CONV("depthwise 5x5 c40", 1, 8, 8, 40, 40, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 40),
    // 9 pixels: the depthwise kernel's 4-pixel passes and a 1-pixel rest, a tail block of 8 channels.
    CONV("depthwise 5x5 c72 stride 2 3x3 out", 1, 5, 5, 72, 72, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 72),
    CONV("depthwise c3 no pad", 1, 4, 5, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 3),
    CONV("depthwise multiplier 2", 1, 6, 6, 8, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8),
    CONV("groups 4 dilation 2", 1, 10, 10, 12, 24, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 4),
    CONV("groups 3 odd", 2, 5, 6, 9, 15, 2, 3, 1, 2, 1, 1, 0, 1, 1, 0, 3),
    // Narrow groups run as one dense conv with zero blocks (qs8: the ShuffleNet channel split, 2 inputs and
    // 1 output per group), wide ones per group: both forms on every ISA.
    CONV("shufflenet split g24 1x1", 1, 8, 8, 48, 24, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 24),
    CONV("wide groups g4 1x1", 1, 5, 5, 128, 128, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 4),
    CONV("narrow groups g8 3x3 stride 2", 2, 7, 6, 16, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 8),
    // Grouped kxk convs on the indirect GEMM, one kernel call per group and tile: RegNet's groups of 16
    // (the narrow kernel of <= 16 columns), wider groups (the full-width kernel), odd group widths (singles,
    // column tails), stride 2 and asymmetric padding.
    CONV("regnet groups g4 c16 3x3", 1, 8, 8, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4),
    CONV("regnet groups g10 c16 3x3 stride 2", 1, 9, 9, 160, 160, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 10),
    CONV("groups g3 c24 3x3 batch 2", 2, 5, 6, 72, 72, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3),
    CONV("groups g5 c3 oc 7 pad 1/0/0/1", 1, 6, 6, 15, 35, 3, 3, 1, 1, 1, 1, 1, 0, 0, 1, 5),
    CONV("groups g2 c40 oc 48 5x5 stride 2", 1, 9, 9, 80, 96, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 2),
    CONV("lenet conv2", 1, 14, 14, 6, 16, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("wide N tail", 1, 4, 4, 67, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    // Layers of at most 4 output pixels (ResNet-18's last stage at 2 x 2) run the indirect GEMM's short
    // variant: full and narrow (<= 16) column blocks, and one call per group.
    CONV("short tiles 2x2 3x3", 1, 2, 2, 72, 80, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("short tiles g2 3x3 stride 2", 1, 2, 5, 64, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2),
    // Layers whose pixels read much padding skip those taps (VNNI: the IGEMM over real taps only, with a
    // correction per pixel class): ResNet-18's 2 x 2 and 4 x 4 stages, stride 2, tiles crossing images,
    // dilation (one segment per tap), a 5x5 kernel with uneven padding, a column tail.
    CONV("real taps 2x2 c64 oc 48", 1, 2, 2, 64, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("real taps 4x4 c32 oc 40", 1, 4, 4, 32, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("real taps 4x4 -> 2x2 stride 2 c64", 1, 4, 4, 64, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1),
    CONV("real taps 3x3 batch 3 c16 oc 24", 3, 3, 3, 16, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("real taps dilation 2 c8 oc 20", 1, 4, 4, 8, 20, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1),
    CONV("real taps 5x5 pad 2/1/2/3 c12 oc 33", 1, 3, 4, 12, 33, 5, 5, 1, 1, 1, 1, 2, 1, 2, 3, 1),
    CONV("large pad", 1, 3, 3, 5, 7, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 1),
    CONV("kernel 1x7", 1, 5, 9, 4, 6, 1, 7, 1, 1, 1, 1, 0, 3, 0, 3, 1),
    CONV("mobilenet pointwise", 1, 12, 12, 128, 128, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("vgg-ish", 1, 8, 8, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    // Winograd F(2x2, 3x3) (3x3 stride 1, >= 16 channels, >= 16 tiles of 2x2 outputs): odd output sizes (edge
    // tiles of 1 pixel), paddings 0-2 and uneven, channel tails, batches crossing tile blocks, 1-pixel
    // images; 15 channels and 15 tiles take the indirect GEMM.
    CONV("winograd c17 oc 33 odd 7x5 batch 3", 3, 7, 5, 17, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("winograd c16 oc 16 no pad 11x10 batch 2", 2, 11, 10, 16, 16, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("winograd c40 oc 70 pad 2/0/1/2", 2, 6, 7, 40, 70, 3, 3, 1, 1, 1, 1, 2, 0, 1, 2, 1),
    CONV("winograd c24 oc 20 1x1 out batch 16", 16, 3, 3, 24, 20, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("winograd c96 oc 48 32x30 batch 2", 2, 32, 30, 96, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("3x3 c32 oc 32 15 tiles (indirect GEMM)", 1, 10, 6, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("3x3 c15 oc 16 (indirect GEMM)", 1, 6, 6, 15, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    // Stems (1-4 input channels) and the output-channel tails of the indirect GEMM's kernels.
    CONV("lenet conv1 stem c1", 1, 28, 28, 1, 6, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    CONV("vgg stem c3 pad 1", 1, 32, 32, 3, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("mobilenet stem c3 stride 2", 1, 24, 24, 3, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1),
    CONV("stem c3 stride 2 tf same batch 2", 2, 10, 11, 3, 12, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1),
    CONV("stem c2 dilation 2 oc 40", 1, 9, 13, 2, 40, 3, 3, 1, 1, 2, 2, 2, 1, 2, 3, 1),
    CONV("stem c4 7x7 stride 2 oc 17", 2, 15, 15, 4, 17, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1),
    // The narrow (<= 16 output channels, even input channels) indirect GEMM: row tails of its 12-row tile,
    // column tails, padding, dilation and stride, one output channel.
    CONV("narrow c8 oc 9 dilation 2 stride 1x2", 2, 7, 6, 8, 9, 3, 3, 1, 2, 2, 1, 2, 1, 1, 2, 1),
    CONV("narrow c2 oc 1 pad 1", 1, 5, 5, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    CONV("narrow c6 oc 16 13 pixels", 1, 5, 7, 6, 16, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1),
    // Single (unpaired) reduction elements: odd channels, and taps a dilation apart (no pair across taps).
    CONV("narrow c5 oc 16 dilation 2 batch 2", 2, 9, 8, 5, 16, 3, 3, 1, 1, 2, 2, 1, 1, 1, 1, 1),
    CONV("narrow c1 oc 3 dilation 1x2 stride 2", 1, 11, 12, 1, 3, 3, 3, 2, 2, 1, 2, 1, 0, 0, 1, 1),
    CONV("stem c1 oc 3 wide row", 1, 5, 70, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
};

static whittle_conv2d_shape random_conv_shape(void) {
  for (;;) {
    whittle_conv2d_shape s = {0};
    s.batch = (size_t)rand_range(1, 2);
    s.input_height = (size_t)rand_range(1, 9);
    s.input_width = (size_t)rand_range(1, 9);
    s.groups = (size_t)(rand_range(0, 3) == 0 ? rand_range(2, 4) : 1);
    const bool depthwise = rand_range(0, 4) == 0;
    s.input_channels = s.groups * (size_t)rand_range(1, 20);
    s.output_channels = s.groups * (size_t)rand_range(1, 40);
    if (depthwise) {
      s.groups = s.input_channels = s.output_channels = (size_t)rand_range(1, 70);
    }
    s.kernel_height = (size_t)rand_range(1, 4);
    s.kernel_width = (size_t)rand_range(1, 4);
    s.stride_height = (size_t)rand_range(1, 3);
    s.stride_width = (size_t)rand_range(1, 3);
    s.dilation_height = (size_t)rand_range(1, 2);
    s.dilation_width = (size_t)rand_range(1, 2);
    s.padding_top = (size_t)rand_range(0, 2);
    s.padding_left = (size_t)rand_range(0, 2);
    s.padding_bottom = (size_t)rand_range(0, 2);
    s.padding_right = (size_t)rand_range(0, 2);
    if (whittle_conv2d_shape_problem(&s) == NULL) return s;
  }
}

static size_t conv_input_size(const whittle_conv2d_shape* s) {
  return s->batch * s->input_height * s->input_width * s->input_channels;
}
static size_t conv_output_size(const whittle_conv2d_shape* s) {
  return s->batch * whittle_conv2d_output_height(s) * whittle_conv2d_output_width(s) * s->output_channels;
}
static size_t conv_weight_size(const whittle_conv2d_shape* s) {
  return s->output_channels * s->kernel_height * s->kernel_width * (s->input_channels / s->groups);
}

static void describe_conv(char* buffer, size_t size, const char* name, const whittle_conv2d_shape* s) {
  snprintf(buffer, size, "%s [n%zu %zux%zux%zu -> %zu, k%zux%zu s%zux%zu d%zux%zu p%zu,%zu,%zu,%zu g%zu]",
           name, s->batch, s->input_height, s->input_width, s->input_channels, s->output_channels,
           s->kernel_height, s->kernel_width, s->stride_height, s->stride_width, s->dilation_height,
           s->dilation_width, s->padding_top, s->padding_left, s->padding_bottom, s->padding_right,
           s->groups);
}

// ---------------------------------------------------------------------------------------------------------
// fp32

static void test_f32_conv(const char* name, const whittle_conv2d_shape* s, whittle_isa level, bool fc) {
  char label[256];
  describe_conv(label, sizeof(label), name, s);
  const size_t in_n = conv_input_size(s), out_n = conv_output_size(s), w_n = conv_weight_size(s);
  float* input = xmalloc(in_n * sizeof(float));
  float* weights = xmalloc(w_n * sizeof(float));
  float* bias = xmalloc(s->output_channels * sizeof(float));
  float* want = xmalloc(out_n * sizeof(float));
  float* got = xmalloc(out_n * sizeof(float));
  fill_float(input, in_n);
  fill_float(weights, w_n);
  fill_float(bias, s->output_channels);
  const float min = rand_range(0, 1) ? -INFINITY : -0.5f, max = rand_range(0, 1) ? INFINITY : 0.75f;
  // The unclamped sums give the tolerance its scale (close_enough_around): a clamp to [-0.5, 0.75] would
  // otherwise hide that a 2048-term sum of magnitude ~10 differs from the reference by ~1e-5 in any order.
  float* unclamped = xmalloc(out_n * sizeof(float));
  if (fc) {
    f32_fully_connected__reference(s->batch, s->input_channels, s->output_channels, input, weights, bias, min,
                                   max, want);
    f32_fully_connected__reference(s->batch, s->input_channels, s->output_channels, input, weights, bias,
                                   -INFINITY, INFINITY, unclamped);
  } else {
    f32_conv2d__reference(s, input, weights, bias, min, max, want);
    f32_conv2d__reference(s, input, weights, bias, -INFINITY, INFINITY, unclamped);
  }
  f32_conv2d_op* op = fc ? f32_fully_connected_create(s->batch, s->input_channels, s->output_channels,
                                                      weights, bias, min, max, level)
                         : f32_conv2d_create(s, weights, bias, min, max, level);
  if (op == NULL) {
    report(false, "f32 %s %s: create failed", fc ? "fully_connected" : "conv2d", label);
  } else {
    for (size_t p = 0; p < 2; p++) {
      for (size_t i = 0; i < out_n; i++) got[i] = NAN;
      const bool ran = f32_conv2d_run(op, input, got, pools[p]);
      size_t where = 0;
      const bool ok = ran && close_enough_around(got, want, unclamped, out_n, &where);
      report(ok, "f32 %s %s %s threads=%zu %s%s", fc ? "fully_connected" : "conv2d", level_name,
             f32_conv2d_kernel_name(op), pool_threads[p], label, ok ? "" : " (mismatch)");
      if (!ok && ran) printf("     at %zu: got %.9g want %.9g\n", where, got[where], want[where]);
    }
    f32_conv2d_destroy(op);
  }
  free(input);
  free(weights);
  free(bias);
  free(want);
  free(unclamped);
  free(got);
}

static const whittle_pool2d_shape pool_cases[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
    {1, 8, 8, 16, 2, 2, 2, 2, 0, 0, 0, 0},
    {2, 7, 9, 33, 3, 3, 2, 2, 1, 1, 1, 1},
    {1, 5, 5, 300, 3, 3, 1, 1, 1, 1, 1, 1},
    {1, 6, 7, 5, 3, 2, 3, 1, 2, 0, 1, 1},
    {3, 4, 4, 7, 4, 4, 1, 1, 0, 0, 0, 0},
    // LeNet-5's pool1; 3x3 stride 2 with symmetric and with TF "same" padding; a stride past the window;
    // rows wider than the by-rows max pool's buffers (chunks of output pixels), and a window whose pixels
    // do not fit them (chunks of channels).
    {1, 24, 24, 6, 2, 2, 2, 2, 0, 0, 0, 0},
    {1, 47, 47, 16, 3, 3, 2, 2, 1, 1, 1, 1},
    {2, 48, 48, 3, 3, 3, 2, 2, 0, 0, 1, 1},
    {1, 9, 10, 3, 2, 2, 3, 3, 0, 0, 0, 0},
    {1, 4, 9, 2, 5, 3, 1, 3, 2, 2, 2, 2},
    {1, 2, 700, 9, 2, 2, 2, 2, 0, 0, 0, 0},
    {1, 3, 5, 3000, 3, 3, 2, 2, 1, 1, 1, 1},
    // Ceil mode as the runtime passes it (a larger bottom / right padding, the last window part outside):
    // GoogLeNet's 3x3 stride 2 over 112 (55 -> 56 outputs) and a 2x2 stride 2 over an odd size.
    {1, 112, 112, 8, 3, 3, 2, 2, 0, 0, 1, 1},
    {2, 7, 5, 3, 2, 2, 2, 2, 0, 0, 1, 1},
    // ResNet's 3x3 stride-2 pool (64 channels), GoogLeNet's ceil-mode ones over 192 and 832 channels, and
    // its 3x3 stride-1 branch pool.
    {1, 32, 32, 64, 3, 3, 2, 2, 1, 1, 1, 1},
    {1, 16, 16, 192, 3, 3, 2, 2, 0, 0, 1, 1},
    {1, 5, 5, 832, 2, 2, 2, 2, 0, 0, 1, 1},
    {1, 8, 8, 480, 3, 3, 1, 1, 1, 1, 1, 1},
};

static void test_f32_simple(whittle_isa level) {
  const f32_simple_ukernels* k = f32_simple_ukernels_select(level);
  for (size_t c = 0; c < sizeof(pool_cases) / sizeof(pool_cases[0]); c++) {
    const whittle_pool2d_shape* s = &pool_cases[c];
    const size_t in_n = s->batch * s->input_height * s->input_width * s->channels;
    const size_t out_n =
        s->batch * whittle_pool2d_output_height(s) * whittle_pool2d_output_width(s) * s->channels;
    float* input = xmalloc(in_n * sizeof(float));
    float* want = xmalloc(out_n * sizeof(float));
    float* got = xmalloc(out_n * sizeof(float));
    fill_float(input, in_n);
    size_t where = 0;
    // Max is exact, NaNs included (the reference never takes one): bit-exact against the reference.
    float* with_nans = xmalloc(in_n * sizeof(float));
    memcpy(with_nans, input, in_n * sizeof(float));
    for (size_t i = 0; i < in_n; i += 17) with_nans[i] = NAN;
    f32_maxpool__reference(s, with_nans, want, -0.9f, 0.9f);
    f32_maxpool(s, with_nans, got, -0.9f, 0.9f, level);
    report(!first_difference(got, want, out_n * sizeof(float), &where), "f32 maxpool %s %s case %zu",
           level_name, k->name, c);
    free(with_nans);
    f32_avgpool__reference(s, input, want, -INFINITY, INFINITY);
    f32_avgpool(s, input, got, -INFINITY, INFINITY, level);
    report(close_enough(got, want, out_n, &where), "f32 avgpool %s %s case %zu", level_name, k->name, c);
    whittle_pool2d_shape padded = *s;  // ONNX count_include_pad: the padded positions count as zeros
    padded.count_padding = true;
    f32_avgpool__reference(&padded, input, want, -INFINITY, INFINITY);
    f32_avgpool(&padded, input, got, -INFINITY, INFINITY, level);
    report(close_enough(got, want, out_n, &where), "f32 avgpool %s %s case %zu, count_padding", level_name,
           k->name, c);
    free(input);
    free(want);
    free(got);
  }
  const size_t gap_cases[][3] = {{1, 1, 1}, {2, 49, 37}, {1, 144, 128}};
  for (size_t c = 0; c < 3; c++) {
    const size_t b = gap_cases[c][0], px = gap_cases[c][1], ch = gap_cases[c][2];
    float* input = xmalloc(b * px * ch * sizeof(float));
    float* want = xmalloc(b * ch * sizeof(float));
    float* got = xmalloc(b * ch * sizeof(float));
    fill_float(input, b * px * ch);
    f32_global_avgpool__reference(b, px, ch, input, want, -INFINITY, INFINITY);
    f32_global_avgpool(b, px, ch, input, got, -INFINITY, INFINITY, level);
    size_t where = 0;
    report(close_enough(got, want, b * ch, &where), "f32 global_avgpool %s %s case %zu", level_name, k->name,
           c);
    free(input);
    free(want);
    free(got);
  }
  const size_t lengths[] = {1, 7, 33, 1000};
  for (size_t c = 0; c < 4; c++) {
    const size_t n = lengths[c];
    float* a = xmalloc(n * sizeof(float));
    float* b = xmalloc(n * sizeof(float));
    float* want = xmalloc(n * sizeof(float));
    float* got = xmalloc(n * sizeof(float));
    fill_float(a, n);
    fill_float(b, n);
    size_t where = 0;
    f32_add__reference(n, a, b, want, -1.5f, 1.5f);
    f32_add(n, a, b, got, -1.5f, 1.5f, level);
    report(close_enough(got, want, n, &where), "f32 add %s %s n=%zu", level_name, k->name, n);
    f32_clamp__reference(n, a, want, 0.0f, INFINITY);  // ReLU
    f32_clamp(n, a, got, 0.0f, INFINITY, level);
    report(memcmp(got, want, n * sizeof(float)) == 0, "f32 relu %s %s n=%zu", level_name, k->name, n);
    for (size_t i = 0; i < n; i++) a[i] *= 10.0f;
    f32_clamp__reference(n, a, want, 0.0f, 6.0f);  // ReLU6
    f32_clamp(n, a, got, 0.0f, 6.0f, level);
    report(memcmp(got, want, n * sizeof(float)) == 0, "f32 relu6 %s %s n=%zu", level_name, k->name, n);
    const size_t rows = n >= 33 ? 3 : 1, channels = n / rows;
    f32_softmax__reference(rows, channels, a, want);
    f32_softmax(rows, channels, a, got, level);
    report(close_enough(got, want, rows * channels, &where), "f32 softmax %s %s %zux%zu", level_name, k->name,
           rows, channels);
    // a spans about [-10, 10] here: both saturated ends of the gates and the linear part between.
    f32_sigmoid__reference(n, a, want);
    f32_sigmoid(n, a, got, level);
    report(close_enough(got, want, n, &where), "f32 sigmoid %s %s n=%zu", level_name, k->name, n);
    for (int swish = 0; swish < 2; swish++) {
      f32_hard_sigmoid__reference(n, a, want, 1.0f / 6.0f, 0.5f, swish);
      f32_hard_sigmoid(n, a, got, 1.0f / 6.0f, 0.5f, swish, level);
      report(close_enough(got, want, n, &where), "f32 %s %s %s n=%zu", swish ? "hard_swish" : "hard_sigmoid",
             level_name, k->name, n);
    }
    for (int tanh_form = 0; tanh_form < 2; tanh_form++) {
      f32_gelu__reference(n, a, want, tanh_form);
      f32_gelu(n, a, got, tanh_form, level);
      report(close_enough(got, want, n, &where), "f32 gelu%s %s %s n=%zu", tanh_form ? " (tanh)" : "",
             level_name, k->name, n);
    }
    // Rows of 96 channels (ConvNeXt's first stage) and of n, the scale in b and a bias (or none) in a; the
    // values shifted by 100. Bit-exact (both in double, in one order).
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      const size_t norm_channels = n >= 96 ? 96 : n, norm_rows = n / norm_channels;
      for (size_t i = 0; i < norm_rows * norm_channels; i++) want[i] = a[i] + 100.0f;
      float* shifted = xmalloc(n * sizeof(float));
      memcpy(shifted, want, norm_rows * norm_channels * sizeof(float));
      const float* bias = with_bias ? a : NULL;
      f32_layer_norm__reference(norm_rows, norm_channels, shifted, b, bias, 1e-6, want);
      f32_layer_norm(norm_rows, norm_channels, shifted, b, bias, 1e-6, got, level);
      report(memcmp(got, want, norm_rows * norm_channels * sizeof(float)) == 0,
             "f32 layer_norm %s %s %zux%zu bias %d", level_name, k->name, norm_rows, norm_channels,
             with_bias);
      free(shifted);
    }
    // The SE block's N x H x W x C times N x 1 x 1 x C, and one shape times itself (rows = pixels = 1).
    const size_t mul_rows = n >= 33 ? 3 : 1, mul_channels = n >= 33 ? 11 : n,
                 pixels = n / (mul_rows * mul_channels);
    f32_mul_channels__reference(mul_rows, pixels, mul_channels, a, b, want);
    f32_mul_channels(mul_rows, pixels, mul_channels, a, b, got, level);
    report(memcmp(got, want, mul_rows * pixels * mul_channels * sizeof(float)) == 0,
           "f32 mul_channels %s %s %zux%zux%zu", level_name, k->name, mul_rows, pixels, mul_channels);
    f32_mul_channels__reference(1, 1, n, a, b, want);
    f32_mul_channels(1, 1, n, a, b, got, level);
    report(memcmp(got, want, n * sizeof(float)) == 0, "f32 mul %s %s n=%zu", level_name, k->name, n);
    free(a);
    free(b);
    free(want);
    free(got);
  }
}

// ---------------------------------------------------------------------------------------------------------
// int8

typedef enum { REQUANT_TYPICAL, REQUANT_EXTREME, REQUANT_ROUNDING } requant_kind;

static qs8_activation_quantization random_quantization(bool u) {
  qs8_activation_quantization q;
  q.unsigned_activations = u;
  const int32_t lo = u ? 0 : -128, hi = u ? 255 : 127;
  q.input_zero_point = rand_range(lo, hi);
  q.output_zero_point = rand_range(lo, hi);
  q.output_min = rand_range(0, 3) == 0 ? rand_range(lo, hi) : lo;
  q.output_max = rand_range(0, 3) == 0 ? rand_range(q.output_min, hi) : hi;
  return q;
}

// Typical: multipliers in [2^30, 2^31) and shifts that keep outputs mostly in range. Extreme: any int32
// multiplier (INT32_MIN and 0 included), any shift in [-31, 30] and any bias, to exercise saturation,
// wrap-around and every rounding corner of the SIMD requantization. Rounding: right shifts 1..24 (around
// the depthwise kernels' one-rounding limit of 22), multipliers that make ties frequent (2^30 halves the
// accumulator) beside small, zero, negative and INT32_MAX ones, and small biases.
static void random_requant(size_t n, int32_t* bias, int32_t* multipliers, int32_t* shifts, size_t k,
                           requant_kind kind) {
  for (size_t o = 0; o < n; o++) {
    if (kind == REQUANT_TYPICAL) {
      bias[o] = rand_range(-5000, 5000);
      multipliers[o] = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
      int32_t bits = 0;
      while ((size_t)1 << bits < k) bits++;
      shifts[o] = -(rand_range(4, 8) + bits / 2);
    } else if (kind == REQUANT_ROUNDING) {
      const int32_t multiplier[] = {1 << 30, (1 << 30) + 1, INT32_MAX,           0,
                                    3,       -(1 << 30),    (int32_t)-rand_u32()};
      bias[o] = rand_range(-300, 300);
      multipliers[o] = rand_range(0, 2) == 0 ? (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu))
                                             : multiplier[rand_range(0, 6)];
      shifts[o] = -rand_range(1, 24);
    } else {
      const int32_t specials[] = {INT32_MIN, INT32_MAX, 0, 1, -1, 1 << 30};
      bias[o] = rand_range(0, 3) == 0 ? specials[rand_range(0, 5)] : (int32_t)rand_u32();
      multipliers[o] = rand_range(0, 3) == 0 ? specials[rand_range(0, 5)] : (int32_t)rand_u32();
      shifts[o] = rand_range(0, 4) == 0 ? (rand_range(0, 1) ? -31 : 30) : rand_range(-31, 30);
    }
  }
}

// Runs op on pools[p] into `got` (pre-filled with a marker) and compares with `want`: true when it ran and
// every byte matches; *where is the first difference.
static bool qs8_run_matches(qs8_conv2d_op* op, const void* input, void* got, const void* want, size_t n,
                            size_t p, bool* ran, size_t* where) {
  memset(got, 0x5A, n);
  *ran = qs8_conv2d_run(op, input, got, pools[p]);
  return *ran && !first_difference(got, want, n, where);
}

static void test_qs8_conv(const char* name, const whittle_conv2d_shape* s, whittle_isa level, bool u,
                          requant_kind kind, bool fc) {
  char label[256];
  describe_conv(label, sizeof(label), name, s);
  const size_t in_n = conv_input_size(s), out_n = conv_output_size(s), w_n = conv_weight_size(s);
  const size_t oc = s->output_channels;
  int8_t* input = xmalloc(in_n);
  int8_t* weights = xmalloc(w_n);
  int32_t* bias = xmalloc(oc * sizeof(int32_t));
  int32_t* multipliers = xmalloc(oc * sizeof(int32_t));
  int32_t* shifts = xmalloc(oc * sizeof(int32_t));
  int8_t* want = xmalloc(out_n);
  int8_t* got = xmalloc(out_n);
  fill_bytes(input, in_n);
  fill_bytes(weights, w_n);
  // Edge values in the data too: the most negative weight and the extreme activations.
  if (w_n > 2) weights[0] = -128, weights[1] = 127;
  if (in_n > 2) ((uint8_t*)input)[0] = 0, ((uint8_t*)input)[1] = 255;
  const size_t k = s->kernel_height * s->kernel_width * (s->input_channels / s->groups);
  random_requant(oc, bias, multipliers, shifts, k, kind);
  const qs8_activation_quantization q = random_quantization(u);
  if (fc) {
    qs8_fully_connected__reference(s->batch, s->input_channels, oc, input, weights, bias, multipliers, shifts,
                                   &q, want);
  } else {
    qs8_conv2d__reference(s, input, weights, bias, multipliers, shifts, &q, want);
  }
  qs8_conv2d_op* op = fc ? qs8_fully_connected_create(s->batch, s->input_channels, oc, weights, bias,
                                                      multipliers, shifts, &q, level)
                         : qs8_conv2d_create(s, weights, bias, multipliers, shifts, &q, level);
  const char* what = fc ? "fully_connected" : "conv2d";
  const char* dtype = u ? "qu8" : "qs8";
  const char* requant = kind == REQUANT_TYPICAL   ? "typical"
                        : kind == REQUANT_EXTREME ? "extreme"
                                                  : "rounding";
  if (op == NULL) {
    report(false, "%s %s %s: create failed", dtype, what, label);
  } else {
    for (size_t p = 0; p < 2; p++) {
      size_t where = 0;
      bool ran = false;
      const bool ok = qs8_run_matches(op, input, got, want, out_n, p, &ran, &where);
      report(ok, "%s %s %s %s threads=%zu requant=%s %s", dtype, what, level_name, qs8_conv2d_kernel_name(op),
             pool_threads[p], requant, label);
      if (!ok && ran) {
        printf("     at %zu (channel %zu): got %d want %d\n", where, where % oc,
               u ? ((uint8_t*)got)[where] : got[where], u ? ((uint8_t*)want)[where] : want[where]);
      }
    }
    qs8_conv2d_destroy(op);
  }
  free(input);
  free(weights);
  free(bias);
  free(multipliers);
  free(shifts);
  free(want);
  free(got);
}

// The residual add in the conv's output stage (f32_conv2d_run_add, qs8_conv2d_run_add) on every path of the
// drivers (GEMM, indirect GEMM, depthwise and its 3x3 rows, grouped, GEMV): fp32 bit-exact with the conv
// followed by f32_add on the same ISA, with a clamp on either side of the add; int8 bit-exact with the
// reference conv followed by qs8_add__reference, per-tensor and per-channel requantization.
static void test_conv_add(const char* name, const whittle_conv2d_shape* s, whittle_isa level, bool u) {
  char label[256];
  describe_conv(label, sizeof(label), name, s);
  const size_t in_n = conv_input_size(s), out_n = conv_output_size(s), w_n = conv_weight_size(s);
  const size_t oc = s->output_channels;
  // One block each for fp32 and int8: input, weights, bias and addend (random), then want and got.
  float* input = xmalloc((in_n + w_n + oc + 3 * out_n) * sizeof(float));
  float *weights = input + in_n, *bias = weights + w_n, *addend = bias + oc, *want = addend + out_n;
  float* got = want + out_n;
  fill_float(input, in_n + w_n + oc + out_n);
  // A conv clamp (ReLU before the add) or none; a clamp after the add (ReLU after it) or none.
  const bool conv_relu = rand_range(0, 2) == 0, add_relu = rand_range(0, 1) == 0;
  f32_conv2d_op* op = f32_conv2d_create(s, weights, bias, conv_relu ? 0.0f : -INFINITY, INFINITY, level);
  if (op == NULL) {
    report(false, "f32 conv2d+add %s: create failed", label);
  } else {
    for (size_t p = 0; p < 2; p++) {
      const bool ran = f32_conv2d_run(op, input, want, pools[p]);
      f32_add(out_n, want, addend, want, add_relu ? 0.0f : -INFINITY, INFINITY, level);
      for (size_t i = 0; i < out_n; i++) got[i] = NAN;
      const bool fused =
          f32_conv2d_run_add(op, input, addend, add_relu ? 0.0f : -INFINITY, INFINITY, got, pools[p]);
      size_t where = 0;
      const bool ok = ran && fused && !first_difference(got, want, out_n * sizeof(float), &where);
      report(ok, "f32 conv2d+add %s %s threads=%zu relu %d/%d %s", level_name, f32_conv2d_kernel_name(op),
             pool_threads[p], conv_relu, add_relu, label);
      if (!ok && fused) {
        where /= sizeof(float);
        printf("     at %zu: got %.9g want %.9g\n", where, got[where], want[where]);
      }
    }
    f32_conv2d_destroy(op);
  }
  free(input);

  int8_t* qinput = xmalloc(in_n + w_n + 3 * out_n);
  int8_t *qweights = qinput + in_n, *qaddend = qweights + w_n, *qwant = qaddend + out_n,
         *qgot = qwant + out_n;
  fill_bytes(qinput, in_n + w_n + out_n);
  int32_t* qbias = xmalloc(3 * oc * sizeof(int32_t));
  int32_t *multipliers = qbias + oc, *shifts = multipliers + oc;
  const size_t k = s->kernel_height * s->kernel_width * (s->input_channels / s->groups);
  random_requant(oc, qbias, multipliers, shifts, k, REQUANT_TYPICAL);
  const bool per_tensor = rand_range(0, 1) == 0;
  for (size_t o = 1; o < oc && per_tensor; o++) multipliers[o] = multipliers[0], shifts[o] = shifts[0];
  const qs8_activation_quantization q = random_quantization(u);
  const int32_t lo = u ? 0 : -128, hi = u ? 255 : 127;
  qs8_add_params add;
  add.unsigned_activations = u;
  add.a_zero_point = q.output_zero_point;
  add.b_zero_point = rand_range(lo, hi);
  add.output_zero_point = rand_range(lo, hi);
  add.a_multiplier = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
  add.b_multiplier = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
  add.output_multiplier = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
  add.a_shift = rand_range(-3, 0);
  add.b_shift = rand_range(-3, 0);
  add.output_shift = -(QS8_ADD_LEFT_SHIFT - rand_range(-1, 1));
  add.output_min = add_relu ? add.output_zero_point : lo;  // ReLU after the add, or none
  add.output_max = hi;
  qs8_conv2d__reference(s, qinput, qweights, qbias, multipliers, shifts, &q, qwant);
  qs8_add__reference(out_n, qwant, qaddend, qwant, &add);
  qs8_conv2d_op* qop = qs8_conv2d_create(s, qweights, qbias, multipliers, shifts, &q, level);
  const char* dtype = u ? "qu8" : "qs8";
  if (qop == NULL) {
    report(false, "%s conv2d+add %s: create failed", dtype, label);
  } else {
    for (size_t p = 0; p < 2; p++) {
      memset(qgot, 0x5A, out_n);
      const bool ran = qs8_conv2d_run_add(qop, qinput, qaddend, &add, qgot, pools[p]);
      size_t where = 0;
      const bool ok = ran && !first_difference(qgot, qwant, out_n, &where);
      report(ok, "%s conv2d+add %s %s threads=%zu %s relu %d %s", dtype, level_name,
             qs8_conv2d_kernel_name(qop), pool_threads[p], per_tensor ? "per-tensor" : "per-channel",
             add_relu, label);
      if (!ok && ran) printf("     at %zu: got %d want %d\n", where, qgot[where], qwant[where]);
    }
    // Other add parameters on the same op (the residual add's tables are rebuilt for them).
    add.b_zero_point = rand_range(lo, hi);
    add.b_multiplier = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
    add.output_shift = -(QS8_ADD_LEFT_SHIFT - rand_range(-1, 1));
    qs8_conv2d__reference(s, qinput, qweights, qbias, multipliers, shifts, &q, qwant);
    qs8_add__reference(out_n, qwant, qaddend, qwant, &add);
    memset(qgot, 0x5A, out_n);
    const bool ran = qs8_conv2d_run_add(qop, qinput, qaddend, &add, qgot, pools[0]);
    size_t where = 0;
    report(ran && !first_difference(qgot, qwant, out_n, &where), "%s conv2d+add %s %s, new add parameters %s",
           dtype, level_name, qs8_conv2d_kernel_name(qop), label);
    qs8_conv2d_destroy(qop);
  }
  free(qinput);
  free(qbias);
}

// Fixed-point Q8 (qf_conv2d.h) on the int8 kernels: against the definition, written here independently
// of both (int64 sum, rounding half up, saturation), for shifts that round (ties included), shift 0, and
// left shifts; and layers whose accumulators are too wide must be refused, not computed wrongly.
static int8_t fixed_point_reference(int64_t acc, int32_t shift, int32_t lo, int32_t hi) {
  int64_t v = shift > 0 ? (acc + (INT64_C(1) << (shift - 1))) >> shift : acc * (INT64_C(1) << -shift);
  v = v < lo ? lo : (v > hi ? hi : v);
  return (int8_t)v;
}

static void test_fixed_point_conv(const char* name, const whittle_conv2d_shape* s, whittle_isa level,
                                  int32_t shift, int scale) {
  char label[256];
  describe_conv(label, sizeof(label), name, s);
  const size_t in_n = conv_input_size(s), out_n = conv_output_size(s), w_n = conv_weight_size(s);
  const size_t oc = s->output_channels, oh = whittle_conv2d_output_height(s);
  const size_t ow = whittle_conv2d_output_width(s), cin_g = s->input_channels / s->groups;
  const size_t cout_g = oc / s->groups, k = s->kernel_height * s->kernel_width * cin_g;
  int8_t* input = xmalloc(in_n);
  int8_t* weights = xmalloc(w_n);
  int32_t* bias = xmalloc(oc * sizeof(int32_t));
  int8_t* want = xmalloc(out_n);
  int8_t* got = xmalloc(out_n);
  fill_bytes(input, in_n);
  // Small weights (scale 1: in [-3, 3]) make many accumulators exact ties of a shift of 1 or 2.
  for (size_t i = 0; i < w_n; i++) weights[i] = (int8_t)rand_range(-scale, scale);
  if (w_n > 2 && scale >= 127) weights[0] = -127, weights[1] = 127;
  for (size_t o = 0; o < oc; o++) bias[o] = rand_range(-4000, 4000);
  const int32_t lo = rand_range(0, 2) == 0 ? 0 : -128, hi = 127;
  for (size_t n = 0; n < s->batch; n++) {
    for (size_t y = 0; y < oh; y++) {
      for (size_t x = 0; x < ow; x++) {
        for (size_t o = 0; o < oc; o++) {
          const size_t g = o / cout_g;
          int64_t acc = bias[o];
          for (size_t i = 0; i < s->kernel_height; i++) {
            for (size_t j = 0; j < s->kernel_width; j++) {
              const ptrdiff_t iy =
                  (ptrdiff_t)(y * s->stride_height + i * s->dilation_height) - (ptrdiff_t)s->padding_top;
              const ptrdiff_t ix =
                  (ptrdiff_t)(x * s->stride_width + j * s->dilation_width) - (ptrdiff_t)s->padding_left;
              if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)s->input_height || ix >= (ptrdiff_t)s->input_width)
                continue;
              for (size_t c = 0; c < cin_g; c++) {
                acc += (int64_t)input[((n * s->input_height + (size_t)iy) * s->input_width + (size_t)ix) *
                                          s->input_channels +
                                      g * cin_g + c] *
                       weights[o * k + (i * s->kernel_width + j) * cin_g + c];
              }
            }
          }
          want[((n * oh + y) * ow + x) * oc + o] = fixed_point_reference(acc, shift, lo, hi);
        }
      }
    }
  }
  bool unsupported = false;
  qs8_conv2d_op* op = qs8_conv2d_create_fixed_point(s, weights, bias, shift, lo, hi, level, &unsupported);
  if (op == NULL) {
    report(false, "fixed-point conv2d %s shift=%d: create failed (unsupported %d)", label, shift,
           unsupported);
  } else {
    for (size_t p = 0; p < 2; p++) {
      size_t where = 0;
      bool ran = false;
      const bool ok = qs8_run_matches(op, input, got, want, out_n, p, &ran, &where);
      report(ok, "fixed-point conv2d %s %s threads=%zu shift=%d %s", level_name, qs8_conv2d_kernel_name(op),
             pool_threads[p], shift, label);
      if (!ok && ran) printf("     at %zu: got %d want %d\n", where, got[where], want[where]);
    }
    qs8_conv2d_destroy(op);
  }
  free(input), free(weights), free(bias), free(want), free(got);
}

static void test_fixed_point(whittle_isa level) {
  // A random stream of its own, so that adding these cases leaves the data of every other test as it was.
  const uint64_t saved = rng_state;
  rng_state = 0x5DEECE66Dull + (uint64_t)level;
  const int32_t shifts[] = {1, 2, 7, 13, 0, -2};
  for (size_t c = 0; c < sizeof(conv_cases) / sizeof(conv_cases[0]); c++) {
    const int32_t shift = shifts[c % (sizeof(shifts) / sizeof(shifts[0]))];
    test_fixed_point_conv(conv_cases[c].name, &conv_cases[c].s, level, shift, shift <= 2 ? 3 : 127);
  }
  const whittle_conv2d_shape fc = {2, 1, 1, 300, 20, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
  test_fixed_point_conv("fc", &fc, level, 1, 3);
  test_fixed_point_conv("fc", &fc, level, 9, 127);
  // Too wide for an exact mapping: 2048 full-scale products shifted left by 8 pass 2^30.
  const whittle_conv2d_shape wide = {1, 1, 1, 2048, 4, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
  int8_t* w = xmalloc(2048 * 4);
  memset(w, 127, 2048 * 4);
  bool unsupported = false;
  qs8_conv2d_op* op = qs8_conv2d_create_fixed_point(&wide, w, NULL, -8, -128, 127, level, &unsupported);
  report(op == NULL && unsupported, "fixed-point conv2d %s: accumulators past 2^30 are refused", level_name);
  qs8_conv2d_destroy(op);
  op = qs8_conv2d_create_fixed_point(&wide, w, NULL, 40, -128, 127, level, &unsupported);
  report(op == NULL && unsupported, "fixed-point conv2d %s: a shift past 31 is refused", level_name);
  free(w);
  rng_state = saved;
}

// ---------------------------------------------------------------------------------------------------------
// Ternary and codebook layers on the dense operators: the runtime's FormatLayer expands their weights at
// load (tern_expand_weights_f32 / _s8, cb_expand_weights_f32) and runs the fp32 / int8 operators above. On
// every ISA path: fp32 ternary and codebook within 1e-5 of sum |w * x| of the formats' own C references,
// int8 ternary and codebook bit-exact with the formats' int8 references.

// Runs (and destroys) an fp32 operator over expanded weights on both pools against a format's reference.
static void check_expanded_f32(f32_conv2d_op* op, const float* input, float* got, const float* want,
                               const float* scale, size_t out_n, const char* family, const char* label) {
  for (size_t p = 0; op != NULL && p < 2; p++) {
    for (size_t i = 0; i < out_n; i++) got[i] = NAN;
    const bool ran = f32_conv2d_run(op, input, got, pools[p]);
    size_t where = 0;
    const bool ok = ran && close_enough_around(got, want, scale, out_n, &where);
    report(ok, "%s expanded f32 %s %s threads=%zu %s", family, level_name, f32_conv2d_kernel_name(op),
           pool_threads[p], label);
    if (!ok && ran) printf("     at %zu: got %.9g want %.9g\n", where, got[where], want[where]);
  }
  report(op != NULL, "%s expanded f32 %s: create", family, label);
  f32_conv2d_destroy(op);
}

// Runs (and destroys) an int8 operator over expanded weights on both pools against a format's int8 reference
// (bit-exact).
static void check_expanded_qs8(qs8_conv2d_op* op, const int8_t* input, int8_t* got, const int8_t* want,
                               size_t out_n, const char* family, const char* what, const char* label) {
  for (size_t p = 0; op != NULL && p < 2; p++) {
    size_t where = 0;
    bool ran = false;
    const bool ok = qs8_run_matches(op, input, got, want, out_n, p, &ran, &where);
    report(ok, "%s expanded qs8 %s %s %s threads=%zu %s", family, what, level_name,
           qs8_conv2d_kernel_name(op), pool_threads[p], label);
    if (!ok && ran) printf("     at %zu: got %d want %d\n", where, got[where], want[where]);
  }
  report(op != NULL, "%s expanded qs8 %s %s: create", family, what, label);
  qs8_conv2d_destroy(op);
}

static void test_expanded_formats(const char* name, const whittle_conv2d_shape* s, whittle_isa level,
                                  bool fc) {
  if (s->dilation_height != 1 || s->dilation_width != 1) return;  // the formats have no dilation
  char label[256];
  describe_conv(label, sizeof(label), name, s);
  const whittle_conv2d_geometry g = whittle_conv2d_shape_geometry(s);
  const size_t in_n = conv_input_size(s), out_n = conv_output_size(s), oc = s->output_channels;
  const size_t k = s->kernel_height * s->kernel_width * (s->input_channels / s->groups);
  const size_t words = bin_row_words(k);
  float* input = xmalloc(in_n * sizeof(float));
  float* abs_input = xmalloc(in_n * sizeof(float));
  float* fweights = xmalloc(oc * k * sizeof(float));
  float* dense = xmalloc(oc * k * sizeof(float));
  float* bias = xmalloc(oc * sizeof(float));
  float* abs_bias = xmalloc(oc * sizeof(float));
  float* threshold = xmalloc(oc * sizeof(float));
  float* alpha = xmalloc(oc * sizeof(float));
  float* want = xmalloc(out_n * sizeof(float));
  float* scale = xmalloc(out_n * sizeof(float));
  float* got = xmalloc(out_n * sizeof(float));
  uint32_t* nonzero = xmalloc(oc * words * sizeof(uint32_t));
  uint32_t* sign = xmalloc(oc * words * sizeof(uint32_t));
  uint32_t* none = xmalloc(oc * words * sizeof(uint32_t));
  memset(none, 0, oc * words * sizeof(uint32_t));
  fill_float(input, in_n);
  for (size_t i = 0; i < in_n; i++) abs_input[i] = fabsf(input[i]);
  fill_float(fweights, oc * k);
  fill_float(bias, oc);
  for (size_t o = 0; o < oc; o++) abs_bias[o] = fabsf(bias[o]), threshold[o] = 0.3f;
  tern_pack_weights(oc, k, fweights, threshold, nonzero, sign, alpha);
  const float min = rand_range(0, 1) ? -INFINITY : -0.5f, max = rand_range(0, 1) ? INFINITY : 0.75f;
  const char* what = fc ? "fully_connected" : "conv2d";

  // fp32 ternary: alpha[o] * t as fp32 weights.
  tern_conv2d_minmax_ukernel__reference(&g, 0, oc, input, nonzero, sign, alpha, bias, min, max, want);
  tern_conv2d_minmax_ukernel__reference(&g, 0, oc, abs_input, nonzero, none, alpha, abs_bias, -INFINITY,
                                        INFINITY, scale);
  tern_expand_weights_f32(oc, k, nonzero, sign, alpha, dense);
  f32_conv2d_op* op =
      fc ? f32_fully_connected_create(s->batch, s->input_channels, oc, dense, bias, min, max, level)
         : f32_conv2d_create(s, dense, bias, min, max, level);
  check_expanded_f32(op, input, got, want, scale, out_n, "tern", label);

  // int8 ternary: t as int8 weights, the same requantization.
  int8_t* qinput = xmalloc(in_n);
  int8_t* qdense = xmalloc(oc * k);
  int8_t* qwant = xmalloc(out_n);
  int8_t* qgot = xmalloc(out_n);
  int32_t* qbias = xmalloc(oc * sizeof(int32_t));
  int32_t* multipliers = xmalloc(oc * sizeof(int32_t));
  int32_t* shifts = xmalloc(oc * sizeof(int32_t));
  fill_bytes(qinput, in_n);
  random_requant(oc, qbias, multipliers, shifts, k, REQUANT_TYPICAL);
  const qs8_activation_quantization q = random_quantization(false);
  tern_conv2d_qs8_minmax_gemmlowp_ukernel__reference(&g, 0, oc, qinput, q.input_zero_point, nonzero, sign,
                                                     qbias, multipliers, shifts, q.output_zero_point,
                                                     q.output_min, q.output_max, qwant);
  tern_expand_weights_s8(oc, k, nonzero, sign, qdense);
  qs8_conv2d_op* qop = fc ? qs8_fully_connected_create(s->batch, s->input_channels, oc, qdense, qbias,
                                                       multipliers, shifts, &q, level)
                          : qs8_conv2d_create(s, qdense, qbias, multipliers, shifts, &q, level);
  check_expanded_qs8(qop, qinput, qgot, qwant, out_n, "tern", what, label);

  // fp32 codebook: codebook[index] as fp32 weights, every index width.
  const uint32_t bits = (uint32_t)rand_range(CB_MIN_INDEX_BITS, CB_MAX_INDEX_BITS);
  const size_t size = (size_t)rand_range(1, 1 << bits);
  uint8_t* unpacked = xmalloc(oc * k);
  uint8_t* indices = xmalloc(oc * cb_row_bytes(k, bits));
  float* codebook = xmalloc(size * sizeof(float));
  float* abs_codebook = xmalloc(size * sizeof(float));
  fill_float(codebook, size);
  for (size_t c = 0; c < size; c++) abs_codebook[c] = fabsf(codebook[c]);
  for (size_t i = 0; i < oc * k; i++) unpacked[i] = (uint8_t)rand_range(0, (int32_t)size - 1);
  cb_pack_indices(oc, k, bits, unpacked, indices);
  cb_conv2d_minmax_ukernel__reference(&g, 0, oc, input, indices, bits, codebook, size, bias, min, max, NULL,
                                      want);
  cb_conv2d_minmax_ukernel__reference(&g, 0, oc, abs_input, indices, bits, abs_codebook, size, abs_bias,
                                      -INFINITY, INFINITY, NULL, scale);
  cb_expand_weights_f32(oc, k, indices, bits, codebook, dense);
  op = fc ? f32_fully_connected_create(s->batch, s->input_channels, oc, dense, bias, min, max, level)
          : f32_conv2d_create(s, dense, bias, min, max, level);
  char cb_label[320];
  snprintf(cb_label, sizeof cb_label, "%u-bit %zu centroids %s", bits, size, label);
  check_expanded_f32(op, input, got, want, scale, out_n, "cb", cb_label);

  // int8 codebook: one int8 table per output channel, codebooks[o][index] as int8 weights.
  int8_t* tables = xmalloc(oc * size);
  fill_bytes(tables, oc * size);
  for (size_t i = 0; i < oc * size; i++) tables[i] = tables[i] == INT8_MIN ? INT8_MAX : tables[i];
  cb_conv2d_qs8_minmax_gemmlowp_ukernel__reference(&g, 0, oc, qinput, q.input_zero_point, indices, bits,
                                                   tables, size, qbias, multipliers, shifts,
                                                   q.output_zero_point, q.output_min, q.output_max, qwant);
  cb_expand_weights_s8(oc, k, indices, bits, tables, size, qdense);
  // The expansion against the unpacked indices (independent of the bit-stream reader).
  bool expanded_ok = true;
  for (size_t i = 0; i < oc * k; i++) expanded_ok &= qdense[i] == tables[(i / k) * size + unpacked[i]];
  report(expanded_ok, "cb expand s8 %s", cb_label);
  qop = fc ? qs8_fully_connected_create(s->batch, s->input_channels, oc, qdense, qbias, multipliers, shifts,
                                        &q, level)
           : qs8_conv2d_create(s, qdense, qbias, multipliers, shifts, &q, level);
  check_expanded_qs8(qop, qinput, qgot, qwant, out_n, "cb", what, cb_label);
  free(tables);

  free(input), free(abs_input), free(fweights), free(dense), free(bias), free(abs_bias), free(threshold);
  free(alpha), free(want), free(scale), free(got), free(nonzero), free(sign), free(none);
  free(qinput), free(qdense), free(qwant), free(qgot), free(qbias), free(multipliers), free(shifts);
  free(unpacked), free(indices), free(codebook), free(abs_codebook);
}

static void test_expanded(whittle_isa level) {
  // A random stream of its own, so that adding these cases leaves the data of every other test as it was.
  const uint64_t saved = rng_state;
  rng_state = 0x7E57C0DEull + (uint64_t)level;
  for (size_t c = 0; c < sizeof(conv_cases) / sizeof(conv_cases[0]); c++)
    test_expanded_formats(conv_cases[c].name, &conv_cases[c].s, level, false);
  const size_t fc_cases[][3] = {{1, 400, 120}, {1, 2048, 10}, {3, 17, 35}, {2, 120, 84}, {1, 1, 1}};
  for (size_t c = 0; c < sizeof(fc_cases) / sizeof(fc_cases[0]); c++) {
    const whittle_conv2d_shape s = {
        fc_cases[c][0], 1, 1, fc_cases[c][1], fc_cases[c][2], 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
    test_expanded_formats("fc", &s, level, true);
  }
  rng_state = saved;
}

static void test_qs8_simple(whittle_isa level, bool u) {
  const qs8_simple_ukernels* k = qs8_simple_ukernels_select(level);
  const char* dtype = u ? "qu8" : "qs8";
  const int32_t lo = u ? 0 : -128, hi = u ? 255 : 127;
  for (size_t c = 0; c < sizeof(pool_cases) / sizeof(pool_cases[0]); c++) {
    const whittle_pool2d_shape* s = &pool_cases[c];
    const size_t in_n = s->batch * s->input_height * s->input_width * s->channels;
    const size_t out_n =
        s->batch * whittle_pool2d_output_height(s) * whittle_pool2d_output_width(s) * s->channels;
    int8_t* input = xmalloc(in_n);
    int8_t* want = xmalloc(out_n);
    int8_t* got = xmalloc(out_n);
    fill_bytes(input, in_n);
    size_t where;
    const int32_t min = rand_range(lo, lo + 40), max = rand_range(hi - 40, hi);
    qs8_maxpool__reference(s, input, want, u, min, max);
    qs8_maxpool(s, input, got, u, min, max, level);
    report(!first_difference(got, want, out_n, &where), "%s maxpool %s %s case %zu", dtype, level_name,
           k->name, c);
    // Bounds outside the type's range take the per-pixel loop (the by-rows kernel clamps in the type).
    qs8_maxpool__reference(s, input, want, u, lo - 1, hi + 1);
    qs8_maxpool(s, input, got, u, lo - 1, hi + 1, level);
    report(!first_difference(got, want, out_n, &where), "%s maxpool %s %s case %zu, bounds past the type",
           dtype, level_name, k->name, c);
    qs8_avgpool__reference(s, input, want, u, lo, hi);
    qs8_avgpool(s, input, got, u, lo, hi, level);
    report(!first_difference(got, want, out_n, &where), "%s avgpool %s %s case %zu", dtype, level_name,
           k->name, c);
    whittle_pool2d_shape padded = *s;  // the padded positions count as the zero point
    padded.count_padding = true;
    padded.padding_value = rand_range(lo, hi);
    qs8_avgpool__reference(&padded, input, want, u, min, max);
    qs8_avgpool(&padded, input, got, u, min, max, level);
    report(!first_difference(got, want, out_n, &where), "%s avgpool %s %s case %zu, count_padding %d", dtype,
           level_name, k->name, c, (int)padded.padding_value);
    free(input);
    free(want);
    free(got);
  }
  const size_t gap_cases[][3] = {{1, 1, 1}, {2, 49, 37}, {1, 144, 300}};
  for (size_t c = 0; c < 3; c++) {
    const size_t b = gap_cases[c][0], px = gap_cases[c][1], ch = gap_cases[c][2];
    int8_t* input = xmalloc(b * px * ch);
    int8_t* want = xmalloc(b * ch);
    int8_t* got = xmalloc(b * ch);
    fill_bytes(input, b * px * ch);
    qs8_global_avgpool__reference(b, px, ch, input, want, u, lo, hi);
    qs8_global_avgpool(b, px, ch, input, got, u, lo, hi, level);
    size_t where;
    report(!first_difference(got, want, b * ch, &where), "%s global_avgpool %s %s case %zu", dtype,
           level_name, k->name, c);
    free(input);
    free(want);
    free(got);
  }
  // Global average pool from one quantization to another: small and large multipliers (right and left
  // shifts), output bounds inside the range (a fused ReLU), channel counts around the 256-channel chunk.
  const size_t gap_requant_cases[][3] = {{1, 1, 1}, {2, 49, 37}, {1, 9, 512}, {3, 4, 300}, {1, 300, 17}};
  for (size_t c = 0; c < sizeof(gap_requant_cases) / sizeof(gap_requant_cases[0]); c++) {
    const size_t b = gap_requant_cases[c][0], px = gap_requant_cases[c][1], ch = gap_requant_cases[c][2];
    int8_t* input = xmalloc(b * px * ch);
    int8_t* want = xmalloc(b * ch);
    int8_t* got = xmalloc(b * ch);
    fill_bytes(input, b * px * ch);
    for (int variant = 0; variant < 3; variant++) {
      qs8_global_avgpool_params p;
      p.unsigned_activations = u;
      p.input_zero_point = rand_range(lo, hi);
      p.output_zero_point = rand_range(lo, hi);
      p.multiplier = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
      p.shift = variant == 0 ? rand_range(-12, -4) : variant == 1 ? rand_range(-31, 0) : rand_range(0, 6);
      p.output_min = variant == 2 ? p.output_zero_point : lo;
      p.output_max = hi;
      qs8_global_avgpool_requant__reference(b, px, ch, input, want, &p);
      qs8_global_avgpool_requant(b, px, ch, input, got, &p, level);
      size_t where;
      report(!first_difference(got, want, b * ch, &where),
             "%s global_avgpool_requant %s %s case %zu variant %d", dtype, level_name, k->name, c, variant);
    }
    free(input);
    free(want);
    free(got);
  }
  // quantize / dequantize: per tensor and per channel (inner 1: NHWC channels; inner > 1: NCHW), with ties
  // of the rounding (x / scale = k + 0.5), values past the range, infinities, NaN and a zero scale.
  // The long runs (1000, 4099, 4096, 257) take the vector paths (AVX-512 multiplies by 1 / scale and divides
  // near rounding boundaries); odd layouts have scales with inexact inverses.
  const size_t layouts[][3] = {{1, 1, 1000}, {7, 3, 1},  {2, 5, 9},   {1, 1, 3},
                               {1, 1, 4099}, {2, 3, 70}, {3, 2, 257}, {1, 1, 4096}};
  for (size_t c = 0; c < sizeof(layouts) / sizeof(layouts[0]); c++) {
    const size_t n = layouts[c][0] * layouts[c][1] * layouts[c][2];
    double scales[5];
    int32_t zero_points[5];
    for (size_t i = 0; i < layouts[c][1]; i++) {
      // Odd layouts get scales whose inverse is not exact in float: x / scale is not a multiply there.
      scales[i] = i == 2 ? 0.0 : 0.5 / (double)(1 + rand_range(0, 7)) * (c % 2 == 1 ? 1.0371 : 1.0);
      zero_points[i] = rand_range(lo, hi);
    }
    const qs8_quantization_layout layout = {layouts[c][0], layouts[c][1], layouts[c][2],
                                            scales,        zero_points,   u};
    float* x = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
      const size_t ch = i / layout.inner % layout.channels;
      switch (rand_range(0, 9)) {
        case 0:
          x[i] = (float)((rand_range(-300, 300) + 0.5) * scales[ch]);  // a tie (exact in float)
          break;
        case 1:
          x[i] = rand_range(0, 1) ? INFINITY : -INFINITY;
          break;
        case 2:
          x[i] = NAN;
          break;
        case 3:
          x[i] = (float)rand_range(-100000, 100000);
          break;
        case 4:  // within a few float steps of a tie, or far past the range (4096 steps)
          x[i] = (float)((rand_range(-300, 300) + 0.5 + rand_range(-40, 40) * 1e-6) * scales[ch]);
          if (rand_range(0, 3) == 0) x[i] = (float)((rand_range(0, 1) ? 4096.0 : -4096.0) * scales[ch]);
          break;
        case 5: {  // a few float steps from a tie: x / scale within about 1e-7 of k + 0.5
          float v = (float)((rand_range(-300, 300) + 0.5) * scales[ch]);
          for (int step = rand_range(-3, 3); step != 0; step += step > 0 ? -1 : 1)
            v = nextafterf(v, step > 0 ? INFINITY : -INFINITY);
          x[i] = v;
          break;
        }
        default:
          x[i] = (float)rand_range(-1000000, 1000000) * 1e-4f;
      }
    }
    int8_t* want = xmalloc(n);
    int8_t* got = xmalloc(n);
    qs8_quantize__reference(&layout, x, want);
    qs8_quantize(&layout, x, got, level);
    size_t where;
    report(!first_difference(got, want, n, &where), "%s quantize %s %s layout %zu", dtype, level_name,
           k->name, c);
    float* fwant = xmalloc(n * sizeof(float));
    float* fgot = xmalloc(n * sizeof(float));
    fill_bytes(want, n);
    qs8_dequantize__reference(&layout, want, fwant);
    qs8_dequantize(&layout, want, fgot, level);
    report(memcmp(fwant, fgot, n * sizeof(float)) == 0, "%s dequantize %s %s layout %zu", dtype, level_name,
           k->name, c);
    free(x);
    free(want);
    free(got);
    free(fwant);
    free(fgot);
  }
  // Exact ties whose product with 1 / scale is not a tie: scale 49 / 256 has an inexact inverse, and
  // x = (k + 0.5) * scale is exact in float, so x / scale = k + 0.5 (rounded to even) while x * (1 / scale)
  // can land one double step inside (-127.5 becomes -127.49999999999999): a vector quantizer that multiplies
  // must divide these. 304 values: whole vectors, and a tail.
  {
    const size_t n = 304;
    const double scale = 49.0 / 256.0;
    const int32_t zero_point = u ? 128 : 0;
    const qs8_quantization_layout layout = {1, 1, n, &scale, &zero_point, u};
    float* x = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(((double)i - 152.0 + 0.5) * scale);
    int8_t* want = xmalloc(n);
    int8_t* got = xmalloc(n);
    qs8_quantize__reference(&layout, x, want);
    qs8_quantize(&layout, x, got, level);
    size_t where;
    report(!first_difference(got, want, n, &where), "%s quantize %s %s exact ties, scale 49/256", dtype,
           level_name, k->name);
    free(x);
    free(want);
    free(got);
  }
  const size_t lengths[] = {1, 7, 33, 1000};
  for (size_t c = 0; c < 4; c++) {
    const size_t n = lengths[c];
    int8_t* a = xmalloc(n);
    int8_t* b = xmalloc(n);
    int8_t* want = xmalloc(n);
    int8_t* got = xmalloc(n);
    fill_bytes(a, n);
    fill_bytes(b, n);
    size_t where;
    for (int variant = 0; variant < 2; variant++) {
      qs8_add_params p;
      p.unsigned_activations = u;
      p.a_zero_point = rand_range(lo, hi);
      p.b_zero_point = rand_range(lo, hi);
      p.output_zero_point = rand_range(lo, hi);
      p.a_multiplier = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
      p.b_multiplier = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
      p.output_multiplier = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
      p.a_shift = variant ? rand_range(-31, 0) : rand_range(-3, 0);
      p.b_shift = variant ? rand_range(-31, 0) : rand_range(-3, 0);
      p.output_shift = variant ? rand_range(-31, 10) : -(QS8_ADD_LEFT_SHIFT - rand_range(-1, 1));
      p.output_min = rand_range(lo, lo + 20);
      p.output_max = rand_range(hi - 20, hi);
      qs8_add__reference(n, a, b, want, &p);
      qs8_add(n, a, b, got, &p, level);
      report(!first_difference(got, want, n, &where), "%s add %s %s n=%zu variant %d", dtype, level_name,
             k->name, n, variant);
      // The add over rescale tables: every kernel of the list this level runs.
      qs8_add_tables* tables = aligned_alloc(64, sizeof(qs8_add_tables));
      qs8_add_tables_init(&p, tables);
      for (size_t e = 0; e < qs8_vadd_tables_ukernel_count; e++) {
        const qs8_vadd_tables_ukernel* t = &qs8_vadd_tables_ukernels[e];
        if (!whittle_isa_allows(level, t->isa) || !whittle_isa_supported(t->isa)) continue;
        memset(got, 0x5A, n);
        t->fn(n, a, b, got, &p, tables);
        report(!first_difference(got, want, n, &where), "%s add %s %s n=%zu variant %d", dtype, level_name,
               t->name, n, variant);
      }
      free(tables);
    }
    // The SE block's N x H x W x C times N x 1 x 1 x C, and one shape times itself (rows = pixels = 1);
    // typical shifts (the product of two offsets by scale_a * scale_b / scale_y) and extreme ones.
    const size_t mul_rows = n >= 33 ? 3 : 1, mul_channels = n >= 33 ? 11 : n,
                 mul_pixels = n / (mul_rows * mul_channels), mul_n = mul_rows * mul_pixels * mul_channels;
    for (int variant = 0; variant < 2; variant++) {
      qs8_mul_params p;
      p.unsigned_activations = u;
      p.a_zero_point = rand_range(lo, hi);
      p.b_zero_point = rand_range(lo, hi);
      p.output_zero_point = rand_range(lo, hi);
      p.multiplier = (int32_t)(0x40000000u + (rand_u32() & 0x3FFFFFFFu));
      p.shift = variant ? rand_range(QS8_REQUANT_MIN_SHIFT, QS8_REQUANT_MAX_SHIFT) : rand_range(-12, -5);
      p.output_min = rand_range(lo, lo + 20);
      p.output_max = rand_range(hi - 20, hi);
      qs8_mul_channels__reference(mul_rows, mul_pixels, mul_channels, a, b, want, &p);
      qs8_mul_channels(mul_rows, mul_pixels, mul_channels, a, b, got, &p, level);
      report(!first_difference(got, want, mul_n, &where), "%s mul_channels %s %s %zux%zux%zu variant %d",
             dtype, level_name, k->name, mul_rows, mul_pixels, mul_channels, variant);
      qs8_mul_channels__reference(1, 1, n, a, b, want, &p);
      qs8_mul_channels(1, 1, n, a, b, got, &p, level);
      report(!first_difference(got, want, n, &where), "%s mul %s %s n=%zu variant %d", dtype, level_name,
             k->name, n, variant);
    }
    // A lookup table (an activation's, built by the runtime): every byte value maps through it.
    uint8_t table[256];
    fill_bytes((int8_t*)table, sizeof table);
    qs8_lut__reference(n, (const uint8_t*)a, (uint8_t*)want, table);
    qs8_lut(n, (const uint8_t*)a, (uint8_t*)got, table, level);
    bool lut_ok = !first_difference(got, want, n, &where);
    for (size_t i = 0; i < n; i++) lut_ok = lut_ok && (uint8_t)got[i] == table[(uint8_t)a[i]];
    report(lut_ok, "%s lookup %s %s n=%zu", dtype, level_name, k->name, n);
    const int32_t zp = rand_range(lo, hi);
    qs8_clamp__reference(n, a, want, u, zp, hi);  // ReLU: clamp at the zero point
    qs8_clamp(n, a, got, u, zp, hi, level);
    report(!first_difference(got, want, n, &where), "%s relu %s %s n=%zu", dtype, level_name, k->name, n);
    const int32_t six = zp + 40 > hi ? hi : zp + 40;  // ReLU6 with scale 6/40
    qs8_clamp__reference(n, a, want, u, zp, six);
    qs8_clamp(n, a, got, u, zp, six, level);
    report(!first_difference(got, want, n, &where), "%s relu6 %s %s n=%zu", dtype, level_name, k->name, n);
    free(a);
    free(b);
    free(want);
    free(got);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Infrastructure: requantization corners, the thread pool, data movement, CPU detection.

static void test_requantize_reference(void) {
  // Hand-checked values of TFLite's MultiplyByQuantizedMultiplier.
  const struct {
    int32_t x, m, s, want;
  } cases[] = {
      {100, 1 << 30, 0, 50},                 // 100 * 0.5
      {3, 1 << 30, -1, 1},                   // 0.75 -> 1 (half away from zero in the divide)
      {-3, 1 << 30, -1, -1},                 // -0.75 -> -1
      {-2, 1 << 30, -2, 0},                  // -0.25 -> 0
      {-6, 1 << 30, -2, -1},                 // -0.75 -> -1
      {INT32_MIN, INT32_MIN, 0, INT32_MAX},  // the one saturating product
      {1, INT32_MAX, 30, 1073741824},        // 2^30 * (1 - 2^-31) rounds to 2^30
      {5, 1 << 30, -31, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const int32_t got = qs8_requantize_gemmlowp(cases[i].x, cases[i].m, cases[i].s);
    report(got == cases[i].want, "qs8_requantize_gemmlowp(%d, %d, %d) = %d (want %d)", cases[i].x, cases[i].m,
           cases[i].s, got, cases[i].want);
  }
}

static void test_average_rounding(void) {
  // Hand-checked int8 averages: ties go to the even neighbour (as the runtime's reference rounds the mean),
  // the rest to the nearest.
  const struct {
    int32_t sum, count, want;
  } cases[] = {
      {5, 2, 2},  {7, 2, 4},    {-5, 2, -2}, {-7, 2, -4}, {3, 2, 2},   {-3, 2, -2},
      {1, 2, 0},  {-1, 2, 0},   {7, 3, 2},   {8, 3, 3},   {-8, 3, -3}, {-7, 3, -2},
      {18, 4, 4}, {-18, 4, -4}, {0, 9, 0},   {-9, 9, -1}, {6, 4, 2},   {10, 4, 2},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const int32_t got = qs8_average_round_half_even(cases[i].sum, cases[i].count);
    report(got == cases[i].want, "qs8_average_round_half_even(%d, %d) = %d (want %d)", cases[i].sum,
           cases[i].count, got, cases[i].want);
  }
}

typedef struct {
  unsigned char* visits;
  size_t threads_seen[WHITTLE_MAX_THREADS];
  size_t sleep_thread;  // this thread (if not 0) sleeps 2 ms in each chunk it runs
} pool_probe;

static void probe_task(void* context, size_t thread, size_t begin, size_t end) {
  pool_probe* probe = context;
  if (probe->sleep_thread != 0 && thread == probe->sleep_thread) {
    const struct timespec pause = {0, 2000000};
    nanosleep(&pause, NULL);
  }
  for (size_t i = begin; i < end; i++) probe->visits[i]++;
  probe->threads_seen[thread] += end - begin;
}

static void test_threadpool(void) {
  const size_t thread_counts[] = {1, 2, 3, 7};
  const size_t ranges[] = {0, 1, 5, 64, 1001};
  for (size_t t = 0; t < 4; t++) {
    whittle_threadpool* pool = whittle_threadpool_create(thread_counts[t]);
    report(pool != NULL && whittle_threadpool_threads(pool) == thread_counts[t], "threadpool create %zu",
           thread_counts[t]);
    if (pool == NULL) continue;
    for (size_t r = 0; r < 5; r++) {
      for (size_t repeat = 0; repeat < 20; repeat++) {
        pool_probe probe;
        memset(&probe, 0, sizeof(probe));
        probe.visits = calloc(ranges[r] + 1, 1);
        whittle_threadpool_parallelize(pool, probe_task, &probe, ranges[r], repeat % 3 + 1);
        bool ok = true;
        for (size_t i = 0; i < ranges[r]; i++) ok = ok && probe.visits[i] == 1;
        if (!ok || repeat == 19) {
          report(ok, "threadpool %zu threads range %zu: every item exactly once", thread_counts[t],
                 ranges[r]);
        }
        free(probe.visits);
        if (!ok) break;
      }
    }
    whittle_threadpool_destroy(pool);
  }
  // A worker that is slow (here: sleeps inside its first chunk) must not lose or repeat items; the caller
  // steals the rest of the worker's block and waits only for the chunk the worker already holds.
  whittle_threadpool* slow = whittle_threadpool_create(2);
  report(slow != NULL, "threadpool create 2 (slow worker)");
  if (slow != NULL) {
    for (size_t repeat = 0; repeat < 5; repeat++) {
      pool_probe probe;
      memset(&probe, 0, sizeof(probe));
      probe.visits = calloc(1000, 1);
      probe.sleep_thread = 1;
      whittle_threadpool_parallelize(slow, probe_task, &probe, 1000, 7);
      bool ok = probe.threads_seen[0] + probe.threads_seen[1] == 1000;
      for (size_t i = 0; i < 1000; i++) ok = ok && probe.visits[i] == 1;
      report(ok, "threadpool slow worker, repeat %zu: every item exactly once (caller ran %zu)", repeat,
             probe.threads_seen[0]);
      // The caller owns half the units; it runs more only by stealing from the sleeping worker's block.
      report(probe.threads_seen[0] > 500,
             "threadpool slow worker, repeat %zu: the caller stole (ran %zu > 500)", repeat,
             probe.threads_seen[0]);
      free(probe.visits);
    }
    whittle_threadpool_destroy(slow);
  }
  // Many back-to-back small jobs: workers still inside the previous job when the next one is published (the
  // caller waits for `active`), workers that back off from a job being published, workers that fall asleep
  // between jobs (no lost wake-up), and a caller that sleeps on `done` all have to keep every item exactly
  // once.
  whittle_threadpool* busy = whittle_threadpool_create(3);
  report(busy != NULL, "threadpool create 3 (back-to-back jobs)");
  if (busy != NULL) {
    unsigned char visits[97];
    bool ok = true;
    for (size_t repeat = 0; repeat < 20000 && ok; repeat++) {
      pool_probe probe;
      memset(&probe, 0, sizeof(probe));
      memset(visits, 0, sizeof(visits));
      probe.visits = visits;
      // Every 1000th job pauses long enough for the workers to go to sleep first.
      if (repeat % 1000 == 999) {
        const struct timespec pause = {0, 3000000};
        nanosleep(&pause, NULL);
      }
      whittle_threadpool_parallelize(busy, probe_task, &probe, 97, repeat % 5 + 1);
      for (size_t i = 0; i < 97; i++) ok = ok && visits[i] == 1;
    }
    report(ok, "threadpool 20000 back-to-back jobs: every item exactly once");
    whittle_threadpool_destroy(busy);
  }
  // A held pool (whittle_threadpool_hold: one wake-up per model run): jobs separated by pauses longer than
  // the workers' spin, under nested holds, a release without a hold, and a pool destroyed while held (its
  // spinning workers must still stop) keep every item exactly once.
  whittle_threadpool* held = whittle_threadpool_create(3);
  report(held != NULL, "threadpool create 3 (held)");
  if (held != NULL) {
    whittle_threadpool_release(held);  // without a hold: nothing to undo
    unsigned char visits[301];
    bool ok = true;
    for (size_t repeat = 0; repeat < 60 && ok; repeat++) {
      const struct timespec pause = {0, 1000000};
      nanosleep(&pause, NULL);  // the workers fall asleep (not held) or spin (held)
      if (repeat % 3 == 0) whittle_threadpool_hold(held);
      if (repeat % 6 == 0) whittle_threadpool_hold(held);  // nested
      for (size_t job = 0; job < 4 && ok; job++) {
        pool_probe probe;
        memset(&probe, 0, sizeof(probe));
        memset(visits, 0, sizeof(visits));
        probe.visits = visits;
        whittle_threadpool_parallelize(held, probe_task, &probe, 301, job + 1);
        for (size_t i = 0; i < 301; i++) ok = ok && visits[i] == 1;
        nanosleep(&pause, NULL);  // a single-threaded step between two parallel ones
      }
      if (repeat % 6 == 0) whittle_threadpool_release(held);
      if (repeat % 3 == 2) whittle_threadpool_release(held);
    }
    report(ok, "threadpool held across paused jobs: every item exactly once");
    whittle_threadpool_hold(held);
    whittle_threadpool_destroy(held);  // destroyed while held: joins its spinning workers (or hangs here)
  }
  // Granularity: a job under twice the minimum work stays whole; a larger one gets units of an eighth of
  // the minimum, multiples of the requested granularity, never 0.
  const size_t saved_min_work = whittle_threadpool_min_task_work();
  whittle_threadpool_set_min_task_work(WHITTLE_MIN_TASK_WORK);
  report(whittle_threadpool_granularity(NULL, 6, 1e6, 100) == 6, "granularity: enough work per unit keeps 6");
  report(whittle_threadpool_granularity(NULL, 6, 36864, 256) == 6,
         "granularity: VGG rows of 36864 MACs keep 6");
  report(whittle_threadpool_granularity(NULL, 6, 10000, 1000) == 12, "granularity: 2 x 6 rows of 10000 MACs");
  report(whittle_threadpool_granularity(NULL, 8, 1000, 10000) == 72, "granularity: 9 x 8 items of 1000 MACs");
  report(whittle_threadpool_granularity(NULL, 6, 36864, 28) >= SIZE_MAX / 4,
         "granularity: less than twice the minimum work never splits");
  report(whittle_threadpool_granularity(NULL, 0, 1e9, 2) == 1, "granularity: 0 is treated as 1");
  report(whittle_threadpool_granularity(NULL, 4, 0, 1000) >= SIZE_MAX / 4,
         "granularity: no work never splits");
  report(whittle_threadpool_granularity(NULL, 4, 1e-300, 1000) >= SIZE_MAX / 4,
         "granularity: tiny work never splits");
  {
    // A held pool splits at an eighth of the minimum (its workers spin); an unheld or 1-thread one does not.
    whittle_threadpool* two = whittle_threadpool_create(2);
    const double macs = 2.0 * WHITTLE_MIN_TASK_WORK / WHITTLE_HELD_MIN_TASK_DIVISOR / 100;  // per row
    report(whittle_threadpool_granularity(two, 1, macs, 100) >= SIZE_MAX / 4,
           "granularity: an unheld pool keeps a small job whole");
    whittle_threadpool_hold(two);
    report(whittle_threadpool_granularity(two, 1, macs, 100) < 100,
           "granularity: a held pool splits a job of twice its lower minimum");
    report(whittle_threadpool_granularity(two, 1, macs * 0.99, 100) >= SIZE_MAX / 4,
           "granularity: a held pool keeps a job under twice its lower minimum whole");
    whittle_threadpool_release(two);
    report(whittle_threadpool_granularity(two, 1, macs, 100) >= SIZE_MAX / 4,
           "granularity: a released pool keeps the full minimum");
    whittle_threadpool_destroy(two);
  }
  whittle_threadpool_set_min_task_work(0);
  report(whittle_threadpool_granularity(NULL, 6, 10, 12) == 6,
         "granularity: minimum 0 splits at the granularity");
  whittle_threadpool_set_min_task_work(saved_min_work);
  report(whittle_threadpool_create(0) == NULL && whittle_threadpool_create(WHITTLE_MAX_THREADS + 1) == NULL,
         "threadpool refuses 0 and too many threads");
  whittle_threadpool_destroy(NULL);
}

static void test_data_movement(void) {
  // concat: 3 inputs of 2, 5, 1 channels over 4 rows, int8 and fp32 element sizes.
  const size_t channels[3] = {2, 5, 1};
  int8_t a[8], b[20], c[4], out[32];
  fill_bytes(a, sizeof(a));
  fill_bytes(b, sizeof(b));
  fill_bytes(c, sizeof(c));
  const void* inputs[3] = {a, b, c};
  whittle_concat_channels(4, 3, channels, inputs, 1, out);
  bool ok = true;
  for (size_t r = 0; r < 4; r++) {
    ok = ok && memcmp(out + r * 8, a + r * 2, 2) == 0 && memcmp(out + r * 8 + 2, b + r * 5, 5) == 0 &&
         out[r * 8 + 7] == c[r];
  }
  report(ok, "concat int8 channels 2+5+1");
  float fa[6], fb[9], fout[15];
  fill_float(fa, 6);
  fill_float(fb, 9);
  const size_t fch[2] = {2, 3};
  const void* finputs[2] = {fa, fb};
  whittle_concat_channels(3, 2, fch, finputs, sizeof(float), fout);
  ok = true;
  for (size_t r = 0; r < 3; r++) ok = ok && fout[r * 5] == fa[r * 2] && fout[r * 5 + 4] == fb[r * 3 + 2];
  report(ok, "concat fp32 channels 2+3");
  // shuffle of 2 rows, 3 groups x 4: output channel j * 3 + g = input channel g * 4 + j.
  float in[24], shuffled[24];
  for (size_t i = 0; i < 24; i++) in[i] = (float)i;
  whittle_channel_shuffle(2, 3, 4, in, sizeof(float), shuffled);
  ok = true;
  for (size_t r = 0; r < 2; r++) {
    for (size_t g = 0; g < 3; g++) {
      for (size_t j = 0; j < 4; j++) ok = ok && shuffled[r * 12 + j * 3 + g] == in[r * 12 + g * 4 + j];
    }
  }
  report(ok, "channel shuffle 3 groups x 4");
  // The per-size paths (1, 2 bytes) and the generic one (8 bytes) give the same permutation.
  const size_t sizes[3] = {1, 2, 8};
  for (size_t s = 0; s < 3; s++) {
    const size_t e = sizes[s], rows = 3, groups = 2, group_channels = 5, n = rows * groups * group_channels;
    _Alignas(8) unsigned char bytes[3 * 10 * 8], moved[3 * 10 * 8];
    fill_bytes((int8_t*)bytes, n * e);
    whittle_channel_shuffle(rows, groups, group_channels, bytes, e, moved);
    ok = true;
    for (size_t r = 0; r < rows; r++) {
      for (size_t g = 0; g < groups; g++) {
        for (size_t j = 0; j < group_channels; j++) {
          const size_t to = r * 10 + j * groups + g, from = r * 10 + g * group_channels + j;
          ok = ok && memcmp(moved + to * e, bytes + from * e, e) == 0;
        }
      }
    }
    char what[64];
    snprintf(what, sizeof(what), "channel shuffle 2 groups x 5, %zu-byte elements", e);
    report(ok, what);
  }
  // nearest resize of a 2 x 3 image of 2 fp32 channels to 3 x 2: rows 1, 0, 1 and columns 2, 0.
  const uint32_t rows[6] = {1, 1, 0, 0, 1, 1}, columns[4] = {2, 2, 0, 0};
  const whittle_resize_shape s = {1, 2, 3, 3, 2, 2, rows, NULL, columns, NULL};
  float image[12], resized[12];
  for (size_t i = 0; i < 12; i++) image[i] = (float)i;
  whittle_resize_nearest(&s, image, sizeof(float), resized);
  const float expected[12] = {10, 11, 6, 7, 4, 5, 0, 1, 10, 11, 6, 7};
  report(memcmp(resized, expected, sizeof(expected)) == 0, "resize nearest fp32 2x3 -> 3x2");
}

static void test_cpu(void) {
  char described[256];
  whittle_cpu_features_describe(described, sizeof(described));
  printf("cpu features: %s\n", described[0] ? described : "(none)");
  printf("best isa: %s\n", whittle_isa_name(whittle_isa_best()));
  whittle_isa parsed = WHITTLE_ISA_SCALAR;
  report(whittle_isa_parse("avx512vnni", &parsed) && parsed == WHITTLE_ISA_AVX512VNNI &&
             !whittle_isa_parse("sse", &parsed),
         "isa names parse");
  report(whittle_isa_allows(WHITTLE_ISA_AVX512VNNI, WHITTLE_ISA_AVX2) &&
             !whittle_isa_allows(WHITTLE_ISA_AVX2, WHITTLE_ISA_AVX512) &&
             !whittle_isa_allows(WHITTLE_ISA_NEONDOT, WHITTLE_ISA_AVX2) &&
             whittle_isa_allows(WHITTLE_ISA_NEONDOT, WHITTLE_ISA_NEON) &&
             whittle_isa_allows(WHITTLE_ISA_NEON, WHITTLE_ISA_SCALAR),
         "isa ladders");
  report(whittle_isa_supported(WHITTLE_ISA_SCALAR) && whittle_isa_supported(whittle_isa_best()),
         "scalar and the best level are supported");
#if defined(__aarch64__) || defined(__arm__)
  report(whittle_isa_supported(WHITTLE_ISA_NEON), "NEON detected on an ARM build");
#endif
  // With the CPU lacking no level of its own ladder below the best one.
  bool ladder_ok = true;
  for (int i = 0; i < WHITTLE_ISA_COUNT; i++) {
    if (whittle_isa_supported((whittle_isa)i) && !whittle_isa_allows(whittle_isa_best(), (whittle_isa)i)) {
      ladder_ok = false;
    }
  }
  report(ladder_ok, "every supported level is allowed by the best one");
}

// ---------------------------------------------------------------------------------------------------------

// Resize: random taps (a top row and the next, as bilinear taps are, or a repeated one; weights in [0, 1]
// with zeros, halves and ones among them) over channel counts around every vector width. int8 / uint8 bit for
// bit with the reference (double sums rounded half up), fp32 within 1e-5; then two roundings worked by hand.
static void fill_resize_taps(uint32_t* taps, double* weights, size_t outputs, size_t inputs) {
  for (size_t o = 0; o < outputs; o++) {
    const uint32_t first = (uint32_t)rand_range(0, (int32_t)inputs - 1);
    taps[2 * o] = first;
    taps[2 * o + 1] = first + 1 < inputs ? first + 1 : first;
    const int32_t kind = rand_range(0, 5);
    weights[o] = kind == 0 ? 0.0 : kind == 1 ? 0.5 : kind == 2 ? 1.0 : (double)rand_u32() / 4294967296.0;
  }
}

static void test_resize(whittle_isa level) {
  const size_t cases[][5] = {{1, 1, 1, 1, 1},
                             {
                                 1,
                                 4,
                                 5,
                                 8,
                                 10,
                             },
                             {2, 7, 3, 3, 14},
                             {1, 9, 9, 4, 4},
                             {1, 3, 5, 6, 10},
                             {1, 2, 2, 5, 3}};
  const size_t channels[] = {1, 3, 4, 8, 15, 16, 17, 31, 32, 33, 40, 64, 67};
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    for (size_t k = 0; k < sizeof(channels) / sizeof(channels[0]); k++) {
      const size_t batch = cases[c][0], ih = cases[c][1], iw = cases[c][2], oh = cases[c][3],
                   ow = cases[c][4];
      const size_t ch = channels[k], in_n = batch * ih * iw * ch, out_n = batch * oh * ow * ch;
      uint32_t* rows = xmalloc(2 * oh * sizeof(uint32_t));
      uint32_t* columns = xmalloc(2 * ow * sizeof(uint32_t));
      double* row_weights = xmalloc(oh * sizeof(double));
      double* column_weights = xmalloc(ow * sizeof(double));
      fill_resize_taps(rows, row_weights, oh, ih);
      fill_resize_taps(columns, column_weights, ow, iw);
      const whittle_resize_shape s = {batch, ih, iw, oh, ow, ch, rows, row_weights, columns, column_weights};
      int8_t* q = xmalloc(in_n);
      int8_t* want = xmalloc(out_n);
      int8_t* got = xmalloc(out_n);
      fill_bytes(q, in_n);
      size_t where;
      for (int u = 0; u < 2; u++) {
        qs8_resize_bilinear__reference(&s, q, want, u);
        qs8_resize_bilinear(&s, q, got, u, level);
        report(!first_difference(got, want, out_n, &where),
               "%s resize bilinear %s %zux%zux%zux%zu -> %zux%zu", u ? "qu8" : "qs8", level_name, batch, ih,
               iw, ch, oh, ow);
      }
      float* x = xmalloc(in_n * sizeof(float));
      float* fwant = xmalloc(out_n * sizeof(float));
      float* fgot = xmalloc(out_n * sizeof(float));
      fill_float(x, in_n);
      f32_resize_bilinear__reference(&s, x, fwant);
      f32_resize_bilinear(&s, x, fgot, level);
      bool close = true;
      for (size_t i = 0; i < out_n; i++) close = close && fabsf(fgot[i] - fwant[i]) <= 1e-5f;
      report(close, "f32 resize bilinear %s %zux%zux%zux%zu -> %zux%zu", level_name, batch, ih, iw, ch, oh,
             ow);
      free(rows);
      free(columns);
      free(row_weights);
      free(column_weights);
      free(q);
      free(want);
      free(got);
      free(x);
      free(fwant);
      free(fgot);
    }
  }
  // Halves round up, as JavaScript's Math.round: (1 + 2) / 2 -> 2, (-2 + -1) / 2 -> -1; a quarter of the way
  // from -3 to 5 is -1.
  const int8_t column[6] = {1, 2, -2, -1, -3, 5};
  const uint32_t rows[2] = {0, 1}, columns[2] = {0, 0};
  const double half = 0.5, quarter = 0.25, none = 0;
  int8_t out[3];
  const double* weights[3] = {&half, &half, &quarter};
  bool ok = true;
  for (size_t i = 0; i < 3; i++) {
    const whittle_resize_shape s = {1, 2, 1, 1, 1, 1, rows, weights[i], columns, &none};
    qs8_resize_bilinear(&s, column + 2 * i, out + i, false, level);
  }
  ok = out[0] == 2 && out[1] == -1 && out[2] == -1;
  report(ok, "qs8 resize bilinear rounds halves up %s (%d %d %d)", level_name, out[0], out[1], out[2]);
}

static void run_level(whittle_isa level) {
  level_name = whittle_isa_name(level);
  // Every level sees the same data, so a test added to one level leaves the data of the others unchanged.
  rng_state = 0x9E3779B97F4A7C15ull;
  printf("== isa %s: f32 gemm %s, f32 dwconv %s, qs8 gemm %s, qs8 dwconv %s\n", level_name,
         f32_gemm_ukernel_select(level)->name, f32_dwconv_ukernel_select(level)->name,
         qs8_gemm_ukernel_select(level)->name, qs8_dwconv_ukernel_select(level)->name);
  const size_t fixed = sizeof(conv_cases) / sizeof(conv_cases[0]);
  for (size_t c = 0; c < fixed; c++) {
    test_f32_conv(conv_cases[c].name, &conv_cases[c].s, level, false);
    test_qs8_conv(conv_cases[c].name, &conv_cases[c].s, level, false, REQUANT_TYPICAL, false);
    test_qs8_conv(conv_cases[c].name, &conv_cases[c].s, level, true, REQUANT_TYPICAL, false);
    test_qs8_conv(conv_cases[c].name, &conv_cases[c].s, level, c % 2 == 0, REQUANT_EXTREME, false);
  }
  for (size_t r = 0; r < 24; r++) {
    const whittle_conv2d_shape s = random_conv_shape();
    test_f32_conv("random", &s, level, false);
    test_qs8_conv("random", &s, level, r % 2 == 0, r % 3 == 0 ? REQUANT_EXTREME : REQUANT_TYPICAL, false);
  }
  const size_t fc_cases[][3] = {{1, 1, 1},     {3, 17, 35}, {2, 400, 120},
                                {1, 2048, 10}, {5, 65, 33}, {4, 3, 100}};
  for (size_t c = 0; c < sizeof(fc_cases) / sizeof(fc_cases[0]); c++) {
    const whittle_conv2d_shape s = {
        fc_cases[c][0], 1, 1, fc_cases[c][1], fc_cases[c][2], 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
    test_f32_conv("fc", &s, level, true);
    test_qs8_conv("fc", &s, level, false, REQUANT_TYPICAL, true);
    test_qs8_conv("fc", &s, level, true, REQUANT_TYPICAL, true);
    test_qs8_conv("fc", &s, level, c % 2 == 0, REQUANT_EXTREME, true);
  }
  // int8 only (fp32 sums of 1500 terms stray past the 1e-5 tolerance in any order): a multi-row kernel
  // whose k exceeds the c2 kernels' widening block (QS8_C2_A16_BLOCK), so A is widened per k block.
  const whittle_conv2d_shape long_k = {6, 1, 1, 1500, 40, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
  test_qs8_conv("fc", &long_k, level, false, REQUANT_TYPICAL, true);
  test_qs8_conv("fc", &long_k, level, true, REQUANT_EXTREME, true);
  // Batch 1 runs the int8 GEMV kernels: k below, at and past their 64-byte chunks and 128-byte steps, and
  // channel counts around their blocks of 4 and 16; layers wider than 32 on VNNI run the 1x32c4 kernel's rows
  // of two blocks (whole, and partial at 37 and 120 channels, then one block at 96).
  const size_t gemv_cases[][2] = {{64, 16}, {128, 17},  {130, 37}, {400, 120},
                                  {191, 3}, {1500, 40}, {72, 64},  {260, 96}};
  for (size_t c = 0; c < sizeof(gemv_cases) / sizeof(gemv_cases[0]); c++) {
    const whittle_conv2d_shape s = {1, 1, 1, gemv_cases[c][0], gemv_cases[c][1], 1, 1, 1, 1, 1, 1, 0, 0,
                                    0, 0, 1};
    test_qs8_conv("fc batch 1", &s, level, false, REQUANT_TYPICAL, true);
    test_qs8_conv("fc batch 1", &s, level, true, REQUANT_TYPICAL, true);
    test_qs8_conv("fc batch 1", &s, level, c % 2 == 0, REQUANT_EXTREME, true);
  }
  // The requantization's rounding corners on the depthwise 3x3 row kernels (whole and partial blocks of
  // channels, stride 2, batch 2), on the generic depthwise kernel and on a dense conv.
  const whittle_conv2d_shape rounding_cases[] = {{1, 12, 12, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64},
                                                 {2, 9, 9, 40, 40, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 40},
                                                 {1, 6, 6, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 16},
                                                 {1, 6, 6, 24, 24, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 24},
                                                 {1, 8, 8, 24, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}};
  for (size_t c = 0; c < sizeof(rounding_cases) / sizeof(rounding_cases[0]); c++) {
    test_qs8_conv("rounding", &rounding_cases[c], level, false, REQUANT_ROUNDING, false);
    test_qs8_conv("rounding", &rounding_cases[c], level, true, REQUANT_ROUNDING, false);
  }
  test_fixed_point(level);
  test_expanded(level);
  test_f32_simple(level);
  test_qs8_simple(level, false);
  test_qs8_simple(level, true);
  test_resize(level);
  for (size_t c = 0; c < fixed; c++) test_conv_add(conv_cases[c].name, &conv_cases[c].s, level, c % 2 == 1);
  for (size_t c = 0; c < sizeof(gemv_cases) / sizeof(gemv_cases[0]); c++) {
    const whittle_conv2d_shape s = {1, 1, 1, gemv_cases[c][0], gemv_cases[c][1], 1, 1, 1, 1, 1, 1, 0, 0,
                                    0, 0, 1};
    test_conv_add("1x1 conv of one pixel (GEMV)", &s, level, c % 2 == 0);
  }
}

// The native frame loop (frame_source.h) over a pipe, with a stand-in for the model's frame call: its class
// is the sum of the frame's bytes plus the context's offset, so each record says which attach ran it.
typedef struct {
  uint32_t offset;
  const char* fail;    // returned instead of running, when set
  atomic_int running;  // frames of this context in flight: must never exceed 1
  atomic_int overlap;
} frame_fn_context;

static const char* frame_fn(void* raw, const uint8_t* frame, uint32_t* class_index, float* confidence) {
  frame_fn_context* c = raw;
  if (c->fail != NULL) return c->fail;
  if (atomic_fetch_add(&c->running, 1) != 0) atomic_store(&c->overlap, 1);
  uint32_t sum = 0;
  for (size_t i = 0; i < 4; i++) sum += frame[i];
  *class_index = sum + c->offset;
  *confidence = 0.5f;
  atomic_fetch_sub(&c->running, 1);
  return NULL;
}

static void sleep_ms(long ms) {
  const struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

// Waits (up to 5 s) until the source has read `received` frames, or has ended when received is 0.
static bool wait_source(whittle_frame_source* source, uint64_t received) {
  for (int i = 0; i < 5000; i++) {
    whittle_frame_source_status status;
    whittle_frame_source_status_of(source, &status);
    if (received == 0 ? status.ended : status.received >= received) return true;
    sleep_ms(1);
  }
  return false;
}

// Waits (up to 5 s) until the frame numbered `index` has been run.
static bool wait_run(whittle_frame_source* source, uint64_t index) {
  uint8_t frame[4];
  whittle_frame_record record;
  for (int i = 0; i < 5000; i++) {
    if (whittle_frame_source_last(source, frame, &record) && record.index >= index) return true;
    sleep_ms(1);
  }
  return false;
}

static bool write_all(int fd, const void* data, size_t bytes) {
  return write(fd, data, bytes) == (ssize_t)bytes;
}

typedef struct {
  int fd;
  int frames;
} frame_writer;

static void write_frames(void* raw) {
  frame_writer* w = raw;
  for (int f = 0; f < w->frames; f++) {
    const uint8_t frame[4] = {(uint8_t)f, 1, 2, 3};
    if (!write_all(w->fd, frame, 4)) break;
    if (f % 8 == 0) sleep_ms(1);
  }
}

// A source of 4-byte frames on a new pipe (fds: its read and write ends), or NULL (reported).
static whittle_frame_source* open_source(int fds[2], size_t capacity) {
  const char* error = NULL;
  if (pipe(fds) != 0) {
    report(false, "pipe");
    return NULL;
  }
  whittle_frame_source* source = whittle_frame_source_start(fds[0], 4, capacity, &error);
  report(source != NULL, "starts on a pipe");
  return source;
}

// A stand-in frame call for the warm-ups: counts its calls and keeps each call's first frame byte; on call
// number `inject` (a warm-up) it writes `frame` into the pipe and sleeps 15 ms, so that frame arrives while
// the warm-up runs.
typedef struct {
  int calls;
  uint8_t first_bytes[64];
  int inject, fd;
  uint8_t frame[4];
  long run_ms;  // every call sleeps this long (a model of milliseconds)
} warm_fn_context;

static const char* warm_fn(void* raw, const uint8_t* frame, uint32_t* class_index, float* confidence) {
  warm_fn_context* c = raw;
  if (c->calls < 64) c->first_bytes[c->calls] = frame[0];
  if (++c->calls == c->inject) {
    write_all(c->fd, c->frame, 4);
    sleep_ms(15);
  }
  if (c->run_ms > 0) sleep_ms(c->run_ms);
  *class_index = frame[0];
  *confidence = 1.0f;
  return NULL;
}

// Warm-ups (whittle_frame_source_warm_ahead): none before the second frame; then runs of the last frame with
// no record; a frame that came during one is charged from the warm-up's start; off again with 0.
static void test_frame_source_warmups(void) {
  report_where = "frame source warm-ups";
  int fds[2];
  whittle_frame_source* source = open_source(fds, 8);
  if (source == NULL) return;
  // Calls: 1 frame A, 2 frame B, 3 the first warm-up (5 ms before a frame 20 ms after B may come), which
  // writes frame C and sleeps 15 ms; 4 frame C.
  warm_fn_context c = {.inject = 3, .fd = fds[1], .frame = {30, 0, 0, 0}};
  whittle_frame_source_warm_ahead(source, 5.0);
  whittle_frame_source_attach(source, warm_fn, &c, 1);
  const uint8_t a[4] = {10, 0, 0, 0}, b[4] = {20, 0, 0, 0}, d[4] = {40, 0, 0, 0}, e[4] = {50, 0, 0, 0};
  write_all(fds[1], a, 4);
  wait_run(source, 0);
  sleep_ms(20);
  whittle_frame_source_status status;
  whittle_frame_source_status_of(source, &status);
  report(status.warmups == 0, "no warm-up before the second frame (%llu)",
         (unsigned long long)status.warmups);
  write_all(fds[1], b, 4);
  report(wait_run(source, 2), "the frame written during a warm-up runs");
  // After C: a warm-up every 5 ms until a frame comes, 16 at most.
  sleep_ms(300);
  whittle_frame_source_status_of(source, &status);
  report(status.warmups == 17, "1 warm-up before C, 16 after it (%llu)", (unsigned long long)status.warmups);
  whittle_frame_record records[8];
  size_t n = whittle_frame_source_drain(source, records, 8);
  report(
      n == 3 && records[0].class_index == 10 && records[1].class_index == 20 && records[2].class_index == 30,
      "one record per frame, none for the warm-ups (%zu)", n);
  report(n == 3 && records[2].latency_ms >= 15.0,
         "the frame that came during a warm-up is charged from its start (%.3f ms)",
         n == 3 ? records[2].latency_ms : -1.0);
  // Off: frame D runs, and no warm-up follows.
  whittle_frame_source_warm_ahead(source, 0);
  write_all(fds[1], d, 4);
  wait_run(source, 3);
  sleep_ms(50);
  whittle_frame_source_status_of(source, &status);
  report(status.warmups == 17 && status.dropped == 0, "0 turns them off (%llu)",
         (unsigned long long)status.warmups);
  // On again, for a function whose run is long beside the lead (3 ms against 5 ms): frame E runs, and no
  // warm-up follows (a frame would wait for it, and the device would run the model twice per frame).
  c.run_ms = 3;
  whittle_frame_source_warm_ahead(source, 5.0);
  write_all(fds[1], e, 4);
  wait_run(source, 4);
  sleep_ms(80);
  whittle_frame_source_status_of(source, &status);
  report(status.warmups == 17, "no warm-up of a 3 ms run at a 5 ms lead (%llu)",
         (unsigned long long)status.warmups);
  whittle_frame_source_stop(source);  // before reading the context the loop's thread wrote
  close(fds[1]);
  report(c.calls == 22 && c.first_bytes[0] == 10 && c.first_bytes[1] == 20 && c.first_bytes[2] == 20 &&
             c.first_bytes[3] == 30 && c.first_bytes[4] == 30 && c.first_bytes[20] == 40 &&
             c.first_bytes[21] == 50,
         "calls: A, B, a warm-up on B, C, 16 warm-ups on C, D, E (%d calls)", c.calls);
  report_where = NULL;
}

static void test_frame_source(void) {
  report_where = "frame source";
  const char* error = NULL;
  report(whittle_frame_source_start(-1, 4, 8, &error) == NULL && error != NULL,
         "a bad descriptor is refused");
  int fds[2];
  whittle_frame_source* source = open_source(fds, 4);
  if (source == NULL) return;
  frame_fn_context a = {.offset = 0}, b = {.offset = 1000};
  atomic_init(&a.running, 0);
  atomic_init(&a.overlap, 0);
  atomic_init(&b.running, 0);
  atomic_init(&b.overlap, 0);
  // Detached: frames are read and dropped, no record.
  const uint8_t first[4] = {9, 9, 9, 9};
  write_all(fds[1], first, 4);
  report(wait_source(source, 1), "reads a frame with nothing attached");
  whittle_frame_record records[8];
  whittle_frame_source_status status;
  whittle_frame_source_status_of(source, &status);
  report(whittle_frame_source_drain(source, records, 8) == 0 && status.dropped == 1, "drops it, no record");
  uint8_t last[4];
  whittle_frame_record last_record;
  report(!whittle_frame_source_last(source, last, &last_record), "no last frame before a run");
  // Attached: one record per frame, frame after frame, the partial writes joined.
  whittle_frame_source_attach(source, frame_fn, &a, 1);
  for (uint8_t f = 0; f < 3; f++) {
    const uint8_t frame[4] = {f, 1, 2, 3};
    write_all(fds[1], frame, 2);
    sleep_ms(2);
    write_all(fds[1], frame + 2, 2);
    wait_run(source, 1u + f);
  }
  size_t n = whittle_frame_source_drain(source, records, 8);
  bool ok = n == 3;
  for (size_t i = 0; ok && i < n; i++)
    ok = records[i].index == 1 + i && records[i].class_index == 6 + i && records[i].generation == 1 &&
         records[i].confidence == 0.5f && records[i].latency_ms >= 0;
  report(ok, "3 frames give 3 records in order (%zu)", n);
  ok = whittle_frame_source_last(source, last, &last_record);
  report(ok && last[0] == 2 && last_record.index == 3, "the last frame and its record");
  // A swap: records of the new function carry its generation.
  whittle_frame_source_attach(source, frame_fn, &b, 2);
  const uint8_t frame[4] = {1, 1, 1, 1};
  write_all(fds[1], frame, 4);
  wait_run(source, 4);
  n = whittle_frame_source_drain(source, records, 8);
  report(n == 1 && records[0].generation == 2 && records[0].class_index == 1004, "a swap takes effect");
  // The ring keeps the newest records: 6 frames into a ring of 4 lose 2.
  for (uint8_t f = 0; f < 6; f++) {
    const uint8_t fr[4] = {f, 0, 0, 0};
    write_all(fds[1], fr, 4);
    wait_run(source, 5u + f);
  }
  whittle_frame_source_status_of(source, &status);
  n = whittle_frame_source_drain(source, records, 8);
  report(n == 4 && status.lost == 2 && records[0].class_index == 1002 && records[3].class_index == 1005,
         "a full ring loses its oldest records (%zu, lost %llu)", n, (unsigned long long)status.lost);
  // Swaps while frames stream in from another thread: a function never runs after the attach that replaced
  // it returned, and never twice at once.
  frame_writer writer = {fds[1], 400};
  whittle_thread* thread = whittle_thread_start(write_frames, &writer);
  report(thread != NULL, "a writer thread");
  for (uint32_t g = 0; g < 200; g++) {
    frame_fn_context* c = g % 2 ? &a : &b;
    whittle_frame_source_attach(source, g % 3 == 0 ? NULL : frame_fn, c, 10 + g);
    whittle_frame_source_drain(source, records, 8);
  }
  whittle_thread_join(thread);
  report(atomic_load(&a.overlap) == 0 && atomic_load(&b.overlap) == 0, "no frame call overlaps another");
  // A partial frame at the end of the stream ends the loop and says so.
  write_all(fds[1], frame, 3);
  close(fds[1]);
  report(wait_source(source, 0), "ends at end of stream");
  whittle_frame_source_status_of(source, &status);
  report(status.ended && strstr(status.message, "inside a frame: 3 of 4 bytes") != NULL,
         "a partial frame is named: %s", status.message);
  whittle_frame_source_stop(source);
  // The attached function's error ends the loop with its message.
  if (pipe(fds) != 0) return;
  source = whittle_frame_source_start(fds[0], 4, 4, &error);
  frame_fn_context failing = {.offset = 0, .fail = "step 3 cannot run: out of memory"};
  atomic_init(&failing.running, 0);
  atomic_init(&failing.overlap, 0);
  whittle_frame_source_attach(source, frame_fn, &failing, 1);
  write_all(fds[1], frame, 4);
  report(wait_source(source, 0), "a failing frame call ends the loop");
  whittle_frame_source_status_of(source, &status);
  report(strcmp(status.message, "frame 0: step 3 cannot run: out of memory") == 0, "with its message: %s",
         status.message);
  whittle_frame_source_stop(source);
  close(fds[1]);
  // Stop wakes a loop waiting on a pipe that gives nothing.
  if (pipe(fds) != 0) return;
  source = whittle_frame_source_start(fds[0], 4, 4, &error);
  sleep_ms(5);
  whittle_frame_source_stop(source);
  report(true, "stops while waiting for a frame");
  close(fds[1]);
  report_where = NULL;
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0) verbose = true;
  }
  test_cpu();
  test_requantize_reference();
  test_average_rounding();
  test_threadpool();
  test_frame_source();
  test_frame_source_warmups();
  // The test layers are small: without this they would all run inline and the multi-threaded paths (the
  // per-thread scratch, rows split between tasks) would go untested.
  whittle_threadpool_set_min_task_work(0);
  test_data_movement();
  for (size_t p = 0; p < 2; p++) {
    pools[p] = whittle_threadpool_create(pool_threads[p]);
    if (pools[p] == NULL) {
      fprintf(stderr, "cannot create a thread pool\n");
      return 2;
    }
  }
  const char* forced = getenv("WHITTLE_ISA");
  if (forced != NULL && forced[0] != '\0') {
    const char* error = whittle_isa_selection_error();
    report(error == NULL, "WHITTLE_ISA=%s selectable%s%s", forced, error ? ": " : "", error ? error : "");
    if (error == NULL) run_level(whittle_isa_selected());
  } else {
    for (int level = 0; level < WHITTLE_ISA_COUNT; level++) {
      if (whittle_isa_supported((whittle_isa)level)) run_level((whittle_isa)level);
    }
  }
  // softmax int8 has a single (reference) implementation; check it against a float computation.
  {
    int8_t in[10], out[10];
    for (int i = 0; i < 10; i++) in[i] = (int8_t)(i * 10 - 50);
    qs8_softmax(1, 10, in, 0.1f, 0, 1.0f / 256.0f, -128, false, out);
    double sum = 0.0;
    for (int i = 0; i < 10; i++) sum += exp(0.1 * (in[i] - 40));
    bool ok = true;
    for (int i = 0; i < 10; i++) {
      const double p = exp(0.1 * (in[i] - 40)) / sum;
      const long want = lround(p * 256.0) - 128;
      ok = ok && out[i] == (int8_t)(want > 127 ? 127 : want);
    }
    report(ok, "qs8 softmax matches the float formula");
  }
  for (size_t p = 0; p < 2; p++) whittle_threadpool_destroy(pools[p]);
  printf("%zu passed, %zu failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
