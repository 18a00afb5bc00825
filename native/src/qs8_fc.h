// Signed int8 fully-connected kernels (qs8 = quantized signed 8-bit, per-channel requantization).
//
// Naming grammar: <dtype>_<op>_<activation>_<requantization>_ukernel_<MRxNR>__<isa>.
//   gemmlowp: fixed-point requantization exactly as TFLite's MultiplyByQuantizedMultiplier: two roundings,
//             SaturatingRoundingDoublingHighMul (ties toward +infinity, a side effect of its truncating
//             division) then RoundingDivideByPOT (ties away from zero). XNNPACK's "rndnu" is one rounding
//             with ties up, which gives different bits, so that name would be wrong here.
#ifndef WHITTLE_QS8_FC_H_
#define WHITTLE_QS8_FC_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define WHITTLE_RESTRICT __restrict
extern "C" {
#else
#define WHITTLE_RESTRICT restrict
#endif

// Largest input_channels the kernel accepts: with |input - input_zero_point| <= 255 and |weight| <= 128,
// 65536 * 255 * 128 < 2^31, so the int32 dot product can never overflow. Callers check it.
#define QS8_FC_MAX_INPUT_CHANNELS 65536

// Smallest and largest shift of a requantization multiplier (positive = left shift).
#define QS8_REQUANT_MIN_SHIFT (-31)
#define QS8_REQUANT_MAX_SHIFT 30

// output[b][o] = clamp(output_zero_point + requantize(bias[o] + sum_i (input[b][i] - input_zero_point) *
//                weights[o][i], multipliers[o], shifts[o]), output_min, output_max)
//
// Shapes (row-major, no padding between rows):
//   input       int8  [batch][input_channels]
//   weights     int8  [output_channels][input_channels], symmetric (zero point 0)
//   bias        int32 [output_channels], in units of input_scale * weight_scale[o]
//   multipliers int32 [output_channels], Q31 fixed point, normally in [2^30, 2^31) or 0
//   shifts      int32 [output_channels], in [QS8_REQUANT_MIN_SHIFT, QS8_REQUANT_MAX_SHIFT]
//   output      int8  [batch][output_channels], must not overlap any input
// Preconditions (the caller checks them; the kernel does not): every dimension >= 1, input_channels <=
// QS8_FC_MAX_INPUT_CHANNELS, zero points and min/max in [-128, 127], output_min <= output_max.
// Adding the bias wraps modulo 2^32 like TFLite's int32 arithmetic does on every target.
void qs8_fc_minmax_gemmlowp_ukernel__scalar(
    size_t batch, size_t input_channels, size_t output_channels, const int8_t* WHITTLE_RESTRICT input,
    int32_t input_zero_point, const int8_t* WHITTLE_RESTRICT weights, const int32_t* WHITTLE_RESTRICT bias,
    const int32_t* WHITTLE_RESTRICT multipliers, const int32_t* WHITTLE_RESTRICT shifts,
    int32_t output_zero_point, int32_t output_min, int32_t output_max, int8_t* WHITTLE_RESTRICT output);

// One value through TFLite's MultiplyByQuantizedMultiplier: round(x * multiplier * 2^(shift - 31)).
int32_t qs8_requantize_gemmlowp(int32_t x, int32_t multiplier, int32_t shift);

#ifdef __cplusplus
}
#endif

#endif  // WHITTLE_QS8_FC_H_
