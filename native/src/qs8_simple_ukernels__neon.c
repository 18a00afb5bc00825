// The element-wise and pooling kernels of qs8_simple_impl.h for NEON (AArch64 and ARMv7), with a vector
// residual add.
#include <arm_neon.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qs8_requantize.h"

// 8 bytes widened to two vectors of 4 int32, minus the zero point, shifted left by QS8_ADD_LEFT_SHIFT.
static inline void qs8_add_input__neon(const void* x, bool u, int32x4_t zero_point, int32x4_t* lo,
                                       int32x4_t* hi) {
  const int16x8_t w = u ? vreinterpretq_s16_u16(vmovl_u8(vld1_u8((const uint8_t*)x))) : vmovl_s8(vld1_s8(x));
  *lo = vshlq_n_s32(vsubq_s32(vmovl_s16(vget_low_s16(w)), zero_point), QS8_ADD_LEFT_SHIFT);
  *hi = vshlq_n_s32(vsubq_s32(vmovl_s16(vget_high_s16(w)), zero_point), QS8_ADD_LEFT_SHIFT);
}

// The residual add, 8 elements at a time, with the scalar loop's arithmetic (qs8_add__reference): each
// input's (x - zero_point) << QS8_ADD_LEFT_SHIFT requantized, the sum requantized, offset and clamped.
// Returns the count done (a multiple of 8).
static size_t qs8_vadd_vectors__neon(size_t n, const void* a, const void* b, void* y, const qs8_add_params* p,
                                     bool u) {
  const qs8_add_requant q = qs8_add_requant_of(p);
  int32x4_t multiplier[3], left[3], right[3];  // a, b, the output
  for (int i = 0; i < 3; i++) {
    multiplier[i] = vdupq_n_s32(q.multiplier[i]);
    left[i] = vdupq_n_s32(q.left_shift[i]);
    right[i] = vdupq_n_s32(q.right_shift[i]);
  }
  const int32x4_t a_zero_point = vdupq_n_s32(p->a_zero_point), b_zero_point = vdupq_n_s32(p->b_zero_point);
  // The output zero point is added after clamping to [min - zp, max - zp]: no overflow, the scalar clamp.
  const int32x4_t lo = vdupq_n_s32(p->output_min - p->output_zero_point);
  const int32x4_t hi = vdupq_n_s32(p->output_max - p->output_zero_point);
  const int32x4_t output_zero_point = vdupq_n_s32(p->output_zero_point);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    int32x4_t xa[2], xb[2], v[2];
    qs8_add_input__neon((const unsigned char*)a + i, u, a_zero_point, &xa[0], &xa[1]);
    qs8_add_input__neon((const unsigned char*)b + i, u, b_zero_point, &xb[0], &xb[1]);
    for (int h = 0; h < 2; h++) {
      const int32x4_t sum = vaddq_s32(qs8_requantize_neon(xa[h], multiplier[0], left[0], right[0]),
                                      qs8_requantize_neon(xb[h], multiplier[1], left[1], right[1]));
      const int32x4_t r = qs8_requantize_neon(sum, multiplier[2], left[2], right[2]);
      v[h] = vaddq_s32(vminq_s32(vmaxq_s32(r, lo), hi), output_zero_point);
    }
    // In the type's range: the saturating narrowings keep the values.
    const int16x8_t v16 = vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1]));
    if (u) {
      vst1_u8((uint8_t*)y + i, vqmovun_s16(v16));
    } else {
      vst1_s8((int8_t*)y + i, vqmovn_s16(v16));
    }
  }
  return i;
}

#define WHITTLE_VADD_VECTORS qs8_vadd_vectors__neon
#define WHITTLE_SUFFIX neon
#define WHITTLE_SUFFIX_NAME "neon"
#include "qs8_simple_impl.h"
