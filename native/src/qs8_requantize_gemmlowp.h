// The scalar int8 requantization every int8 kernel shares (qs8 = quantized signed 8-bit, per-channel
// requantization), and the limits that keep it exact.
//
//   gemmlowp: fixed-point requantization exactly as TFLite's MultiplyByQuantizedMultiplier: two roundings,
//             SaturatingRoundingDoublingHighMul (ties toward +infinity, a side effect of its truncating
//             division) then RoundingDivideByPOT (ties away from zero). XNNPACK's "rndnu" is one rounding
//             with ties up, which gives different bits, so that name would be wrong here.
#ifndef WHITTLE_QS8_REQUANTIZE_GEMMLOWP_H_
#define WHITTLE_QS8_REQUANTIZE_GEMMLOWP_H_

#include <stdint.h>

#include "kernel_abi.h"

WHITTLE_EXTERN_C_BEGIN

// Largest dot-product length of an int8 fully-connected row: with |input - input_zero_point| <= 255 and
// |weight| <= 128, 65536 * 255 * 128 < 2^31, so the int32 dot product can never overflow. Callers check it.
#define QS8_FC_MAX_INPUT_CHANNELS 65536

// Smallest and largest shift of a requantization multiplier (positive = left shift).
#define QS8_REQUANT_MIN_SHIFT (-31)
#define QS8_REQUANT_MAX_SHIFT 30

// One value through TFLite's MultiplyByQuantizedMultiplier: round(x * multiplier * 2^(shift - 31)).
// multiplier: Q31 fixed point, normally in [2^30, 2^31) or 0; shift in [QS8_REQUANT_MIN_SHIFT,
// QS8_REQUANT_MAX_SHIFT]. The left shift wraps modulo 2^32 like TFLite's int32 multiply.
int32_t qs8_requantize_gemmlowp(int32_t x, int32_t multiplier, int32_t shift);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_QS8_REQUANTIZE_GEMMLOWP_H_
