// Sparse-weight kernels for unstructured pruning (Han et al. 2015): weights in CSR, fp32 or int8.
//
// Storage (native/formats.md), one CSR matrix of output_channels rows by K columns,
// K = kernel_height * kernel_width * group_input_channels (fc: K = input_channels):
//   row_offsets    uint32 [output_channels + 1], row_offsets[0] = 0, non-decreasing, last = nnz
//   column_indices uint32 [nnz], k = (ky * kernel_width + kx) * group_input_channels + i, < K, strictly
//                  increasing within a row
//   values         fp32 or int8 [nnz]
// The convolution gathers one output position's K inputs of a group into a caller-provided workspace
// (im2col of one pixel, padding as 0; fp32: float[K], qs8: int16[K] holding x - input_zero_point), then each
// output channel of the range is a sparse dot product over its row. The fc kernels read the input row
// directly and take no workspace. A workspace is per calling thread.
//
// fp32:  output = clamp(sum values * x + bias[o]); within 1e-5 of sum |values * x| of the reference.
// qs8:   output = clamp(output_zero_point + requantize(bias[o] + sum values * (x - input_zero_point),
//        multipliers[o], shifts[o])) with qs8_requantize_gemmlowp (its own header), bit-exact; at most
//        QS8_FC_MAX_INPUT_CHANNELS nonzeros per row so the int32 sum cannot overflow; bias wraps mod 2^32.
//
// Preconditions (the caller checks them; the kernels do not): 0 <= oc_begin <= oc_end <= groups *
// group_output_channels, geometry fields >= 1 (paddings >= 0), buffers of the documented sizes, the output
// not overlapping any input, a valid CSR (row_offsets non-decreasing from 0 to nnz, column_indices < K and <
// 2^31), workspace of K elements.
//
// Structured pruning (whole filters, channels or groups removed) needs no kernel here: the pruned layer is
// a smaller dense layer (fewer output channels, fewer input channels), run by the dense kernels of its
// number format with the smaller shapes.
//
// Functions the binding exposes:
//   sparse_f32_select(level) -> {conv2d, fc, conv2d_planes}: sparse_f32_conv2d_minmax_ukernel__{scalar,avx2},
//     sparse_f32_fc_minmax_ukernel__{scalar,avx2}, sparse_f32_conv2d_planes_minmax_ukernel__{scalar,avx2}
//     (stride 1; with sparse_f32_conv2d_planes_pack and sparse_f32_conv2d_plane_offsets)
//   sparse_qs8_conv2d_minmax_gemmlowp_ukernel__scalar, sparse_qs8_fc_minmax_gemmlowp_ukernel__scalar
//   sparse_f32_csr_encode, sparse_qs8_csr_encode (dense -> CSR, dropping exact zeros)
#ifndef WHITTLE_SPARSE_CONV2D_H_
#define WHITTLE_SPARSE_CONV2D_H_

#include <stdbool.h>

#include "conv2d_geometry.h"
#include "qs8_requantize_gemmlowp.h"

WHITTLE_EXTERN_C_BEGIN

typedef void (*sparse_f32_conv2d_fn)(const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,
                                     const float* input, const uint32_t* row_offsets,
                                     const uint32_t* column_indices, const float* values, const float* bias,
                                     float output_min, float output_max, float* workspace, float* output);
typedef void (*sparse_f32_fc_fn)(size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin,
                                 size_t oc_end, const float* input, const uint32_t* row_offsets,
                                 const uint32_t* column_indices, const float* values, const float* bias,
                                 float output_min, float output_max, float* output);

#define SPARSE_F32_DECLARE(isa)                                                                    \
  void sparse_f32_conv2d_minmax_ukernel__##isa(                                                    \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                     \
      const float* WHITTLE_RESTRICT input, const uint32_t* WHITTLE_RESTRICT row_offsets,           \
      const uint32_t* WHITTLE_RESTRICT column_indices, const float* WHITTLE_RESTRICT values,       \
      const float* WHITTLE_RESTRICT bias, float output_min, float output_max,                      \
      float* WHITTLE_RESTRICT workspace, float* WHITTLE_RESTRICT output);                          \
  void sparse_f32_fc_minmax_ukernel__##isa(                                                        \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end, \
      const float* WHITTLE_RESTRICT input, const uint32_t* WHITTLE_RESTRICT row_offsets,           \
      const uint32_t* WHITTLE_RESTRICT column_indices, const float* WHITTLE_RESTRICT values,       \
      const float* WHITTLE_RESTRICT bias, float output_min, float output_max,                      \
      float* WHITTLE_RESTRICT output);

SPARSE_F32_DECLARE(reference)
SPARSE_F32_DECLARE(scalar)
#if defined(__x86_64__) || defined(_M_X64)
SPARSE_F32_DECLARE(avx2)
#endif

// Stride-1 fp32 convolutions over channel planes (Elsen et al. 2020's sparse 1x1 kernels, generalized to
// any kernel size). The NHWC input is copied, per call, to zero-padded channel planes:
//   planes [batch][channels][output_height + kernel_height - 1][output_width + kernel_width - 1]
// whose (py, px) holds input (py - padding_top, px - padding_left), 0 outside the input. For a nonzero
// (o, k), k = (ky * kernel_width + kx) * group_input_channels + i, every output row of channel o is then a
// contiguous span of plane i (of o's group) at row offset ky and column offset kx: plane_offsets[j] =
// i * plane size + ky * plane width + kx, computed once per layer. The kernel vectorizes across output
// columns, so no thread gathers an im2col; its results are within the fp32 tolerance of the reference
// (another summation order, bias added first).
// Preconditions beyond the conv kernel's: sparse_f32_conv2d_planes_supported(g), planes of
// sparse_f32_conv2d_planes_floats(g) floats packed from the call's input, plane_offsets from the layer's
// column indices.
// The kernel computes output rows [row_begin, row_end) of batch x output_height (n * output_height + y) and
// channels [oc_begin, oc_end); threads split the rows, so that each writes whole NHWC pixels.
typedef void (*sparse_f32_conv2d_planes_fn)(const whittle_conv2d_geometry* geometry, size_t row_begin,
                                            size_t row_end, size_t oc_begin, size_t oc_end,
                                            const float* planes, const uint32_t* row_offsets,
                                            const uint32_t* plane_offsets, const float* values,
                                            const float* bias, float output_min, float output_max,
                                            float* output);
// Stride 1 in both directions, and planes small enough for 32-bit offsets.
bool sparse_f32_conv2d_planes_supported(const whittle_conv2d_geometry* geometry);
size_t sparse_f32_conv2d_planes_floats(const whittle_conv2d_geometry* geometry);
// Packs plane rows [row_begin, row_end) of sparse_f32_conv2d_planes_rows(geometry) (batch x plane height),
// every channel of each, so that a thread can pack just the rows its output rows read (the binding gives
// each thread its own planes: a packing another core wrote would have to travel to this one).
size_t sparse_f32_conv2d_planes_rows(const whittle_conv2d_geometry* geometry);
void sparse_f32_conv2d_planes_pack(const whittle_conv2d_geometry* geometry, size_t row_begin, size_t row_end,
                                   const float* input, float* planes);
void sparse_f32_conv2d_plane_offsets(const whittle_conv2d_geometry* geometry, size_t nnz,
                                     const uint32_t* column_indices, uint32_t* plane_offsets);

#define SPARSE_F32_DECLARE_PLANES(isa)                                                                   \
  void sparse_f32_conv2d_planes_minmax_ukernel__##isa(                                                   \
      const whittle_conv2d_geometry* geometry, size_t row_begin, size_t row_end, size_t oc_begin,        \
      size_t oc_end, const float* WHITTLE_RESTRICT planes, const uint32_t* WHITTLE_RESTRICT row_offsets, \
      const uint32_t* WHITTLE_RESTRICT plane_offsets, const float* WHITTLE_RESTRICT values,              \
      const float* WHITTLE_RESTRICT bias, float output_min, float output_max,                            \
      float* WHITTLE_RESTRICT output);

SPARSE_F32_DECLARE_PLANES(scalar)
#if defined(__x86_64__) || defined(_M_X64)
SPARSE_F32_DECLARE_PLANES(avx2)
#endif

typedef struct sparse_f32_variant {
  whittle_isa isa;
  const char* name;
  sparse_f32_conv2d_fn conv2d;
  sparse_f32_fc_fn fc;
  sparse_f32_conv2d_planes_fn conv2d_planes;
} sparse_f32_variant;

// Every compiled-in variant except the reference, in the order of kernel_abi.h (best first, scalar last).
WHITTLE_DECLARE_VARIANTS(sparse_f32)

#define SPARSE_QS8_DECLARE(isa)                                                                      \
  void sparse_qs8_conv2d_minmax_gemmlowp_ukernel__##isa(                                             \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                       \
      const int8_t* WHITTLE_RESTRICT input, int32_t input_zero_point,                                \
      const uint32_t* WHITTLE_RESTRICT row_offsets, const uint32_t* WHITTLE_RESTRICT column_indices, \
      const int8_t* WHITTLE_RESTRICT values, const int32_t* WHITTLE_RESTRICT bias,                   \
      const int32_t* WHITTLE_RESTRICT multipliers, const int32_t* WHITTLE_RESTRICT shifts,           \
      int32_t output_zero_point, int32_t output_min, int32_t output_max,                             \
      int16_t* WHITTLE_RESTRICT workspace, int8_t* WHITTLE_RESTRICT output);                         \
  void sparse_qs8_fc_minmax_gemmlowp_ukernel__##isa(                                                 \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,   \
      const int8_t* WHITTLE_RESTRICT input, int32_t input_zero_point,                                \
      const uint32_t* WHITTLE_RESTRICT row_offsets, const uint32_t* WHITTLE_RESTRICT column_indices, \
      const int8_t* WHITTLE_RESTRICT values, const int32_t* WHITTLE_RESTRICT bias,                   \
      const int32_t* WHITTLE_RESTRICT multipliers, const int32_t* WHITTLE_RESTRICT shifts,           \
      int32_t output_zero_point, int32_t output_min, int32_t output_max, int8_t* WHITTLE_RESTRICT output);

// bias may be NULL (0); input_zero_point, output_zero_point, output_min, output_max in [-128, 127].
SPARSE_QS8_DECLARE(reference)
SPARSE_QS8_DECLARE(scalar)

// dense [rows][columns] -> CSR without the exact zeros; returns nnz. Arrays sized for the worst case
// (rows + 1 offsets, rows * columns entries).
size_t sparse_f32_csr_encode(size_t rows, size_t columns, const float* dense, uint32_t* row_offsets,
                             uint32_t* column_indices, float* values);
size_t sparse_qs8_csr_encode(size_t rows, size_t columns, const int8_t* dense, uint32_t* row_offsets,
                             uint32_t* column_indices, int8_t* values);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_SPARSE_CONV2D_H_
