// fp32 conv2d and fully-connected: weights packed once for the chosen microkernel, then per call either
// GEMM (1x1 stride-1 unpadded convs read the input rows directly, but those of at most 16 output channels
// take the indirect GEMM's narrow kernel; the others build MR rows of im2col at a time in per-thread
// scratch), Winograd F(2x2, 3x3) (dense 3x3 stride-1 convs with enough channels and pixels: 16 GEMMs of the
// transformed tiles, 2.25x fewer multiply-adds), the indirect GEMM (every other conv but depthwise: stems,
// LeNet-sized and larger kxk convs read their taps in place from the padded input; grouped ones, e.g.
// RegNet's 3x3 groups of 16 channels, run the kernel once per group on each tile of pixels, with the weights
// packed per group and the group's first input channel added to each pixel's pointer), or, for depthwise, a
// direct kernel over channels fed by an indirection buffer whose out-of-image taps point at a zero row.
// Threads split the output rows (pixels). A residual add (f32_conv2d_run_add) is applied to each output tile
// right after the kernel wrote it, while it is in cache.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "f32_ops.h"

struct f32_conv2d_op {
  whittle_conv2d_shape shape;
  size_t output_height, output_width, cin_g, cout_g, k;
  bool depthwise;  // groups == input_channels == output_channels
  bool dw3x3;      // depthwise 3x3, dilation 1: one row kernel call per output row (fn_3x3)
  bool direct;     // 1x1, stride 1, no padding: the GEMM reads input rows in place
  // Winograd F(2x2, 3x3): `gemm` runs the 16 products per block of `wino_tiles` output tiles (2x2 pixels);
  // packed holds the 16 transformed weight matrices (packed_group_floats each, bias 0) and bias the bias.
  bool winograd;
  size_t wino_tiles, tiles_h, tiles_w;
  float* bias;
  float min, max;
  const f32_simple_ukernels* simple;  // vadd, for the residual add
  const f32_gemm_ukernel* gemm;
  const f32_igemm_ukernel* igemm;  // set: the indirect GEMM path
  // Set: the indirect GEMM's kernel for at most 16 output channels; k_offsets then holds the offsets of
  // `pairs` pairs of adjacent reduction elements and then of `singles` elements (f32_ops.h).
  const f32_igemm_narrow_ukernel* narrow;
  size_t pairs, singles;
  const f32_dwconv_ukernel* dwconv;
  // Indirect GEMM: the padded input (NULL when the layer has no padding and reads its input in place) and
  // the offset of each reduction element from a pixel's first tap.
  whittle_conv2d_padded_input padded_plan;
  float* padded;
  int32_t* k_offsets;
  float* packed;
  size_t packed_group_floats;
  float* zero;  // input_channels zeros, the row out-of-image taps read
  size_t scratch_threads;
  size_t scratch_bytes_per_thread;
  size_t a_tile_bytes;
  unsigned char* scratch;
  // Arguments of the run in progress, read by the tasks: the addend is NULL without a residual add.
  const float* input;
  float* output;
  const float* addend;
  float add_min, add_max;
};

// Pixels per call of the depthwise kernel (f32_dwconv_ukernel_fn): the kernels run 4 at a time.
#define DWCONV_PIXELS 8

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// The narrow kernel's reduction: in order, each element that is followed in memory by the next one forms a
// pair with it (every element when the input channels are even; runs within a kernel row otherwise); the
// other elements come after the pairs, as singles. Rewrites k_offsets to that order and packs the weights
// for it, each group's 16 * (k + 1) floats packed_group_floats apart (the offsets are the same for every
// group).
static bool pack_narrow(f32_conv2d_op* op, const float* weights, const float* bias) {
  const size_t k = op->k;
  int32_t* offsets = malloc(k * sizeof(int32_t));
  if (offsets == NULL) return false;
  for (size_t g = 0; g < op->shape.groups; g++) {
    const size_t first = g * op->cout_g;  // the group's first output channel
    float* p = op->packed + g * op->packed_group_floats;
    for (size_t n = 0; n < 16; n++) p[n] = n < op->cout_g && bias != NULL ? bias[first + n] : 0.0f;
    p += 16;
    op->pairs = op->singles = 0;
    for (int singles = 0; singles < 2; singles++) {
      for (size_t kk = 0; kk < k; kk++) {
        const bool pair = kk + 1 < k && op->k_offsets[kk + 1] == op->k_offsets[kk] + 1;
        if (pair == !singles) {
          offsets[singles ? op->pairs + op->singles++ : op->pairs++] = op->k_offsets[kk];
          for (size_t e = 0; e < (pair ? 2u : 1u); e++, p += 16)
            for (size_t n = 0; n < 16; n++) p[n] = n < op->cout_g ? weights[(first + n) * k + kk + e] : 0.0f;
        }
        if (pair) kk++;
      }
    }
  }
  memcpy(op->k_offsets, offsets, (op->pairs + op->singles) * sizeof(int32_t));
  free(offsets);
  return true;
}

// Winograd F(2x2, 3x3) takes dense 3x3 convs of stride and dilation 1 whose channels make the 16 GEMMs
// outweigh the transforms (per output pixel: 4 * cin + 4 * cout adds against 9 * cin * cout multiply-adds
// saved down to 4 * cin * cout).
#define WINOGRAD_MIN_CHANNELS 16
// Its 16 weight matrices hold 16/9 the floats of the 3x3 kernel: a layer of few output pixels (ResNet-18's
// 512-channel layers at 2x2, 1 tile: 1.4-1.5x the indirect GEMM's time; 256 channels at 4x4, 4 tiles:
// 1.1-1.2x) spends its time reading them, so it takes at least 16 tiles of 2x2 (7x7 at 512 channels:
// 0.8-0.9x).
#define WINOGRAD_MIN_TILES 16
// Tiles per block: the 16 transformed inputs and products of a block (16 * tiles * (cin + cout) floats) stay
// within about 96 KB, in the core's L2 cache (VGG's 32-channel layers at batch 32 ran fastest there,
// 0.85-0.9x the time with 192 KB); at least 3 * MR tiles, so wide layers (512 channels at 7x7: 16 tiles in
// all) reuse each column block of weights over several GEMM tiles.
#define WINOGRAD_BLOCK_FLOATS (24 * 1024)

static bool winograd_fits(const whittle_conv2d_shape* s) {
  return s->groups == 1 && s->kernel_height == 3 && s->kernel_width == 3 && s->stride_height == 1 &&
         s->stride_width == 1 && s->dilation_height == 1 && s->dilation_width == 1 &&
         s->input_channels >= WINOGRAD_MIN_CHANNELS && s->output_channels >= WINOGRAD_MIN_CHANNELS &&
         s->batch * ((whittle_conv2d_output_height(s) + 1) / 2) *
                 ((whittle_conv2d_output_width(s) + 1) / 2) >=
             WINOGRAD_MIN_TILES;
}

// Packs U = G g G^T of every (output, input) channel pair for the GEMM kernel, one matrix per position of the
// 4x4 tile (k = input channels, bias 0: the output transform adds the bias), and sizes the per-thread
// scratch.
static bool winograd_create(f32_conv2d_op* op, const float* weights, const float* bias, whittle_isa level) {
  const whittle_conv2d_shape* s = &op->shape;
  const size_t cin = s->input_channels, cout = s->output_channels;
  op->winograd = true;
  op->gemm = f32_gemm_ukernel_select(level);
  const size_t nr = op->gemm->nr, mr = op->gemm->mr, blocks = round_up(cout, nr) / nr;
  op->packed_group_floats = blocks * nr * (cin + 1);
  op->packed = calloc(16 * op->packed_group_floats, sizeof(float));
  op->bias = calloc(cout, sizeof(float));
  op->zero = calloc(cin, sizeof(float));
  if (op->packed == NULL || op->bias == NULL || op->zero == NULL) return false;
  if (bias != NULL) memcpy(op->bias, bias, cout * sizeof(float));
  static const double g[4][3] = {{1.0, 0.0, 0.0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0.0, 0.0, 1.0}};
  for (size_t o = 0; o < cout; o++) {
    float* at = op->packed + (o / nr) * nr * (cin + 1) + nr + o % nr;
    for (size_t i = 0; i < cin; i++) {
      const float* w = weights + o * 9 * cin + i;  // tap t at w[t * cin]
      for (size_t a = 0; a < 4; a++) {
        for (size_t b = 0; b < 4; b++) {
          double u = 0.0;
          for (size_t y = 0; y < 3; y++)
            for (size_t x = 0; x < 3; x++) u += g[a][y] * (double)w[(y * 3 + x) * cin] * g[b][x];
          at[(a * 4 + b) * op->packed_group_floats + i * nr] = (float)u;
        }
      }
    }
  }
  op->tiles_h = (op->output_height + 1) / 2;
  op->tiles_w = (op->output_width + 1) / 2;
  size_t tiles = WINOGRAD_BLOCK_FLOATS / (16 * (cin + cout)) / mr * mr;
  op->wino_tiles = tiles < 3 * mr ? 3 * mr : tiles;
  // Per thread: the transformed inputs, the products, then 3 scratch rows for pixels past the image's edge.
  op->scratch_bytes_per_thread = round_up(16 * op->wino_tiles * (cin + cout) * sizeof(float), 64) +
                                 round_up(3 * cout * sizeof(float), 64);
  return true;
}

// Whether a direct 1x1 conv runs on the indirect GEMM (k_offsets 0, 1, ..., reading the rows in place as
// the GEMM does) rather than on the GEMM: only for the narrow kernel of at most 16 output channels, on at
// least 8 pixels (SqueezeNet's squeezes, MNASNet's 8 and 16-channel projections: 0.80-0.94x the GEMM's
// time; a fully-connected layer of batch 1 on it took 1.2x). Otherwise the GEMM's tile is as fast or faster
// per multiply-add (1x1 layers of 225-1024 pixels: the AVX-512 8x32 indirect tile took 1.00-1.10x the 6x32
// GEMM's time; 9 pixels, 8 + 1 rows against 6 + 4: 0.98-1.0x).
static bool direct_takes_igemm(const f32_conv2d_op* op, whittle_isa level) {
  const size_t m = op->shape.batch * op->output_height * op->output_width;
  return op->cout_g <= 16 && f32_igemm_ukernel_select(level)->narrow != NULL && m >= 8;
}

f32_conv2d_op* f32_conv2d_create(const whittle_conv2d_shape* shape, const float* weights, const float* bias,
                                 float min, float max, whittle_isa level) {
  if (whittle_conv2d_shape_problem(shape) != NULL || !(min <= max)) return NULL;
  f32_conv2d_op* op = calloc(1, sizeof(*op));
  if (op == NULL) return NULL;
  op->shape = *shape;
  op->output_height = whittle_conv2d_output_height(shape);
  op->output_width = whittle_conv2d_output_width(shape);
  op->cin_g = shape->input_channels / shape->groups;
  op->cout_g = shape->output_channels / shape->groups;
  op->k = shape->kernel_height * shape->kernel_width * op->cin_g;
  op->min = min;
  op->max = max;
  op->simple = f32_simple_ukernels_select(level);
  op->depthwise = shape->groups > 1 && op->cin_g == 1 && op->cout_g == 1;
  op->direct = shape->kernel_height == 1 && shape->kernel_width == 1 && shape->stride_height == 1 &&
               shape->stride_width == 1 && shape->padding_top == 0 && shape->padding_left == 0 &&
               shape->padding_bottom == 0 && shape->padding_right == 0;
  const size_t taps = shape->kernel_height * shape->kernel_width;
  if (op->depthwise) {
    op->dwconv = f32_dwconv_ukernel_select(level);
    const size_t cb = op->dwconv->cb;
    const size_t channels = shape->output_channels;
    const size_t blocks = round_up(channels, cb) / cb;
    op->packed = calloc(blocks * cb * (taps + 1), sizeof(float));
    op->dw3x3 = whittle_conv2d_is_dw3x3(shape);
    // The 3x3 row kernel reads a whole zero row for rows outside the image.
    op->zero = calloc(op->dw3x3 ? shape->input_width * channels : channels, sizeof(float));
    if (op->packed == NULL || op->zero == NULL) goto fail;
    float* p = op->packed;
    for (size_t b = 0; b < blocks; b++) {
      for (size_t c = 0; c < cb; c++) {
        const size_t ch = b * cb + c;
        p[c] = ch < channels && bias != NULL ? bias[ch] : 0.0f;
      }
      p += cb;
      for (size_t t = 0; t < taps; t++) {
        for (size_t c = 0; c < cb; c++) {
          const size_t ch = b * cb + c;
          p[c] = ch < channels ? weights[ch * taps + t] : 0.0f;
        }
        p += cb;
      }
    }
    op->scratch_bytes_per_thread = DWCONV_PIXELS * taps * sizeof(const float*);
  } else if (winograd_fits(shape)) {
    if (!winograd_create(op, weights, bias, level)) goto fail;
  } else {
    // Every conv but the direct 1x1 ones takes the indirect GEMM when its padded input and offsets fit
    // their limits; a direct one too when it has few output channels (direct_takes_igemm).
    if (whittle_conv2d_padded_input_plan(shape, &op->padded_plan) &&
        (!op->direct || direct_takes_igemm(op, level))) {
      op->igemm = f32_igemm_ukernel_select(level);
    } else {
      op->gemm = f32_gemm_ukernel_select(level);
    }
    if (op->igemm != NULL && op->cout_g <= 16) op->narrow = op->igemm->narrow;
    const size_t nr = op->narrow != NULL ? 16 : op->igemm != NULL ? op->igemm->nr : op->gemm->nr;
    const size_t blocks = round_up(op->cout_g, nr) / nr;
    op->packed_group_floats = blocks * nr * (op->k + 1);
    op->packed = calloc(op->packed_group_floats * shape->groups, sizeof(float));
    if (op->packed == NULL) goto fail;
    for (size_t g = 0; g < shape->groups && op->narrow == NULL; g++) {
      float* p = op->packed + g * op->packed_group_floats;
      for (size_t b = 0; b < blocks; b++) {
        for (size_t n = 0; n < nr; n++) {
          const size_t o = b * nr + n;
          p[n] = o < op->cout_g && bias != NULL ? bias[g * op->cout_g + o] : 0.0f;
        }
        p += nr;
        for (size_t kk = 0; kk < op->k; kk++) {
          for (size_t n = 0; n < nr; n++) {
            const size_t o = b * nr + n;
            p[n] = o < op->cout_g ? weights[(g * op->cout_g + o) * op->k + kk] : 0.0f;
          }
          p += nr;
        }
      }
    }
    if (op->igemm != NULL) {
      op->k_offsets = malloc(op->k * sizeof(int32_t));
      const bool pads = shape->padding_top != 0 || shape->padding_left != 0 || shape->padding_bottom != 0 ||
                        shape->padding_right != 0;
      // calloc: the border of the padded images stays zero; runs write only the images.
      if (pads) op->padded = calloc(op->padded_plan.elements, sizeof(float));
      if (op->k_offsets == NULL || (pads && op->padded == NULL)) goto fail;
      for (size_t kk = 0; kk < op->k; kk++) {
        const size_t tap = kk / op->cin_g;
        op->k_offsets[kk] =
            whittle_conv2d_padded_tap_offset(shape, &op->padded_plan, tap / shape->kernel_width,
                                             tap % shape->kernel_width) +
            (int32_t)(kk % op->cin_g);
      }
      if (op->narrow != NULL && !pack_narrow(op, weights, bias)) goto fail;
      // Every element paired (even input channels): the taller tile, which has no registers left for singles.
      if (op->narrow != NULL && op->singles == 0 && op->igemm->narrow_paired != NULL)
        op->narrow = op->igemm->narrow_paired;
      return op;
    }
    // Per thread: MR rows of im2col, then the tap pointers of one row.
    op->a_tile_bytes = round_up(op->gemm->mr * op->k * sizeof(float), 64);
    op->scratch_bytes_per_thread =
        op->direct ? 0 : op->a_tile_bytes + round_up(taps * sizeof(const float*), 64);
  }
  return op;
fail:
  f32_conv2d_destroy(op);
  return NULL;
}

f32_conv2d_op* f32_fully_connected_create(size_t batch, size_t input_channels, size_t output_channels,
                                          const float* weights, const float* bias, float min, float max,
                                          whittle_isa level) {
  const whittle_conv2d_shape shape = whittle_fc_shape(batch, input_channels, output_channels);
  return f32_conv2d_create(&shape, weights, bias, min, max, level);
}

void f32_conv2d_destroy(f32_conv2d_op* op) {
  if (op == NULL) return;
  free(op->packed);
  free(op->zero);
  free(op->bias);
  free(op->padded);
  free(op->k_offsets);
  free(op->scratch);
  free(op);
}

const char* f32_conv2d_kernel_name(const f32_conv2d_op* op) {
  if (op->depthwise) return op->dw3x3 ? op->dwconv->name_3x3 : op->dwconv->name;
  if (op->narrow != NULL) return op->narrow->name;
  if (op->winograd) return "f32_winograd_2x2_3x3";
  return op->igemm != NULL ? op->igemm->name : op->gemm->name;
}

WHITTLE_DEFINE_CONV2D_ROW_TAPS(f32_conv2d_row_taps, float)

// The residual add of output elements [first, first + n), in place: a tile the kernel has just written.
WHITTLE_HOT static void add_tile(const f32_conv2d_op* op, size_t first, size_t n) {
  if (op->addend == NULL) return;
  float* c = op->output + first;
  op->simple->vadd(n, c, op->addend + first, c, op->add_min, op->add_max);
}

// One tile of `rows` <= MR rows of the GEMM (f32_gemm_ukernel_fn's arguments): a tile of 1 or 2 rows runs the
// 1-row kernel per row, one of 3 or 4 the 4-row kernel, where the ISA has them, rather than all MR rows.
WHITTLE_HOT static void gemm_tile(const f32_gemm_ukernel* gemm, size_t rows, size_t nc, size_t kc,
                                  const float* a, size_t a_stride, const float* packed, float* c,
                                  size_t c_stride, float min, float max) {
  if (rows <= 2 && gemm->fn_1 != NULL) {
    for (size_t r = 0; r < rows; r++)
      gemm->fn_1(1, nc, kc, a + r * a_stride, a_stride, packed, c + r * c_stride, c_stride, min, max);
  } else if (rows <= 4 && gemm->fn_4 != NULL) {
    gemm->fn_4(rows, nc, kc, a, a_stride, packed, c, c_stride, min, max);
  } else {
    gemm->fn(rows, nc, kc, a, a_stride, packed, c, c_stride, min, max);
  }
}

WHITTLE_HOT static void gemm_task(void* context, size_t thread, size_t begin, size_t end) {
  const f32_conv2d_op* op = context;
  const whittle_conv2d_shape* s = &op->shape;
  const size_t mr = op->gemm->mr;
  // Direct (1x1) convs need no scratch, and op->scratch is then NULL.
  float* a_tile = op->direct ? NULL : (float*)(op->scratch + thread * op->scratch_bytes_per_thread);
  for (size_t m0 = begin; m0 < end; m0 += mr) {
    const size_t rows = end - m0 < mr ? end - m0 : mr;
    for (size_t g = 0; g < s->groups; g++) {
      const float* a;
      size_t a_stride;
      if (op->direct) {
        a = op->input + m0 * s->input_channels + g * op->cin_g;
        a_stride = s->input_channels;
      } else {
        const float** taps = (const float**)((unsigned char*)a_tile + op->a_tile_bytes);
        const size_t tap_count = s->kernel_height * s->kernel_width;
        for (size_t r = 0; r < rows; r++) {
          float* row = a_tile + r * op->k;
          f32_conv2d_row_taps(&op->shape, op->output_height, op->output_width, op->input, m0 + r, NULL, taps);
          for (size_t t = 0; t < tap_count; t++) {
            if (taps[t] == NULL) {
              memset(row, 0, op->cin_g * sizeof(float));
            } else {
              memcpy(row, taps[t] + g * op->cin_g, op->cin_g * sizeof(float));
            }
            row += op->cin_g;
          }
        }
        a = a_tile;
        a_stride = op->k;
      }
      gemm_tile(op->gemm, rows, op->cout_g, op->k, a, a_stride, op->packed + g * op->packed_group_floats,
                op->output + m0 * s->output_channels + g * op->cout_g, s->output_channels, op->min, op->max);
    }
    add_tile(op, m0 * s->output_channels, rows * s->output_channels);
  }
}

// One tile of `rows` <= MR pixels x `nc` columns of the indirect GEMM (c: its first pixel's first column,
// rows output_channels apart). A tile of 1 or 2 rows (the last of a layer whose pixels are not a multiple of
// MR, e.g. the 9 of a 3x3 output) runs the 1-row kernel per row rather than all MR rows of the tile kernel.
WHITTLE_HOT static void igemm_tile(const f32_conv2d_op* op, size_t rows, size_t nc, const float* const* a,
                                   const float* packed, float* c) {
  const size_t c_stride = op->shape.output_channels;
  if (op->narrow != NULL) {
    op->narrow->fn(rows, nc, op->pairs, op->singles, a, op->k_offsets, packed, c, c_stride, op->min, op->max);
  } else if (rows <= 2 && op->igemm->fn_1 != NULL) {
    for (size_t r = 0; r < rows; r++)
      op->igemm->fn_1(1, nc, op->k, a + r, op->k_offsets, packed, c + r * c_stride, c_stride, op->min,
                      op->max);
  } else {
    op->igemm->fn(rows, nc, op->k, a, op->k_offsets, packed, c, c_stride, op->min, op->max);
  }
}

// Tiles of up to MR consecutive output pixels (a tile may cross output rows and images); the kernel gets the
// place in the padded input of each pixel's first tap.
WHITTLE_HOT static void igemm_task(void* context, size_t thread, size_t begin, size_t end) {
  (void)thread;
  const f32_conv2d_op* op = context;
  const whittle_conv2d_shape* s = &op->shape;
  const float* image = op->padded != NULL ? op->padded : op->input;
  const size_t mr = op->narrow != NULL ? op->narrow->mr : op->igemm->mr, channels = s->output_channels;
  const float* origin[F32_IGEMM_MAX_MR];
  const float* a[F32_IGEMM_MAX_MR];
  whittle_conv2d_origin_walk walk =
      whittle_conv2d_origin_walk_start(s, &op->padded_plan, op->output_height, op->output_width, begin);
  for (size_t m0 = begin; m0 < end; m0 += mr) {
    const size_t rows = end - m0 < mr ? end - m0 : mr;
    if (s->groups == 1) {  // one kernel call over every output channel, the pointers read in place
      for (size_t r = 0; r < rows; r++) a[r] = image + whittle_conv2d_origin_walk_next(&walk);
      igemm_tile(op, rows, channels, a, op->packed, op->output + m0 * channels);
      add_tile(op, m0 * channels, rows * channels);
      continue;
    }
    for (size_t r = 0; r < rows; r++) origin[r] = image + whittle_conv2d_origin_walk_next(&walk);
    // Group g reads input channels [g * cin_g, (g + 1) * cin_g) of each tap and writes its cout_g columns.
    for (size_t g = 0; g < s->groups; g++) {
      for (size_t r = 0; r < rows; r++) a[r] = origin[r] + g * op->cin_g;
      const float* packed = op->packed + g * op->packed_group_floats;
      float* c = op->output + m0 * channels + g * op->cout_g;
      igemm_tile(op, rows, op->cout_g, a, packed, c);
    }
    add_tile(op, m0 * channels, rows * channels);
  }
}

// Output tiles [begin, end) of Winograd F(2x2, 3x3), wino_tiles at a time: input transform of each tile, the
// 16 GEMMs of the block, output transform (bias, clamp, residual add) straight into the output.
WHITTLE_HOT static void winograd_task(void* context, size_t thread, size_t begin, size_t end) {
  const f32_conv2d_op* op = context;
  const whittle_conv2d_shape* s = &op->shape;
  const size_t cin = s->input_channels, cout = s->output_channels, block = op->wino_tiles;
  const size_t oh = op->output_height, ow = op->output_width, mr = op->gemm->mr, nr = op->gemm->nr;
  float* v = (float*)(op->scratch + thread * op->scratch_bytes_per_thread);
  float* m = v + 16 * block * cin;
  float* edge = (float*)((unsigned char*)v + round_up(16 * block * (cin + cout) * sizeof(float), 64));
  const float* rows[16];
  float* out[4];
  const float* addend[4];
  for (size_t t0 = begin; t0 < end; t0 += block) {
    const size_t n_tiles = end - t0 < block ? end - t0 : block;
    for (size_t i = 0; i < n_tiles; i++) {
      const size_t tile = t0 + i, n = tile / (op->tiles_h * op->tiles_w);
      const size_t ty = tile / op->tiles_w % op->tiles_h, tx = tile % op->tiles_w;
      for (size_t a = 0; a < 4; a++) {
        const ptrdiff_t iy = (ptrdiff_t)(2 * ty + a) - (ptrdiff_t)s->padding_top;
        for (size_t b = 0; b < 4; b++) {
          const ptrdiff_t ix = (ptrdiff_t)(2 * tx + b) - (ptrdiff_t)s->padding_left;
          const bool inside =
              iy >= 0 && iy < (ptrdiff_t)s->input_height && ix >= 0 && ix < (ptrdiff_t)s->input_width;
          rows[a * 4 + b] =
              inside ? op->input + ((n * s->input_height + (size_t)iy) * s->input_width + (size_t)ix) * cin
                     : op->zero;
        }
      }
      op->simple->winograd_input(cin, rows, v + i * cin, block * cin);
    }
    // Column block by column block, so that the block's weights (cin x nr) stay in cache across the tiles.
    for (size_t p = 0; p < 16; p++) {
      for (size_t n0 = 0; n0 < cout; n0 += nr) {
        const size_t cols = cout - n0 < nr ? cout - n0 : nr;
        const float* packed = op->packed + p * op->packed_group_floats + n0 * (cin + 1);
        for (size_t m0 = 0; m0 < n_tiles; m0 += mr) {
          const size_t tile_rows = n_tiles - m0 < mr ? n_tiles - m0 : mr;
          const float* a = v + (p * block + m0) * cin;
          float* c = m + (p * block + m0) * cout + n0;
          gemm_tile(op->gemm, tile_rows, cols, cin, a, cin, packed, c, cout, -INFINITY, INFINITY);
        }
      }
    }
    for (size_t i = 0; i < n_tiles; i++) {
      const size_t tile = t0 + i, n = tile / (op->tiles_h * op->tiles_w);
      const size_t ty = tile / op->tiles_w % op->tiles_h, tx = tile % op->tiles_w;
      for (size_t q = 0; q < 4; q++) {
        const size_t y = 2 * ty + q / 2, x = 2 * tx + q % 2;
        const size_t at = ((n * oh + y) * ow + x) * cout;
        const bool inside = y < oh && x < ow;
        out[q] = inside ? op->output + at : edge + (q - 1) * cout;  // pixel 0 is always inside
        addend[q] = inside && op->addend != NULL ? op->addend + at : op->bias;
      }
      op->simple->winograd_output(cout, m + i * cout, block * cout, op->bias, op->min, op->max, out,
                                  op->addend != NULL ? addend : NULL, op->add_min, op->add_max);
    }
  }
}

// Output pixels [begin, end) of a depthwise conv but the 3x3 ones, DWCONV_PIXELS at a time: their tap
// pointers, then one kernel call (which runs several pixels at once).
WHITTLE_HOT static void dwconv_task(void* context, size_t thread, size_t begin, size_t end) {
  const f32_conv2d_op* op = context;
  const whittle_conv2d_shape* s = &op->shape;
  const size_t taps = s->kernel_height * s->kernel_width;
  const float** indirection = (const float**)(op->scratch + thread * op->scratch_bytes_per_thread);
  for (size_t m0 = begin; m0 < end; m0 += DWCONV_PIXELS) {
    const size_t pixels = end - m0 < DWCONV_PIXELS ? end - m0 : DWCONV_PIXELS;
    for (size_t p = 0; p < pixels; p++)
      f32_conv2d_row_taps(&op->shape, op->output_height, op->output_width, op->input, m0 + p, op->zero,
                          indirection + p * taps);
    op->dwconv->fn(pixels, s->output_channels, taps, indirection, op->packed,
                   op->output + m0 * s->output_channels, op->min, op->max);
    add_tile(op, m0 * s->output_channels, pixels * s->output_channels);
  }
}

// Output rows [begin, end) of a 3x3 depthwise conv, one row kernel call each.
WHITTLE_HOT static void dwconv3x3_task(void* context, size_t thread, size_t begin, size_t end) {
  (void)thread;
  const f32_conv2d_op* op = context;
  const whittle_conv2d_shape* s = &op->shape;
  const size_t row_floats = s->input_width * s->input_channels;
  for (size_t r = begin; r < end; r++) {
    const size_t n = r / op->output_height, y = r % op->output_height;
    const float* image = op->input + n * s->input_height * row_floats;
    const float* rows[3];
    for (size_t i = 0; i < 3; i++) {
      const ptrdiff_t iy = (ptrdiff_t)(y * s->stride_height + i) - (ptrdiff_t)s->padding_top;
      rows[i] = iy >= 0 && iy < (ptrdiff_t)s->input_height ? image + (size_t)iy * row_floats : op->zero;
    }
    op->dwconv->fn_3x3(s->output_channels, op->output_width, rows, s->input_width, s->stride_width,
                       s->padding_left, op->zero, op->packed,
                       op->output + r * op->output_width * s->output_channels, op->min, op->max);
    add_tile(op, r * op->output_width * s->output_channels, op->output_width * s->output_channels);
  }
}

WHITTLE_HOT bool f32_conv2d_run(f32_conv2d_op* op, const float* input, float* output,
                                whittle_threadpool* pool) {
  return f32_conv2d_run_add(op, input, NULL, 0.0f, 0.0f, output, pool);
}

WHITTLE_HOT bool f32_conv2d_run_add(f32_conv2d_op* op, const float* input, const float* addend, float add_min,
                                    float add_max, float* output, whittle_threadpool* pool) {
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
  op->add_min = add_min;
  op->add_max = add_max;
  const size_t rows = op->shape.batch * op->output_height * op->output_width;
  // Rows per unit of the pool's chunks, and no split of a small layer (whittle_threadpool_granularity).
  const whittle_conv2d_shape* s = &op->shape;
  if (op->dw3x3) {
    const double work = (double)s->output_channels * 9.0 * (double)op->output_width;
    const size_t output_rows = op->shape.batch * op->output_height;
    whittle_threadpool_parallelize(pool, dwconv3x3_task, op, output_rows,
                                   whittle_threadpool_granularity(pool, 1, work, output_rows));
  } else if (op->depthwise) {
    const double work = (double)s->output_channels * (double)(s->kernel_height * s->kernel_width);
    whittle_threadpool_parallelize(pool, dwconv_task, op, rows,
                                   whittle_threadpool_granularity(pool, 1, work, rows));
  } else if (op->winograd) {
    const size_t tiles = s->batch * op->tiles_h * op->tiles_w;
    const double work = 4.0 * (double)s->output_channels * (double)s->input_channels * 4.0;
    whittle_threadpool_parallelize(pool, winograd_task, op, tiles,
                                   whittle_threadpool_granularity(pool, op->wino_tiles, work, tiles));
  } else if (op->igemm != NULL) {
    if (op->padded != NULL)
      whittle_conv2d_padded_copy(s, &op->padded_plan, sizeof(float), input, 0, op->padded);
    const double work = (double)s->output_channels * (double)op->k;
    const size_t mr = op->narrow != NULL ? op->narrow->mr : op->igemm->mr;
    whittle_threadpool_parallelize(pool, igemm_task, op, rows,
                                   whittle_threadpool_granularity(pool, mr, work, rows));
  } else {
    const double work = (double)s->output_channels * (double)op->k;
    whittle_threadpool_parallelize(pool, gemm_task, op, rows,
                                   whittle_threadpool_granularity(pool, op->gemm->mr, work, rows));
  }
  return true;
}
