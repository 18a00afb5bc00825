#include "qs8_requantize_gemmlowp.h"

int32_t qs8_requantize_gemmlowp(int32_t x, int32_t multiplier, int32_t shift) {
  return qs8_requantize_gemmlowp_inline(x, multiplier, shift);
}
