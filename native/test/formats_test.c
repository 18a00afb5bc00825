// Tests of the compressed-format kernels (qf16, qf8, bin, xnor, tern, sparse, cb): every compiled-in
// variant the CPU supports against the family's reference, on random inputs (fixed seeds) and edge-case
// shapes, over split output-channel ranges (as a thread pool calls them). Integer and binary formats must
// match bit for bit; fp32-accumulating formats within 1e-5 of sum |terms|. Prints "N passed, N failed"
// last and exits non-zero on any failure. Built and run by scripts/native-format-tests.sh.
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bin_conv2d.h"
#include "cb_conv2d.h"
#include "cpu/cpu-features.h"
#include "hashed_fc.h"
#include "qf_conv2d.h"
#include "sparse_conv2d.h"
#include "tern_conv2d.h"
#include "xnor_conv2d.h"

static int passed = 0;
static int failed = 0;

static void report(bool ok, const char* format, ...) {
  if (ok) {
    passed++;
    return;
  }
  failed++;
  va_list args;
  va_start(args, format);
  fputs("FAIL ", stdout);
  vprintf(format, args);
  fputs("\n", stdout);
  va_end(args);
}

// ---- Random numbers: splitmix64, fixed seeds. ----

static uint64_t rng_state;
static void rng_seed(uint64_t seed) { rng_state = seed; }
static uint64_t rng_next(void) {
  uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}
static int32_t rng_int(int32_t lo, int32_t hi) {  // inclusive
  return lo + (int32_t)(rng_next() % (uint64_t)((int64_t)hi - lo + 1));
}
static float rng_float(float lo, float hi) { return lo + (hi - lo) * (float)((rng_next() >> 40) * 0x1p-24); }

static void* xmalloc(size_t bytes) {
  void* p = calloc(1, bytes == 0 ? 1 : bytes);
  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

// ---- Shapes ----

typedef struct conv_shape {
  const char* name;
  whittle_conv2d_geometry g;
} conv_shape;

static whittle_conv2d_geometry make_geometry(size_t batch, size_t ih, size_t iw, size_t kh, size_t kw,
                                             size_t sh, size_t sw, size_t ph, size_t pw, size_t groups,
                                             size_t gic, size_t goc) {
  whittle_conv2d_geometry g = {batch, ih, iw, kh, kw, sh, sw, ph, pw, 0, 0, groups, gic, goc};
  g.output_height = (ih + 2 * ph - kh) / sh + 1;
  g.output_width = (iw + 2 * pw - kw) / sw + 1;
  return g;
}

#define CONV_SHAPE_COUNT 22
static conv_shape conv_shapes[CONV_SHAPE_COUNT];

static void init_shapes(void) {
  size_t i = 0;
  conv_shapes[i++] =
      (conv_shape){"1x1 image, 1x1 kernel, 1->1", make_geometry(1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1)};
  conv_shapes[i++] = (conv_shape){"3x3 pad 1, 5x7, 3->5", make_geometry(1, 5, 7, 3, 3, 1, 1, 1, 1, 1, 3, 5)};
  conv_shapes[i++] =
      (conv_shape){"3x3 pad 1 stride 2, 9x8, 67->13", make_geometry(1, 9, 8, 3, 3, 2, 2, 1, 1, 1, 67, 13)};
  conv_shapes[i++] =
      (conv_shape){"LeNet conv2 5x5, 14x14, 6->16", make_geometry(1, 14, 14, 5, 5, 1, 1, 0, 0, 1, 6, 16)};
  conv_shapes[i++] =
      (conv_shape){"depthwise 3x3 pad 1, 7x6, 19 ch", make_geometry(1, 7, 6, 3, 3, 1, 1, 1, 1, 19, 1, 1)};
  conv_shapes[i++] =
      (conv_shape){"depthwise x2 3x3 stride 2, 8x8, 5 ch", make_geometry(1, 8, 8, 3, 3, 2, 2, 1, 1, 5, 1, 2)};
  conv_shapes[i++] =
      (conv_shape){"grouped 3x(5->4) 3x3 stride 2, 7x9", make_geometry(2, 7, 9, 3, 3, 2, 2, 1, 1, 3, 5, 4)};
  conv_shapes[i++] =
      (conv_shape){"pointwise 130->70, 6x5", make_geometry(1, 6, 5, 1, 1, 1, 1, 0, 0, 1, 130, 70)};
  conv_shapes[i++] =
      (conv_shape){"5x5 kernel on 3x3 image, pad 2, 4->3", make_geometry(1, 3, 3, 5, 5, 1, 1, 2, 2, 1, 4, 3)};
  conv_shapes[i++] = (conv_shape){"1x3 stride (1,2) pad (0,1), 4x9, 33->6",
                                  make_geometry(1, 4, 9, 1, 3, 1, 2, 0, 1, 1, 33, 6)};
  conv_shapes[i++] =
      (conv_shape){"batch 2 3x3 pad 1, 4x4, 64->8", make_geometry(2, 4, 4, 3, 3, 1, 1, 1, 1, 1, 64, 8)};
  conv_shapes[i++] =
      (conv_shape){"3x3 pad 1, 5x5, 129->7", make_geometry(1, 5, 5, 3, 3, 1, 1, 1, 1, 1, 129, 7)};
  conv_shapes[i++] =
      (conv_shape){"grouped 2x(64->3) 3x3 pad 1, 3x4", make_geometry(1, 3, 4, 3, 3, 1, 1, 1, 1, 2, 64, 3)};
  conv_shapes[i++] =
      (conv_shape){"grouped 2x(600->3) 3x3 pad 1, 3x3", make_geometry(1, 3, 3, 3, 3, 1, 1, 1, 1, 2, 600, 3)};
  conv_shapes[i++] =
      (conv_shape){"3x3 pad 1, 6x5, 70->40", make_geometry(1, 6, 5, 3, 3, 1, 1, 1, 1, 1, 70, 40)};
  // Output larger than the valid region: bottom and right padding of 2.
  whittle_conv2d_geometry big = make_geometry(1, 4, 5, 3, 3, 2, 1, 1, 0, 1, 9, 4);
  big.output_height += 1;
  big.output_width += 2;
  conv_shapes[i++] = (conv_shape){"extra bottom/right padding, 4x5, 9->4", big};
  // Stride 1, output widths of 16 and more: the sparse planes kernel's widest tiles, with a shifted last tile
  // and row groups of 4 plus leftover rows.
  conv_shapes[i++] =
      (conv_shape){"3x3 pad 1, 6x19, 5->9", make_geometry(1, 6, 19, 3, 3, 1, 1, 1, 1, 1, 5, 9)};
  conv_shapes[i++] =
      (conv_shape){"batch 2 3x3 pad 1, 9x16, 16->8", make_geometry(2, 9, 16, 3, 3, 1, 1, 1, 1, 1, 16, 8)};
  // One input channel per group: the XNOR single-bit path (a chunk boundary at 64 channels, a one-channel
  // image into a few channels, 7x7 taps).
  conv_shapes[i++] =
      (conv_shape){"depthwise 3x3 pad 1, 5x4, 70 ch", make_geometry(1, 5, 4, 3, 3, 1, 1, 1, 1, 70, 1, 1)};
  conv_shapes[i++] =
      (conv_shape){"LeNet conv1 5x5, 12x11, 1->6", make_geometry(1, 12, 11, 5, 5, 1, 1, 0, 0, 1, 1, 6)};
  conv_shapes[i++] = (conv_shape){"depthwise 7x7 pad 3 stride 2, 9x8, 9 ch",
                                  make_geometry(2, 9, 8, 7, 7, 2, 2, 3, 3, 9, 1, 1)};
  whittle_conv2d_geometry wide = make_geometry(1, 11, 12, 5, 5, 1, 1, 2, 2, 1, 3, 4);
  wide.output_height += 1;
  wide.output_width += 3;
  conv_shapes[i++] = (conv_shape){"stride 1, extra bottom/right padding, 11x12, 3->4", wide};
}

typedef struct fc_shape {
  size_t batch, input_channels, output_channels;
} fc_shape;

#define FC_SHAPE_COUNT 6
static const fc_shape fc_shapes[FC_SHAPE_COUNT] = {{1, 1, 1},     {3, 67, 13},  {2, 400, 120},
                                                   {1, 2048, 10}, {2, 130, 33}, {1, 64, 65}};

static size_t input_elements(const whittle_conv2d_geometry* g) {
  return g->batch * g->input_height * g->input_width * g->groups * g->group_input_channels;
}
static size_t output_pixels(const whittle_conv2d_geometry* g) {
  return g->batch * g->output_height * g->output_width;
}
static size_t output_channels(const whittle_conv2d_geometry* g) {
  return g->groups * g->group_output_channels;
}
static size_t reduction(const whittle_conv2d_geometry* g) {
  return g->kernel_height * g->kernel_width * g->group_input_channels;
}

// Three output-channel ranges, as a thread pool might split them (some may be empty).
static void split_ranges(size_t channels, size_t bounds[4]) {
  bounds[0] = 0;
  bounds[1] = channels / 3;
  bounds[2] = channels - channels / 4;
  bounds[3] = channels;
}

// Bytes of output-channel slot o of every output pixel must equal `expected` exactly outside [begin, end).
static bool untouched_outside(const uint8_t* out, size_t pixels, size_t channels, size_t element_size,
                              size_t begin, size_t end, uint8_t sentinel) {
  for (size_t p = 0; p < pixels; p++) {
    for (size_t o = 0; o < channels; o++) {
      if (o >= begin && o < end) continue;
      for (size_t b = 0; b < element_size; b++) {
        if (out[(p * channels + o) * element_size + b] != sentinel) return false;
      }
    }
  }
  return true;
}

static bool supported(whittle_isa isa) { return whittle_isa_supported(isa); }

// Compares fp32 results: |got - want| <= 1e-5 * scale[i] + 1e-6 (scale = sum of |terms| of that output).
static bool close_f32(const float* got, const float* want, const float* scale, size_t n, size_t* where) {
  for (size_t i = 0; i < n; i++) {
    const double tolerance = 1e-5 * (double)scale[i] + 1e-6;
    if (!(fabs((double)got[i] - (double)want[i]) <= tolerance)) {
      *where = i;
      return false;
    }
  }
  return true;
}

// ---- Fixed point (qf16, qf8) ----

// A shift that keeps most outputs inside the word (so that rounding, not saturation, is what gets compared):
// the typical accumulator is max|x| * max|w| * sqrt(K); one time in five an edge value instead.
static int32_t random_shift(double max_x, double max_w, size_t k, int32_t word_bits) {
  static const int32_t edges[] = {0, -3, 1, 62, 31};
  if (rng_int(0, 4) == 0) return edges[rng_int(0, 4)];
  const int32_t typical = (int32_t)ceil(log2(max_x * max_w * sqrt((double)k) + 1.0));
  const int32_t shift = typical - (word_bits - 2) + rng_int(-2, 2);
  return shift < 0 ? 0 : shift;
}

static void random_minmax(int32_t lo, int32_t hi, int32_t* output_min, int32_t* output_max) {
  if (rng_int(0, 2) == 0) {
    *output_min = lo;
    *output_max = hi;
  } else {
    *output_min = rng_int(lo, 0);
    *output_max = rng_int(*output_min, hi);
  }
}

// SMALL: the magnitude of the "small values" shapes (every other one), well inside the word.
#define DEFINE_QF_TEST(T, B, TAG, VARIANTS, WMAX, LO, HI, BIAS_RANGE, BITS, SMALL)                           \
  static void test_##TAG(void) {                                                                             \
    for (const TAG##_conv2d_variant* v = VARIANTS; v < VARIANTS + TAG##_conv2d_variant_count; v++) {         \
      if (!supported(v->isa)) continue;                                                                      \
      for (size_t case_index = 0; case_index < 2 * CONV_SHAPE_COUNT; case_index++) {                         \
        /* Odd cases: values in [-2, 2] and shift 0, so every unit of the accumulator shows in the output.   \
         */                                                                                                  \
        const size_t s = case_index / 2;                                                                     \
        const bool unit = (case_index % 2) == 1;                                                             \
        const whittle_conv2d_geometry* g = &conv_shapes[s].g;                                                \
        rng_seed(1000 + case_index);                                                                         \
        const size_t ni = input_elements(g), nw = output_channels(g) * reduction(g);                         \
        const size_t no = output_pixels(g) * output_channels(g);                                             \
        T* input = xmalloc(ni * sizeof(T));                                                                  \
        T* weights = xmalloc(nw * sizeof(T));                                                                \
        B* bias = xmalloc(output_channels(g) * sizeof(B));                                                   \
        T* want = xmalloc(no * sizeof(T));                                                                   \
        T* got = xmalloc(no * sizeof(T));                                                                    \
        const bool small = (s % 2) == 1;                                                                     \
        const int32_t x_range = unit ? 2 : small ? SMALL : HI, w_range = unit ? 2 : small ? SMALL : WMAX;    \
        for (size_t i = 0; i < ni; i++)                                                                      \
          input[i] = (T)(unit || small ? rng_int(-x_range, x_range) : rng_int(LO, HI));                      \
        for (size_t i = 0; i < nw; i++) weights[i] = (T)rng_int(-w_range, w_range);                          \
        for (size_t i = 0; i < output_channels(g); i++)                                                      \
          bias[i] = (B)(unit ? rng_int(-8, 8) : rng_int(-(BIAS_RANGE), BIAS_RANGE));                         \
        const int32_t input_fl = rng_int(-4, 15), weight_fl = rng_int(0, 15);                                \
        const int32_t output_fl =                                                                            \
            input_fl + weight_fl - (unit ? 0 : random_shift(x_range, w_range, reduction(g), BITS));          \
        int32_t output_min = LO, output_max = HI;                                                            \
        if (!unit) random_minmax(LO, HI, &output_min, &output_max);                                          \
        const B* b = (s % 3) == 2 ? NULL : bias;                                                             \
        TAG##_conv2d_minmax_rndnu_ukernel__reference(g, 0, output_channels(g), input, weights, b, input_fl,  \
                                                     weight_fl, output_fl, output_min, output_max, want);    \
        size_t r[4];                                                                                         \
        split_ranges(output_channels(g), r);                                                                 \
        memset(got, 0xA5, no * sizeof(T));                                                                   \
        v->conv2d(g, r[1], r[2], input, weights, b, input_fl, weight_fl, output_fl, output_min, output_max,  \
                  got);                                                                                      \
        report(untouched_outside((const uint8_t*)got, output_pixels(g), output_channels(g), sizeof(T), r[1], \
                                 r[2], 0xA5),                                                                \
               #TAG " conv2d %s [%s]: wrote outside its channel range", v->name, conv_shapes[s].name);       \
        v->conv2d(g, r[0], r[1], input, weights, b, input_fl, weight_fl, output_fl, output_min, output_max,  \
                  got);                                                                                      \
        v->conv2d(g, r[2], r[3], input, weights, b, input_fl, weight_fl, output_fl, output_min, output_max,  \
                  got);                                                                                      \
        size_t bad = 0;                                                                                      \
        while (bad < no && got[bad] == want[bad]) bad++;                                                     \
        report(bad == no, #TAG " conv2d %s [%s]: output %zu is %d, reference %d", v->name,                   \
               conv_shapes[s].name, bad, bad < no ? got[bad] : 0, bad < no ? want[bad] : 0);                 \
        free(input), free(weights), free(bias), free(want), free(got);                                       \
      }                                                                                                      \
      for (size_t s = 0; s < FC_SHAPE_COUNT; s++) {                                                          \
        const fc_shape* f = &fc_shapes[s];                                                                   \
        rng_seed(2000 + s);                                                                                  \
        const size_t ni = f->batch * f->input_channels, nw = f->output_channels * f->input_channels;         \
        const size_t no = f->batch * f->output_channels;                                                     \
        T* input = xmalloc(ni * sizeof(T));                                                                  \
        T* weights = xmalloc(nw * sizeof(T));                                                                \
        B* bias = xmalloc(f->output_channels * sizeof(B));                                                   \
        T* want = xmalloc(no * sizeof(T));                                                                   \
        T* got = xmalloc(no * sizeof(T));                                                                    \
        for (size_t i = 0; i < ni; i++) input[i] = (T)rng_int(LO, HI);                                       \
        for (size_t i = 0; i < nw; i++) weights[i] = (T)rng_int(-WMAX, WMAX);                                \
        for (size_t i = 0; i < f->output_channels; i++) bias[i] = (B)rng_int(-(BIAS_RANGE), BIAS_RANGE);     \
        const int32_t input_fl = rng_int(0, 15), weight_fl = rng_int(0, 15);                                 \
        const int32_t output_fl = input_fl + weight_fl - random_shift(HI, WMAX, f->input_channels, BITS);    \
        int32_t output_min, output_max;                                                                      \
        random_minmax(LO, HI, &output_min, &output_max);                                                     \
        TAG##_fc_minmax_rndnu_ukernel__reference(f->batch, f->input_channels, f->output_channels, 0,         \
                                                 f->output_channels, input, weights, bias, input_fl,         \
                                                 weight_fl, output_fl, output_min, output_max, want);        \
        size_t r[4];                                                                                         \
        split_ranges(f->output_channels, r);                                                                 \
        for (int k = 0; k < 3; k++) {                                                                        \
          v->fc(f->batch, f->input_channels, f->output_channels, r[k], r[k + 1], input, weights, bias,       \
                input_fl, weight_fl, output_fl, output_min, output_max, got);                                \
        }                                                                                                    \
        report(memcmp(got, want, no * sizeof(T)) == 0, #TAG " fc %s [%zux%zu->%zu]: differs from reference", \
               v->name, f->batch, f->input_channels, f->output_channels);                                    \
        free(input), free(weights), free(bias), free(want), free(got);                                       \
      }                                                                                                      \
    }                                                                                                        \
  }

DEFINE_QF_TEST(int16_t, int64_t, qf16, qf16_conv2d_variants, 32767, -32768, 32767, INT32_C(1) << 30, 16, 300)
DEFINE_QF_TEST(int8_t, int32_t, qf8, qf8_conv2d_variants, 127, -128, 127, 1 << 12, 8, 20)

// The reference's rounding on hand-checked values: ties go toward +infinity, saturation at the bounds.
static void test_qf_rounding(void) {
  const whittle_conv2d_geometry g = make_geometry(1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1);
  static const struct {
    int16_t x, w;
    int32_t shift;
    int16_t want;
  } cases[] = {{3, 1, 1, 2},   {-3, 1, 1, -1},        {5, 1, 2, 1},
               {-5, 1, 2, -1}, {-6, 1, 2, -1},        {6, 1, 2, 2},
               {7, 1, 0, 7},   {1000, 100, 0, 32767}, {-1000, 100, 0, -32768},
               {3, 1, -2, 12}, {-3, 1, -2, -12}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int16_t out = 0;
    qf16_conv2d_minmax_rndnu_ukernel__reference(&g, 0, 1, &cases[i].x, &cases[i].w, NULL, cases[i].shift, 0,
                                                0, -32768, 32767, &out);
    report(out == cases[i].want, "qf16 rounding: %d*%d >> %d gave %d, want %d", cases[i].x, cases[i].w,
           cases[i].shift, out, cases[i].want);
  }
}

// Stochastic rounding is unbiased: the mean of many quantizations of one value approaches it, and values
// on the grid are exact; nearest rounding ties upward; saturation at +-32767 / +-127; NaN -> 0.
static void test_qf_quantizers(void) {
  enum { N = 200000 };
  float* x = xmalloc(N * sizeof(float));
  int16_t* q = xmalloc(N * sizeof(int16_t));
  int8_t* q8 = xmalloc(N * sizeof(int8_t));
  const float values[] = {0.3f, -0.3f, 1.7f, -2.55f, 0.01f};
  for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
    for (size_t i = 0; i < N; i++) x[i] = values[v];
    qf16_quantize_stochastic(N, x, 4, 42, 0, q);
    qf8_quantize_stochastic(N, x, 4, 7, 123, q8);
    double mean16 = 0.0, mean8 = 0.0;
    for (size_t i = 0; i < N; i++) mean16 += q[i], mean8 += q8[i];
    mean16 = mean16 / N / 16.0;
    mean8 = mean8 / N / 16.0;
    // Standard deviation of one draw <= 1/32; of the mean <= 1/(32 sqrt(N)) ~ 7e-5: allow 6 sigma.
    report(fabs(mean16 - values[v]) < 4.5e-4, "qf16 stochastic mean of %g is %g", values[v], mean16);
    report(fabs(mean8 - values[v]) < 4.5e-4, "qf8 stochastic mean of %g is %g", values[v], mean8);
  }
  const float exact[] = {0.25f, -3.0f, 0.0f};
  qf16_quantize_stochastic(3, exact, 2, 1, 0, q);
  report(q[0] == 1 && q[1] == -12 && q[2] == 0, "qf16 stochastic changed grid values: %d %d %d", q[0], q[1],
         q[2]);
  const float edge[] = {0.125f, -0.125f, 0.375f, 1e9f, -1e9f, NAN};
  qf16_quantize_nearest(6, edge, 2, q);
  report(q[0] == 1 && q[1] == 0 && q[2] == 2 && q[3] == 32767 && q[4] == -32767 && q[5] == 0,
         "qf16 nearest: %d %d %d %d %d %d", q[0], q[1], q[2], q[3], q[4], q[5]);
  qf8_quantize_nearest(6, edge, 2, q8);
  report(q8[3] == 127 && q8[4] == -127 && q8[5] == 0, "qf8 nearest saturation: %d %d %d", q8[3], q8[4],
         q8[5]);
  // Counter-based: quantizing the second half alone gives the same bits as quantizing all of it.
  for (size_t i = 0; i < 1000; i++) x[i] = rng_float(-3.0f, 3.0f);
  qf16_quantize_stochastic(1000, x, 7, 99, 5, q);
  int16_t half[500];
  qf16_quantize_stochastic(500, x + 500, 7, 99, 505, half);
  report(memcmp(half, q + 500, sizeof half) == 0, "qf16 stochastic is not counter-based");
  // Known values shared with agent/runtime/number/fixed-point.ts (test/native/fixed-point.test.ts).
  printf("# uniform24(42, 0..2) = %.9f %.9f %.9f\n", whittle_fixed_point_uniform24(42, 0),
         whittle_fixed_point_uniform24(42, 1), whittle_fixed_point_uniform24(42, 2));
  free(x), free(q), free(q8);
}

// ---- fp32-accumulating formats: shared scaffolding ----

static void random_floats(float* x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = rng_float(lo, hi);
}
static void abs_floats(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
}
static void random_sign_bits(uint32_t* bits, size_t rows, size_t k) {
  const size_t words = (k + 31) / 32;
  memset(bits, 0, rows * words * sizeof(uint32_t));
  for (size_t r = 0; r < rows; r++) {
    for (size_t j = 0; j < k; j++) {
      if (rng_next() & 1) bits[r * words + j / 32] |= UINT32_C(1) << (j % 32);
    }
  }
}

// Runs a variant over three channel ranges (checking that the middle one writes nothing outside itself)
// and compares with the reference within the fp32 tolerance. run(context, begin, end, output).
typedef void (*f32_run_fn)(const void* context, size_t begin, size_t end, float* output);

static void check_f32_ranges(const char* what, const char* variant, const char* shape, size_t pixels,
                             size_t channels, f32_run_fn run, const void* context, const float* want,
                             const float* scale) {
  const size_t no = pixels * channels;
  float* got = xmalloc(no * sizeof(float));
  size_t r[4];
  split_ranges(channels, r);
  memset(got, 0xA5, no * sizeof(float));
  run(context, r[1], r[2], got);
  report(untouched_outside((const uint8_t*)got, pixels, channels, sizeof(float), r[1], r[2], 0xA5),
         "%s %s [%s]: wrote outside its channel range", what, variant, shape);
  run(context, r[0], r[1], got);
  run(context, r[2], r[3], got);
  size_t where = 0;
  const bool ok = close_f32(got, want, scale, no, &where);
  report(ok, "%s %s [%s]: output %zu is %.9g, reference %.9g (scale %g)", what, variant, shape, where,
         ok ? 0.0 : got[where], ok ? 0.0 : want[where], ok ? 0.0 : scale[where]);
  free(got);
}

// ---- bin ----

typedef struct bin_context {
  const whittle_conv2d_geometry* g;
  bin_conv2d_fn fn;
  const float *input, *alpha, *bias;
  const uint32_t* bits;
  float output_min, output_max;
} bin_context;

static void bin_run(const void* context, size_t begin, size_t end, float* output) {
  const bin_context* c = context;
  c->fn(c->g, begin, end, c->input, c->bits, c->alpha, c->bias, c->output_min, c->output_max, output);
}

static void bin_case(const char* shape, const whittle_conv2d_geometry* g, uint64_t seed) {
  rng_seed(seed);
  const size_t ni = input_elements(g), k = reduction(g), oc = output_channels(g);
  const size_t no = output_pixels(g) * oc, words = bin_row_words(k);
  float* input = xmalloc(ni * sizeof(float));
  float* abs_input = xmalloc(ni * sizeof(float));
  uint32_t* bits = xmalloc(oc * words * sizeof(uint32_t));
  uint32_t* zero_bits = calloc(oc * words, sizeof(uint32_t));
  float *alpha = xmalloc(oc * sizeof(float)), *bias = xmalloc(oc * sizeof(float));
  float *abs_alpha = xmalloc(oc * sizeof(float)), *abs_bias = xmalloc(oc * sizeof(float));
  float *want = xmalloc(no * sizeof(float)), *scale = xmalloc(no * sizeof(float));
  random_floats(input, ni, -2.0f, 2.0f);
  random_sign_bits(bits, oc, k);
  random_floats(alpha, oc, 0.01f, 1.5f);
  random_floats(bias, oc, -1.0f, 1.0f);
  abs_floats(input, abs_input, ni);
  abs_floats(alpha, abs_alpha, oc);
  abs_floats(bias, abs_bias, oc);
  const float output_min = (seed % 3) == 0 ? 0.0f : -INFINITY;
  bin_conv2d_minmax_ukernel__reference(g, 0, oc, input, bits, alpha, bias, output_min, INFINITY, want);
  bin_conv2d_minmax_ukernel__reference(g, 0, oc, abs_input, zero_bits, abs_alpha, abs_bias, -INFINITY,
                                       INFINITY, scale);
  for (const bin_conv2d_variant* v = bin_conv2d_variants; v < bin_conv2d_variants + bin_conv2d_variant_count;
       v++) {
    if (!supported(v->isa)) continue;
    const bin_context c = {g, v->conv2d, input, alpha, bias, bits, output_min, INFINITY};
    check_f32_ranges("bin conv2d", v->name, shape, output_pixels(g), oc, bin_run, &c, want, scale);
  }
  free(input), free(abs_input), free(bits), free(zero_bits), free(alpha), free(bias), free(abs_alpha);
  free(abs_bias), free(want), free(scale);
}

static whittle_conv2d_geometry fc_as_conv(const fc_shape* f) {
  return make_geometry(f->batch, 1, 1, 1, 1, 1, 1, 0, 0, 1, f->input_channels, f->output_channels);
}

static void test_bin(void) {
  for (size_t s = 0; s < CONV_SHAPE_COUNT; s++) bin_case(conv_shapes[s].name, &conv_shapes[s].g, 3000 + s);
  for (size_t s = 0; s < FC_SHAPE_COUNT; s++) {
    // The fc entry points are the conv driver on a 1x1 image; check them directly once per variant.
    const fc_shape* f = &fc_shapes[s];
    const whittle_conv2d_geometry g = fc_as_conv(f);
    char name[64];
    snprintf(name, sizeof name, "fc %zux%zu->%zu", f->batch, f->input_channels, f->output_channels);
    bin_case(name, &g, 3100 + s);
    rng_seed(3200 + s);
    const size_t words = bin_row_words(f->input_channels);
    float* input = xmalloc(f->batch * f->input_channels * sizeof(float));
    uint32_t* bits = xmalloc(f->output_channels * words * sizeof(uint32_t));
    float* alpha = xmalloc(f->output_channels * sizeof(float));
    float* want = xmalloc(f->batch * f->output_channels * sizeof(float));
    float* got = xmalloc(f->batch * f->output_channels * sizeof(float));
    random_floats(input, f->batch * f->input_channels, -1.0f, 1.0f);
    random_sign_bits(bits, f->output_channels, f->input_channels);
    random_floats(alpha, f->output_channels, 0.1f, 1.0f);
    bin_conv2d_minmax_ukernel__reference(&g, 0, f->output_channels, input, bits, alpha, NULL, -INFINITY,
                                         INFINITY, want);
    for (const bin_conv2d_variant* v = bin_conv2d_variants;
         v < bin_conv2d_variants + bin_conv2d_variant_count; v++) {
      if (!supported(v->isa)) continue;
      float* via_conv = xmalloc(f->batch * f->output_channels * sizeof(float));
      v->conv2d(&g, 0, f->output_channels, input, bits, alpha, NULL, -INFINITY, INFINITY, via_conv);
      v->fc(f->batch, f->input_channels, f->output_channels, 0, f->output_channels, input, bits, alpha, NULL,
            -INFINITY, INFINITY, got);
      report(memcmp(got, via_conv, f->batch * f->output_channels * sizeof(float)) == 0,
             "bin fc %s [%s]: differs from the 1x1 conv", v->name, name);
      free(via_conv);
    }
    free(input), free(bits), free(alpha), free(want), free(got);
  }
  // bin_pack_weights: signs and mean |w|.
  const float w[5] = {1.0f, -2.0f, 0.0f, -0.5f, 3.5f};
  uint32_t packed = 0xffffffff;
  float alpha = 0.0f;
  bin_pack_weights(1, 5, w, &packed, &alpha);
  report(packed == 0xA && alpha == 1.4f, "bin_pack_weights: bits %#x alpha %g", packed, alpha);
}

// ---- xnor ----

// Random activations with exact zeros, negative zeros and NaNs sprinkled in (they all pack to +1).
static void random_activations(float* x, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const int32_t kind = rng_int(0, 40);
    x[i] = kind == 0 ? 0.0f : kind == 1 ? -0.0f : kind == 2 ? NAN : rng_float(-2.0f, 2.0f);
  }
}

static void xnor_case(const char* shape, const whittle_conv2d_geometry* g, uint64_t seed) {
  rng_seed(seed);
  const size_t oc = output_channels(g), pixels = output_pixels(g);
  const size_t in_pixels = g->batch * g->input_height * g->input_width;
  const size_t taps = g->kernel_height * g->kernel_width;
  float* x = xmalloc(input_elements(g) * sizeof(float));
  uint64_t* input_bits =
      xmalloc(in_pixels * xnor_pixel_words(g->groups, g->group_input_channels) * sizeof(uint64_t));
  float* weights = xmalloc(oc * taps * g->group_input_channels * sizeof(float));
  uint64_t* weight_bits = xmalloc(oc * taps * xnor_group_words(g->group_input_channels) * sizeof(uint64_t));
  float *alpha = xmalloc(oc * sizeof(float)), *bias = xmalloc(oc * sizeof(float));
  float* k_map = xmalloc(pixels * sizeof(float));
  float *want = xmalloc(pixels * oc * sizeof(float)), *got = xmalloc(pixels * oc * sizeof(float));
  random_activations(x, input_elements(g));
  random_floats(weights, oc * taps * g->group_input_channels, -1.0f, 1.0f);
  xnor_pack_ukernel__scalar(in_pixels, g->groups, g->group_input_channels, x, input_bits);
  xnor_pack_weights(oc, taps, g->group_input_channels, weights, weight_bits, alpha);
  random_floats(bias, oc, -3.0f, 3.0f);
  if ((seed % 7) == 0) {
    // Negative scales and -0.0 biases: zero dots give -0.0, which clamping to [0, ...] must keep.
    for (size_t o = 0; o < oc; o += 2) alpha[o] = -alpha[o], bias[o] = -0.0f;
  }
  xnor_input_scale_map(g, x, k_map);
  const float* scale = (seed % 2) == 0 ? k_map : NULL;
  const float* b = (seed % 3) == 0 ? NULL : bias;
  const float output_min = (seed % 5) == 0 || (seed % 7) == 0 ? 0.0f : -INFINITY;
  // A finite upper bound too (ReLU6-like), so the clamps of every path see both bounds.
  const float output_max = (seed % 4) == 1 ? 1.5f : INFINITY;

  xnor_conv2d_minmax_ukernel__reference(g, 0, oc, input_bits, weight_bits, alpha, scale, b, output_min,
                                        output_max, want);
  // Independent check of the reference (and of zero padding): the binary-weight reference on activations
  // sign(x) as +-1.0f gives the same numbers when there is no K map.
  if (scale == NULL) {
    const size_t k = reduction(g), words = bin_row_words(k);
    float* signs = xmalloc(input_elements(g) * sizeof(float));
    uint32_t* bin_bits = calloc(oc * words, sizeof(uint32_t));
    float* via_bin = xmalloc(pixels * oc * sizeof(float));
    for (size_t i = 0; i < input_elements(g); i++) signs[i] = x[i] < 0.0f ? -1.0f : 1.0f;
    for (size_t o = 0; o < oc; o++) {
      for (size_t j = 0; j < k; j++) {
        if (weights[o * k + j] < 0.0f) bin_bits[o * words + j / 32] |= UINT32_C(1) << (j % 32);
      }
    }
    bin_conv2d_minmax_ukernel__reference(g, 0, oc, signs, bin_bits, alpha, b, output_min, output_max,
                                         via_bin);
    report(memcmp(via_bin, want, pixels * oc * sizeof(float)) == 0,
           "xnor reference [%s]: differs from sign(x) through the binary-weight reference", shape);
    free(signs), free(bin_bits), free(via_bin);
  }
  for (const xnor_conv2d_variant* v = xnor_conv2d_variants;
       v < xnor_conv2d_variants + xnor_conv2d_variant_count; v++) {
    if (!supported(v->isa)) continue;
    size_t r[4];
    split_ranges(oc, r);
    memset(got, 0xA5, pixels * oc * sizeof(float));
    v->conv2d(g, r[1], r[2], input_bits, weight_bits, alpha, scale, b, output_min, output_max, got);
    report(untouched_outside((const uint8_t*)got, pixels, oc, sizeof(float), r[1], r[2], 0xA5),
           "xnor conv2d %s [%s]: wrote outside its channel range", v->name, shape);
    v->conv2d(g, r[0], r[1], input_bits, weight_bits, alpha, scale, b, output_min, output_max, got);
    v->conv2d(g, r[2], r[3], input_bits, weight_bits, alpha, scale, b, output_min, output_max, got);
    size_t bad = 0;
    while (bad < pixels * oc && memcmp(&got[bad], &want[bad], sizeof(float)) == 0) bad++;
    report(bad == pixels * oc, "xnor conv2d %s [%s]: output %zu is %.9g, reference %.9g", v->name, shape, bad,
           bad < pixels * oc ? got[bad] : 0.0, bad < pixels * oc ? want[bad] : 0.0);
    // One call over all channels (the blocked paths see whole blocks).
    v->conv2d(g, 0, oc, input_bits, weight_bits, alpha, scale, b, output_min, output_max, got);
    report(memcmp(got, want, pixels * oc * sizeof(float)) == 0, "xnor conv2d %s [%s]: full range differs",
           v->name, shape);
  }
  for (const xnor_pack_variant* v = xnor_pack_variants; v < xnor_pack_variants + xnor_pack_variant_count;
       v++) {
    if (!supported(v->isa)) continue;
    uint64_t* packed =
        xmalloc(in_pixels * xnor_pixel_words(g->groups, g->group_input_channels) * sizeof(uint64_t));
    v->pack(in_pixels, g->groups, g->group_input_channels, x, packed);
    report(memcmp(packed, input_bits,
                  in_pixels * xnor_pixel_words(g->groups, g->group_input_channels) * sizeof(uint64_t)) == 0,
           "xnor pack %s [%s]: differs from scalar", v->name, shape);
    free(packed);
  }
  free(x), free(input_bits), free(weights), free(weight_bits), free(alpha), free(bias), free(k_map);
  free(want), free(got);
}

// Each shape with seeds base + 10 * i + 0..2.
static void xnor_cases_3_seeds(const conv_shape* shapes, size_t count, uint64_t base) {
  for (size_t i = 0; i < count; i++) {
    for (uint64_t seed = 0; seed < 3; seed++) xnor_case(shapes[i].name, &shapes[i].g, base + 10 * i + seed);
  }
}

static void test_xnor(void) {
  for (size_t s = 0; s < CONV_SHAPE_COUNT; s++) xnor_case(conv_shapes[s].name, &conv_shapes[s].g, 4000 + s);
  for (size_t s = 0; s < FC_SHAPE_COUNT; s++) {
    const whittle_conv2d_geometry g = fc_as_conv(&fc_shapes[s]);
    xnor_case("fc as 1x1", &g, 4100 + s);
  }
  // Wide enough images for the register-blocked AVX-512 VPOPCNTDQ path (4 interior pixels of a row x 32
  // channels, one pixel at a time at the borders; the flattened pointwise GEMM with leftover pixels).
  const conv_shape blocked[] = {
      {"3x3 pad 1, 9x11, 64->40", make_geometry(1, 9, 11, 3, 3, 1, 1, 1, 1, 1, 64, 40)},
      {"pointwise batch 2, 5x7, 128->96", make_geometry(2, 5, 7, 1, 1, 1, 1, 0, 0, 1, 128, 96)},
      {"3x3 stride 2 pad 1, 13x12, 70->33", make_geometry(1, 13, 12, 3, 3, 2, 2, 1, 1, 1, 70, 33)},
      {"1x1 stride 2, 9x9, 64->64", make_geometry(1, 9, 9, 1, 1, 2, 2, 0, 0, 1, 64, 64)},
      {"5x5, 14x14, 6->32", make_geometry(1, 14, 14, 5, 5, 1, 1, 0, 0, 1, 6, 32)},
      {"3x3 pad 2 stride (1,2), 6x17, 200->65", make_geometry(1, 6, 17, 3, 3, 1, 2, 2, 2, 1, 200, 65)},
      // At most 32 input channels: the VPOPCNTDQ half-word path (8 interior pixels of a row at a time).
      {"3x3 pad 1, 7x19, 32->64", make_geometry(1, 7, 19, 3, 3, 1, 1, 1, 1, 1, 32, 64)},
      {"3x3 pad 1 stride 2, batch 2, 9x21, 17->40", make_geometry(2, 9, 21, 3, 3, 2, 2, 1, 1, 1, 17, 40)},
      {"1x1, 3x13, 32->32", make_geometry(1, 3, 13, 1, 1, 1, 1, 0, 0, 1, 32, 32)},
  };
  xnor_cases_3_seeds(blocked, sizeof(blocked) / sizeof(blocked[0]), 4400);
  // One input channel per group, packed across the groups (xnor_conv2d_drive_single_bit): strips of 8 pixels
  // with 4 planes (<= 15 taps) and 8 planes, odd channel counts, channel multipliers, strides, batches,
  // outputs past the valid region (pixels with no valid tap), and the per-pixel path (more than 255 taps; a
  // ring row too wide for the buffer).
  whittle_conv2d_geometry past = make_geometry(1, 5, 9, 3, 3, 1, 2, 1, 1, 70, 1, 1);
  past.output_height += 1;
  past.output_width += 3;
  const conv_shape single_bit[] = {
      {"depthwise 3x3 pad 1, 12x12, 128 ch", make_geometry(1, 12, 12, 3, 3, 1, 1, 1, 1, 128, 1, 1)},
      {"depthwise 3x3 pad 1 stride 2, 11x13, 77 ch", make_geometry(1, 11, 13, 3, 3, 2, 2, 1, 1, 77, 1, 1)},
      {"depthwise 5x5 pad 2, batch 2, 9x10, 70 ch", make_geometry(2, 9, 10, 5, 5, 1, 1, 2, 2, 70, 1, 1)},
      {"depthwise 7x7 pad 3, 8x19, 130 ch", make_geometry(1, 8, 19, 7, 7, 1, 1, 3, 3, 130, 1, 1)},
      {"depthwise 3x5 stride (2,3) pad (0,2), 9x17, 200 ch",
       make_geometry(1, 9, 17, 3, 5, 2, 3, 0, 2, 200, 1, 1)},
      {"depthwise x3 3x3 pad 1, 6x7, 21 ch", make_geometry(1, 6, 7, 3, 3, 1, 1, 1, 1, 21, 1, 3)},
      {"depthwise x2 3x3 stride (1,2) pad 1, batch 2, 5x9, 40 ch",
       make_geometry(2, 5, 9, 3, 3, 1, 2, 1, 1, 40, 1, 2)},
      {"1 ch image 5x5, 28x28, 1->6", make_geometry(1, 28, 28, 5, 5, 1, 1, 0, 0, 1, 1, 6)},
      {"1 ch image 3x3 pad 1 stride 2, 9x11, 1->70", make_geometry(1, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, 70)},
      {"depthwise 3x3 pad 1, outputs past the input, 5x9, 70 ch", past},
      {"depthwise 16x17 pad 1 (272 taps), 17x18, 67 ch",
       make_geometry(1, 17, 18, 16, 17, 1, 1, 1, 1, 67, 1, 1)},
      {"depthwise 3x3 pad 1, 3x1100 (ring too wide), 65 ch",
       make_geometry(1, 3, 1100, 3, 3, 1, 1, 1, 1, 65, 1, 1)},
  };
  xnor_cases_3_seeds(single_bit, sizeof(single_bit) / sizeof(single_bit[0]), 4600);
  // Rows longer than the transposed-weight buffer fall back to the simple driver.
  const whittle_conv2d_geometry wide = make_geometry(1, 2, 2, 3, 3, 1, 1, 1, 1, 1, 3700, 9);
  xnor_case("3x3 pad 1, 2x2, 3700->9 (row exceeds the block buffer)", &wide, 4200);
  // The fc entry points equal the 1x1 convolution.
  for (const xnor_conv2d_variant* v = xnor_conv2d_variants;
       v < xnor_conv2d_variants + xnor_conv2d_variant_count; v++) {
    if (!supported(v->isa)) continue;
    const fc_shape f = {3, 130, 21};
    const whittle_conv2d_geometry g = fc_as_conv(&f);
    rng_seed(4300);
    uint64_t in[3 * 3], w[21 * 3];
    float alpha[21], scale[3], a[3 * 21], c[3 * 21];
    for (size_t i = 0; i < 9; i++) in[i] = rng_next() & (i % 3 == 2 ? 3 : UINT64_MAX);
    for (size_t i = 0; i < 63; i++) w[i] = rng_next() & (i % 3 == 2 ? 3 : UINT64_MAX);
    random_floats(alpha, 21, 0.1f, 1.0f);
    random_floats(scale, 3, 0.1f, 1.0f);
    v->conv2d(&g, 0, 21, in, w, alpha, scale, NULL, -INFINITY, INFINITY, a);
    v->fc(3, 130, 21, 0, 21, in, w, alpha, scale, NULL, -INFINITY, INFINITY, c);
    report(memcmp(a, c, sizeof a) == 0, "xnor fc %s: differs from the 1x1 convolution", v->name);
  }
  // int8 packing: every variant's bits from q and its zero point equal the fp32 pack of the dequantized
  // values 0.5 * (q - zero_point), on word-aligned, partial and one-channel groups.
  const struct {
    size_t pixels, groups, channels;
  } qs8_shapes[] = {{7, 1, 32}, {5, 1, 64}, {3, 2, 70}, {4, 1, 130}, {9, 12, 1}, {6, 3, 5}};
  const int32_t zero_points[] = {-128, -3, 0, 5, 127};
  for (size_t i = 0; i < sizeof(qs8_shapes) / sizeof(qs8_shapes[0]); i++) {
    const size_t elements = qs8_shapes[i].pixels * qs8_shapes[i].groups * qs8_shapes[i].channels;
    const size_t words =
        qs8_shapes[i].pixels * xnor_pixel_words(qs8_shapes[i].groups, qs8_shapes[i].channels);
    int8_t* q = xmalloc(elements);
    float* dequantized = xmalloc(elements * sizeof(float));
    uint64_t *want = xmalloc(words * sizeof(uint64_t)), *got = xmalloc(words * sizeof(uint64_t));
    for (size_t z = 0; z < sizeof(zero_points) / sizeof(zero_points[0]); z++) {
      rng_seed(4500 + 10 * i + z);
      for (size_t e = 0; e < elements; e++) {
        q[e] = (int8_t)rng_int(-128, 127);
        dequantized[e] = 0.5f * (float)((int32_t)q[e] - zero_points[z]);
      }
      xnor_pack_ukernel__scalar(qs8_shapes[i].pixels, qs8_shapes[i].groups, qs8_shapes[i].channels,
                                dequantized, want);
      for (const xnor_pack_variant* v = xnor_pack_variants; v < xnor_pack_variants + xnor_pack_variant_count;
           v++) {
        if (!supported(v->isa)) continue;
        memset(got, 0xA5, words * sizeof(uint64_t));
        v->pack_qs8(qs8_shapes[i].pixels, qs8_shapes[i].groups, qs8_shapes[i].channels, q, zero_points[z],
                    got);
        report(memcmp(got, want, words * sizeof(uint64_t)) == 0,
               "xnor pack_qs8 %s [%zu x %zu x %zu, zero point %d]: differs from the fp32 pack", v->name,
               qs8_shapes[i].pixels, qs8_shapes[i].groups, qs8_shapes[i].channels, (int)zero_points[z]);
      }
    }
    free(q), free(dequantized), free(want), free(got);
  }
  // Packing semantics: bit 1 only for x < 0.
  const float x[6] = {1.0f, -1.0f, 0.0f, -0.0f, NAN, -1e-30f};
  uint64_t bits = 0;
  xnor_pack_ukernel__scalar(1, 1, 6, x, &bits);
  report(bits == 0x22, "xnor pack: bits %#llx, want 0x22", (unsigned long long)bits);
}

// ---- tern ----

typedef struct tern_context {
  const whittle_conv2d_geometry* g;
  tern_conv2d_fn fn;
  const float *input, *alpha, *bias;
  const uint32_t *nonzero, *sign;
  float output_min, output_max;
} tern_context;

static void tern_run(const void* context, size_t begin, size_t end, float* output) {
  const tern_context* c = context;
  c->fn(c->g, begin, end, c->input, c->nonzero, c->sign, c->alpha, c->bias, c->output_min, c->output_max,
        output);
}

static void tern_case(const char* shape, const whittle_conv2d_geometry* g, uint64_t seed) {
  rng_seed(seed);
  const size_t ni = input_elements(g), k = reduction(g), oc = output_channels(g);
  const size_t no = output_pixels(g) * oc, words = bin_row_words(k);
  float* input = xmalloc(ni * sizeof(float));
  float* abs_input = xmalloc(ni * sizeof(float));
  float* weights = xmalloc(oc * k * sizeof(float));
  uint32_t* nonzero = xmalloc(oc * words * sizeof(uint32_t));
  uint32_t* sign = xmalloc(oc * words * sizeof(uint32_t));
  uint32_t* all = xmalloc(oc * words * sizeof(uint32_t));
  uint32_t* none = calloc(oc * words, sizeof(uint32_t));
  float *alpha = xmalloc(oc * sizeof(float)), *bias = xmalloc(oc * sizeof(float));
  float *threshold = xmalloc(oc * sizeof(float)), *abs_bias = xmalloc(oc * sizeof(float));
  float *want = xmalloc(no * sizeof(float)), *scale = xmalloc(no * sizeof(float));
  random_floats(input, ni, -2.0f, 2.0f);
  random_floats(weights, oc * k, -1.0f, 1.0f);
  for (size_t o = 0; o < oc; o++) threshold[o] = rng_float(0.0f, 0.7f);
  tern_pack_weights(oc, k, weights, threshold, nonzero, sign, alpha);
  float* ones_alpha = xmalloc(oc * sizeof(float));
  for (size_t o = 0; o < oc; o++) ones_alpha[o] = fabsf(alpha[o]);
  // Every row's valid bits set: the magnitude of each output for the tolerance.
  memset(all, 0, oc * words * sizeof(uint32_t));
  for (size_t o = 0; o < oc; o++)
    for (size_t j = 0; j < k; j++) all[o * words + j / 32] |= UINT32_C(1) << (j % 32);
  random_floats(bias, oc, -1.0f, 1.0f);
  abs_floats(input, abs_input, ni);
  abs_floats(bias, abs_bias, oc);
  const float output_min = (seed % 3) == 0 ? 0.0f : -INFINITY;
  const float* b = (seed % 4) == 1 ? NULL : bias;
  tern_conv2d_minmax_ukernel__reference(g, 0, oc, input, nonzero, sign, alpha, b, output_min, INFINITY, want);
  tern_conv2d_minmax_ukernel__reference(g, 0, oc, abs_input, all, none, ones_alpha, abs_bias, -INFINITY,
                                        INFINITY, scale);
  for (const tern_conv2d_variant* v = tern_conv2d_variants;
       v < tern_conv2d_variants + tern_conv2d_variant_count; v++) {
    if (!supported(v->isa)) continue;
    const tern_context c = {g, v->conv2d, input, alpha, b, nonzero, sign, output_min, INFINITY};
    check_f32_ranges("tern conv2d", v->name, shape, output_pixels(g), oc, tern_run, &c, want, scale);
    if (g->input_height == 1 && g->input_width == 1 && g->kernel_height == 1 && g->kernel_width == 1 &&
        g->groups == 1) {
      float* via_fc = xmalloc(no * sizeof(float));
      float* via_conv = xmalloc(no * sizeof(float));
      v->fc(g->batch, k, oc, 0, oc, input, nonzero, sign, alpha, b, output_min, INFINITY, via_fc);
      v->conv2d(g, 0, oc, input, nonzero, sign, alpha, b, output_min, INFINITY, via_conv);
      report(memcmp(via_fc, via_conv, no * sizeof(float)) == 0, "tern fc %s [%s]: differs from the 1x1 conv",
             v->name, shape);
      free(via_fc), free(via_conv);
    }
  }
  free(input), free(abs_input), free(weights), free(nonzero), free(sign), free(all), free(none), free(alpha);
  free(bias), free(threshold), free(abs_bias), free(want), free(scale), free(ones_alpha);
}

// The dense int8 fully-connected layer with per-channel gemmlowp requantization, written plainly (what the
// walking skeleton's qs8_fc kernel computed): the ternary and sparse int8 kernels must equal it on the same
// weights. input [batch][k], weights [oc][k] int8, bias/multipliers/shifts [oc], output [batch][oc]; bias
// NULL means 0; the int32 sum wraps like TFLite (exact for k <= QS8_FC_MAX_INPUT_CHANNELS).
static void dense_qs8_fc(size_t batch, size_t k, size_t oc, const int8_t* input, int32_t input_zero_point,
                         const int8_t* weights, const int32_t* bias, const int32_t* multipliers,
                         const int32_t* shifts, int32_t output_zero_point, int32_t output_min,
                         int32_t output_max, int8_t* output) {
  for (size_t n = 0; n < batch; n++) {
    for (size_t o = 0; o < oc; o++) {
      int32_t sum = 0;
      for (size_t j = 0; j < k; j++)
        sum += ((int32_t)input[n * k + j] - input_zero_point) * weights[o * k + j];
      const int32_t acc = (int32_t)((uint32_t)sum + (uint32_t)(bias != NULL ? bias[o] : 0));
      int64_t v = (int64_t)qs8_requantize_gemmlowp(acc, multipliers[o], shifts[o]) + output_zero_point;
      v = v < output_min ? output_min : (v > output_max ? output_max : v);
      output[n * oc + o] = (int8_t)v;
    }
  }
}

// Ternary weights with int8 activations: exact against the reference, and for fc shapes against the dense
// int8 layer (dense_qs8_fc) on the same weights as int8 {-1, 0, 1}.
static void tern_qs8_case(const char* shape, const whittle_conv2d_geometry* g, uint64_t seed) {
  rng_seed(seed);
  const size_t ni = input_elements(g), k = reduction(g), oc = output_channels(g), no = output_pixels(g) * oc;
  const size_t words = bin_row_words(k);
  int8_t* input = xmalloc(ni);
  int8_t* dense = xmalloc(oc * k);
  uint32_t* nonzero = xmalloc(oc * words * sizeof(uint32_t));
  uint32_t* sign = xmalloc(oc * words * sizeof(uint32_t));
  int32_t *bias = xmalloc(oc * sizeof(int32_t)), *multipliers = xmalloc(oc * sizeof(int32_t));
  int32_t* shifts = xmalloc(oc * sizeof(int32_t));
  int8_t *want = xmalloc(no), *got = xmalloc(no);
  for (size_t i = 0; i < ni; i++) input[i] = (int8_t)rng_int(-128, 127);
  for (size_t o = 0; o < oc; o++) {
    for (size_t j = 0; j < k; j++) {
      const int32_t t = rng_int(-1, 1);
      dense[o * k + j] = (int8_t)t;
      if (t != 0) nonzero[o * words + j / 32] |= UINT32_C(1) << (j % 32);
      if (t < 0) sign[o * words + j / 32] |= UINT32_C(1) << (j % 32);
    }
    bias[o] = rng_int(-5000, 5000);
    multipliers[o] = rng_int(1 << 30, INT32_MAX);
    shifts[o] = rng_int(-8, 1);
  }
  const int32_t input_zero_point = rng_int(-128, 127), output_zero_point = rng_int(-20, 20);
  const int32_t output_min = (seed % 3) == 0 ? output_zero_point : -128;
  const int32_t* b = (seed % 4) == 1 ? NULL : bias;
  tern_conv2d_qs8_minmax_gemmlowp_ukernel__reference(g, 0, oc, input, input_zero_point, nonzero, sign, b,
                                                     multipliers, shifts, output_zero_point, output_min, 127,
                                                     want);
  size_t r[4];
  split_ranges(oc, r);
  memset(got, 0xA5, no);
  tern_conv2d_qs8_minmax_gemmlowp_ukernel__scalar(g, r[1], r[2], input, input_zero_point, nonzero, sign, b,
                                                  multipliers, shifts, output_zero_point, output_min, 127,
                                                  got);
  report(untouched_outside((const uint8_t*)got, output_pixels(g), oc, 1, r[1], r[2], 0xA5),
         "tern qs8 conv2d scalar [%s]: wrote outside its channel range", shape);
  for (int part = 0; part < 3; part += 2) {
    tern_conv2d_qs8_minmax_gemmlowp_ukernel__scalar(g, r[part], r[part + 1], input, input_zero_point, nonzero,
                                                    sign, b, multipliers, shifts, output_zero_point,
                                                    output_min, 127, got);
  }
  report(memcmp(got, want, no) == 0, "tern qs8 conv2d scalar [%s]: differs from reference", shape);
  if (g->input_height == 1 && g->input_width == 1 && g->kernel_height == 1 && g->kernel_width == 1 &&
      g->groups == 1) {
    tern_fc_qs8_minmax_gemmlowp_ukernel__scalar(g->batch, k, oc, 0, oc, input, input_zero_point, nonzero,
                                                sign, b, multipliers, shifts, output_zero_point, output_min,
                                                127, got);
    report(memcmp(got, want, no) == 0, "tern qs8 fc scalar [%s]: differs from reference", shape);
    dense_qs8_fc(g->batch, k, oc, input, input_zero_point, dense, b, multipliers, shifts, output_zero_point,
                 output_min, 127, got);
    report(memcmp(got, want, no) == 0, "tern qs8 [%s]: differs from the dense int8 layer", shape);
  }
  free(input), free(dense), free(nonzero), free(sign), free(bias), free(multipliers), free(shifts),
      free(want);
  free(got);
}

static void test_tern(void) {
  for (size_t s = 0; s < CONV_SHAPE_COUNT; s++)
    tern_qs8_case(conv_shapes[s].name, &conv_shapes[s].g, 5500 + s);
  for (size_t s = 0; s < FC_SHAPE_COUNT; s++) {
    const whittle_conv2d_geometry g = fc_as_conv(&fc_shapes[s]);
    tern_qs8_case("fc as 1x1", &g, 5600 + s);
  }
  for (size_t s = 0; s < CONV_SHAPE_COUNT; s++) tern_case(conv_shapes[s].name, &conv_shapes[s].g, 5000 + s);
  for (size_t s = 0; s < FC_SHAPE_COUNT; s++) {
    const whittle_conv2d_geometry g = fc_as_conv(&fc_shapes[s]);
    tern_case("fc as 1x1", &g, 5100 + s);
  }
  const float w[6] = {0.9f, -0.8f, 0.1f, -0.2f, 0.0f, -0.6f};
  const float threshold = 0.3f;
  uint32_t nonzero = 0, sign = 0;
  float alpha = 0.0f;
  tern_pack_weights(1, 6, w, &threshold, &nonzero, &sign, &alpha);
  report(nonzero == 0x23 && sign == 0x22 && fabsf(alpha - 2.3f / 3.0f) < 1e-6f,
         "tern_pack_weights: nonzero %#x sign %#x alpha %g", nonzero, sign, alpha);
}

// ---- sparse ----

typedef struct sparse_f32_context {
  const whittle_conv2d_geometry* g;
  sparse_f32_conv2d_fn fn;
  const float *input, *values, *bias;
  const uint32_t *offsets, *columns;
  float output_min, output_max;
  float* workspace;
} sparse_f32_context;

static void sparse_f32_run(const void* context, size_t begin, size_t end, float* output) {
  const sparse_f32_context* c = context;
  c->fn(c->g, begin, end, c->input, c->offsets, c->columns, c->values, c->bias, c->output_min, c->output_max,
        c->workspace, output);
}

typedef struct sparse_f32_planes_context {
  const whittle_conv2d_geometry* g;
  sparse_f32_conv2d_planes_fn fn;
  const float *planes, *values, *bias;
  const uint32_t *offsets, *plane_offsets;
  float output_min, output_max;
} sparse_f32_planes_context;

// Each channel range in two row ranges split at an odd row (mid image, mid row group where there are two).
static void sparse_f32_planes_run(const void* context, size_t begin, size_t end, float* output) {
  const sparse_f32_planes_context* c = context;
  const size_t rows = c->g->batch * c->g->output_height, split = rows / 2 | 1;
  const size_t parts[3] = {0, split < rows ? split : rows, rows};
  for (int p = 0; p < 2; p++) {
    c->fn(c->g, parts[p], parts[p + 1], begin, end, c->planes, c->offsets, c->plane_offsets, c->values,
          c->bias, c->output_min, c->output_max, output);
  }
}

// Dense weights with a fraction `density` of nonzeros, some rows entirely empty.
static void random_sparse_f32(float* w, size_t rows, size_t k, double density) {
  for (size_t r = 0; r < rows; r++) {
    const bool empty = rng_int(0, 9) == 0;
    for (size_t j = 0; j < k; j++) {
      const bool keep = !empty && (double)(rng_next() >> 11) * 0x1p-53 < density;
      w[r * k + j] = keep ? rng_float(-1.0f, 1.0f) : 0.0f;
    }
  }
}

static void sparse_f32_case(const char* shape, const whittle_conv2d_geometry* g, uint64_t seed) {
  rng_seed(seed);
  const size_t ni = input_elements(g), k = reduction(g), oc = output_channels(g), no = output_pixels(g) * oc;
  float* input = xmalloc(ni * sizeof(float));
  float* abs_input = xmalloc(ni * sizeof(float));
  float* dense = xmalloc(oc * k * sizeof(float));
  uint32_t* offsets = xmalloc((oc + 1) * sizeof(uint32_t));
  uint32_t* columns = xmalloc(oc * k * sizeof(uint32_t));
  float* values = xmalloc(oc * k * sizeof(float));
  float* abs_values = xmalloc(oc * k * sizeof(float));
  float *bias = xmalloc(oc * sizeof(float)), *abs_bias = xmalloc(oc * sizeof(float));
  float *want = xmalloc(no * sizeof(float)), *scale = xmalloc(no * sizeof(float));
  float* workspace = xmalloc(k * sizeof(float));
  random_floats(input, ni, -2.0f, 2.0f);
  random_sparse_f32(dense, oc, k, (seed % 2) ? 0.1 : 0.5);
  const size_t nnz = sparse_f32_csr_encode(oc, k, dense, offsets, columns, values);
  random_floats(bias, oc, -1.0f, 1.0f);
  abs_floats(input, abs_input, ni);
  abs_floats(values, abs_values, nnz);
  abs_floats(bias, abs_bias, oc);
  const float output_min = (seed % 3) == 0 ? 0.0f : -INFINITY;
  const float* b = (seed % 4) == 1 ? NULL : bias;
  sparse_f32_conv2d_minmax_ukernel__reference(g, 0, oc, input, offsets, columns, values, b, output_min,
                                              INFINITY, NULL, want);
  sparse_f32_conv2d_minmax_ukernel__reference(g, 0, oc, abs_input, offsets, columns, abs_values, abs_bias,
                                              -INFINITY, INFINITY, NULL, scale);
  for (const sparse_f32_variant* v = sparse_f32_variants; v < sparse_f32_variants + sparse_f32_variant_count;
       v++) {
    if (!supported(v->isa)) continue;
    const sparse_f32_context c = {g,       v->conv2d, input,      values,   b,
                                  offsets, columns,   output_min, INFINITY, workspace};
    check_f32_ranges("sparse_f32 conv2d", v->name, shape, output_pixels(g), oc, sparse_f32_run, &c, want,
                     scale);
    if (sparse_f32_conv2d_planes_supported(g)) {
      float* planes = xmalloc(sparse_f32_conv2d_planes_floats(g) * sizeof(float));
      uint32_t* plane_offsets = xmalloc((nnz + 1) * sizeof(uint32_t));
      const size_t rows = sparse_f32_conv2d_planes_rows(g);  // packed in two parts, as two threads do
      sparse_f32_conv2d_planes_pack(g, 0, rows / 2, input, planes);
      sparse_f32_conv2d_planes_pack(g, rows / 2, rows, input, planes);
      sparse_f32_conv2d_plane_offsets(g, nnz, columns, plane_offsets);
      const sparse_f32_planes_context p = {g,       v->conv2d_planes, planes,     values,  b,
                                           offsets, plane_offsets,    output_min, INFINITY};
      check_f32_ranges("sparse_f32 conv2d planes", v->name, shape, output_pixels(g), oc,
                       sparse_f32_planes_run, &p, want, scale);
      free(planes), free(plane_offsets);
    }
    if (g->input_height == 1 && g->input_width == 1 && g->kernel_height == 1 && g->kernel_width == 1 &&
        g->groups == 1) {
      float* got = xmalloc(no * sizeof(float));
      v->fc(g->batch, k, oc, 0, oc, input, offsets, columns, values, b, output_min, INFINITY, got);
      size_t where = 0;
      report(close_f32(got, want, scale, no, &where), "sparse_f32 fc %s [%s]: output %zu differs", v->name,
             shape, where);
      free(got);
    }
  }
  free(input), free(abs_input), free(dense), free(offsets), free(columns), free(values), free(abs_values);
  free(bias), free(abs_bias), free(want), free(scale), free(workspace);
}

static void sparse_qs8_case(const char* shape, const whittle_conv2d_geometry* g, uint64_t seed) {
  rng_seed(seed);
  const size_t ni = input_elements(g), k = reduction(g), oc = output_channels(g), no = output_pixels(g) * oc;
  int8_t* input = xmalloc(ni);
  int8_t* dense = xmalloc(oc * k);
  uint32_t* offsets = xmalloc((oc + 1) * sizeof(uint32_t));
  uint32_t* columns = xmalloc(oc * k * sizeof(uint32_t));
  int8_t* values = xmalloc(oc * k);
  int32_t *bias = xmalloc(oc * sizeof(int32_t)), *multipliers = xmalloc(oc * sizeof(int32_t));
  int32_t* shifts = xmalloc(oc * sizeof(int32_t));
  int8_t *want = xmalloc(no), *got = xmalloc(no);
  int16_t* workspace = xmalloc(k * sizeof(int16_t));
  for (size_t i = 0; i < ni; i++) input[i] = (int8_t)rng_int(-128, 127);
  for (size_t i = 0; i < oc * k; i++) dense[i] = rng_int(0, 2) == 0 ? (int8_t)rng_int(-128, 127) : 0;
  sparse_qs8_csr_encode(oc, k, dense, offsets, columns, values);
  for (size_t o = 0; o < oc; o++) {
    bias[o] = rng_int(-100000, 100000);
    multipliers[o] = rng_int(1 << 30, INT32_MAX);
    shifts[o] = rng_int(-12, 1);
  }
  const int32_t input_zero_point = rng_int(-128, 127), output_zero_point = rng_int(-20, 20);
  const int32_t output_min = (seed % 3) == 0 ? output_zero_point : -128;
  sparse_qs8_conv2d_minmax_gemmlowp_ukernel__reference(g, 0, oc, input, input_zero_point, offsets, columns,
                                                       values, bias, multipliers, shifts, output_zero_point,
                                                       output_min, 127, NULL, want);
  size_t r[4];
  split_ranges(oc, r);
  memset(got, 0xA5, no);
  sparse_qs8_conv2d_minmax_gemmlowp_ukernel__scalar(g, r[1], r[2], input, input_zero_point, offsets, columns,
                                                    values, bias, multipliers, shifts, output_zero_point,
                                                    output_min, 127, workspace, got);
  report(untouched_outside((const uint8_t*)got, output_pixels(g), oc, 1, r[1], r[2], 0xA5),
         "sparse_qs8 conv2d scalar [%s]: wrote outside its channel range", shape);
  for (int part = 0; part < 3; part += 2) {
    sparse_qs8_conv2d_minmax_gemmlowp_ukernel__scalar(g, r[part], r[part + 1], input, input_zero_point,
                                                      offsets, columns, values, bias, multipliers, shifts,
                                                      output_zero_point, output_min, 127, workspace, got);
  }
  report(memcmp(got, want, no) == 0, "sparse_qs8 conv2d scalar [%s]: differs from reference", shape);
  if (g->input_height == 1 && g->input_width == 1 && g->kernel_height == 1 && g->kernel_width == 1 &&
      g->groups == 1) {
    // The fc kernel, and the dense int8 layer on the same (densified) weights: all three agree.
    sparse_qs8_fc_minmax_gemmlowp_ukernel__scalar(g->batch, k, oc, 0, oc, input, input_zero_point, offsets,
                                                  columns, values, bias, multipliers, shifts,
                                                  output_zero_point, output_min, 127, got);
    report(memcmp(got, want, no) == 0, "sparse_qs8 fc scalar [%s]: differs from reference", shape);
    dense_qs8_fc(g->batch, k, oc, input, input_zero_point, dense, bias, multipliers, shifts,
                 output_zero_point, output_min, 127, got);
    report(memcmp(got, want, no) == 0, "sparse_qs8 [%s]: differs from the dense int8 layer", shape);
  }
  free(input), free(dense), free(offsets), free(columns), free(values), free(bias), free(multipliers);
  free(shifts), free(want), free(got), free(workspace);
}

static void test_sparse(void) {
  for (size_t s = 0; s < CONV_SHAPE_COUNT; s++) {
    sparse_f32_case(conv_shapes[s].name, &conv_shapes[s].g, 6000 + s);
    sparse_qs8_case(conv_shapes[s].name, &conv_shapes[s].g, 6500 + s);
  }
  for (size_t s = 0; s < FC_SHAPE_COUNT; s++) {
    const whittle_conv2d_geometry g = fc_as_conv(&fc_shapes[s]);
    sparse_f32_case("fc as 1x1", &g, 6100 + s);
    sparse_qs8_case("fc as 1x1", &g, 6600 + s);
  }
}

// ---- cb ----

typedef struct cb_context {
  const whittle_conv2d_geometry* g;
  cb_conv2d_fn fn;
  const float *input, *codebook, *bias;
  const uint8_t* indices;
  uint32_t bits;
  size_t codebook_size;
  float output_min, output_max;
} cb_context;

static void cb_run(const void* context, size_t begin, size_t end, float* output) {
  const cb_context* c = context;
  float* workspace = xmalloc(cb_conv2d_workspace_floats(reduction(c->g), c->codebook_size) * sizeof(float));
  c->fn(c->g, begin, end, c->input, c->indices, c->bits, c->codebook, c->codebook_size, c->bias,
        c->output_min, c->output_max, workspace, output);
  free(workspace);
}

static void cb_case(const char* shape, const whittle_conv2d_geometry* g, uint64_t seed) {
  static const uint32_t widths[] = {2, 3, 4, 5, 8, 7, 6, 8};
  rng_seed(seed);
  const uint32_t bits = widths[seed % 8];
  const size_t codebook_size = (seed % 5) == 0 ? ((size_t)1 << bits) : (size_t)rng_int(1, 1 << bits);
  const size_t ni = input_elements(g), k = reduction(g), oc = output_channels(g), no = output_pixels(g) * oc;
  float* input = xmalloc(ni * sizeof(float));
  float* abs_input = xmalloc(ni * sizeof(float));
  uint8_t* unpacked = xmalloc(oc * k);
  uint8_t* packed = xmalloc(oc * cb_row_bytes(k, bits) + 1);
  float *codebook = xmalloc(codebook_size * sizeof(float)),
        *abs_codebook = xmalloc(codebook_size * sizeof(float));
  float *bias = xmalloc(oc * sizeof(float)), *abs_bias = xmalloc(oc * sizeof(float));
  float *want = xmalloc(no * sizeof(float)), *scale = xmalloc(no * sizeof(float));
  random_floats(input, ni, -2.0f, 2.0f);
  for (size_t i = 0; i < oc * k; i++) unpacked[i] = (uint8_t)rng_int(0, (int32_t)codebook_size - 1);
  cb_pack_indices(oc, k, bits, unpacked, packed);
  random_floats(codebook, codebook_size, -1.0f, 1.0f);
  random_floats(bias, oc, -1.0f, 1.0f);
  abs_floats(input, abs_input, ni);
  abs_floats(codebook, abs_codebook, codebook_size);
  abs_floats(bias, abs_bias, oc);
  const float output_min = (seed % 3) == 0 ? 0.0f : -INFINITY;
  const float* b = (seed % 4) == 1 ? NULL : bias;
  // The packing round-trips: every index reads back.
  bool round_trip = true;
  const size_t row_bytes = cb_row_bytes(k, bits);
  for (size_t o = 0; o < oc && round_trip; o++) {
    for (size_t j = 0; j < k; j++) {
      const size_t bit = j * bits;
      uint32_t window = packed[o * row_bytes + bit / 8];
      if (bit / 8 + 1 < row_bytes) window |= (uint32_t)packed[o * row_bytes + bit / 8 + 1] << 8;
      if (((window >> (bit % 8)) & ((1u << bits) - 1)) != unpacked[o * k + j]) round_trip = false;
    }
  }
  report(round_trip, "cb_pack_indices [%s, %u bits]: an index does not read back", shape, bits);
  cb_conv2d_minmax_ukernel__reference(g, 0, oc, input, packed, bits, codebook, codebook_size, b, output_min,
                                      INFINITY, NULL, want);
  cb_conv2d_minmax_ukernel__reference(g, 0, oc, abs_input, packed, bits, abs_codebook, codebook_size,
                                      abs_bias, -INFINITY, INFINITY, NULL, scale);
  for (const cb_conv2d_variant* v = cb_conv2d_variants; v < cb_conv2d_variants + cb_conv2d_variant_count;
       v++) {
    if (!supported(v->isa)) continue;
    char label[160];
    snprintf(label, sizeof label, "%s, %u-bit indices, %zu centroids", shape, bits, codebook_size);
    const cb_context c = {g,      v->conv2d, input,         codebook,   b,
                          packed, bits,      codebook_size, output_min, INFINITY};
    check_f32_ranges("cb conv2d", v->name, label, output_pixels(g), oc, cb_run, &c, want, scale);
    if (g->input_height == 1 && g->input_width == 1 && g->kernel_height == 1 && g->kernel_width == 1 &&
        g->groups == 1) {
      float* got = xmalloc(no * sizeof(float));
      v->fc(g->batch, k, oc, 0, oc, input, packed, bits, codebook, codebook_size, b, output_min, INFINITY,
            got);
      size_t where = 0;
      report(close_f32(got, want, scale, no, &where), "cb fc %s [%s]: output %zu differs", v->name, label,
             where);
      free(got);
    }
  }
  free(input), free(abs_input), free(unpacked), free(packed), free(codebook), free(abs_codebook), free(bias);
  free(abs_bias), free(want), free(scale);
}

static void test_cb(void) {
  for (size_t s = 0; s < CONV_SHAPE_COUNT; s++) cb_case(conv_shapes[s].name, &conv_shapes[s].g, 7000 + s);
  for (size_t s = 0; s < FC_SHAPE_COUNT; s++) {
    const whittle_conv2d_geometry g = fc_as_conv(&fc_shapes[s]);
    cb_case("fc as 1x1", &g, 7100 + s);
  }
  // Every index width on one shape.
  for (uint64_t seed = 7200; seed < 7208; seed++) cb_case("3x3 pad 1, 5x7, 3->5", &conv_shapes[1].g, seed);
  // Every index width on shapes whose reduction (1161, 576 per group) is long enough for the SIMD kernels'
  // bins even with 256 centroids, one of them in two groups.
  for (uint64_t seed = 7300; seed < 7308; seed++) cb_case("3x3 pad 1, 5x5, 129->7", &conv_shapes[11].g, seed);
  for (uint64_t seed = 7400; seed < 7408; seed++) {
    cb_case("grouped 2x(64->3) 3x3 pad 1, 3x4", &conv_shapes[12].g, seed);
  }
}

// ---- hashed ----

typedef struct hashed_context {
  const fc_shape* f;
  hashed_f32_fc_fn fn;
  const float *input, *weights, *buckets, *bias;
  uint32_t bucket_count, seed;
  float output_min, output_max;
} hashed_context;

static void hashed_run(const void* context, size_t begin, size_t end, float* output) {
  const hashed_context* c = context;
  float* workspace = c->weights == NULL ? xmalloc((c->f->input_channels + 1) * sizeof(float)) : NULL;
  c->fn(c->f->batch, c->f->input_channels, c->f->output_channels, begin, end, c->input, c->weights,
        c->buckets, c->bucket_count, c->seed, c->bias, c->output_min, c->output_max, workspace, output);
  free(workspace);
}

static void hashed_case(const fc_shape* f, uint64_t seed) {
  rng_seed(seed);
  const size_t k = f->input_channels, oc = f->output_channels, ni = f->batch * k, no = f->batch * oc;
  const uint32_t bucket_count = (uint32_t)rng_int(1, (int32_t)(k * oc / 4 + 1));
  const uint32_t hash_seed = (uint32_t)rng_next();
  float* input = xmalloc(ni * sizeof(float));
  float* buckets = xmalloc(bucket_count * sizeof(float));
  float* bias = xmalloc(oc * sizeof(float));
  float *weights = xmalloc(oc * k * sizeof(float)), *want = xmalloc(no * sizeof(float));
  float* scale = xmalloc(no * sizeof(float));
  random_floats(input, ni, -2.0f, 2.0f);
  random_floats(buckets, bucket_count, -1.0f, 1.0f);
  random_floats(bias, oc, -1.0f, 1.0f);
  const float output_min = (seed % 3) == 0 ? 0.0f : -INFINITY;
  const float* b = (seed % 4) == 1 ? NULL : bias;
  // The expansion is the format's definition: element i = o * K + k is sign(h) * buckets[h % count] with
  // h the murmur3 finalizer of i * 0x9e3779b1 + seed; two known hashes pin it to encodings.ts hashIndex.
  report(hashed_index_hash(0, 0) == 0 && hashed_index_hash(1, 0) == UINT32_C(0x11fd02eb) &&
             hashed_index_hash(5, 77) == UINT32_C(0xb0cfe07f),
         "hashed_index_hash: not encodings.ts hashIndex (got %08x %08x %08x)", hashed_index_hash(0, 0),
         hashed_index_hash(1, 0), hashed_index_hash(5, 77));
  hashed_f32_expand(k, 0, oc, buckets, bucket_count, hash_seed, weights);
  bool expanded = true;
  for (size_t i = 0; i < oc * k && expanded; i++) {
    const uint32_t h = hashed_index_hash((uint32_t)i, hash_seed);
    const float v = buckets[h % bucket_count];
    expanded = weights[i] == ((h >> 31) != 0 ? -v : v);
  }
  char label[96];
  snprintf(label, sizeof label, "fc %zux%zu->%zu, %u buckets", f->batch, k, oc, bucket_count);
  report(expanded, "hashed_f32_expand [%s]: a weight is not its signed bucket", label);
  hashed_f32_fc_minmax_ukernel__reference(f->batch, k, oc, 0, oc, input, NULL, buckets, bucket_count,
                                          hash_seed, b, output_min, INFINITY, NULL, want);
  // The tolerance's scale: sum |W * x| + |bias| (the signs come from the hash, so not the kernel on
  // |buckets|).
  for (size_t n = 0; n < f->batch; n++) {
    for (size_t o = 0; o < oc; o++) {
      double sum = fabs((double)bias[o]);
      for (size_t j = 0; j < k; j++) sum += fabs((double)weights[o * k + j] * (double)input[n * k + j]);
      scale[n * oc + o] = (float)sum;
    }
  }
  for (const hashed_f32_variant* v = hashed_f32_variants; v < hashed_f32_variants + hashed_f32_variant_count;
       v++) {
    if (!supported(v->isa)) continue;
    const hashed_context loaded = {f, v->fc,        input,     weights,    buckets,
                                   b, bucket_count, hash_seed, output_min, INFINITY};
    const hashed_context on_the_fly = {f, v->fc,        input,     NULL,       buckets,
                                       b, bucket_count, hash_seed, output_min, INFINITY};
    check_f32_ranges("hashed fc (expanded at load)", v->name, label, f->batch, oc, hashed_run, &loaded, want,
                     scale);
    check_f32_ranges("hashed fc (on the fly)", v->name, label, f->batch, oc, hashed_run, &on_the_fly, want,
                     scale);
    // Both ways give the same bits, and image n's outputs do not depend on the batch.
    float* a = xmalloc(no * sizeof(float));
    float* c = xmalloc(no * sizeof(float));
    hashed_run(&loaded, 0, oc, a);
    hashed_run(&on_the_fly, 0, oc, c);
    bool same = memcmp(a, c, no * sizeof(float)) == 0;
    const fc_shape single = {1, k, oc};
    for (size_t n = 0; n < f->batch && same; n++) {
      const hashed_context one = {&single, v->fc,        input + n * k, weights,    buckets,
                                  b,       bucket_count, hash_seed,     output_min, INFINITY};
      hashed_run(&one, 0, oc, c);
      same = memcmp(a + n * oc, c, oc * sizeof(float)) == 0;
    }
    report(same, "hashed fc %s [%s]: expanded at load, on the fly and batch 1 differ", v->name, label);
    free(a), free(c);
  }
  free(input), free(buckets), free(bias), free(weights), free(want), free(scale);
}

// The expansion's remainder (no division) against %, at the edges: hashes near 2^32 and multiples of the
// count, counts of 1, 2^k +- 1 and the largest.
static void test_hashed_remainder(void) {
  static const uint32_t counts[] = {
      1, 2, 3, 7, 255, 256, 257, 65535, 65537, 1000003, HASHED_MAX_BUCKETS - 1, HASHED_MAX_BUCKETS};
  bool ok = true;
  for (size_t c = 0; c < sizeof counts / sizeof counts[0] && ok; c++) {
    float* buckets = xmalloc(counts[c] * sizeof(float));
    for (uint32_t b = 0; b < counts[c]; b++) buckets[b] = (float)b;
    // Rows of one weight whose hash we know: element i's bucket must be hash(i) % count.
    float got[64];
    for (uint32_t seed = 0; seed < 64 && ok; seed++) {
      hashed_f32_expand(1, 0, 64, buckets, counts[c], seed * UINT32_C(0x01000193), got);
      for (uint32_t i = 0; i < 64 && ok; i++) {
        const uint32_t h = hashed_index_hash(i, seed * UINT32_C(0x01000193));
        ok = fabsf(got[i]) == (float)(h % counts[c]);
      }
    }
    report(ok, "hashed_f32_expand: a bucket is not hash %% %u", counts[c]);
    free(buckets);
  }
}

static void test_hashed(void) {
  test_hashed_remainder();
  for (size_t s = 0; s < FC_SHAPE_COUNT; s++) hashed_case(&fc_shapes[s], 8000 + s);
  // The LeNet-300-100 layers at 1/8, and K around the vector widths.
  static const fc_shape more[] = {{1, 784, 300}, {4, 300, 100}, {3, 100, 10},
                                  {2, 15, 9},    {2, 17, 5},    {1, 33, 3}};
  for (size_t s = 0; s < sizeof more / sizeof more[0]; s++) hashed_case(&more[s], 8100 + s);
}

static void print_variants(void) {
  printf("# isa selected: %s\n", whittle_isa_name(whittle_isa_selected()));
#define PRINT_VARIANTS(label, list, count)                                   \
  do {                                                                       \
    printf("# %s:", label);                                                  \
    for (size_t i = 0; i < (count); i++)                                     \
      printf(" %s%s", list[i].name, supported(list[i].isa) ? "" : "(skip)"); \
    printf("\n");                                                            \
  } while (0)
  PRINT_VARIANTS("qf16", qf16_conv2d_variants, qf16_conv2d_variant_count);
  PRINT_VARIANTS("qf8", qf8_conv2d_variants, qf8_conv2d_variant_count);
  PRINT_VARIANTS("bin", bin_conv2d_variants, bin_conv2d_variant_count);
  PRINT_VARIANTS("xnor", xnor_conv2d_variants, xnor_conv2d_variant_count);
  PRINT_VARIANTS("xnor pack", xnor_pack_variants, xnor_pack_variant_count);
  PRINT_VARIANTS("tern", tern_conv2d_variants, tern_conv2d_variant_count);
  PRINT_VARIANTS("sparse_f32", sparse_f32_variants, sparse_f32_variant_count);
  PRINT_VARIANTS("cb", cb_conv2d_variants, cb_conv2d_variant_count);
  PRINT_VARIANTS("hashed", hashed_f32_variants, hashed_f32_variant_count);
#undef PRINT_VARIANTS
}

// *_select follows kernel_abi.h's rule for every level: the first entry of the list (best first) that the
// level allows and the CPU supports, else the last (scalar) entry.
static void test_select(void) {
  for (int level = 0; level < WHITTLE_ISA_COUNT; level++) {
    const whittle_isa isa = (whittle_isa)level;
#define CHECK_SELECT(select, list, count)                                                                    \
  do {                                                                                                       \
    size_t expected = (count)-1;                                                                             \
    for (size_t i = 0; i + 1 < (count); i++) {                                                               \
      if (whittle_isa_allows(isa, list[i].isa) && supported(list[i].isa)) {                                  \
        expected = i;                                                                                        \
        break;                                                                                               \
      }                                                                                                      \
    }                                                                                                        \
    report(select(isa) == &list[expected] && list[(count)-1].isa == WHITTLE_ISA_SCALAR,                      \
           #select "(%s) picked %s, not %s", whittle_isa_name(isa), select(isa)->name, list[expected].name); \
  } while (0)
    CHECK_SELECT(qf16_conv2d_select, qf16_conv2d_variants, qf16_conv2d_variant_count);
    CHECK_SELECT(qf8_conv2d_select, qf8_conv2d_variants, qf8_conv2d_variant_count);
    CHECK_SELECT(bin_conv2d_select, bin_conv2d_variants, bin_conv2d_variant_count);
    CHECK_SELECT(xnor_conv2d_select, xnor_conv2d_variants, xnor_conv2d_variant_count);
    CHECK_SELECT(xnor_pack_select, xnor_pack_variants, xnor_pack_variant_count);
    CHECK_SELECT(tern_conv2d_select, tern_conv2d_variants, tern_conv2d_variant_count);
    CHECK_SELECT(sparse_f32_select, sparse_f32_variants, sparse_f32_variant_count);
    CHECK_SELECT(cb_conv2d_select, cb_conv2d_variants, cb_conv2d_variant_count);
    CHECK_SELECT(hashed_f32_select, hashed_f32_variants, hashed_f32_variant_count);
#undef CHECK_SELECT
  }
  // The best level picks the best supported variant: on an AVX-512 VPOPCNTDQ machine, xnor's vpopcnt one.
  const whittle_isa best = whittle_isa_best();
  const xnor_conv2d_variant* xnor = xnor_conv2d_select(best);
  const xnor_conv2d_variant* first = xnor;
  for (size_t i = (size_t)(xnor - xnor_conv2d_variants); i-- > 0;) {
    if (supported(xnor_conv2d_variants[i].isa) && whittle_isa_allows(best, xnor_conv2d_variants[i].isa)) {
      first = &xnor_conv2d_variants[i];
    }
  }
  report(xnor == first, "xnor_conv2d_select(best) is %s, though %s ranks above it and runs here", xnor->name,
         first->name);
}

int main(void) {
  print_variants();
  init_shapes();
  test_select();
  test_qf_rounding();
  test_qf_quantizers();
  test_qf16();
  test_qf8();
  test_bin();
  test_xnor();
  test_tern();
  test_sparse();
  test_cb();
  test_hashed();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
