// Convolution and pooling geometry, NHWC, shared by every operator and format of the library.
//
// Two structs, because a convolution is stated in one form and run in another:
//   whittle_conv2d_shape     what a caller states (the binding's arguments, the fp32/int8 operators): total
//                            channels, four paddings and a dilation; whittle_conv2d_shape_problem checks it
//                            (every dimension and element count bounded, so no size computed from it can
//                            overflow) and the output size follows from it.
//   whittle_conv2d_geometry  what the compressed-format kernels iterate over: the resolved output size and
//                            channels per group, no dilation (the formats have none), and bottom/right
//                            padding implied by the output size. whittle_conv2d_shape_geometry resolves a
//                            checked shape into it.
// Merging them would give the format kernels fields they must ignore (dilation, bottom/right padding) and the
// operators fields they must recompute (output size, per-group channels): each form holds exactly what its
// users read.
#ifndef WHITTLE_CONV2D_GEOMETRY_H_
#define WHITTLE_CONV2D_GEOMETRY_H_

#include <stdbool.h>

#include "kernel_abi.h"

WHITTLE_EXTERN_C_BEGIN

// conv2d, NHWC. Weights are OHWI: [output_channels][kernel_height][kernel_width][input_channels / groups];
// output channel o reads input channels [g * cin_g, (g + 1) * cin_g) with g = o / (output_channels / groups).
// Depthwise is groups == input_channels (weights [output_channels][kh][kw][1]).
typedef struct whittle_conv2d_shape {
  size_t batch, input_height, input_width, input_channels;
  size_t output_channels, kernel_height, kernel_width;
  size_t stride_height, stride_width;
  size_t dilation_height, dilation_width;
  size_t padding_top, padding_left, padding_bottom, padding_right;
  size_t groups;
} whittle_conv2d_shape;

// Largest value of any dimension, and of any tensor's element count, that the operators accept: keeps every
// index and byte size far from overflow on 32-bit targets too.
#define WHITTLE_MAX_DIMENSION ((size_t)1 << 24)
#define WHITTLE_MAX_ELEMENTS ((size_t)1 << 28)

// NULL when the shape is usable; otherwise a static message naming the first bad field.
const char* whittle_conv2d_shape_problem(const whittle_conv2d_shape* shape);
size_t whittle_conv2d_output_height(const whittle_conv2d_shape* shape);
size_t whittle_conv2d_output_width(const whittle_conv2d_shape* shape);

// NHWC convolution geometry of the format kernels.
//   input   [batch][input_height][input_width][groups * group_input_channels]
//   output  [batch][output_height][output_width][groups * group_output_channels]
//   weights per output channel o (group o / group_output_channels):
//   [kernel_height][kernel_width][group_input_channels]
// Output position (oy, ox) reads input rows oy * stride_height - padding_top + ky and columns
// ox * stride_width - padding_left + kx; any row or column outside the input is padding with real value 0
// (bottom and right padding follow from the output size). Depthwise: group_input_channels = 1 and
// groups = channels. Every field except the paddings is >= 1; kernels never read outside the input for any
// geometry. Structured pruning needs no kernel: a pruned layer is a smaller dense layer (fewer channels).
typedef struct whittle_conv2d_geometry {
  size_t batch;
  size_t input_height;
  size_t input_width;
  size_t kernel_height;
  size_t kernel_width;
  size_t stride_height;
  size_t stride_width;
  size_t padding_top;
  size_t padding_left;
  size_t output_height;
  size_t output_width;
  size_t groups;
  size_t group_input_channels;
  size_t group_output_channels;
} whittle_conv2d_geometry;

// The geometry of a shape that whittle_conv2d_shape_problem accepts with dilation 1.
whittle_conv2d_geometry whittle_conv2d_shape_geometry(const whittle_conv2d_shape* shape);

// A fully-connected layer as the format kernels see it: a 1x1 convolution over [batch][1][1][input_channels].
static inline whittle_conv2d_geometry whittle_fc_geometry(size_t batch, size_t input_channels,
                                                          size_t output_channels) {
  const whittle_conv2d_geometry g = {batch, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, input_channels, output_channels};
  return g;
}

// The same layer as the operators state it: a 1x1 convolution of a 1x1 image, one group.
static inline whittle_conv2d_shape whittle_fc_shape(size_t batch, size_t input_channels,
                                                    size_t output_channels) {
  const whittle_conv2d_shape shape = {.batch = batch,
                                      .input_height = 1,
                                      .input_width = 1,
                                      .input_channels = input_channels,
                                      .output_channels = output_channels,
                                      .kernel_height = 1,
                                      .kernel_width = 1,
                                      .stride_height = 1,
                                      .stride_width = 1,
                                      .dilation_height = 1,
                                      .dilation_width = 1,
                                      .padding_top = 0,
                                      .padding_left = 0,
                                      .padding_bottom = 0,
                                      .padding_right = 0,
                                      .groups = 1};
  return shape;
}

// Defines `static void name(const whittle_conv2d_shape* s, size_t output_height, size_t output_width,
// const T* input, size_t m, const T* pad, const T** taps)`: the input pixel each tap (i, j) of output row m
// (a flattened (n, y, x)) reads, in tap order, or `pad` where the tap falls in the padding. The im2col and
// indirection drivers of the fp32 and int8 operators instantiate it for their element type. The divisions
// happen once per row, not once per tap.
#define WHITTLE_DEFINE_CONV2D_ROW_TAPS(name, T)                                                            \
  WHITTLE_HOT static void name(const whittle_conv2d_shape* s, size_t output_height, size_t output_width,   \
                               const T* input, size_t m, const T* pad, const T** taps) {                   \
    const size_t x = m % output_width;                                                                     \
    const size_t y = (m / output_width) % output_height;                                                   \
    const size_t n = m / (output_width * output_height);                                                   \
    const T* image = input + n * s->input_height * s->input_width * s->input_channels;                     \
    size_t t = 0;                                                                                          \
    for (size_t i = 0; i < s->kernel_height; i++) {                                                        \
      const ptrdiff_t iy =                                                                                 \
          (ptrdiff_t)(y * s->stride_height + i * s->dilation_height) - (ptrdiff_t)s->padding_top;          \
      const bool row_inside = iy >= 0 && iy < (ptrdiff_t)s->input_height;                                  \
      for (size_t j = 0; j < s->kernel_width; j++) {                                                       \
        const ptrdiff_t ix =                                                                               \
            (ptrdiff_t)(x * s->stride_width + j * s->dilation_width) - (ptrdiff_t)s->padding_left;         \
        const bool inside = row_inside && ix >= 0 && ix < (ptrdiff_t)s->input_width;                       \
        taps[t++] = inside ? image + ((size_t)iy * s->input_width + (size_t)ix) * s->input_channels : pad; \
      }                                                                                                    \
    }                                                                                                      \
  }

// A depthwise 3x3 convolution with dilation 1 (groups == input_channels == output_channels), which the
// fp32 and int8 operators run with their 3x3 row kernels.
static inline bool whittle_conv2d_is_dw3x3(const whittle_conv2d_shape* s) {
  return s->groups > 1 && s->groups == s->input_channels && s->groups == s->output_channels &&
         s->kernel_height == 3 && s->kernel_width == 3 && s->dilation_height == 1 && s->dilation_width == 1;
}

// The row kernels of a 3x3 depthwise convolution (dilation 1; the *_dwconv3x3 functions of f32_ops.h and
// qs8_ops.h) read one output row from three input rows: rows[i] is input row y * stride_height -
// padding_top + i, or a row of padding values where that row is outside the image. This sets the 9 tap
// pointers (tap i * 3 + j) of the output pixel whose first input column is ix = x * stride_width -
// padding_left: rows[i] + (ix + j) * pixel_bytes, or `pad` (a pixel of padding values) where column ix + j
// is outside [0, input_width).
static inline void whittle_dwconv3x3_taps(const void* const* rows, const void* pad, size_t pixel_bytes,
                                          size_t input_width, ptrdiff_t ix, const void** taps) {
  WHITTLE_UNROLL3 for (size_t j = 0; j < 3; j++) {
    const ptrdiff_t column = ix + (ptrdiff_t)j;
    const bool inside = column >= 0 && column < (ptrdiff_t)input_width;
    WHITTLE_UNROLL3 for (size_t i = 0; i < 3; i++) {
      taps[i * 3 + j] = inside ? (const unsigned char*)rows[i] + (size_t)column * pixel_bytes : pad;
    }
  }
}

// The kernel taps [*first, *last) of one output coordinate that land inside the input (the others read
// padding). Every format's driver walks these.
static inline void whittle_conv2d_valid_taps(size_t output_index, size_t stride, size_t padding,
                                             size_t kernel_size, size_t input_size, size_t* first,
                                             size_t* last) {
  const ptrdiff_t origin = (ptrdiff_t)(output_index * stride) - (ptrdiff_t)padding;
  ptrdiff_t lo = -origin;
  ptrdiff_t hi = (ptrdiff_t)input_size - origin;
  lo = lo < 0 ? 0 : lo;
  hi = hi > (ptrdiff_t)kernel_size ? (ptrdiff_t)kernel_size : hi;
  *first = (size_t)lo;
  *last = hi > lo ? (size_t)hi : (size_t)lo;
}

// Output pixels of the batch: the references walk them with one index p = (n * output_height + oy) *
// output_width + ox, which is also the pixel's place in the NHWC output.
static inline size_t whittle_conv2d_output_pixels(const whittle_conv2d_geometry* g) {
  return g->batch * g->output_height * g->output_width;
}

// Where output pixel p is: batch element n, row oy, column ox.
typedef struct whittle_conv2d_position {
  size_t n, oy, ox;
} whittle_conv2d_position;

static inline whittle_conv2d_position whittle_conv2d_output_position(const whittle_conv2d_geometry* g,
                                                                     size_t p) {
  const whittle_conv2d_position at = {p / g->output_width / g->output_height,
                                      p / g->output_width % g->output_height, p % g->output_width};
  return at;
}

// The input pixel (n * input_height + iy) * input_width + ix that tap (ky, kx) of output position `at` reads;
// false when the tap reads padding (real value 0).
static inline bool whittle_conv2d_tap_pixel(const whittle_conv2d_geometry* g, whittle_conv2d_position at,
                                            size_t ky, size_t kx, size_t* pixel) {
  const ptrdiff_t iy = (ptrdiff_t)(at.oy * g->stride_height + ky) - (ptrdiff_t)g->padding_top;
  const ptrdiff_t ix = (ptrdiff_t)(at.ox * g->stride_width + kx) - (ptrdiff_t)g->padding_left;
  if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)g->input_height || ix >= (ptrdiff_t)g->input_width) return false;
  *pixel = (at.n * g->input_height + (size_t)iy) * g->input_width + (size_t)ix;
  return true;
}

// The output channels of group `group` that lie in [oc_begin, oc_end) (a task's channel range may cut a
// group): [*begin, *end).
static inline void whittle_conv2d_group_channel_range(const whittle_conv2d_geometry* g, size_t group,
                                                      size_t oc_begin, size_t oc_end, size_t* begin,
                                                      size_t* end) {
  const size_t first = group * g->group_output_channels, last = first + g->group_output_channels;
  *begin = first > oc_begin ? first : oc_begin;
  *end = last < oc_end ? last : oc_end;
}

// The NHWC input index that reduction element k = (ky * kernel_width + kx) * group_input_channels + i of
// output channel group `group` reads at output position `at`; false when that tap reads padding.
// Decodes k with divisions: for references and per-nonzero (sparse) loops, not for the drivers' spans.
static inline bool whittle_conv2d_tap_input(const whittle_conv2d_geometry* g, whittle_conv2d_position at,
                                            size_t group, size_t k, size_t* index) {
  const size_t gic = g->group_input_channels;
  const size_t i = k % gic, kx = (k / gic) % g->kernel_width, ky = k / gic / g->kernel_width;
  size_t pixel;
  if (!whittle_conv2d_tap_pixel(g, at, ky, kx, &pixel)) return false;
  *index = pixel * (g->groups * gic) + group * gic + i;
  return true;
}

// The padded input of the convolutions that read their input in place (groups == 1, f32_ops.h's indirect
// GEMM and the int8 operator's im2col): every image with its padding written out, so that each tap of each
// output pixel reads memory and no kernel tests bounds. Layout [batch][height][width][input_channels], the
// image proper at row padding_top, column padding_left. The operator writes the border once (zero, or the
// int8 input zero point) and whittle_conv2d_padded_copy the images at each run; a layer without padding
// (and without a byte flip) reads its input itself.
typedef struct whittle_conv2d_padded_input {
  size_t height, width;  // padded image, pixels
  size_t elements;       // batch * height * width * input_channels
} whittle_conv2d_padded_input;

// False when the padded images or the offset of a tap (whittle_conv2d_padded_tap_offset) would not fit the
// operators' limits (WHITTLE_MAX_ELEMENTS, int32 offsets); the operator then keeps its bounds-tested path.
bool whittle_conv2d_padded_input_plan(const whittle_conv2d_shape* s, whittle_conv2d_padded_input* padded);

// Elements from the first tap's input of an output pixel to the input of tap (ky, kx).
static inline int32_t whittle_conv2d_padded_tap_offset(const whittle_conv2d_shape* s,
                                                       const whittle_conv2d_padded_input* padded, size_t ky,
                                                       size_t kx) {
  return (int32_t)((ky * s->dilation_height * padded->width + kx * s->dilation_width) * s->input_channels);
}

// The element of the padded images that the first tap (0, 0) of output pixel m = (n, oy, ox) reads.
static inline size_t whittle_conv2d_padded_origin(const whittle_conv2d_shape* s,
                                                  const whittle_conv2d_padded_input* padded,
                                                  size_t output_height, size_t output_width, size_t m) {
  const size_t ox = m % output_width, oy = (m / output_width) % output_height;
  const size_t n = m / output_width / output_height;
  return ((n * padded->height + oy * s->stride_height) * padded->width + ox * s->stride_width) *
         s->input_channels;
}

// whittle_conv2d_padded_origin of consecutive output pixels m, m + 1, ... without a division per pixel: the
// indirect GEMM drivers walk a task's pixels with it, MR at a time.
typedef struct whittle_conv2d_origin_walk {
  const whittle_conv2d_shape* shape;
  const whittle_conv2d_padded_input* padded;
  size_t output_height, output_width;
  size_t m, ox, origin;  // the next pixel, its column and its origin
} whittle_conv2d_origin_walk;

static inline whittle_conv2d_origin_walk whittle_conv2d_origin_walk_start(
    const whittle_conv2d_shape* s, const whittle_conv2d_padded_input* padded, size_t output_height,
    size_t output_width, size_t m) {
  const whittle_conv2d_origin_walk walk = {
      s,
      padded,
      output_height,
      output_width,
      m,
      m % output_width,
      whittle_conv2d_padded_origin(s, padded, output_height, output_width, m)};
  return walk;
}

// The origin of the next pixel; moves on to the one after it.
static inline size_t whittle_conv2d_origin_walk_next(whittle_conv2d_origin_walk* walk) {
  const size_t origin = walk->origin;
  walk->m++;
  if (++walk->ox < walk->output_width) {
    walk->origin += walk->shape->stride_width * walk->shape->input_channels;
  } else {
    walk->ox = 0;
    walk->origin = whittle_conv2d_padded_origin(walk->shape, walk->padded, walk->output_height,
                                                walk->output_width, walk->m);
  }
  return origin;
}

// Writes the images of `input` (NHWC, elements of element_size bytes, every byte XORed with byte_flip) into
// their place in `padded`; the border is left as it is.
void whittle_conv2d_padded_copy(const whittle_conv2d_shape* s, const whittle_conv2d_padded_input* padded,
                                size_t element_size, const void* input, uint8_t byte_flip, void* output);

// max / average pooling, NHWC, window and stride per axis. Average pooling divides by the number of
// window elements inside the input (padding excluded, as TFLite does), or, with count_padding, by the whole
// window (ONNX's count_include_pad: every window of the output size below lies inside the padded input),
// the padded positions then counting as padding_value: the raw input zero point of int8 / uint8 tensors
// (a real 0); the fp32 kernels count them as 0 and ignore padding_value. Max pooling ignores both.
typedef struct whittle_pool2d_shape {
  size_t batch, input_height, input_width, channels;
  size_t window_height, window_width, stride_height, stride_width;
  size_t padding_top, padding_left, padding_bottom, padding_right;
  bool count_padding;
  int32_t padding_value;
} whittle_pool2d_shape;

// Global average pooling of [batch][pixels][channels] as a pool2d shape: one window over a 1 x pixels image.
static inline whittle_pool2d_shape whittle_global_pool2d_shape(size_t batch, size_t pixels, size_t channels) {
  const whittle_pool2d_shape shape = {.batch = batch,
                                      .input_height = 1,
                                      .input_width = pixels,
                                      .channels = channels,
                                      .window_height = 1,
                                      .window_width = pixels,
                                      .stride_height = 1,
                                      .stride_width = 1,
                                      .padding_top = 0,
                                      .padding_left = 0,
                                      .padding_bottom = 0,
                                      .padding_right = 0,
                                      .count_padding = false,
                                      .padding_value = 0};
  return shape;
}

const char* whittle_pool2d_shape_problem(const whittle_pool2d_shape* shape);
size_t whittle_pool2d_output_height(const whittle_pool2d_shape* shape);
size_t whittle_pool2d_output_width(const whittle_pool2d_shape* shape);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_CONV2D_GEOMETRY_H_
