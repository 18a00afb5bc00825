// Ternary-weight kernels (Ternary Weight Networks, Li et al. 2016; trained ternary quantization with a
// single scale): weight[o][k] = alpha[o] * t, t in {-1, 0, +1}. The inner loop only adds or subtracts fp32
// activations (or skips them): the sign plane flips the float's sign bit, the nonzero plane masks it.
//
// Weight storage (native/formats.md): two bit planes, each with the row layout of the binary
// weights (bin_conv2d.h): per output channel o, ceil(K / 32) uint32 words, bit k (word k / 32,
// bit k % 32, least significant first) for element k = (ky * kernel_width + kx) * group_input_channels + i.
//   weight_nonzero: 1 where t != 0;   weight_sign: 1 where t = -1 (0 wherever t = 0).   Bits past K are 0.
//
// output[n][oy][ox][o] = clamp(alpha[o] * sum_k t_k * x_k + bias[o], output_min, output_max), o in
// [oc_begin, oc_end); padding reads 0; bias may be NULL. Within 1e-5 of sum_k |x| of the reference.
//
// Preconditions (the caller checks them; the kernels do not): 0 <= oc_begin <= oc_end <= groups *
// group_output_channels, geometry fields >= 1 (paddings >= 0), buffers of the documented sizes, the output
// not overlapping any input, unused high bits 0.
//
// Functions the binding exposes:
//   tern_conv2d_select(level) -> {conv2d, fc}: tern_conv2d_minmax_ukernel__{scalar,avx2,avx512,neon}
//   tern_fc_minmax_ukernel__{scalar,avx2,avx512,neon}
//   tern_conv2d_qs8_minmax_gemmlowp_ukernel__scalar, tern_fc_qs8_minmax_gemmlowp_ukernel__scalar (int8
//   activations) tern_pack_weights (fp32 weights and a threshold -> planes and alpha)
#ifndef WHITTLE_TERN_CONV2D_H_
#define WHITTLE_TERN_CONV2D_H_

#include "bin_conv2d.h"
#include "conv2d_geometry.h"

WHITTLE_EXTERN_C_BEGIN

// Each plane's rows are bin_conv2d.h's rows: bin_row_words(reduction) words, read by bin_load_bits32.

// t in {-1, 0, +1} of weight k of one output channel's rows of the two planes.
static inline int32_t tern_weight_at(const uint32_t* nonzero_row, const uint32_t* sign_row, size_t k) {
  if (((nonzero_row[k / 32] >> (k % 32)) & 1) == 0) return 0;
  return ((sign_row[k / 32] >> (k % 32)) & 1) ? -1 : 1;
}

typedef void (*tern_conv2d_fn)(const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,
                               const float* input, const uint32_t* weight_nonzero,
                               const uint32_t* weight_sign, const float* alpha, const float* bias,
                               float output_min, float output_max, float* output);
// Fully connected: input [batch][input_channels], rows of K = input_channels bits, output
// [batch][output_channels].
typedef void (*tern_fc_fn)(size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin,
                           size_t oc_end, const float* input, const uint32_t* weight_nonzero,
                           const uint32_t* weight_sign, const float* alpha, const float* bias,
                           float output_min, float output_max, float* output);

#define TERN_CONV2D_DECLARE(isa)                                                                   \
  void tern_conv2d_minmax_ukernel__##isa(                                                          \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                     \
      const float* WHITTLE_RESTRICT input, const uint32_t* WHITTLE_RESTRICT weight_nonzero,        \
      const uint32_t* WHITTLE_RESTRICT weight_sign, const float* WHITTLE_RESTRICT alpha,           \
      const float* WHITTLE_RESTRICT bias, float output_min, float output_max,                      \
      float* WHITTLE_RESTRICT output);                                                             \
  void tern_fc_minmax_ukernel__##isa(                                                              \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end, \
      const float* WHITTLE_RESTRICT input, const uint32_t* WHITTLE_RESTRICT weight_nonzero,        \
      const uint32_t* WHITTLE_RESTRICT weight_sign, const float* WHITTLE_RESTRICT alpha,           \
      const float* WHITTLE_RESTRICT bias, float output_min, float output_max,                      \
      float* WHITTLE_RESTRICT output);

TERN_CONV2D_DECLARE(reference)
TERN_CONV2D_DECLARE(scalar)
#if defined(__x86_64__) || defined(_M_X64)
TERN_CONV2D_DECLARE(avx2)
TERN_CONV2D_DECLARE(avx512)
#endif
#if defined(__arm__) || defined(__aarch64__)
TERN_CONV2D_DECLARE(neon)
#endif

typedef struct tern_conv2d_variant {
  whittle_isa isa;
  const char* name;
  tern_conv2d_fn conv2d;
  tern_fc_fn fc;
} tern_conv2d_variant;

// Every compiled-in variant except the reference, in the order of kernel_abi.h (best first, scalar last).
WHITTLE_DECLARE_VARIANTS(tern_conv2d)

// Ternary weights, int8 activations (quantized as in qs8_requantize_gemmlowp.h), integer adds/subtracts only:
//   acc = sum_k t_k * (x_k - input_zero_point)          (exact int32; padding is x = input_zero_point)
//   output = clamp(output_zero_point + qs8_requantize_gemmlowp(acc + bias[o], multipliers[o], shifts[o]))
// with multipliers[o] * 2^(shifts[o] - 31) = alpha[o] * input_scale / output_scale. Same planes as above,
// bias int32 (units of alpha[o] * input_scale) or NULL, output int8; bit-exact, and equal to a dense int8
// layer on the int8 weights t. K <= 2^23 so |acc| < 2^31; the bias add wraps modulo 2^32 like TFLite.
//   tern_conv2d_qs8_minmax_gemmlowp_ukernel__{reference,scalar}, tern_fc_qs8_minmax_gemmlowp_ukernel__{...}
#define TERN_QS8_MAX_REDUCTION (UINT32_C(1) << 23)

#define TERN_QS8_DECLARE(isa)                                                                        \
  void tern_conv2d_qs8_minmax_gemmlowp_ukernel__##isa(                                               \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                       \
      const int8_t* WHITTLE_RESTRICT input, int32_t input_zero_point,                                \
      const uint32_t* WHITTLE_RESTRICT weight_nonzero, const uint32_t* WHITTLE_RESTRICT weight_sign, \
      const int32_t* WHITTLE_RESTRICT bias, const int32_t* WHITTLE_RESTRICT multipliers,             \
      const int32_t* WHITTLE_RESTRICT shifts, int32_t output_zero_point, int32_t output_min,         \
      int32_t output_max, int8_t* WHITTLE_RESTRICT output);                                          \
  void tern_fc_qs8_minmax_gemmlowp_ukernel__##isa(                                                   \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,   \
      const int8_t* WHITTLE_RESTRICT input, int32_t input_zero_point,                                \
      const uint32_t* WHITTLE_RESTRICT weight_nonzero, const uint32_t* WHITTLE_RESTRICT weight_sign, \
      const int32_t* WHITTLE_RESTRICT bias, const int32_t* WHITTLE_RESTRICT multipliers,             \
      const int32_t* WHITTLE_RESTRICT shifts, int32_t output_zero_point, int32_t output_min,         \
      int32_t output_max, int8_t* WHITTLE_RESTRICT output);

TERN_QS8_DECLARE(reference)
TERN_QS8_DECLARE(scalar)

// Load-time expansion onto the dense kernels (the runtime's FormatLayer runs ternary layers on the fp32 and
// int8 GEMM / IGEMM / depthwise operators of f32_ops.h and qs8_ops.h with these weights): the planes of
// output_channels rows of `reduction` weights -> dense [output_channels][reduction] (OHWI for a conv, the
// row layout of the planes), t * alpha[o] in fp32 (exactly +-alpha[o] or 0), or t itself in int8. The fp32
// layer then sums alpha * t * x where the ternary kernels compute alpha * sum t * x: the same products, in
// another rounding order, within the fp32 tolerance above; the int8 layer is bit-exact (the int8 kernels'
// folded bias bias - zero_point * sum t wraps like the ternary kernels' bias add).
void tern_expand_weights_f32(size_t output_channels, size_t reduction, const uint32_t* weight_nonzero,
                             const uint32_t* weight_sign, const float* alpha, float* weights);
void tern_expand_weights_s8(size_t output_channels, size_t reduction, const uint32_t* weight_nonzero,
                            const uint32_t* weight_sign, int8_t* weights);

// TWN quantization of weights fp32 [output_channels][reduction]: t = sign(w) where |w| > threshold[o],
// else 0; alpha[o] = mean |w| over the nonzero t (0 when there is none).
void tern_pack_weights(size_t output_channels, size_t reduction, const float* weights, const float* threshold,
                       uint32_t* weight_nonzero, uint32_t* weight_sign, float* alpha);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_TERN_CONV2D_H_
