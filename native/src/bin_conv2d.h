// Binary-weight kernels with real activations (BinaryConnect, Courbariaux et al. 2015; BWN of XNOR-Net,
// Rastegari et al. 2016): weight[o][k] = alpha[o] * (bit ? -1 : +1). The inner loop only adds or subtracts
// fp32 activations (the sign flip is an XOR of the float's sign bit); alpha multiplies once per output.
//
// Weight storage (native/formats.md): per output channel o a row of
// row_words = ceil(K / 32) uint32 words, K = kernel_height * kernel_width * group_input_channels; bit k of
// the row (word k / 32, bit k % 32, least significant first) is the sign of weight element
// k = (ky * kernel_width + kx) * group_input_channels + i, 1 meaning -1. Bits past K are 0.
//
// output[n][oy][ox][o] = clamp(alpha[o] * sum_k (bit ? -x : x) + bias[o], output_min, output_max)
// for o in [oc_begin, oc_end); padding reads 0. bias may be NULL. fp32 sums in another order than the
// reference: results agree within 1e-5 relative to sum_k |x|.
//
// Preconditions (the caller checks them; the kernels do not): 0 <= oc_begin <= oc_end <= groups *
// group_output_channels, geometry fields >= 1 (paddings >= 0), buffers of the documented sizes, the output
// not overlapping any input, unused high bits 0.
//
// Functions the binding exposes:
//   bin_conv2d_select(level) -> {conv2d, fc}: bin_conv2d_minmax_ukernel__{scalar,avx2,avx512,neon}
//   bin_fc_minmax_ukernel__{scalar,avx2,avx512,neon}
//   bin_pack_weights (fp32 weights -> sign bits, alpha = mean |w| per output channel)
#ifndef WHITTLE_BIN_CONV2D_H_
#define WHITTLE_BIN_CONV2D_H_

#include "conv2d_geometry.h"

WHITTLE_EXTERN_C_BEGIN

// uint32 words of one output channel's sign row.
static inline size_t bin_row_words(size_t reduction) { return (reduction + 31) / 32; }

// 32 bits of a row starting at any bit position; bits past the row read as 0 (never reads past the row).
static inline uint32_t bin_load_bits32(const uint32_t* row, size_t row_words, size_t bit) {
  const size_t word = bit / 32;
  uint64_t value = row[word];
  if (word + 1 < row_words) {
    value |= (uint64_t)row[word + 1] << 32;
  }
  return (uint32_t)(value >> (bit % 32));
}

typedef void (*bin_conv2d_fn)(const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,
                              const float* input, const uint32_t* weight_bits, const float* alpha,
                              const float* bias, float output_min, float output_max, float* output);
// Fully connected: input [batch][input_channels], weight rows of K = input_channels bits,
// output [batch][output_channels].
typedef void (*bin_fc_fn)(size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin,
                          size_t oc_end, const float* input, const uint32_t* weight_bits, const float* alpha,
                          const float* bias, float output_min, float output_max, float* output);

#define BIN_CONV2D_DECLARE(isa)                                                                              \
  void bin_conv2d_minmax_ukernel__##isa(                                                                     \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                               \
      const float* WHITTLE_RESTRICT input, const uint32_t* WHITTLE_RESTRICT weight_bits,                     \
      const float* WHITTLE_RESTRICT alpha, const float* WHITTLE_RESTRICT bias, float output_min,             \
      float output_max, float* WHITTLE_RESTRICT output);                                                     \
  void bin_fc_minmax_ukernel__##isa(size_t batch, size_t input_channels, size_t output_channels,             \
                                    size_t oc_begin, size_t oc_end, const float* WHITTLE_RESTRICT input,     \
                                    const uint32_t* WHITTLE_RESTRICT weight_bits,                            \
                                    const float* WHITTLE_RESTRICT alpha, const float* WHITTLE_RESTRICT bias, \
                                    float output_min, float output_max, float* WHITTLE_RESTRICT output);

BIN_CONV2D_DECLARE(reference)
BIN_CONV2D_DECLARE(scalar)
#if defined(__x86_64__) || defined(_M_X64)
BIN_CONV2D_DECLARE(avx2)
BIN_CONV2D_DECLARE(avx512)
#endif
#if defined(__arm__) || defined(__aarch64__)
BIN_CONV2D_DECLARE(neon)
#endif

typedef struct bin_conv2d_variant {
  whittle_isa isa;
  const char* name;
  bin_conv2d_fn conv2d;
  bin_fc_fn fc;
} bin_conv2d_variant;

// Every compiled-in variant except the reference, in the order of kernel_abi.h (best first, scalar last).
WHITTLE_DECLARE_VARIANTS(bin_conv2d)

// weights fp32 [output_channels][reduction] -> weight_bits [output_channels][bin_row_words(reduction)]
// (bit = w < 0) and alpha[o] = mean_k |w[o][k]| (the optimal BWN scale).
void bin_pack_weights(size_t output_channels, size_t reduction, const float* weights, uint32_t* weight_bits,
                      float* alpha);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_BIN_CONV2D_H_
