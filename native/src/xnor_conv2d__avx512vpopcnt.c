// xnor kernels for AVX-512 VPOPCNTDQ (Ice Lake, Zen 4): VPOPCNTQ counts 8 words at once, 8 output channels
// per broadcast input word; spans use masked loads, so there is no scalar tail. Compile with -mavx512f
// -mavx512bw -mavx512vl -mavx512vpopcntdq.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <math.h>

#include "xnor_conv2d_impl.h"

static uint32_t xnor_span_popcount_avx512vpopcnt(const uint64_t* x, const uint64_t* w, size_t words) {
  __m512i total = _mm512_setzero_si512();
  for (size_t i = 0; i < words; i += 8) {
    const __mmask8 valid = words - i < 8 ? (__mmask8)((1u << (words - i)) - 1) : (__mmask8)0xff;
    const __m512i v =
        _mm512_xor_si512(_mm512_maskz_loadu_epi64(valid, x + i), _mm512_maskz_loadu_epi64(valid, w + i));
    total = _mm512_add_epi64(total, _mm512_popcnt_epi64(v));
  }
  return (uint32_t)_mm512_reduce_add_epi64(total);
}

static void xnor_block_row_avx512vpopcnt(const uint64_t* x, const uint64_t* wt, size_t words, uint32_t* pop) {
  __m512i total0 = _mm512_setzero_si512();
  __m512i total1 = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 2 <= words; i += 2) {
    const __m512i v0 = _mm512_xor_si512(_mm512_set1_epi64((long long)x[i]), _mm512_loadu_si512(wt + 8 * i));
    const __m512i v1 =
        _mm512_xor_si512(_mm512_set1_epi64((long long)x[i + 1]), _mm512_loadu_si512(wt + 8 * i + 8));
    total0 = _mm512_add_epi64(total0, _mm512_popcnt_epi64(v0));
    total1 = _mm512_add_epi64(total1, _mm512_popcnt_epi64(v1));
  }
  if (i < words) {
    const __m512i v = _mm512_xor_si512(_mm512_set1_epi64((long long)x[i]), _mm512_loadu_si512(wt + 8 * i));
    total0 = _mm512_add_epi64(total0, _mm512_popcnt_epi64(v));
  }
  const __m256i sums = _mm512_cvtepi64_epi32(_mm512_add_epi64(total0, total1));
  _mm256_storeu_si256((__m256i*)pop, _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)pop), sums));
}

static void xnor_block_store_avx512vpopcnt(const uint32_t* pop, int32_t valid, const float* alpha,
                                           float scale, const float* bias, float output_min, float output_max,
                                           float* out) {
  const __m256i dot = _mm256_sub_epi32(_mm256_set1_epi32(valid),
                                       _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)pop), 1));
  __m256 value = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(alpha));
  value = _mm256_mul_ps(value, _mm256_set1_ps(scale));
  value = _mm256_add_ps(value, bias != NULL ? _mm256_loadu_ps(bias) : _mm256_setzero_ps());
  const __m256 lo = _mm256_set1_ps(output_min);
  const __m256 hi = _mm256_set1_ps(output_max);
  value = _mm256_blendv_ps(value, lo, _mm256_cmp_ps(value, lo, _CMP_LT_OQ));
  value = _mm256_blendv_ps(value, hi, _mm256_cmp_ps(value, hi, _CMP_GT_OQ));
  _mm256_storeu_ps(out, value);
}

// 32 channels: four vectors per broadcast input word, which amortizes the per-position work 4 times more.
static void xnor_block32_row_avx512vpopcnt(const uint64_t* x, const uint64_t* wt, size_t words,
                                           uint32_t* pop) {
  __m512i total0 = _mm512_setzero_si512();
  __m512i total1 = _mm512_setzero_si512();
  __m512i total2 = _mm512_setzero_si512();
  __m512i total3 = _mm512_setzero_si512();
  for (size_t i = 0; i < words; i++) {
    const __m512i a = _mm512_set1_epi64((long long)x[i]);
    const uint64_t* w = wt + 32 * i;
    total0 = _mm512_add_epi64(total0, _mm512_popcnt_epi64(_mm512_xor_si512(a, _mm512_loadu_si512(w))));
    total1 = _mm512_add_epi64(total1, _mm512_popcnt_epi64(_mm512_xor_si512(a, _mm512_loadu_si512(w + 8))));
    total2 = _mm512_add_epi64(total2, _mm512_popcnt_epi64(_mm512_xor_si512(a, _mm512_loadu_si512(w + 16))));
    total3 = _mm512_add_epi64(total3, _mm512_popcnt_epi64(_mm512_xor_si512(a, _mm512_loadu_si512(w + 24))));
  }
  const __m512i low = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(total0)),
                                         _mm512_cvtepi64_epi32(total1), 1);
  const __m512i high = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(total2)),
                                          _mm512_cvtepi64_epi32(total3), 1);
  _mm512_storeu_si512(pop, _mm512_add_epi32(_mm512_loadu_si512(pop), low));
  _mm512_storeu_si512(pop + 16, _mm512_add_epi32(_mm512_loadu_si512(pop + 16), high));
}

static void xnor_block32_store_avx512vpopcnt(const uint32_t* pop, int32_t valid, const float* alpha,
                                             float scale, const float* bias, float output_min,
                                             float output_max, float* out) {
  for (size_t j = 0; j < 32; j += 8) {
    xnor_block_store_avx512vpopcnt(pop + j, valid, alpha + j, scale, bias != NULL ? bias + j : NULL,
                                   output_min, output_max, out + j);
  }
}

// ---- Register-blocked path: 32 output channels x up to 4 output pixels of one row (groups == 1). ----
//
// The blocked driver above keeps its 32 popcounts in memory and handles one pixel per call, so on small
// reductions (a 1x1 layer with 128 channels is 2 words per pixel) the per-pixel bookkeeping, the stores to
// pop[] and the epilogue's reloads cost several times the popcounts. Here the accumulators stay in
// registers (4 pixels x 4 vectors of 8 channels = 16 zmm) and one load of a transposed weight vector feeds
// 4 pixels. Pixels whose kernel window lies wholly inside the input ("interior") go 4 at a time; the others
// (padding borders, a row's last few) one at a time with their own valid-tap range. The epilogue is
// xnor_output's expression on 16 lanes: the same roundings and clamps with the same results (see below),
// so bit-exact.

#define XNOR_MR 4

// The low 32 bits of each 64-bit lane of a, then of b: 16 popcounts as int32 (each fits: K < 2^24).
static inline __m512i xnor_narrow_avx512vpopcnt(__m512i a, __m512i b) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_epi32(a, even, b);
}

// The epilogue is specialized at compile time (every function below down to the block driver is always
// inlined, and the driver is instantiated once per combination, xnor_conv2d_block32_*): has_scale = 0 drops
// the multiply by K = 1.0f, which changes no float (NaN and -0.0 included); clamp = 0 drops the clamps when
// both bounds are infinite. The clamps are MAXPS(lo, value) and MINPS(hi, value), which return their second
// operand (value) when it is NaN or when both are zeros of either sign: exactly `value < lo ? lo : value`
// and `value > hi ? hi : value`. The bias add always runs (a missing bias adds +0.0f from xnor_no_bias,
// turning -0.0 into +0.0 as xnor_output does).
#define XNOR_INLINE static inline __attribute__((always_inline))

static const float xnor_no_bias[32] = {0.0f};

XNOR_INLINE void xnor_store16_avx512vpopcnt(__m512i pop, __m512i valid, const float* alpha, __m512 scale,
                                            const float* bias, __m512 lo, __m512 hi, int has_scale, int clamp,
                                            float* out) {
  const __m512i dot = _mm512_sub_epi32(valid, _mm512_slli_epi32(pop, 1));
  __m512 value = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(alpha));
  if (has_scale) value = _mm512_mul_ps(value, scale);
  value = _mm512_add_ps(value, _mm512_loadu_ps(bias));
  if (clamp) {
    value = _mm512_max_ps(lo, value);
    value = _mm512_min_ps(hi, value);
  }
  _mm512_storeu_ps(out, value);
}

typedef struct xnor_block32_args {
  const whittle_conv2d_geometry* g;
  const uint64_t* wt;  // [row_words][32], the block's weights transposed
  const float* alpha;  // the block's first channel
  const float* input_scale;
  const float* bias;  // the block's first channel, or xnor_no_bias
  __m512 lo, hi;
  float* output;  // output + the block's first channel
} xnor_block32_args;

XNOR_INLINE void xnor_store32_avx512vpopcnt(const xnor_block32_args* b, __m512i t0, __m512i t1, __m512i t2,
                                            __m512i t3, int32_t valid, float scale, int has_scale, int clamp,
                                            float* out) {
  const __m512i v = _mm512_set1_epi32(valid);
  const __m512 s = _mm512_set1_ps(scale);
  xnor_store16_avx512vpopcnt(xnor_narrow_avx512vpopcnt(t0, t1), v, b->alpha, s, b->bias, b->lo, b->hi,
                             has_scale, clamp, out);
  xnor_store16_avx512vpopcnt(xnor_narrow_avx512vpopcnt(t2, t3), v, b->alpha + 16, s, b->bias + 16, b->lo,
                             b->hi, has_scale, clamp, out + 16);
}

#define XNOR_POP(acc, a, w) acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, w)))

// One pixel p (any valid-tap range) x 32 channels.
XNOR_INLINE void xnor_pixel32_avx512vpopcnt(const xnor_block32_args* b, const xnor_pixel* p, int has_scale,
                                            int clamp) {
  const whittle_conv2d_geometry* g = b->g;
  const size_t gw = xnor_group_words(g->group_input_channels);
  __m512i t0 = _mm512_setzero_si512(), t1 = t0, t2 = t0, t3 = t0;
  const size_t words = (p->kx1 - p->kx0) * gw;
  for (size_t ky = p->ky0; ky < p->ky1; ky++) {
    const size_t iy = p->oy * g->stride_height + ky - g->padding_top;
    const size_t ix0 = p->ox * g->stride_width + p->kx0 - g->padding_left;
    const uint64_t* x = p->image + (iy * g->input_width + ix0) * gw;
    const uint64_t* w = b->wt + (ky * g->kernel_width + p->kx0) * gw * 32;
    for (size_t i = 0; i < words; i++, w += 32) {
      const __m512i a = _mm512_set1_epi64((long long)x[i]);
      XNOR_POP(t0, a, _mm512_loadu_si512(w));
      XNOR_POP(t1, a, _mm512_loadu_si512(w + 8));
      XNOR_POP(t2, a, _mm512_loadu_si512(w + 16));
      XNOR_POP(t3, a, _mm512_loadu_si512(w + 24));
    }
  }
  const int32_t valid = (int32_t)((p->ky1 - p->ky0) * (p->kx1 - p->kx0) * g->group_input_channels);
  const size_t oc = g->group_output_channels;
  xnor_store32_avx512vpopcnt(b, t0, t1, t2, t3, valid,
                             b->input_scale != NULL ? b->input_scale[p->index] : 1.0f, has_scale, clamp,
                             b->output + p->index * oc);
}

// XNOR_MR pixels x 32 channels whose windows all read the same kernel taps: rows [ky0, ky0 + rows) of
// the kernel, all its columns. x: the first pixel's window at kernel row ky0 (the next kernel row starts
// x_row words later, the next pixel's window `step` words later); wt: the transposed weights at kernel row
// ky0; out: the first pixel's 32 outputs (the next pixel's `out_stride` floats later); k: the first pixel's
// K (the next pixels' follow), or NULL.
XNOR_INLINE void xnor_4x32_avx512vpopcnt(const xnor_block32_args* b, const uint64_t* x, size_t x_row,
                                         size_t step, size_t rows, size_t words, const uint64_t* wt,
                                         int32_t valid, const float* k, float* out, size_t out_stride,
                                         int has_scale, int clamp) {
  __m512i t00 = _mm512_setzero_si512(), t01 = t00, t02 = t00, t03 = t00;
  __m512i t10 = t00, t11 = t00, t12 = t00, t13 = t00;
  __m512i t20 = t00, t21 = t00, t22 = t00, t23 = t00;
  __m512i t30 = t00, t31 = t00, t32 = t00, t33 = t00;
  for (size_t r = 0; r < rows; r++, x += x_row) {
    const uint64_t* w = wt + r * words * 32;
    for (size_t i = 0; i < words; i++, w += 32) {
      const __m512i w0 = _mm512_loadu_si512(w);
      const __m512i w1 = _mm512_loadu_si512(w + 8);
      const __m512i w2 = _mm512_loadu_si512(w + 16);
      const __m512i w3 = _mm512_loadu_si512(w + 24);
      const __m512i a0 = _mm512_set1_epi64((long long)x[i]);
      XNOR_POP(t00, a0, w0), XNOR_POP(t01, a0, w1), XNOR_POP(t02, a0, w2), XNOR_POP(t03, a0, w3);
      const __m512i a1 = _mm512_set1_epi64((long long)x[i + step]);
      XNOR_POP(t10, a1, w0), XNOR_POP(t11, a1, w1), XNOR_POP(t12, a1, w2), XNOR_POP(t13, a1, w3);
      const __m512i a2 = _mm512_set1_epi64((long long)x[i + 2 * step]);
      XNOR_POP(t20, a2, w0), XNOR_POP(t21, a2, w1), XNOR_POP(t22, a2, w2), XNOR_POP(t23, a2, w3);
      const __m512i a3 = _mm512_set1_epi64((long long)x[i + 3 * step]);
      XNOR_POP(t30, a3, w0), XNOR_POP(t31, a3, w1), XNOR_POP(t32, a3, w2), XNOR_POP(t33, a3, w3);
    }
  }
  xnor_store32_avx512vpopcnt(b, t00, t01, t02, t03, valid, k != NULL ? k[0] : 1.0f, has_scale, clamp, out);
  xnor_store32_avx512vpopcnt(b, t10, t11, t12, t13, valid, k != NULL ? k[1] : 1.0f, has_scale, clamp,
                             out + out_stride);
  xnor_store32_avx512vpopcnt(b, t20, t21, t22, t23, valid, k != NULL ? k[2] : 1.0f, has_scale, clamp,
                             out + 2 * out_stride);
  xnor_store32_avx512vpopcnt(b, t30, t31, t32, t33, valid, k != NULL ? k[3] : 1.0f, has_scale, clamp,
                             out + 3 * out_stride);
}

// XNOR_MR interior pixels p, p + 1, ... of one output row (every kernel column inside the input).
XNOR_INLINE void xnor_row4x32_avx512vpopcnt(const xnor_block32_args* b, const xnor_pixel* p, int has_scale,
                                            int clamp) {
  const whittle_conv2d_geometry* g = b->g;
  const size_t gw = xnor_group_words(g->group_input_channels);
  const size_t iy = p->oy * g->stride_height + p->ky0 - g->padding_top;
  const size_t ix0 = p->ox * g->stride_width - g->padding_left;
  const size_t words = g->kernel_width * gw;
  const int32_t valid = (int32_t)((p->ky1 - p->ky0) * g->kernel_width * g->group_input_channels);
  xnor_4x32_avx512vpopcnt(b, p->image + (iy * g->input_width + ix0) * gw, g->input_width * gw,
                          g->stride_width * gw, p->ky1 - p->ky0, words, b->wt + p->ky0 * words * 32, valid,
                          b->input_scale != NULL ? b->input_scale + p->index : NULL,
                          b->output + p->index * g->group_output_channels, g->group_output_channels,
                          has_scale, clamp);
}

// Whether output column ox reads every kernel column (no left or right padding).
static inline int xnor_interior_column(const whittle_conv2d_geometry* g, size_t ox) {
  const size_t x0 = ox * g->stride_width;
  return x0 >= g->padding_left && x0 - g->padding_left + g->kernel_width <= g->input_width;
}

// ---- Half words: 32 output channels of a layer with at most 32 input channels per group. ----
//
// Such a layer (the small VGG's 32-channel convolutions) uses only the low half of each activation and
// weight word: its high 32 bits are 0 on both sides, so popcount(x ^ w) is the popcount of the low halves.
// VPOPCNTD then counts 16 channels per vector instead of 8, which halves the XOR / popcount / add work of
// the 64-bit path: 32 channels are 2 vectors of 32-bit lanes, already the int32 popcounts the epilogue
// takes (no narrowing). The transposed weights hold the low halves only: wt32[k][32].

#define XNOR_POP32(acc, a, w) acc = _mm512_add_epi32(acc, _mm512_popcnt_epi32(_mm512_xor_si512(a, w)))

XNOR_INLINE void xnor_store32h_avx512vpopcnt(const xnor_block32_args* b, __m512i t0, __m512i t1,
                                             int32_t valid, float scale, int has_scale, int clamp,
                                             float* out) {
  const __m512i v = _mm512_set1_epi32(valid);
  const __m512 s = _mm512_set1_ps(scale);
  xnor_store16_avx512vpopcnt(t0, v, b->alpha, s, b->bias, b->lo, b->hi, has_scale, clamp, out);
  xnor_store16_avx512vpopcnt(t1, v, b->alpha + 16, s, b->bias + 16, b->lo, b->hi, has_scale, clamp, out + 16);
}

// One pixel p (any valid-tap range) x 32 channels, half words (wt: uint32 [row_words][32]).
XNOR_INLINE void xnor_pixel32h_avx512vpopcnt(const xnor_block32_args* b, const uint32_t* wt,
                                             const xnor_pixel* p, int has_scale, int clamp) {
  const whittle_conv2d_geometry* g = b->g;
  __m512i t0 = _mm512_setzero_si512(), t1 = t0;
  const size_t words = p->kx1 - p->kx0;  // one word per tap
  for (size_t ky = p->ky0; ky < p->ky1; ky++) {
    const size_t iy = p->oy * g->stride_height + ky - g->padding_top;
    const size_t ix0 = p->ox * g->stride_width + p->kx0 - g->padding_left;
    const uint64_t* x = p->image + iy * g->input_width + ix0;
    const uint32_t* w = wt + (ky * g->kernel_width + p->kx0) * 32;
    for (size_t i = 0; i < words; i++, w += 32) {
      const __m512i a = _mm512_set1_epi32((int)(uint32_t)x[i]);
      XNOR_POP32(t0, a, _mm512_loadu_si512(w));
      XNOR_POP32(t1, a, _mm512_loadu_si512(w + 16));
    }
  }
  const int32_t valid = (int32_t)((p->ky1 - p->ky0) * (p->kx1 - p->kx0) * g->group_input_channels);
  xnor_store32h_avx512vpopcnt(b, t0, t1, valid, b->input_scale != NULL ? b->input_scale[p->index] : 1.0f,
                              has_scale, clamp, b->output + p->index * g->group_output_channels);
}

// XNOR_HR pixels x 32 channels, half words: as xnor_4x32_avx512vpopcnt (same arguments), 8 pixels at a
// time, since each pixel needs only 2 accumulators.
#define XNOR_HR 8

XNOR_INLINE void xnor_8x32h_avx512vpopcnt(const xnor_block32_args* b, const uint64_t* x, size_t x_row,
                                          size_t step, size_t rows, size_t words, const uint32_t* wt,
                                          int32_t valid, const float* k, float* out, size_t out_stride,
                                          int has_scale, int clamp) {
  __m512i t[XNOR_HR][2];
  for (size_t j = 0; j < XNOR_HR; j++) t[j][0] = t[j][1] = _mm512_setzero_si512();
  for (size_t r = 0; r < rows; r++, x += x_row) {
    const uint32_t* w = wt + r * words * 32;
    for (size_t i = 0; i < words; i++, w += 32) {
      const __m512i w0 = _mm512_loadu_si512(w);
      const __m512i w1 = _mm512_loadu_si512(w + 16);
      for (size_t j = 0; j < XNOR_HR; j++) {
        const __m512i a = _mm512_set1_epi32((int)(uint32_t)x[i + j * step]);
        XNOR_POP32(t[j][0], a, w0);
        XNOR_POP32(t[j][1], a, w1);
      }
    }
  }
  for (size_t j = 0; j < XNOR_HR; j++) {
    xnor_store32h_avx512vpopcnt(b, t[j][0], t[j][1], valid, k != NULL ? k[j] : 1.0f, has_scale, clamp,
                                out + j * out_stride);
  }
}

// Channels [oc_begin, oc_begin + 32 * blocks) of a groups == 1 layer whose rows fit the transposed buffer;
// half: at most 32 input channels, on the half-word functions above.
XNOR_INLINE void xnor_conv2d_block32_avx512vpopcnt(const whittle_conv2d_geometry* g, size_t oc_begin,
                                                   size_t blocks, const uint64_t* input_bits,
                                                   const uint64_t* weight_bits, const float* alpha,
                                                   const float* input_scale, const float* bias,
                                                   float output_min, float output_max, float* output,
                                                   int has_scale, int clamp, int half) {
  const size_t row_words = g->kernel_height * g->kernel_width * xnor_group_words(g->group_input_channels);
  // Pointwise: 1x1, stride 1, no padding, so output pixel i reads exactly input pixel i.
  const int pointwise = !half && g->kernel_height == 1 && g->kernel_width == 1 && g->stride_height == 1 &&
                        g->stride_width == 1 && g->padding_top == 0 && g->padding_left == 0 &&
                        g->output_height == g->input_height && g->output_width == g->input_width;
  const size_t oc = g->group_output_channels;
  // The transposed weights: whole words, or their low halves (half).
  union {
    uint64_t words[XNOR_TRANSPOSED_WORDS];
    uint32_t halves[XNOR_TRANSPOSED_WORDS];
  } t;
  const uint64_t* wt = t.words;
  for (size_t block = 0; block < blocks; block++) {
    const size_t ob = oc_begin + 32 * block;
    for (size_t k = 0; k < row_words; k++) {
      for (size_t j = 0; j < 32; j++) {
        const uint64_t w = weight_bits[(ob + j) * row_words + k];
        if (half) {
          t.halves[k * 32 + j] = (uint32_t)w;
        } else {
          t.words[k * 32 + j] = w;
        }
      }
    }
    const xnor_block32_args b = {g,
                                 half ? NULL : wt,
                                 alpha + ob,
                                 input_scale,
                                 bias != NULL ? bias + ob : xnor_no_bias,
                                 _mm512_set1_ps(output_min),
                                 _mm512_set1_ps(output_max),
                                 output + ob};
    size_t n = 0;
    if (pointwise) {
      // A pointwise layer is a GEMM over the flattened pixels: 4 at a time, the last few through the
      // general loop below (n = batch skips it when none are left).
      const size_t pixels = g->batch * g->output_height * g->output_width;
      const size_t gw = row_words;
      const int32_t valid = (int32_t)g->group_input_channels;
      size_t i = 0;
      for (; i + XNOR_MR <= pixels; i += XNOR_MR) {
        xnor_4x32_avx512vpopcnt(&b, input_bits + i * gw, 0, gw, 1, gw, wt, valid,
                                input_scale != NULL ? input_scale + i : NULL, b.output + i * oc, oc,
                                has_scale, clamp);
      }
      for (; i < pixels; i++) {
        xnor_pixel p;
        const size_t image = g->output_height * g->output_width;
        xnor_pixel_at(g, input_bits, i / image, i % image / g->output_width, i % g->output_width, &p);
        xnor_pixel32_avx512vpopcnt(&b, &p, has_scale, clamp);
      }
      n = g->batch;
    }
    for (; n < g->batch; n++) {
      for (size_t oy = 0; oy < g->output_height; oy++) {
        size_t ox = 0;
        while (ox < g->output_width) {
          xnor_pixel p;
          xnor_pixel_at(g, input_bits, n, oy, ox, &p);
          const size_t mr = half ? XNOR_HR : XNOR_MR;
          if (ox + mr <= g->output_width && xnor_interior_column(g, ox) &&
              xnor_interior_column(g, ox + mr - 1)) {
            if (half) {
              const size_t iy = oy * g->stride_height + p.ky0 - g->padding_top;
              const size_t ix0 = ox * g->stride_width - g->padding_left;
              const int32_t valid = (int32_t)((p.ky1 - p.ky0) * g->kernel_width * g->group_input_channels);
              xnor_8x32h_avx512vpopcnt(&b, p.image + iy * g->input_width + ix0, g->input_width,
                                       g->stride_width, p.ky1 - p.ky0, g->kernel_width,
                                       t.halves + p.ky0 * g->kernel_width * 32, valid,
                                       input_scale != NULL ? input_scale + p.index : NULL,
                                       b.output + p.index * oc, oc, has_scale, clamp);
            } else {
              xnor_row4x32_avx512vpopcnt(&b, &p, has_scale, clamp);
            }
            ox += mr;
          } else if (half) {
            xnor_pixel32h_avx512vpopcnt(&b, t.halves, &p, has_scale, clamp);
            ox++;
          } else {
            xnor_pixel32_avx512vpopcnt(&b, &p, has_scale, clamp);
            ox++;
          }
        }
      }
    }
  }
}

#define XNOR_BLOCK32_VARIANT(name, has_scale, clamp)                                                      \
  static void name(const whittle_conv2d_geometry* g, size_t oc_begin, size_t blocks,                      \
                   const uint64_t* input_bits, const uint64_t* weight_bits, const float* alpha,           \
                   const float* input_scale, const float* bias, float output_min, float output_max,       \
                   float* output) {                                                                       \
    if (g->group_input_channels <= 32) {                                                                  \
      xnor_conv2d_block32_avx512vpopcnt(g, oc_begin, blocks, input_bits, weight_bits, alpha, input_scale, \
                                        bias, output_min, output_max, output, has_scale, clamp, 1);       \
    } else {                                                                                              \
      xnor_conv2d_block32_avx512vpopcnt(g, oc_begin, blocks, input_bits, weight_bits, alpha, input_scale, \
                                        bias, output_min, output_max, output, has_scale, clamp, 0);       \
    }                                                                                                     \
  }
XNOR_BLOCK32_VARIANT(xnor_conv2d_block32_plain, 0, 0)
XNOR_BLOCK32_VARIANT(xnor_conv2d_block32_scale, 1, 0)
XNOR_BLOCK32_VARIANT(xnor_conv2d_block32_clamp, 0, 1)
XNOR_BLOCK32_VARIANT(xnor_conv2d_block32_scale_clamp, 1, 1)

void xnor_conv2d_minmax_ukernel__avx512vpopcnt(const whittle_conv2d_geometry* geometry, size_t oc_begin,
                                               size_t oc_end, const uint64_t* restrict input_bits,
                                               const uint64_t* restrict weight_bits,
                                               const float* restrict alpha, const float* restrict input_scale,
                                               const float* restrict bias, float output_min, float output_max,
                                               float* restrict output) {
  size_t done = xnor_conv2d_drive_single_bit(geometry, oc_begin, oc_end, input_bits, weight_bits, alpha,
                                             input_scale, bias, output_min, output_max, output);
  const size_t row_words =
      geometry->kernel_height * geometry->kernel_width * xnor_group_words(geometry->group_input_channels);
  if (geometry->groups == 1 && 32 * row_words <= XNOR_TRANSPOSED_WORDS) {
    const size_t blocks = (oc_end - done) / 32;
    const int clamp = output_min != -INFINITY || output_max != INFINITY;
    (input_scale != NULL ? (clamp ? xnor_conv2d_block32_scale_clamp : xnor_conv2d_block32_scale)
                         : (clamp ? xnor_conv2d_block32_clamp : xnor_conv2d_block32_plain))(
        geometry, done, blocks, input_bits, weight_bits, alpha, input_scale, bias, output_min, output_max,
        output);
    done += 32 * blocks;
  }
  done = xnor_conv2d_drive_blocked(geometry, done, oc_end, input_bits, weight_bits, alpha, input_scale, bias,
                                   output_min, output_max, output, xnor_span_popcount_avx512vpopcnt, 32,
                                   xnor_block32_row_avx512vpopcnt, xnor_block32_store_avx512vpopcnt);
  done = xnor_conv2d_drive_blocked(geometry, done, oc_end, input_bits, weight_bits, alpha, input_scale, bias,
                                   output_min, output_max, output, xnor_span_popcount_avx512vpopcnt, 8,
                                   xnor_block_row_avx512vpopcnt, xnor_block_store_avx512vpopcnt);
  xnor_conv2d_drive_simple(geometry, done, oc_end, input_bits, weight_bits, alpha, input_scale, bias,
                           output_min, output_max, output, xnor_span_popcount_avx512vpopcnt);
}

void xnor_fc_minmax_ukernel__avx512vpopcnt(size_t batch, size_t input_channels, size_t output_channels,
                                           size_t oc_begin, size_t oc_end,
                                           const uint64_t* restrict input_bits,
                                           const uint64_t* restrict weight_bits, const float* restrict alpha,
                                           const float* restrict input_scale, const float* restrict bias,
                                           float output_min, float output_max, float* restrict output) {
  const whittle_conv2d_geometry geometry = xnor_fc_geometry(batch, input_channels, output_channels);
  xnor_conv2d_minmax_ukernel__avx512vpopcnt(&geometry, oc_begin, oc_end, input_bits, weight_bits, alpha,
                                            input_scale, bias, output_min, output_max, output);
}
#endif
