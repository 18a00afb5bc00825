// int8 / uint8 conv2d and fully-connected. The weights are packed once for the chosen microkernel, with the
// input zero point folded into the bias (bias' = bias - zp * sum(w), so kernels compute plain dot products),
// and per call:
//  - indirect GEMM (kxk convs: stems, LeNet-sized and larger layers, and grouped ones such as RegNet's 3x3
//    groups of 16 channels, one kernel call per group and tile with the weights packed per group): the
//    images are copied once into a padded buffer in the kernel's domain (int8, or uint8 for VNNI) whose
//    border holds the zero point, so padded taps contribute exactly zero, and the kernel reads every tap
//    there in place; a tile whose pixels read much padding (ResNet-18's 4 x 4 and 2 x 2 stages, the first
//    and last output rows of the others) runs the kernel's variant over real taps only (runs_pay), each
//    pixel's skipped taps added back to its bias as a correction per pixel class (which kernel rows and
//    columns it reads);
//  - GEMM (1x1 convs, fully-connected): every MR output pixels get MR rows of im2col in per-thread
//    scratch, in the kernel's domain and padded with the zero point;
//  - depthwise: an indirection row per pixel, out-of-image taps pointing at a row of zero points.
// Threads split the output pixels. A residual add (qs8_conv2d_run_add) is applied to each requantized output
// tile right after the kernel wrote it, while it is in cache.
#include <stdlib.h>
#include <string.h>

#include "qs8_requantize.h"

struct qs8_conv2d_op {
  whittle_conv2d_shape shape;
  size_t output_height, output_width, cin_g, cout_g, k, kc;
  bool depthwise;
  bool dw3x3;  // depthwise 3x3, dilation 1: row kernel calls of up to 16 output rows (fn_3x3)
  // GEMM path, pointwise (1x1, stride 1, no padding, one group) with kc == k: output pixel m reads input
  // bytes [m * k, (m + 1) * k), so a tile of MR pixels is one contiguous run of the input, read in place
  // (a_xor == 0) or flipped into the tile by one copy.
  bool a_contiguous;
  qs8_gemmlowp_params params;
  uint8_t a_xor;     // raw input byte -> kernel domain
  uint8_t pad_byte;  // the input zero point in the kernel domain
  const qs8_gemm_ukernel* gemm;
  const qs8_gemv_ukernel* gemv;    // a layer of one output row (batch-1 fully-connected), or NULL
  const qs8_igemm_ukernel* igemm;  // set: the indirect GEMM path
  const qs8_dwconv_ukernel* dwconv;
  // Indirect GEMM: the padded images (with QS8_IGEMM_SLACK bytes after them for the kernels' reads past a
  // segment) and the offset of each group of k_align reduction bytes from a pixel's first tap.
  whittle_conv2d_padded_input padded_plan;
  int8_t* padded;
  int32_t* k_offsets;
  // The indirect GEMM over real taps only (igemm->fn_runs, set up by runs_create when runs_pay): per tap
  // (ky * kernel_width + kx) its first reduction byte; per output row / column which kernel rows / columns
  // read the image (bit ky / kx) and its class; per (row class, column class) the int32 correction of the
  // skipped taps (corrections_stride entries per class, the output channels rounded up to nr).
  uint32_t* tap_k;
  uint32_t* row_taps;
  uint32_t* column_taps;
  uint32_t* row_class;
  uint32_t* column_class;
  size_t column_classes, corrections_stride;
  int32_t* corrections;
  bool per_tap;  // one reduction segment per tap (else per kernel row)
  // Per output pixel (batch * output_height * output_width): its first tap's place in the padded images and
  // its class's correction; per tile of mr pixels from a multiple of mr (as the tasks take them): its runs
  // (tile_runs, QS8_RUNS_MAX_TAPS per tile) and their count, 0 for a tile that runs the plain kernel over
  // every tap (more than QS8_RUNS_REAL_SHARE of its pairs real: runs_pay). Set up once, so a tile only looks
  // them up.
  size_t* pixel_origin;
  const int32_t** pixel_correction;
  qs8_igemm_run* tile_runs;
  uint8_t* tile_run_count;
  unsigned char* packed;
  size_t packed_group_bytes;
  int8_t* zero;
  size_t scratch_threads;
  size_t scratch_bytes_per_thread;
  size_t a_tile_bytes;
  unsigned char* scratch;
  const qs8_simple_ukernels* simple;  // vadd, for the residual add
  // The residual add over rescale tables, when its kernel is at least as specific as simple->vadd (else
  // NULL): the tables of the last parameters seen (add_tables_params), built on the first run that adds.
  const qs8_vadd_tables_ukernel* vadd_tables;
  qs8_add_tables* add_tables;
  qs8_add_params add_tables_params;
  // Arguments of the run in progress, read by the tasks: the addend is NULL without a residual add.
  const int8_t* input;
  int8_t* output;
  const int8_t* addend;
  const qs8_add_params* add;
  const qs8_add_tables* tables;  // add's tables, or NULL (simple->vadd)
};

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// Zeroed packed weights on a cache-line boundary: the kernels' 64-byte loads of a block then never straddle
// two lines (blocks are multiples of 64 bytes when k is). NULL on overflow or out of memory.
static unsigned char* packed_alloc(size_t count, size_t bytes) {
  if (bytes != 0 && count > SIZE_MAX / bytes - 64) return NULL;
  const size_t total = round_up(count * bytes, 64);
  unsigned char* p = aligned_alloc(64, total == 0 ? 64 : total);
  if (p != NULL) memset(p, 0, total);
  return p;
}

// Bytes after the padded images: more than the largest k_align - 1 that an indirect kernel reads past the
// last segment.
#define QS8_IGEMM_SLACK 64

// The indirect GEMM's reduction segments (qs8_igemm_ukernel_fn): contiguous spans of the padded input, each
// packed to a multiple of k_align.
typedef struct {
  size_t count, length, padded_length;
  bool per_tap;  // one segment per tap (else per kernel row)
} igemm_segments;

static igemm_segments segments_of(const whittle_conv2d_shape* s, size_t k_align) {
  igemm_segments seg;
  // Without horizontal dilation and with one group, a kernel row's taps are adjacent pixels: one span of
  // kernel_width * cin. Otherwise each tap is a span of the group's cin_g channels.
  const size_t cin_g = s->input_channels / s->groups;
  seg.per_tap = s->dilation_width != 1 || s->groups != 1;
  seg.count = seg.per_tap ? s->kernel_height * s->kernel_width : s->kernel_height;
  seg.length = seg.per_tap ? cin_g : s->kernel_width * cin_g;
  seg.padded_length = round_up(seg.length, k_align);
  return seg;
}

// Where reduction element kk = (ky * kernel_width + kx) * cin_g + i lies in the segmented reduction.
static size_t segmented_k(const whittle_conv2d_shape* s, const igemm_segments* seg, size_t kk) {
  const size_t cin_g = s->input_channels / s->groups;
  const size_t per_segment_taps = seg->length / cin_g;
  const size_t tap = kk / cin_g;
  return tap / per_segment_taps * seg->padded_length + kk % seg->length;
}

// Fills one packed block header: bias' = bias - zero_point * weight_sum (wrapping, as the kernels add).
static void write_header(unsigned char* block, size_t nr, size_t n, int32_t bias, int32_t weight_sum,
                         int32_t zero_point, int32_t multiplier, int32_t shift) {
  int32_t* p = (int32_t*)block;
  p[n] = (int32_t)((uint32_t)bias - (uint32_t)zero_point * (uint32_t)weight_sum);
  p[nr + n] = multiplier;
  p[2 * nr + n] = shift > 0 ? shift : 0;
  p[3 * nr + n] = shift > 0 ? 0 : -shift;
}

// A layer of one output row (a batch-1 fully-connected layer, or a 1x1 conv of one pixel) on a GEMV
// kernel at least as specific as the GEMM kernel `level` picks (qs8_gemv_ukernel_select), and no wider than
// the GEMV kernel's max_channels.
static bool is_gemv(const whittle_conv2d_shape* s, whittle_isa level) {
  const bool one_row = s->groups == 1 && s->batch == 1 && s->input_height == 1 && s->input_width == 1 &&
                       s->kernel_height == 1 && s->kernel_width == 1 && s->padding_top == 0 &&
                       s->padding_left == 0 && s->padding_bottom == 0 && s->padding_right == 0;
  const qs8_gemv_ukernel* gemv = qs8_gemv_ukernel_select(level);
  return one_row && whittle_isa_allows(gemv->isa, qs8_gemm_ukernel_select(level)->isa) &&
         (gemv->max_channels == 0 || s->output_channels <= gemv->max_channels);
}

// The indirect GEMM over real taps only: kernels up to this many taps (one run per tap at most) and this wide
// or high (bit masks of kernel rows and columns).
#define QS8_RUNS_MAX_TAPS 25
#define QS8_RUNS_MAX_SIDE 16

// Bit t of the result: tap t (kernel row or column) of output position `out` reads the image along an axis of
// `input` pixels.
static uint32_t axis_taps(size_t out, size_t input, size_t stride, size_t dilation, size_t padding,
                          size_t kernel) {
  uint32_t mask = 0;
  for (size_t t = 0; t < kernel; t++) {
    const ptrdiff_t at = (ptrdiff_t)(out * stride + t * dilation) - (ptrdiff_t)padding;
    if (at >= 0 && at < (ptrdiff_t)input) mask |= UINT32_C(1) << t;
  }
  return mask;
}

static size_t popcount32(uint32_t x) {
  size_t n = 0;
  for (; x != 0; x &= x - 1) n++;
  return n;
}

// The share of the (pixel, tap) pairs of the tile of `rows` output pixels from m0 that read the image.
static double tile_real_share(const whittle_conv2d_shape* s, size_t output_height, size_t output_width,
                              size_t m0, size_t rows) {
  size_t real = 0;
  for (size_t m = m0; m < m0 + rows; m++) {
    const size_t x = m % output_width, y = m / output_width % output_height;
    real += popcount32(axis_taps(y, s->input_height, s->stride_height, s->dilation_height, s->padding_top,
                                 s->kernel_height)) *
            popcount32(axis_taps(x, s->input_width, s->stride_width, s->dilation_width, s->padding_left,
                                 s->kernel_width));
  }
  return (double)real / (double)(rows * s->kernel_height * s->kernel_width);
}

// Whether a layer runs the indirect GEMM over real taps only: one group, each tap a whole number of k_align
// groups, and a tile (mr consecutive output pixels, as the tasks take them) of which at most
// QS8_RUNS_REAL_SHARE of the (pixel, tap) pairs read the image; such tiles run the kernel over real taps, the
// others the plain kernel (runs_tiles_create). Measured on ResNet-18's 3x3 layers (CPU time, weights
// repeated), whole layers over real taps: 4 x 4 (100 of 144 pairs real) -18 %, 8 x 8 and 8 x 8 -> 4 x 4
// stride 2 (0.84) -2 to -4 %, 2 x 2 (16 of 36) -3 % (its 2.4 MB of weights stream from L3 at the same rate
// either way); at 16 x 16 (0.92) a tile of 8 pixels with one edge pixel splits into runs of 7 and 8 rows
// whose accumulator traffic costs more than they save (+15 %), hence the choice per tile.
#ifndef QS8_RUNS_REAL_SHARE
#define QS8_RUNS_REAL_SHARE 0.86
#endif
static bool runs_pay(const whittle_conv2d_shape* s, const qs8_igemm_ukernel* igemm, size_t output_height,
                     size_t output_width) {
  if (igemm->fn_runs == NULL || s->groups != 1 || s->input_channels % igemm->k_align != 0 ||
      s->kernel_height > QS8_RUNS_MAX_SIDE || s->kernel_width > QS8_RUNS_MAX_SIDE ||
      s->kernel_height * s->kernel_width > QS8_RUNS_MAX_TAPS) {
    return false;
  }
  const size_t pixels = s->batch * output_height * output_width;
  for (size_t m0 = 0; m0 < pixels; m0 += igemm->mr) {
    const size_t rows = pixels - m0 < igemm->mr ? pixels - m0 : igemm->mr;
    if (tile_real_share(s, output_height, output_width, m0, rows) <= QS8_RUNS_REAL_SHARE) return true;
  }
  return false;
}

// The classes of an axis: class_of[i] indexes the distinct masks of mask[i] (i < n), kept in `distinct`.
static size_t axis_classes(const uint32_t* mask, size_t n, uint32_t* class_of, uint32_t* distinct) {
  size_t count = 0;
  for (size_t i = 0; i < n; i++) {
    size_t c = 0;
    while (c < count && distinct[c] != mask[i]) c++;
    if (c == count) distinct[count++] = mask[i];
    class_of[i] = (uint32_t)c;
  }
  return count;
}

// The runs of the tile of `rows` output pixels from m0 (op->row_taps, column_taps and tap_k set): per tap,
// the tile's rows whose pixel reads the image there form a run (consecutive taps of one kernel row read by
// the same rows: one run). Returns their count (<= QS8_RUNS_MAX_TAPS).
static size_t tile_runs_of(const qs8_conv2d_op* op, size_t m0, size_t rows, qs8_igemm_run* runs) {
  const whittle_conv2d_shape* s = &op->shape;
  const size_t kw = s->kernel_width, taps = s->kernel_height * kw, cin = s->input_channels;
  uint32_t row_taps[QS8_IGEMM_MAX_MR], column_taps[QS8_IGEMM_MAX_MR], run_rows[QS8_RUNS_MAX_TAPS];
  for (size_t r = 0; r < rows; r++) {
    const size_t x = (m0 + r) % op->output_width, y = (m0 + r) / op->output_width % op->output_height;
    row_taps[r] = op->row_taps[y];
    column_taps[r] = op->column_taps[x];
  }
  size_t count = 0;
  for (size_t t = 0; t < taps; t++) {
    uint32_t mask = 0;
    for (size_t r = 0; r < rows; r++) mask |= (row_taps[r] >> (t / kw) & column_taps[r] >> (t % kw) & 1) << r;
    if (mask == 0) continue;
    if (count > 0 && run_rows[count - 1] == mask && runs[count - 1].k_end == op->tap_k[t] && t % kw != 0 &&
        !op->per_tap) {
      runs[count - 1].k_end += (uint32_t)cin;
      continue;
    }
    qs8_igemm_run* run = &runs[count];
    run_rows[count++] = mask;
    run->k_begin = op->tap_k[t];
    run->k_end = op->tap_k[t] + (uint32_t)cin;
    run->rows = 0;
    for (size_t r = 0; r < rows; r++) {
      if ((mask >> r & 1) != 0) run->row[run->rows++] = (uint8_t)r;
    }
  }
  return count;
}

// Per output pixel its place and correction, per tile of mr pixels its runs (the op's row and column taps,
// classes and corrections set).
static bool runs_tiles_create(qs8_conv2d_op* op) {
  const whittle_conv2d_shape* s = &op->shape;
  const size_t mr = op->igemm->mr, pixels = s->batch * op->output_height * op->output_width;
  const size_t tiles = (pixels + mr - 1) / mr;
  op->pixel_origin = malloc(pixels * sizeof(size_t));
  op->pixel_correction = malloc(pixels * sizeof(const int32_t*));
  op->tile_runs = malloc(tiles * QS8_RUNS_MAX_TAPS * sizeof(qs8_igemm_run));
  op->tile_run_count = malloc(tiles);
  if (op->pixel_origin == NULL || op->pixel_correction == NULL || op->tile_runs == NULL ||
      op->tile_run_count == NULL) {
    return false;
  }
  whittle_conv2d_origin_walk walk =
      whittle_conv2d_origin_walk_start(s, &op->padded_plan, op->output_height, op->output_width, 0);
  for (size_t m = 0; m < pixels; m++) {
    const size_t x = m % op->output_width, y = m / op->output_width % op->output_height;
    op->pixel_origin[m] = whittle_conv2d_origin_walk_next(&walk);
    op->pixel_correction[m] =
        op->corrections +
        (op->row_class[y] * op->column_classes + op->column_class[x]) * op->corrections_stride;
  }
  for (size_t t = 0; t < tiles; t++) {
    const size_t m0 = t * mr, rows = pixels - m0 < mr ? pixels - m0 : mr;
    const bool real =
        tile_real_share(s, op->output_height, op->output_width, m0, rows) <= QS8_RUNS_REAL_SHARE;
    op->tile_run_count[t] =
        real ? (uint8_t)tile_runs_of(op, m0, rows, op->tile_runs + t * QS8_RUNS_MAX_TAPS) : 0;
  }
  return true;
}

// Sets up the runs of an indirect GEMM layer (op->kc, k_align and nr chosen): the taps' places, the masks
// and classes of the output rows and columns, and per class the correction zero_point * (sum of the weights
// of the taps its pixels skip), which the packed bias (bias - zero_point * sum of all weights) lacks.
static bool runs_create(qs8_conv2d_op* op, const int8_t* weights, const igemm_segments* seg, size_t nr,
                        int32_t zero_point) {
  const whittle_conv2d_shape* s = &op->shape;
  const size_t kh = s->kernel_height, kw = s->kernel_width, cin = s->input_channels;
  const size_t oh = op->output_height, ow = op->output_width, cout = s->output_channels;
  op->per_tap = seg->per_tap;
  op->tap_k = malloc(kh * kw * sizeof(uint32_t));
  op->row_taps = malloc(oh * sizeof(uint32_t));
  op->column_taps = malloc(ow * sizeof(uint32_t));
  op->row_class = malloc(oh * sizeof(uint32_t));
  op->column_class = malloc(ow * sizeof(uint32_t));
  uint32_t* row_masks = malloc(oh * sizeof(uint32_t));
  uint32_t* column_masks = malloc(ow * sizeof(uint32_t));
  int32_t* tap_sums = malloc(kh * kw * cout * sizeof(int32_t));
  bool ok = op->tap_k != NULL && op->row_taps != NULL && op->column_taps != NULL && op->row_class != NULL &&
            op->column_class != NULL && row_masks != NULL && column_masks != NULL && tap_sums != NULL;
  if (ok) {
    for (size_t t = 0; t < kh * kw; t++) {
      const size_t ky = t / kw, kx = t % kw;
      op->tap_k[t] = (uint32_t)(seg->per_tap ? t * seg->padded_length : ky * seg->padded_length + kx * cin);
    }
    for (size_t y = 0; y < oh; y++) {
      op->row_taps[y] =
          axis_taps(y, s->input_height, s->stride_height, s->dilation_height, s->padding_top, kh);
    }
    for (size_t x = 0; x < ow; x++) {
      op->column_taps[x] =
          axis_taps(x, s->input_width, s->stride_width, s->dilation_width, s->padding_left, kw);
    }
    const size_t row_classes = axis_classes(op->row_taps, oh, op->row_class, row_masks);
    op->column_classes = axis_classes(op->column_taps, ow, op->column_class, column_masks);
    op->corrections_stride = round_up(cout, nr);
    op->corrections = calloc(row_classes * op->column_classes * op->corrections_stride, sizeof(int32_t));
    ok = op->corrections != NULL;
    for (size_t o = 0; o < cout && ok; o++) {
      for (size_t t = 0; t < kh * kw; t++) {
        int32_t sum = 0;
        for (size_t i = 0; i < cin; i++) sum += weights[(o * kh * kw + t) * cin + i];
        tap_sums[t * cout + o] = sum;
      }
    }
    for (size_t rc = 0; rc < row_classes && ok; rc++) {
      for (size_t cc = 0; cc < op->column_classes; cc++) {
        int32_t* correction = op->corrections + (rc * op->column_classes + cc) * op->corrections_stride;
        for (size_t t = 0; t < kh * kw; t++) {
          if ((row_masks[rc] >> (t / kw) & column_masks[cc] >> (t % kw) & 1) != 0) continue;
          for (size_t o = 0; o < cout; o++) {  // wrapping, as the kernels add
            correction[o] =
                (int32_t)((uint32_t)correction[o] + (uint32_t)zero_point * (uint32_t)tap_sums[t * cout + o]);
          }
        }
      }
    }
  }
  free(row_masks);
  free(column_masks);
  free(tap_sums);
  return ok && runs_tiles_create(op);
}

// The operator for checked arguments; output_offset is added to the output zero point of the kernels'
// output stage (any int32 there: it clamps to [min - zp, max - zp] before adding zp), which the fixed-point
// layers use to shift their rounding (qs8_conv2d_create_fixed_point).
static qs8_conv2d_op* create(const whittle_conv2d_shape* shape, const int8_t* weights, const int32_t* bias,
                             const int32_t* multipliers, const int32_t* shifts,
                             const qs8_activation_quantization* q, int32_t output_offset, whittle_isa level);

qs8_conv2d_op* qs8_conv2d_create(const whittle_conv2d_shape* shape, const int8_t* weights,
                                 const int32_t* bias, const int32_t* multipliers, const int32_t* shifts,
                                 const qs8_activation_quantization* q, whittle_isa level) {
  if (whittle_conv2d_shape_problem(shape) != NULL || qs8_activation_quantization_problem(q) != NULL)
    return NULL;
  for (size_t o = 0; o < shape->output_channels; o++) {
    if (shifts[o] < QS8_REQUANT_MIN_SHIFT || shifts[o] > QS8_REQUANT_MAX_SHIFT) return NULL;
  }
  return create(shape, weights, bias, multipliers, shifts, q, 0, level);
}

qs8_conv2d_op* qs8_conv2d_create_fixed_point(const whittle_conv2d_shape* shape, const int8_t* weights,
                                             const int32_t* bias, int32_t shift, int32_t output_min,
                                             int32_t output_max, whittle_isa level, bool* unsupported) {
  *unsupported = true;
  if (whittle_conv2d_shape_problem(shape) != NULL || output_min < INT8_MIN || output_max > INT8_MAX ||
      output_min > output_max || shift < -QS8_REQUANT_MAX_SHIFT || shift > -QS8_REQUANT_MIN_SHIFT) {
    return NULL;
  }
  // bound >= |sum x * w + bias| of every output channel, x in [-128, 127].
  const size_t k = shape->kernel_height * shape->kernel_width * (shape->input_channels / shape->groups);
  int64_t bound = 0;
  for (size_t o = 0; o < shape->output_channels; o++) {
    int64_t b = bias != NULL ? llabs((long long)bias[o]) : 0;
    for (size_t i = 0; i < k; i++) b += 128 * (int64_t)abs(weights[o * k + i]);
    bound = b > bound ? b : bound;
  }
  // A positive shift: rounding half up needs a value that is never negative, so every accumulator gets
  // offset * 2^shift added through the bias (offset * 2^shift > bound) and the output zero point takes the
  // offset back. A shift <= 0 shifts left, exactly. Either way the requantized value must stay below 2^30
  // in magnitude, where multiplier INT32_MAX is exactly x 1.
  const int64_t limit = INT64_C(1) << 30;
  const int64_t offset = shift > 0 ? (bound >> shift) + 1 : 0;
  if (shift > 0 ? bound + (offset << shift) >= limit : bound >= limit >> -shift) return NULL;
  *unsupported = false;
  const size_t channels = shape->output_channels;
  int32_t* biases = malloc(channels * sizeof(int32_t));
  int32_t* multipliers = malloc(channels * sizeof(int32_t));
  int32_t* shifts = malloc(channels * sizeof(int32_t));
  qs8_conv2d_op* op = NULL;
  if (biases != NULL && multipliers != NULL && shifts != NULL) {
    for (size_t o = 0; o < channels; o++) {
      biases[o] = (int32_t)((bias != NULL ? bias[o] : 0) + (offset << (shift > 0 ? shift : 0)));
      multipliers[o] = INT32_MAX;  // exactly x 1 on |values| < 2^30
      shifts[o] = -shift;
    }
    const qs8_activation_quantization q = {false, 0, 0, output_min, output_max};
    op = create(shape, weights, biases, multipliers, shifts, &q, (int32_t)-offset, level);
  }
  free(biases);
  free(multipliers);
  free(shifts);
  return op;
}

// A grouped (not depthwise) conv whose groups are narrower than the GEMM kernel's tile runs faster as one
// dense conv whose weights are zero outside each group's block (the ShuffleNet channel split: 24 groups of
// 2 inputs and 1 output): per group, a kernel call computes round_up(cout_g, NR) columns over
// round_up(k_g, k_align) bytes; dense, one call covers every group. Chosen when the dense GEMM computes no
// more multiply-adds than the grouped one. Exact: the zero weights add nothing to an accumulator, and the
// folded bias (bias - zero_point * sum(w)) sums the same weights.
static bool dense_is_cheaper(const whittle_conv2d_shape* s, whittle_isa level) {
  const size_t cin_g = s->input_channels / s->groups, cout_g = s->output_channels / s->groups;
  if (s->groups == 1 || (cin_g == 1 && cout_g == 1)) return false;
  const qs8_gemm_ukernel* gemm = qs8_gemm_ukernel_select(level);
  const size_t taps = s->kernel_height * s->kernel_width;
  const double grouped =
      (double)s->groups * (double)round_up(taps * cin_g, gemm->k_align) * (double)round_up(cout_g, gemm->nr);
  const double dense = (double)round_up(taps * s->input_channels, gemm->k_align) *
                       (double)round_up(s->output_channels, gemm->nr);
  return dense <= grouped;
}

static qs8_conv2d_op* create_dense(const whittle_conv2d_shape* shape, const int8_t* weights,
                                   const int32_t* bias, const int32_t* multipliers, const int32_t* shifts,
                                   const qs8_activation_quantization* q, int32_t output_offset,
                                   whittle_isa level) {
  whittle_conv2d_shape dense_shape = *shape;
  dense_shape.groups = 1;
  const size_t cin = shape->input_channels, cin_g = cin / shape->groups;
  const size_t cout_g = shape->output_channels / shape->groups;
  const size_t taps = shape->kernel_height * shape->kernel_width;
  int8_t* dense = calloc(shape->output_channels * taps * cin, 1);
  if (dense == NULL) return NULL;
  // weights [cout][taps][cin_g] -> dense [cout][taps][cin], group g's inputs at channels g * cin_g.
  for (size_t o = 0; o < shape->output_channels; o++) {
    const size_t first = o / cout_g * cin_g;
    for (size_t t = 0; t < taps; t++) {
      memcpy(dense + (o * taps + t) * cin + first, weights + (o * taps + t) * cin_g, cin_g);
    }
  }
  qs8_conv2d_op* op = create(&dense_shape, dense, bias, multipliers, shifts, q, output_offset, level);
  free(dense);
  return op;
}

static qs8_conv2d_op* create(const whittle_conv2d_shape* shape, const int8_t* weights, const int32_t* bias,
                             const int32_t* multipliers, const int32_t* shifts,
                             const qs8_activation_quantization* q, int32_t output_offset, whittle_isa level) {
  if (dense_is_cheaper(shape, level))
    return create_dense(shape, weights, bias, multipliers, shifts, q, output_offset, level);
  qs8_conv2d_op* op = calloc(1, sizeof(*op));
  if (op == NULL) return NULL;
  op->shape = *shape;
  op->output_height = whittle_conv2d_output_height(shape);
  op->output_width = whittle_conv2d_output_width(shape);
  op->cin_g = shape->input_channels / shape->groups;
  op->cout_g = shape->output_channels / shape->groups;
  const size_t taps = shape->kernel_height * shape->kernel_width;
  op->k = taps * op->cin_g;
  op->depthwise = shape->groups > 1 && op->cin_g == 1 && op->cout_g == 1;
  op->simple = qs8_simple_ukernels_select(level);
  op->vadd_tables = qs8_vadd_tables_for(level);
  const int32_t offset = q->unsigned_activations ? 128 : 0;
  op->params.output_zero_point = q->output_zero_point - offset + output_offset;
  op->params.output_min = q->output_min - offset;
  op->params.output_max = q->output_max - offset;
  op->params.input_flip = q->unsigned_activations ? 0x80 : 0;
  op->params.output_flip = q->unsigned_activations ? 0x80 : 0;
  const int32_t zero_point_s8 = q->input_zero_point - offset;

  if (op->depthwise) {
    op->dwconv = qs8_dwconv_ukernel_select(level);
    const size_t cb = op->dwconv->cb, channels = shape->output_channels;
    const size_t block_bytes = cb * 4 * sizeof(int32_t) + taps * cb;
    const size_t blocks = round_up(channels, cb) / cb;
    op->packed = calloc(blocks, block_bytes);
    op->dw3x3 = whittle_conv2d_is_dw3x3(shape);
    // The 3x3 row kernel reads a whole row of zero points for rows outside the image.
    const size_t zero_bytes = op->dw3x3 ? shape->input_width * channels : channels;
    op->zero = malloc(zero_bytes);
    if (op->packed == NULL || op->zero == NULL) goto fail;
    memset(op->zero, (int)(uint8_t)q->input_zero_point, zero_bytes);
    for (size_t b = 0; b < blocks; b++) {
      unsigned char* block = op->packed + b * block_bytes;
      int8_t* w = (int8_t*)(block + cb * 4 * sizeof(int32_t));
      for (size_t c = 0; c < cb; c++) {
        const size_t ch = b * cb + c;
        if (ch >= channels) continue;
        int32_t sum = 0;
        for (size_t t = 0; t < taps; t++) {
          w[t * cb + c] = weights[ch * taps + t];
          sum += weights[ch * taps + t];
        }
        write_header(block, cb, c, bias != NULL ? bias[ch] : 0, sum, zero_point_s8, multipliers[ch],
                     shifts[ch]);
      }
    }
    op->scratch_bytes_per_thread = round_up(taps * sizeof(const int8_t*), 64);
  } else if (is_gemv(shape, level)) {
    op->gemv = qs8_gemv_ukernel_select(level);
    const size_t channels = shape->output_channels;
    op->kc = round_up(op->k, op->gemv->kr);
    const int32_t zero_point_kernel = zero_point_s8 + (op->gemv->a_unsigned ? 128 : 0);
    op->a_xor = (q->unsigned_activations != op->gemv->a_unsigned) ? 0x80 : 0;
    const size_t block_bytes = 16 * 4 * sizeof(int32_t) + 16 * op->kc;
    op->packed = packed_alloc(round_up(channels, 16) / 16, block_bytes);
    if (op->packed == NULL) goto fail;
    for (size_t o = 0; o < channels; o++) {
      unsigned char* block = op->packed + o / 16 * block_bytes;
      int8_t* w = (int8_t*)(block + 16 * 4 * sizeof(int32_t)) + o % 16 * op->kc;
      int32_t sum = 0;
      for (size_t kk = 0; kk < op->k; kk++) {
        w[kk] = weights[o * op->k + kk];
        sum += w[kk];
      }
      write_header(block, 16, o % 16, bias != NULL ? bias[o] : 0, sum, zero_point_kernel, multipliers[o],
                   shifts[o]);
    }
    // The GEMV kernels read the input in place: input_flip maps it to the kernel's domain.
    op->params.input_flip = op->a_xor;
  } else {
    // kxk convs read their taps in place when the padded images and offsets fit their limits.
    const bool one_by_one = shape->kernel_height == 1 && shape->kernel_width == 1;
    if (!one_by_one && whittle_conv2d_padded_input_plan(shape, &op->padded_plan)) {
      const qs8_igemm_ukernel* igemm = qs8_igemm_ukernel_select(level);
      const size_t segment = segments_of(shape, igemm->k_align).length;
      if (igemm->max_segment == 0 || segment <= igemm->max_segment) op->igemm = igemm;
    }
    const bool runs = op->igemm != NULL && runs_pay(shape, op->igemm, op->output_height, op->output_width);
    if (op->igemm == NULL) op->gemm = qs8_gemm_ukernel_select(level);
    const size_t nr = op->igemm != NULL ? op->igemm->nr : op->gemm->nr;
    const size_t kr = op->igemm != NULL ? op->igemm->kr : op->gemm->kr;
    const size_t k_align = op->igemm != NULL ? op->igemm->k_align : op->gemm->k_align;
    const bool a_unsigned = op->igemm != NULL ? op->igemm->a_unsigned : op->gemm->a_unsigned;
    const igemm_segments seg = segments_of(shape, k_align);
    op->kc = op->igemm != NULL ? seg.count * seg.padded_length : round_up(op->k, k_align);
    const int32_t zero_point_kernel = zero_point_s8 + (a_unsigned ? 128 : 0);
    op->a_xor = (q->unsigned_activations != a_unsigned) ? 0x80 : 0;
    op->pad_byte = (uint8_t)zero_point_kernel;
    const size_t block_bytes = nr * 4 * sizeof(int32_t) + op->kc * nr;
    const size_t blocks = round_up(op->cout_g, nr) / nr;
    op->packed_group_bytes = blocks * block_bytes;
    op->packed = packed_alloc(shape->groups, op->packed_group_bytes);
    if (op->packed == NULL) goto fail;
    for (size_t g = 0; g < shape->groups; g++) {
      for (size_t b = 0; b < blocks; b++) {
        unsigned char* block = op->packed + g * op->packed_group_bytes + b * block_bytes;
        int8_t* w = (int8_t*)(block + nr * 4 * sizeof(int32_t));
        for (size_t n = 0; n < nr; n++) {
          const size_t o_local = b * nr + n;
          if (o_local >= op->cout_g) continue;
          const size_t o = g * op->cout_g + o_local;
          int32_t sum = 0;
          for (size_t kk = 0; kk < op->k; kk++) {
            const int8_t value = weights[o * op->k + kk];
            const size_t at = op->igemm != NULL ? segmented_k(shape, &seg, kk) : kk;
            w[(at / kr) * nr * kr + n * kr + at % kr] = value;
            sum += value;
          }
          write_header(block, nr, n, bias != NULL ? bias[o] : 0, sum, zero_point_kernel, multipliers[o],
                       shifts[o]);
        }
      }
    }
    if (op->igemm != NULL) {
      op->k_offsets = malloc(op->kc / k_align * sizeof(int32_t));
      op->padded = malloc(op->padded_plan.elements + QS8_IGEMM_SLACK);
      if (op->k_offsets == NULL || op->padded == NULL) goto fail;
      // The border (and the slack) hold the zero point once and for all; runs write only the images.
      memset(op->padded, op->pad_byte, op->padded_plan.elements + QS8_IGEMM_SLACK);
      for (size_t group = 0; group < op->kc / k_align; group++) {
        const size_t at = group * k_align, segment = at / seg.padded_length;
        const size_t ky = seg.per_tap ? segment / shape->kernel_width : segment;
        const size_t kx = seg.per_tap ? segment % shape->kernel_width : 0;
        op->k_offsets[group] = whittle_conv2d_padded_tap_offset(shape, &op->padded_plan, ky, kx) +
                               (int32_t)(at % seg.padded_length);
      }
      if (runs && !runs_create(op, weights, &seg, nr, zero_point_kernel)) goto fail;
      return op;
    }
    op->a_contiguous = shape->groups == 1 && one_by_one && shape->stride_height == 1 &&
                       shape->stride_width == 1 && shape->padding_top == 0 && shape->padding_left == 0 &&
                       shape->padding_bottom == 0 && shape->padding_right == 0 && op->kc == op->k;
    // Per thread: MR rows of im2col, then the tap pointers of one row.
    op->a_tile_bytes = round_up(op->gemm->mr * op->kc, 64);
    op->scratch_bytes_per_thread = op->a_tile_bytes + round_up(taps * sizeof(const int8_t*), 64);
  }
  return op;
fail:
  qs8_conv2d_destroy(op);
  return NULL;
}

qs8_conv2d_op* qs8_fully_connected_create(size_t batch, size_t input_channels, size_t output_channels,
                                          const int8_t* weights, const int32_t* bias,
                                          const int32_t* multipliers, const int32_t* shifts,
                                          const qs8_activation_quantization* q, whittle_isa level) {
  const whittle_conv2d_shape shape = whittle_fc_shape(batch, input_channels, output_channels);
  return qs8_conv2d_create(&shape, weights, bias, multipliers, shifts, q, level);
}

void qs8_conv2d_destroy(qs8_conv2d_op* op) {
  if (op == NULL) return;
  free(op->packed);
  free(op->zero);
  free(op->padded);
  free(op->k_offsets);
  free(op->tap_k);
  free(op->row_taps);
  free(op->column_taps);
  free(op->row_class);
  free(op->column_class);
  free(op->corrections);
  free(op->pixel_origin);
  free(op->pixel_correction);
  free(op->tile_runs);
  free(op->tile_run_count);
  free(op->scratch);
  free(op->add_tables);
  free(op);
}

const char* qs8_conv2d_kernel_name(const qs8_conv2d_op* op) {
  if (op->gemv != NULL) return op->gemv->name;
  if (op->depthwise) return op->dw3x3 ? op->dwconv->name_3x3 : op->dwconv->name;
  if (op->corrections != NULL) return op->igemm->name_runs;
  if (op->igemm != NULL) {
    // A layer of at most mr_short output pixels runs only the short variant (igemm_task).
    const size_t rows = op->shape.batch * op->output_height * op->output_width;
    return op->igemm->fn_short != NULL && rows <= op->igemm->mr_short ? op->igemm->name_short
                                                                      : op->igemm->name;
  }
  // A layer of at most 2 output rows runs only the 1-row variant, one of at most mr_short only the short
  // variant (gemm_tile).
  const size_t rows = op->shape.batch * op->output_height * op->output_width;
  if (rows <= 2 && op->gemm->fn_1 != NULL) return op->gemm->name_1;
  return op->gemm->fn_short != NULL && rows <= op->gemm->mr_short ? op->gemm->name_short : op->gemm->name;
}

WHITTLE_DEFINE_CONV2D_ROW_TAPS(qs8_conv2d_row_taps, int8_t)

// The residual add of output elements [first, first + n), in place: a tile the kernel has just written.
WHITTLE_HOT static void add_tile(const qs8_conv2d_op* op, size_t first, size_t n) {
  if (op->addend == NULL) return;
  int8_t* c = op->output + first;
  if (op->tables != NULL) {
    op->vadd_tables->fn(n, c, op->addend + first, c, op->add, op->tables);
  } else {
    op->simple->vadd(n, c, op->addend + first, c, op->add);
  }
}

// dst = src ^ flip, byte-wise. A separate function with restrict pointers and a by-value flip so the
// compiler vectorizes it (in the caller, row could alias op->a_xor).
WHITTLE_HOT static void flip_copy(int8_t* restrict dst, const uint8_t* restrict src, size_t n, uint8_t flip) {
  for (size_t i = 0; i < n; i++) dst[i] = (int8_t)(uint8_t)(src[i] ^ flip);
}

// Runs one GEMM tile of `rows` output pixels from m0 whose A rows (kc bytes apart) are at `a`.
WHITTLE_HOT static void gemm_tile(const qs8_conv2d_op* op, size_t m0, size_t rows, const int8_t* a,
                                  size_t g) {
  const whittle_conv2d_shape* s = &op->shape;
  const unsigned char* packed = op->packed + g * op->packed_group_bytes;
  int8_t* c = op->output + m0 * s->output_channels + g * op->cout_g;
  if (rows <= 2 && op->gemm->fn_1 != NULL) {
    for (size_t r = 0; r < rows; r++) {
      op->gemm->fn_1(1, op->cout_g, op->kc, a + r * op->kc, op->kc, packed, c + r * s->output_channels,
                     s->output_channels, &op->params);
    }
  } else if (op->gemm->fn_short != NULL && rows <= op->gemm->mr_short) {
    op->gemm->fn_short(rows, op->cout_g, op->kc, a, op->kc, packed, c, s->output_channels, &op->params);
  } else {
    op->gemm->fn(rows, op->cout_g, op->kc, a, op->kc, packed, c, s->output_channels, &op->params);
  }
}

WHITTLE_HOT static void gemm_task(void* context, size_t thread, size_t begin, size_t end) {
  const qs8_conv2d_op* op = context;
  const whittle_conv2d_shape* s = &op->shape;
  const size_t mr = op->gemm->mr;
  int8_t* a_tile = (int8_t*)(op->scratch + thread * op->scratch_bytes_per_thread);
  const int8_t** taps = (const int8_t**)((unsigned char*)a_tile + op->a_tile_bytes);
  const size_t tap_count = s->kernel_height * s->kernel_width;
  if (op->a_contiguous) {
    for (size_t m0 = begin; m0 < end; m0 += mr) {
      const size_t rows = end - m0 < mr ? end - m0 : mr;
      const int8_t* a = op->input + m0 * op->kc;
      if (op->a_xor != 0) {
        flip_copy(a_tile, (const uint8_t*)a, rows * op->kc, op->a_xor);
        a = a_tile;
      }
      gemm_tile(op, m0, rows, a, 0);
      add_tile(op, m0 * s->output_channels, rows * s->output_channels);
    }
    return;
  }
  for (size_t m0 = begin; m0 < end; m0 += mr) {
    const size_t rows = end - m0 < mr ? end - m0 : mr;
    for (size_t g = 0; g < s->groups; g++) {
      for (size_t r = 0; r < rows; r++) {
        int8_t* row = a_tile + r * op->kc;
        qs8_conv2d_row_taps(&op->shape, op->output_height, op->output_width, op->input, m0 + r, NULL, taps);
        for (size_t t = 0; t < tap_count; t++) {
          if (taps[t] == NULL) {
            memset(row, op->pad_byte, op->cin_g);
          } else if (op->a_xor == 0) {
            memcpy(row, taps[t] + g * op->cin_g, op->cin_g);
          } else {
            flip_copy(row, (const uint8_t*)taps[t] + g * op->cin_g, op->cin_g, op->a_xor);
          }
          row += op->cin_g;
        }
        memset(row, 0, op->kc - op->k);
      }
      gemm_tile(op, m0, rows, a_tile, g);
    }
    add_tile(op, m0 * s->output_channels, rows * s->output_channels);
  }
}

// The IGEMM kernel of a tile of `rows` pixels: a short tile (the last rows, or a layer of few pixels) on the
// kernel of fewer rows when there is one.
static qs8_igemm_ukernel_fn igemm_fn(const qs8_conv2d_op* op, size_t rows) {
  return op->igemm->fn_short != NULL && rows <= op->igemm->mr_short ? op->igemm->fn_short : op->igemm->fn;
}

// Tiles of up to MR consecutive output pixels on the kernel over real taps only, with the runs, places and
// corrections runs_create set up (tile_runs_of for a tile that does not start at a multiple of MR).
WHITTLE_HOT static void igemm_runs_task(void* context, size_t thread, size_t begin, size_t end) {
  (void)thread;
  const qs8_conv2d_op* op = context;
  const size_t mr = op->igemm->mr, channels = op->shape.output_channels;
  const size_t pixels = op->shape.batch * op->output_height * op->output_width;
  const int8_t* a[QS8_IGEMM_MAX_MR];
  qs8_igemm_run own[QS8_RUNS_MAX_TAPS];
  for (size_t m0 = begin; m0 < end; m0 += mr) {
    const size_t rows = end - m0 < mr ? end - m0 : mr;
    for (size_t r = 0; r < rows; r++) a[r] = op->padded + op->pixel_origin[m0 + r];
    const qs8_igemm_run* runs = own;
    size_t count;
    if (m0 % mr == 0 && rows == (pixels - m0 < mr ? pixels - m0 : mr)) {
      runs = op->tile_runs + m0 / mr * QS8_RUNS_MAX_TAPS;
      count = op->tile_run_count[m0 / mr];
    } else {
      count = tile_runs_of(op, m0, rows, own);
    }
    if (count == 0) {
      igemm_fn(op, rows)(rows, channels, op->kc, a, op->k_offsets, op->packed, op->output + m0 * channels,
                         channels, &op->params);
      add_tile(op, m0 * channels, rows * channels);
      continue;
    }
    op->igemm->fn_runs(rows, channels, op->kc, a, op->k_offsets, runs, count, op->pixel_correction + m0,
                       op->packed, op->output + m0 * channels, channels, &op->params);
    add_tile(op, m0 * channels, rows * channels);
  }
}

// Tiles of up to MR consecutive output pixels (a tile may cross output rows and images); the kernel gets the
// place in the padded images of each pixel's first tap.
WHITTLE_HOT static void igemm_task(void* context, size_t thread, size_t begin, size_t end) {
  (void)thread;
  const qs8_conv2d_op* op = context;
  const whittle_conv2d_shape* s = &op->shape;
  const size_t mr = op->igemm->mr, channels = s->output_channels;
  const int8_t* origin[QS8_IGEMM_MAX_MR];
  const int8_t* a[QS8_IGEMM_MAX_MR];
  whittle_conv2d_origin_walk walk =
      whittle_conv2d_origin_walk_start(s, &op->padded_plan, op->output_height, op->output_width, begin);
  for (size_t m0 = begin; m0 < end; m0 += mr) {
    const size_t rows = end - m0 < mr ? end - m0 : mr;
    const qs8_igemm_ukernel_fn fn = igemm_fn(op, rows);
    if (s->groups == 1) {  // one kernel call over every output channel, the pointers read in place
      for (size_t r = 0; r < rows; r++) a[r] = op->padded + whittle_conv2d_origin_walk_next(&walk);
      fn(rows, channels, op->kc, a, op->k_offsets, op->packed, op->output + m0 * channels, channels,
         &op->params);
      add_tile(op, m0 * channels, rows * channels);
      continue;
    }
    for (size_t r = 0; r < rows; r++) origin[r] = op->padded + whittle_conv2d_origin_walk_next(&walk);
    // Group g reads input channels [g * cin_g, (g + 1) * cin_g) of each tap and writes its cout_g columns.
    for (size_t g = 0; g < s->groups; g++) {
      for (size_t r = 0; r < rows; r++) a[r] = origin[r] + g * op->cin_g;
      fn(rows, op->cout_g, op->kc, a, op->k_offsets, op->packed + g * op->packed_group_bytes,
         op->output + m0 * channels + g * op->cout_g, channels, &op->params);
    }
    add_tile(op, m0 * channels, rows * channels);
  }
}

WHITTLE_HOT static void dwconv_task(void* context, size_t thread, size_t begin, size_t end) {
  const qs8_conv2d_op* op = context;
  const whittle_conv2d_shape* s = &op->shape;
  const int8_t** indirection = (const int8_t**)(op->scratch + thread * op->scratch_bytes_per_thread);
  for (size_t m = begin; m < end; m++) {
    qs8_conv2d_row_taps(&op->shape, op->output_height, op->output_width, op->input, m, op->zero, indirection);
    op->dwconv->fn(s->output_channels, s->kernel_height * s->kernel_width, indirection, op->packed,
                   op->output + m * s->output_channels, &op->params);
    add_tile(op, m * s->output_channels, s->output_channels);
  }
}

// Blocks [begin, end) of 16 output channels of a one-row layer.
WHITTLE_HOT static void gemv_task(void* context, size_t thread, size_t begin, size_t end) {
  (void)thread;
  const qs8_conv2d_op* op = context;
  const size_t channels = op->shape.output_channels;
  const size_t block_bytes = 16 * 4 * sizeof(int32_t) + 16 * op->kc;
  const size_t n0 = begin * 16, n1 = end * 16 < channels ? end * 16 : channels;
  op->gemv->fn(n1 - n0, op->k, op->input, op->packed + begin * block_bytes, op->output + n0, &op->params);
  add_tile(op, n0, n1 - n0);
}

// Output rows of a 3x3 depthwise conv one kernel call runs at most (the kernel sets each block of channels up
// once per call).
#define QS8_DW3X3_ROWS_PER_CALL 16

// Output rows [begin, end) of a 3x3 depthwise conv, up to QS8_DW3X3_ROWS_PER_CALL per row kernel call.
WHITTLE_HOT static void dwconv3x3_task(void* context, size_t thread, size_t begin, size_t end) {
  (void)thread;
  const qs8_conv2d_op* op = context;
  const whittle_conv2d_shape* s = &op->shape;
  const size_t row_bytes = s->input_width * s->input_channels;
  const size_t output_row_bytes = op->output_width * s->output_channels;
  for (size_t r0 = begin; r0 < end; r0 += QS8_DW3X3_ROWS_PER_CALL) {
    const size_t count = end - r0 < QS8_DW3X3_ROWS_PER_CALL ? end - r0 : QS8_DW3X3_ROWS_PER_CALL;
    const int8_t* rows[3 * QS8_DW3X3_ROWS_PER_CALL];
    for (size_t k = 0; k < count; k++) {
      const size_t n = (r0 + k) / op->output_height, y = (r0 + k) % op->output_height;
      const int8_t* image = op->input + n * s->input_height * row_bytes;
      for (size_t i = 0; i < 3; i++) {
        const ptrdiff_t iy = (ptrdiff_t)(y * s->stride_height + i) - (ptrdiff_t)s->padding_top;
        rows[3 * k + i] =
            iy >= 0 && iy < (ptrdiff_t)s->input_height ? image + (size_t)iy * row_bytes : op->zero;
      }
    }
    op->dwconv->fn_3x3(s->output_channels, count, op->output_width, rows, s->input_width, s->stride_width,
                       s->padding_left, op->zero, op->packed, op->output + r0 * output_row_bytes,
                       &op->params);
    add_tile(op, r0 * output_row_bytes, count * output_row_bytes);
  }
}

static bool add_params_equal(const qs8_add_params* x, const qs8_add_params* y) {
  return x->unsigned_activations == y->unsigned_activations && x->a_zero_point == y->a_zero_point &&
         x->a_multiplier == y->a_multiplier && x->a_shift == y->a_shift &&
         x->b_zero_point == y->b_zero_point && x->b_multiplier == y->b_multiplier &&
         x->b_shift == y->b_shift && x->output_zero_point == y->output_zero_point &&
         x->output_multiplier == y->output_multiplier && x->output_shift == y->output_shift &&
         x->output_min == y->output_min && x->output_max == y->output_max;
}

// The rescale tables of `add` for the residual add (built when its parameters differ from the last ones),
// or NULL: no tables kernel for the op's ISA, or out of memory (simple->vadd then adds, with the same bits).
static const qs8_add_tables* add_tables_of(qs8_conv2d_op* op, const qs8_add_params* add) {
  if (op->vadd_tables == NULL) return NULL;
  if (op->add_tables == NULL) {
    op->add_tables = aligned_alloc(64, sizeof(qs8_add_tables));
    if (op->add_tables == NULL) return NULL;
  } else if (add_params_equal(&op->add_tables_params, add)) {
    return op->add_tables;
  }
  qs8_add_tables_init(add, op->add_tables);
  op->add_tables_params = *add;
  return op->add_tables;
}

WHITTLE_HOT bool qs8_conv2d_run(qs8_conv2d_op* op, const void* input, void* output,
                                whittle_threadpool* pool) {
  return qs8_conv2d_run_add(op, input, NULL, NULL, output, pool);
}

WHITTLE_HOT bool qs8_conv2d_run_add(qs8_conv2d_op* op, const void* input, const void* addend,
                                    const qs8_add_params* add, void* output, whittle_threadpool* pool) {
  const size_t threads = whittle_threadpool_threads(pool);
  if (threads > op->scratch_threads && op->scratch_bytes_per_thread != 0) {
    unsigned char* scratch = realloc(op->scratch, threads * op->scratch_bytes_per_thread);
    if (scratch == NULL) return false;
    op->scratch = scratch;
    op->scratch_threads = threads;
  }
  op->input = input;
  op->output = output;
  op->addend = addend;
  op->add = add;
  op->tables = addend != NULL ? add_tables_of(op, add) : NULL;
  const size_t rows = op->shape.batch * op->output_height * op->output_width;
  // Rows per unit of the pool's chunks, and no split of a small layer (whittle_threadpool_granularity).
  const whittle_conv2d_shape* s = &op->shape;
  if (op->gemv != NULL) {
    const size_t blocks = round_up(s->output_channels, 16) / 16;
    whittle_threadpool_parallelize(pool, gemv_task, op, blocks,
                                   whittle_threadpool_granularity(pool, 1, 16.0 * (double)op->k, blocks));
  } else if (op->dw3x3) {
    const double work = (double)s->output_channels * 9.0 * (double)op->output_width;
    const size_t output_rows = op->shape.batch * op->output_height;
    whittle_threadpool_parallelize(pool, dwconv3x3_task, op, output_rows,
                                   whittle_threadpool_granularity(pool, 1, work, output_rows));
  } else if (op->depthwise) {
    const double work = (double)s->output_channels * (double)(s->kernel_height * s->kernel_width);
    whittle_threadpool_parallelize(pool, dwconv_task, op, rows,
                                   whittle_threadpool_granularity(pool, 1, work, rows));
  } else if (op->igemm != NULL) {
    whittle_conv2d_padded_copy(s, &op->padded_plan, 1, input, op->a_xor, op->padded);
    const double work = (double)s->output_channels * (double)op->k;
    whittle_threadpool_parallelize(pool, op->corrections != NULL ? igemm_runs_task : igemm_task, op, rows,
                                   whittle_threadpool_granularity(pool, op->igemm->mr, work, rows));
  } else {
    const double work = (double)s->output_channels * (double)op->k;
    whittle_threadpool_parallelize(pool, gemm_task, op, rows,
                                   whittle_threadpool_granularity(pool, op->gemm->mr, work, rows));
  }
  return true;
}
