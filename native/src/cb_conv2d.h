// Codebook-weight kernels (k-means weight sharing, Han et al. 2016 "Deep Compression"): every weight is an
// index into one fp32 codebook per layer of at most 256 centroids. The kernel never rebuilds fp32 weights:
// for each output it sums the activations into one bin per centroid (by the weight's index), then takes
// one multiply per centroid:  output = sum_c codebook[c] * (sum_{k : index_k = c} x_k) + bias[o].
// When an output has fewer valid products than the codebook has entries (depthwise 3x3 with 256
// centroids, say), zeroing and reading the bins costs more than it saves, so that output multiplies each
// activation by its centroid directly (same sum, another order).
//
// Index storage (native/formats.md): per output channel o a row of K indices,
// K = kernel_height * kernel_width * group_input_channels, index k = (ky * kernel_width + kx) *
// group_input_channels + i, each index_bits (2..8) bits wide; index k occupies bits [k * b, (k + 1) * b)
// of the row, bit j of the row being bit j % 8 of byte j / 8 (least significant first); a row takes
// cb_row_bytes(K, b) = ceil(K * b / 8) bytes and its unused high bits are 0. Every index < codebook_size
// <= 2^index_bits. Huffman coding of the indices is a storage matter of the package format: the kernel
// reads fixed-width indices.
//
// output[n][oy][ox][o] = clamp(..., output_min, output_max) for o in [oc_begin, oc_end); padding reads 0;
// bias may be NULL. fp32 sums in another order than the reference: within 1e-5 of sum |codebook[index] * x|.
//
// Preconditions (the caller checks them; the kernels do not): 0 <= oc_begin <= oc_end <= groups *
// group_output_channels, geometry fields >= 1 (paddings >= 0), buffers of the documented sizes, the output
// not overlapping any input, index_bits in [2, 8], 1 <= codebook_size <= 2^index_bits, every index <
// codebook_size.
//
// Functions the binding exposes:
//   cb_conv2d_select(level) -> {conv2d, fc}: cb_conv2d_minmax_ukernel__{scalar,avx2,neon},
//   cb_fc_minmax_ukernel__scalar
//   cb_pack_indices (one index per byte -> packed rows)
#ifndef WHITTLE_CB_CONV2D_H_
#define WHITTLE_CB_CONV2D_H_

#include "conv2d_geometry.h"

WHITTLE_EXTERN_C_BEGIN

#define CB_MIN_INDEX_BITS 2
#define CB_MAX_INDEX_BITS 8
#define CB_MAX_CODEBOOK_SIZE 256

static inline size_t cb_row_bytes(size_t reduction, uint32_t index_bits) {
  return (reduction * index_bits + 7) / 8;
}

// Vector lanes of the widest SIMD kernel (cb_conv2d_impl.h): output pixels per block; sets of bins it
// alternates between. AVX-512 CPUs run the AVX2 kernel: a bin update is a load, an add and a store of one
// vector, and with 16-lane (512-bit) bins it measured 1.5x slower than with 8-lane ones on the AMD EPYC the
// benchmark runs on (wide stores that the next update of the bin reloads).
#define CB_MAX_LANES 16
#define CB_BIN_SETS 4

// Floats of workspace one call of a conv2d kernel needs (per thread): a tile of the taps of CB_MAX_LANES
// output pixels and CB_BIN_SETS bins per centroid and lane. The reference and scalar kernels ignore it (NULL
// is fine).
static inline size_t cb_conv2d_workspace_floats(size_t reduction, size_t codebook_size) {
  return (reduction + CB_BIN_SETS * codebook_size) * CB_MAX_LANES;
}

typedef void (*cb_conv2d_fn)(const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,
                             const float* input, const uint8_t* indices, uint32_t index_bits,
                             const float* codebook, size_t codebook_size, const float* bias, float output_min,
                             float output_max, float* workspace, float* output);
// Fully connected: input [batch][input_channels], rows of K = input_channels indices, output
// [batch][output_channels].
typedef void (*cb_fc_fn)(size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin,
                         size_t oc_end, const float* input, const uint8_t* indices, uint32_t index_bits,
                         const float* codebook, size_t codebook_size, const float* bias, float output_min,
                         float output_max, float* output);

#define CB_DECLARE_CONV2D(isa)                                                                           \
  void cb_conv2d_minmax_ukernel__##isa(                                                                  \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                           \
      const float* WHITTLE_RESTRICT input, const uint8_t* WHITTLE_RESTRICT indices, uint32_t index_bits, \
      const float* WHITTLE_RESTRICT codebook, size_t codebook_size, const float* WHITTLE_RESTRICT bias,  \
      float output_min, float output_max, float* WHITTLE_RESTRICT workspace,                             \
      float* WHITTLE_RESTRICT output);
#define CB_DECLARE(isa)                                                                                  \
  CB_DECLARE_CONV2D(isa)                                                                                 \
  void cb_fc_minmax_ukernel__##isa(                                                                      \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,       \
      const float* WHITTLE_RESTRICT input, const uint8_t* WHITTLE_RESTRICT indices, uint32_t index_bits, \
      const float* WHITTLE_RESTRICT codebook, size_t codebook_size, const float* WHITTLE_RESTRICT bias,  \
      float output_min, float output_max, float* WHITTLE_RESTRICT output);

CB_DECLARE(reference)
CB_DECLARE(scalar)
// SIMD conv kernels (cb_conv2d_impl.h); fully-connected layers use the scalar one (one pixel per call).
#if defined(__x86_64__) || defined(_M_X64)
CB_DECLARE_CONV2D(avx2)
#endif
#if defined(__arm__) || defined(__aarch64__)
CB_DECLARE_CONV2D(neon)
#endif

typedef struct cb_conv2d_variant {
  whittle_isa isa;
  const char* name;
  cb_conv2d_fn conv2d;
  cb_fc_fn fc;
} cb_conv2d_variant;

// The SIMD variants
// put one output pixel in each vector lane (the scatter-add into bins cannot be vectorised across the
// weights of one output: two lanes may hit the same bin), so each weight is one vector add for CB_LANES
// pixels.
// Every compiled-in variant except the reference, in the order of kernel_abi.h (best first, scalar last).
WHITTLE_DECLARE_VARIANTS(cb_conv2d)

// Load-time expansion onto the dense fp32 operators (f32_ops.h: the runtime's FormatLayer runs codebook
// layers on the fp32 GEMM / IGEMM / depthwise kernels with these weights): rows of `reduction` indices ->
// dense fp32 [rows][reduction] = codebook[index] (OHWI for a conv, the row layout of the indices). The
// weights are the centroids' exact values, so the dense layer computes the reference's sum of
// codebook[index_k] * x_k in another order, within the tolerance above. The expanded weights take 32 bits per
// weight in memory (the package keeps index_bits, Huffman-coded); an int8 expansion would need centroids on
// a per-channel int8 grid, which k-means does not give (see the int8 section below).
void cb_expand_weights_f32(size_t rows, size_t reduction, const uint8_t* indices, uint32_t index_bits,
                           const float* codebook, float* weights);

// ---- int8 activations (a codebook layer inside an int8 package; native/formats.md) ----
//
// Each output channel o has its own int8 codebook, codebooks[o * codebook_size + c]: the layer's fp32
// centroids on the channel's int8 grid, computed by the caller
// (agent/runtime/format-layouts.ts quantizeCodebooks: round(c / scale[o]), scale[o] = the largest |centroid|
// the row uses / 127, so each weight moves by at most half a step of its channel's grid). The layer is then
// exactly a dense int8 layer with weights w[o][k] = codebooks[o][index_k], quantized as the dense int8
// kernels are (gemmlowp, qs8_ops.h): acc = bias[o] + sum_k w * (x_k - input_zero_point) (padding: x =
// input_zero_point), output clamp(output_zero_point + qs8_requantize_gemmlowp(acc, multipliers[o],
// shifts[o])), the bias add wrapping modulo 2^32. K <= CB_QS8_MAX_REDUCTION keeps the int32 sum exact (|w| <=
// 127, |x - zp| <= 255).
#define CB_QS8_MAX_REDUCTION (1u << 16)

// rows of `reduction` indices -> dense int8 [rows][reduction] = codebooks[row][index] (the int8 operators'
// weights, qs8_ops.h: the runtime's FormatLayer runs int8 codebook layers on them).
void cb_expand_weights_s8(size_t rows, size_t reduction, const uint8_t* indices, uint32_t index_bits,
                          const int8_t* codebooks, size_t codebook_size, int8_t* weights);

// The definition above, summed in int64 per output (the reference of the expanded int8 operators).
void cb_conv2d_qs8_minmax_gemmlowp_ukernel__reference(
    const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end, const int8_t* input,
    int32_t input_zero_point, const uint8_t* indices, uint32_t index_bits, const int8_t* codebooks,
    size_t codebook_size, const int32_t* bias, const int32_t* multipliers, const int32_t* shifts,
    int32_t output_zero_point, int32_t output_min, int32_t output_max, int8_t* output);

// unpacked uint8 [rows][reduction] (one index per byte, each < 2^index_bits) -> packed rows of
// cb_row_bytes(reduction, index_bits) bytes.
void cb_pack_indices(size_t rows, size_t reduction, uint32_t index_bits, const uint8_t* unpacked,
                     uint8_t* packed);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_CB_CONV2D_H_
