// XNOR-Net kernels (Rastegari et al. 2016): binary weights and binary activations, bit-packed, combined by
// XOR + popcount. For n valid (non-padding) products of +-1 values,
//   dot = sum a*w = n - 2 * popcount(a_bits XOR w_bits)
// output[n][oy][ox][o] = clamp(((float)dot * alpha[o]) * K[n][oy][ox] + bias[o], output_min, output_max)
// with K the optional input-scaling plane of the paper (NULL = 1) and bias optional (NULL = 0). The epilogue
// is the same expression in every variant (xnor_output below), so all variants are bit-exact in fp32 too
// (build with -ffp-contract=off so that no compiler fuses it into an FMA on one path only).
//
// Padding: padded positions have real value 0, neither +1 nor -1. The kernels skip padded taps and count
// only valid products in n, which is exactly the reference with zero padding. (larq compute-engine pads
// with +1 bits and adds a per-position correction because its inner loop runs over a padded im2col buffer;
// a direct convolution that knows each output position's valid tap range needs no correction.)
//
// Preconditions (the caller checks them; the kernels do not): 0 <= oc_begin <= oc_end <= groups *
// group_output_channels, geometry fields >= 1 (paddings >= 0), buffers of the documented sizes, the output
// not overlapping any input, K = kernel_height * kernel_width * group_input_channels <= XNOR_MAX_REDUCTION,
// unused high bits 0.
//
// Bit layout (native/formats.md): a bit is 1 for -1 (x < 0; +0, -0 and NaN give 0, i.e. +1).
//   activations [batch][height][width][groups][xnor_group_words(group_input_channels)] uint64 words;
//               channel c of a group is bit c % 64 of word c / 64; bits past the channel count are 0.
//               One input channel per group (depthwise layers, one-channel images): packed across the
//               groups instead, [batch][height][width][xnor_group_words(groups)], input channel c (= group
//               c) at bit c % 64 of word c / 64 (xnor_pixel_words).
//   weights     [output_channels][kernel_height][kernel_width][xnor_group_words(group_input_channels)],
//               same bit order, bits past group_input_channels are 0.
//
// Functions the binding exposes:
//   xnor_pack_select(level) -> pack: xnor_pack_ukernel__{scalar,avx2,avx512,neon} (fp32 -> activation bits),
//     pack_qs8: xnor_pack_qs8_ukernel__{same} (int8 and its zero point -> activation bits)
//   xnor_conv2d_select(level) -> {conv2d, fc}:
//     xnor_conv2d_minmax_ukernel__{scalar,avx2,avx512,avx512vpopcnt,neon}, xnor_fc_minmax_ukernel__{same}
//   xnor_pack_weights, xnor_input_scale_map
//   Build with -ffp-contract=off (see xnor_output).
#ifndef WHITTLE_XNOR_CONV2D_H_
#define WHITTLE_XNOR_CONV2D_H_

#include "conv2d_geometry.h"

WHITTLE_EXTERN_C_BEGIN

// Largest kernel_height * kernel_width * group_input_channels: dot and n fit int32 and (float)dot is exact.
#define XNOR_MAX_REDUCTION (UINT32_C(1) << 24)

static inline size_t xnor_group_words(size_t group_channels) { return (group_channels + 63) / 64; }

// uint64 words of one packed activation pixel (the layout above).
static inline size_t xnor_pixel_words(size_t groups, size_t group_channels) {
  return group_channels == 1 ? xnor_group_words(groups) : groups * xnor_group_words(group_channels);
}

// The epilogue, one definition for every variant: three separate roundings, never fused.
static inline float xnor_output(int32_t dot, float alpha, float scale, float bias, float output_min,
                                float output_max) {
  float value = (float)dot * alpha;
  value = value * scale;
  value = value + bias;
  value = value < output_min ? output_min : value;
  return value > output_max ? output_max : value;
}

// input fp32 [pixels][groups * group_channels] -> output [pixels][xnor_pixel_words(groups, group_channels)].
typedef void (*xnor_pack_fn)(size_t pixels, size_t groups, size_t group_channels, const float* input,
                             uint64_t* output);
// The same from int8 activations x = scale * (q - zero_point) with scale > 0 (an int8 producer read without
// its dequantize): bit 1 exactly when q < zero_point, the bit the fp32 pack gives the dequantized value.
typedef void (*xnor_pack_qs8_fn)(size_t pixels, size_t groups, size_t group_channels, const int8_t* input,
                                 int32_t zero_point, uint64_t* output);

// input_scale: fp32 [batch][output_height][output_width] or NULL.
typedef void (*xnor_conv2d_fn)(const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,
                               const uint64_t* input_bits, const uint64_t* weight_bits, const float* alpha,
                               const float* input_scale, const float* bias, float output_min,
                               float output_max, float* output);
// Fully connected: input_bits [batch][xnor_group_words(input_channels)], weight_bits
// [output_channels][xnor_group_words(input_channels)], input_scale [batch] or NULL, output
// [batch][output_channels].
typedef void (*xnor_fc_fn)(size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin,
                           size_t oc_end, const uint64_t* input_bits, const uint64_t* weight_bits,
                           const float* alpha, const float* input_scale, const float* bias, float output_min,
                           float output_max, float* output);

#define XNOR_DECLARE(isa)                                                                          \
  void xnor_conv2d_minmax_ukernel__##isa(                                                          \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end,                     \
      const uint64_t* WHITTLE_RESTRICT input_bits, const uint64_t* WHITTLE_RESTRICT weight_bits,   \
      const float* WHITTLE_RESTRICT alpha, const float* WHITTLE_RESTRICT input_scale,              \
      const float* WHITTLE_RESTRICT bias, float output_min, float output_max,                      \
      float* WHITTLE_RESTRICT output);                                                             \
  void xnor_fc_minmax_ukernel__##isa(                                                              \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end, \
      const uint64_t* WHITTLE_RESTRICT input_bits, const uint64_t* WHITTLE_RESTRICT weight_bits,   \
      const float* WHITTLE_RESTRICT alpha, const float* WHITTLE_RESTRICT input_scale,              \
      const float* WHITTLE_RESTRICT bias, float output_min, float output_max,                      \
      float* WHITTLE_RESTRICT output);

#define XNOR_PACK_DECLARE(isa)                                                                           \
  void xnor_pack_ukernel__##isa(size_t pixels, size_t groups, size_t group_channels,                     \
                                const float* WHITTLE_RESTRICT input, uint64_t* WHITTLE_RESTRICT output); \
  void xnor_pack_qs8_ukernel__##isa(size_t pixels, size_t groups, size_t group_channels,                 \
                                    const int8_t* WHITTLE_RESTRICT input, int32_t zero_point,            \
                                    uint64_t* WHITTLE_RESTRICT output);

XNOR_DECLARE(reference)
XNOR_DECLARE(scalar)
XNOR_PACK_DECLARE(scalar)
#if defined(__x86_64__) || defined(_M_X64)
XNOR_DECLARE(avx2)
XNOR_DECLARE(avx512)
XNOR_DECLARE(avx512vpopcnt)
XNOR_PACK_DECLARE(avx2)
XNOR_PACK_DECLARE(avx512)
#endif
#if defined(__arm__) || defined(__aarch64__)
XNOR_DECLARE(neon)
XNOR_PACK_DECLARE(neon)
#endif

typedef struct xnor_conv2d_variant {
  whittle_isa isa;
  const char* name;
  xnor_conv2d_fn conv2d;
  xnor_fc_fn fc;
} xnor_conv2d_variant;

typedef struct xnor_pack_variant {
  whittle_isa isa;
  const char* name;
  xnor_pack_fn pack;
  xnor_pack_qs8_fn pack_qs8;
} xnor_pack_variant;

// Every compiled-in variant, in the order of kernel_abi.h (best first, scalar last).
WHITTLE_DECLARE_VARIANTS(xnor_conv2d)
// Every compiled-in variant, in the order of kernel_abi.h (best first, scalar last).
WHITTLE_DECLARE_VARIANTS(xnor_pack)

// weights fp32 [output_channels][taps][group_channels] (taps = kernel_height * kernel_width) -> weight_bits
// [output_channels][taps][xnor_group_words(group_channels)] and alpha[o] = mean |w[o]|.
void xnor_pack_weights(size_t output_channels, size_t taps, size_t group_channels, const float* weights,
                       uint64_t* weight_bits, float* alpha);

// The paper's K: A[n][y][x] = mean over all channels of |input|, then K = A averaged over each output
// position's kernel window (padding counts as 0, the divisor is always kernel_height * kernel_width).
// input fp32 NHWC, k_map [batch][output_height][output_width].
void xnor_input_scale_map(const whittle_conv2d_geometry* geometry, const float* input, float* k_map);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_XNOR_CONV2D_H_
