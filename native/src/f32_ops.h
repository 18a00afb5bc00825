// fp32 operators in NHWC layout (shapes: conv2d_geometry.h, shared with the int8 operators of qs8_ops.h).
//
// Every operator has a plain __reference (direct loops, written for clarity) and an optimized path built
// from microkernels chosen from a per-family list by ISA level (cpu/cpu-features.h). Weights are packed
// once by *_create into the layout of the chosen microkernel; *_run then only reads them.
//
// Kernel name grammar: <dtype>_<op>_<activation>_ukernel_<MRxNR | cCB>__<isa>.
// Batch-norm is folded into conv weights and bias before these operators see them
// (optimize/fold-batchnorm.ts), and before quantization for the int8 ones.
#ifndef WHITTLE_F32_OPS_H_
#define WHITTLE_F32_OPS_H_

#include <stdbool.h>

#include "conv2d_geometry.h"
#include "threadpool.h"

WHITTLE_EXTERN_C_BEGIN

// ---------------------------------------------------------------------------------------------------------
// Microkernels

// c[m][n] = clamp(bias[n] + sum_k a[m][k] * w[k][n], min, max) for m < mr (<= MR), n < nc (any), k < kc.
// a rows are a_stride floats apart; c rows c_stride floats apart. packed_w: for each block of NR columns,
// NR biases then kc x NR weights (k-major), columns past nc zero.
typedef void (*f32_gemm_ukernel_fn)(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                                    const float* packed_w, float* c, size_t c_stride, float min, float max);

// The indirect GEMM of the convolutions with groups == 1 (stems of 1-4 input channels, LeNet-sized layers and
// every other dense kxk conv): the same tile and packed weights as the GEMM, but A is not copied: row m is
// an output pixel, a[m] points at the input its first tap reads in the padded input (conv2d_geometry.h),
// and A[m][k] = a[m][k_offsets[k]] for the reduction index k = (ky * kernel_width + kx) * input_channels + i.
// The weights vectorize over output channels, packed [kh][kw][cin][NR] per block, which keeps every lane
// busy when cin is 1 to 4 and an im2col row would be a handful of floats. MR <= F32_IGEMM_MAX_MR.
typedef void (*f32_igemm_ukernel_fn)(size_t mr, size_t nc, size_t kc, const float* const* a,
                                     const int32_t* k_offsets, const float* packed_w, float* c,
                                     size_t c_stride, float min, float max);
#define F32_IGEMM_MAX_MR 12

// The indirect GEMM of the convolutions with at most 16 output channels (nc <= 16), where one vector of
// columns per row leaves the loads the bound: the reduction is `pairs` pairs of adjacent input elements
// (A[m] at a[m][offsets[p]] and the one after it), then `singles` elements (at a[m][offsets[pairs + s]]);
// packed_w: 16 biases, then for each pair the 16 weights of its first element and the 16 of its second,
// then 16 weights per single (columns past nc zero). The driver chooses the pairs (and so the sum order).
typedef void (*f32_igemm_narrow_ukernel_fn)(size_t mr, size_t nc, size_t pairs, size_t singles,
                                            const float* const* a, const int32_t* offsets,
                                            const float* packed_w, float* c, size_t c_stride, float min,
                                            float max);

// For each pixel p < pixels: output[p * channels + c] = clamp(bias[c] + sum_t input[p * taps + t][c] *
// w[t][c], min, max) for c < channels; input[p * taps + t] points to `channels` floats (a pixel of the input
// or a zero buffer). packed_w: per block of CB channels, CB biases then taps x CB weights (tap-major),
// channels past `channels` zero.
typedef void (*f32_dwconv_ukernel_fn)(size_t pixels, size_t channels, size_t taps, const float* const* input,
                                      const float* packed_w, float* output, float min, float max);

// One output row of a 3x3 depthwise convolution (dilation 1, the same packing as f32_dwconv_ukernel_fn with
// taps = 9): output[x][c] = clamp(bias[c] + sum_t tap_t(x)[c] * w[t][c], min, max) for x < output_width,
// c < channels, with the tap pointers of whittle_dwconv3x3_taps (rows[3], `pad` = `channels` zeros). Each
// block of CB channels keeps its 9 weight vectors in registers across the row.
typedef void (*f32_dwconv3x3_ukernel_fn)(size_t channels, size_t output_width, const float* const* rows,
                                         size_t input_width, size_t stride, size_t padding_left,
                                         const float* pad, const float* packed_w, float* output, float min,
                                         float max);

typedef struct f32_gemm_ukernel {
  const char* name;
  whittle_isa isa;
  f32_gemm_ukernel_fn fn;
  uint8_t mr, nr;
  // A 1-row variant with the same packing (NULL if none): runs tiles of 1 or 2 rows (fully-connected with
  // batch 1, and the last rows of a conv) without computing MR rows.
  f32_gemm_ukernel_fn fn_1;
  // A 4-row variant with the same packing (NULL if none, as where MR is 4): runs tiles of 3 or 4 rows (a 2x2
  // output, the last rows of a conv) without computing MR rows.
  f32_gemm_ukernel_fn fn_4;
} f32_gemm_ukernel;

typedef struct f32_igemm_narrow_ukernel {
  const char* name;
  f32_igemm_narrow_ukernel_fn fn;
  uint8_t mr;
} f32_igemm_narrow_ukernel;

typedef struct f32_igemm_ukernel {
  const char* name;
  whittle_isa isa;
  f32_igemm_ukernel_fn fn;
  uint8_t mr, nr;
  // A 1-row variant with the same packing (NULL if none): runs the last 1 or 2 pixels of a layer (a 3x3
  // output of 9 pixels is a tile of 8 and one of 1) without computing MR rows.
  f32_igemm_ukernel_fn fn_1;
  // The kernels of the same ISA for layers of at most 16 output channels, or NULL (this one runs them):
  // `narrow` for any reduction, `narrow_paired` when every element pairs (no singles).
  const f32_igemm_narrow_ukernel* narrow;
  const f32_igemm_narrow_ukernel* narrow_paired;
} f32_igemm_ukernel;

typedef struct f32_dwconv_ukernel {
  const char* name;
  whittle_isa isa;
  f32_dwconv_ukernel_fn fn;
  uint8_t cb;
  // The 3x3 row kernel with the same packing (every entry has one), and its name.
  f32_dwconv3x3_ukernel_fn fn_3x3;
  const char* name_3x3;
} f32_dwconv_ukernel;

// A 2-D resize of [batch][input_height][input_width][channels] into [batch][output_height][output_width]
// [channels] (NHWC, or any layout whose two resized axes are adjacent: batch and channels fold the axes
// before and after them). The caller computes the taps (agent/runtime/ops/resize.ts, for every coordinate
// mode and nearest rounding): output row y reads input rows rows[2y] (top) and rows[2y + 1] (bottom), the
// bottom one with weight row_weights[y] in [0, 1] and the top one with 1 - row_weights[y]; output column x
// likewise (columns, column_weights). Nearest reads rows[2y] and columns[2x] only (weights NULL). Every row
// index is < input_height and every column index < input_width (the binding checks them).
typedef struct whittle_resize_shape {
  size_t batch, input_height, input_width, output_height, output_width, channels;
  const uint32_t* rows;          // [output_height][2]
  const double* row_weights;     // [output_height], NULL for nearest
  const uint32_t* columns;       // [output_width][2]
  const double* column_weights;  // [output_width], NULL for nearest
} whittle_resize_shape;

// The four corner weights of a bilinear output pixel in double, in the order every resize kernel sums them
// (top-left, bottom-left, top-right, bottom-right), as the reference executor forms them: the row factor
// times the column factor.
static inline void whittle_resize_corner_weights(double row_weight, double column_weight, double w[4]) {
  w[0] = (1 - row_weight) * (1 - column_weight);
  w[1] = row_weight * (1 - column_weight);
  w[2] = (1 - row_weight) * column_weight;
  w[3] = row_weight * column_weight;
}

// The first element of input pixel (n, row, column) of a resize's input.
static inline size_t whittle_resize_input_offset(const whittle_resize_shape* s, size_t n, uint32_t row,
                                                 uint32_t column) {
  return ((n * s->input_height + row) * s->input_width + column) * s->channels;
}

// Element-wise and pooling kernels of one ISA, built from one portable source per ISA (f32_simple_impl.h)
// compiled with that ISA's flags, so the compiler vectorizes the channel loops.
typedef struct f32_simple_ukernels {
  const char* name;
  whittle_isa isa;
  // y[i] = clamp(x[i], min, max)  (ReLU: [0, inf), ReLU6: [0, 6])
  void (*vclamp)(size_t n, const float* x, float* y, float min, float max);
  // y[i] = clamp(a[i] + b[i], min, max)
  void (*vadd)(size_t n, const float* a, const float* b, float* y, float min, float max);
  void (*maxpool)(const whittle_pool2d_shape* shape, const float* input, float* output, float min, float max);
  void (*avgpool)(const whittle_pool2d_shape* shape, const float* input, float* output, float min, float max);
  // softmax over the last axis of [rows][channels]
  void (*softmax)(size_t rows, size_t channels, const float* input, float* output);
  // y[i] = 1 / (1 + exp(-x[i]))
  void (*vsigmoid)(size_t n, const float* x, float* y);
  // y[i] = clamp(alpha * x[i] + beta, 0, 1) (hard_sigmoid), times x[i] when `swish` (hard_swish)
  void (*vhard_sigmoid)(size_t n, const float* x, float* y, float alpha, float beta, bool swish);
  // y[i] = x[i] * Phi(x[i]) (GELU; Phi the normal CDF, or its tanh approximation when `tanh_form`); within
  // 3e-7 * |x| + 1e-7 of the exact value
  void (*vgelu)(size_t n, const float* x, float* y, bool tanh_form);
  // Each row of [rows][channels]: y = (x - mean) / sqrt(variance + epsilon) * scale + bias (bias NULL: 0),
  // mean and (biased) variance over the row, in double: bit-exact with f32_layer_norm__reference
  void (*layer_norm)(size_t rows, size_t channels, const float* x, const float* scale, const float* bias,
                     double epsilon, float* y);
  // y[r][p][c] = a[r][p][c] * b[r][c]: the SE block's channel-broadcast multiply (N x H x W x C times
  // N x 1 x 1 x C), and with rows = pixels = 1 the same-shape one.
  void (*vmul_channels)(size_t rows, size_t pixels, size_t channels, const float* a, const float* b,
                        float* y);
  // Bilinear resize (whittle_resize_shape): per output pixel and channel, the four input pixels blended
  // with float weights (the double products w_row * w_column rounded to float), summed top-left,
  // bottom-left, top-right, bottom-right. Close to f32_resize_bilinear__reference, not bit-exact.
  void (*resize_bilinear)(const whittle_resize_shape* shape, const float* input, float* output);
  // Winograd F(2x2, 3x3) of the fp32 conv (f32_conv2d.c): one tile's input transform (16 rows of `channels`
  // in, 16 positions `stride` apart out) and output transform with bias, clamp and optional residual add
  // (f32_simple_impl.h).
  void (*winograd_input)(size_t channels, const float* const* rows, float* v, size_t stride);
  void (*winograd_output)(size_t channels, const float* m, size_t stride, const float* bias, float min,
                          float max, float* const* out, const float* const* addend, float add_min,
                          float add_max);
} f32_simple_ukernels;

// Lists in the order of kernel_abi.h (best first, the scalar entry last), each with its _count and
// _select(level) (WHITTLE_DECLARE_UKERNELS).
WHITTLE_DECLARE_UKERNELS(f32_gemm)
WHITTLE_DECLARE_UKERNELS(f32_igemm)
WHITTLE_DECLARE_UKERNELS(f32_dwconv)
// The simple set kernel_abi.h's rule picks for `level` (whittle_kernel_list_select).
const f32_simple_ukernels* f32_simple_ukernels_select(whittle_isa level);

// ---------------------------------------------------------------------------------------------------------
// References (direct loops). Shapes NHWC; output shapes from the *_output_height/width functions.

void f32_conv2d__reference(const whittle_conv2d_shape* shape, const float* input, const float* weights,
                           const float* bias, float min, float max, float* output);
// weights [out][in], input [batch][in], output [batch][out]
void f32_fully_connected__reference(size_t batch, size_t input_channels, size_t output_channels,
                                    const float* input, const float* weights, const float* bias, float min,
                                    float max, float* output);
void f32_maxpool__reference(const whittle_pool2d_shape* shape, const float* input, float* output, float min,
                            float max);
void f32_avgpool__reference(const whittle_pool2d_shape* shape, const float* input, float* output, float min,
                            float max);
// [batch][pixels][channels] -> [batch][channels]
void f32_global_avgpool__reference(size_t batch, size_t pixels, size_t channels, const float* input,
                                   float* output, float min, float max);
void f32_add__reference(size_t n, const float* a, const float* b, float* output, float min, float max);
void f32_clamp__reference(size_t n, const float* input, float* output, float min, float max);
void f32_softmax__reference(size_t rows, size_t channels, const float* input, float* output);
void f32_sigmoid__reference(size_t n, const float* input, float* output);
void f32_hard_sigmoid__reference(size_t n, const float* input, float* output, float alpha, float beta,
                                 bool swish);
void f32_mul_channels__reference(size_t rows, size_t pixels, size_t channels, const float* a, const float* b,
                                 float* output);
void f32_gelu__reference(size_t n, const float* input, float* output, bool tanh_form);
void f32_layer_norm__reference(size_t rows, size_t channels, const float* input, const float* scale,
                               const float* bias, double epsilon, float* output);

// Bilinear resize as the runtime's reference executor computes it (ops/resize.ts), in double: per output
// pixel the corner weights (1 - wr) * (1 - wc), wr * (1 - wc), (1 - wr) * wc, wr * wc (wr, wc the row and
// column weights) times the four input values, summed in that order and rounded to float once.
void f32_resize_bilinear__reference(const whittle_resize_shape* shape, const float* input, float* output);

// Element-size-generic data movement (the same for every dtype; memcpy is the fast path).
// concat along the last axis: output[r] = input_0[r] ++ input_1[r] ++ ...; channels[i] elements each.
void whittle_concat_channels(size_t rows, size_t count, const size_t* channels, const void* const* inputs,
                             size_t element_size, void* output);
// slice of one axis: output[r] = input[r][offset, offset + output_row), rows of input_row elements in and
// output_row out (a Slice or one part of a Split, on any axis: rows and the row lengths fold the others).
void whittle_slice_rows(size_t rows, size_t input_row, size_t offset, size_t output_row, const void* input,
                        size_t element_size, void* output);
// ShuffleNet channel shuffle of [rows][groups * group_channels]: output channel j * groups + g is input
// channel g * group_channels + j.
void whittle_channel_shuffle(size_t rows, size_t groups, size_t group_channels, const void* input,
                             size_t element_size, void* output);
// Nearest resize (whittle_resize_shape's rows[2y] and columns[2x]): each output pixel is a copy of the
// channels of one input pixel.
void whittle_resize_nearest(const whittle_resize_shape* shape, const void* input, size_t element_size,
                            void* output);

// ---------------------------------------------------------------------------------------------------------
// Optimized operators

typedef struct f32_conv2d_op f32_conv2d_op;

// Packs the weights for the kernel chosen by `level`. NULL on a bad shape (see
// whittle_conv2d_shape_problem) or when memory runs out.
f32_conv2d_op* f32_conv2d_create(const whittle_conv2d_shape* shape, const float* weights, const float* bias,
                                 float min, float max, whittle_isa level);
// Returns false only when the per-thread scratch cannot be allocated (first run, or more threads than
// before). Not reentrant: one op runs one call at a time.
bool f32_conv2d_run(f32_conv2d_op* op, const float* input, float* output, whittle_threadpool* pool);
// The conv followed by a residual add (issue 13's conv + add fusion): output = clamp(y + addend, add_min,
// add_max) with y the conv's output as f32_conv2d_run gives it (clamped to the op's own [min, max]) and
// `addend` of the output's shape, added to each output tile right after the kernel wrote it. Bit-exact with
// f32_conv2d_run followed by f32_add. addend == NULL is f32_conv2d_run. `addend` must not overlap `output`.
bool f32_conv2d_run_add(f32_conv2d_op* op, const float* input, const float* addend, float add_min,
                        float add_max, float* output, whittle_threadpool* pool);
const char* f32_conv2d_kernel_name(const f32_conv2d_op* op);
void f32_conv2d_destroy(f32_conv2d_op* op);

// Fully-connected = 1x1 conv over a [batch][1][1][in] input.
f32_conv2d_op* f32_fully_connected_create(size_t batch, size_t input_channels, size_t output_channels,
                                          const float* weights, const float* bias, float min, float max,
                                          whittle_isa level);

void f32_maxpool(const whittle_pool2d_shape* shape, const float* input, float* output, float min, float max,
                 whittle_isa level);
void f32_avgpool(const whittle_pool2d_shape* shape, const float* input, float* output, float min, float max,
                 whittle_isa level);
void f32_global_avgpool(size_t batch, size_t pixels, size_t channels, const float* input, float* output,
                        float min, float max, whittle_isa level);
void f32_add(size_t n, const float* a, const float* b, float* output, float min, float max,
             whittle_isa level);
void f32_clamp(size_t n, const float* input, float* output, float min, float max, whittle_isa level);
void f32_softmax(size_t rows, size_t channels, const float* input, float* output, whittle_isa level);
void f32_sigmoid(size_t n, const float* input, float* output, whittle_isa level);
void f32_hard_sigmoid(size_t n, const float* input, float* output, float alpha, float beta, bool swish,
                      whittle_isa level);
void f32_mul_channels(size_t rows, size_t pixels, size_t channels, const float* a, const float* b,
                      float* output, whittle_isa level);
void f32_gelu(size_t n, const float* input, float* output, bool tanh_form, whittle_isa level);
void f32_layer_norm(size_t rows, size_t channels, const float* input, const float* scale, const float* bias,
                    double epsilon, float* output, whittle_isa level);

void f32_resize_bilinear(const whittle_resize_shape* shape, const float* input, float* output,
                         whittle_isa level);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_F32_OPS_H_
