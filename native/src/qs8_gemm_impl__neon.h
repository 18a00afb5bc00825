// Body of the qs8 GEMM kernels MRx8 for NEON (ARMv7 and AArch64); each
// qs8_gemm_minmax_gemmlowp_ukernel_<MR>x8__neon.c defines MR and the function name, then includes this file.
// The qs8_igemm_* files include it too, with WHITTLE_IGEMM and WHITTLE_IGEMM_GROUP (gemm_tile.h).
#include <arm_neon.h>
#include <string.h>

#include "gemm_tile.h"
#include "qs8_requantize.h"

// MR rows x 8 columns, KR = 1, k in steps of 8 (k_align 8): A and weights widened to int16, then
// multiply-accumulate long by lane (VMLAL.S16), which ARMv7 NEON and AArch64 both have.
#define WHITTLE_MLAL_LANE(va_half, lane)                                              \
  do {                                                                                \
    const int16x8_t vw = vmovl_s8(vld1_s8(w));                                        \
    w += 8;                                                                           \
    for (size_t r = 0; r < MR; r++) {                                                 \
      acc_lo[r] = vmlal_lane_s16(acc_lo[r], vget_low_s16(vw), va_half(va[r]), lane);  \
      acc_hi[r] = vmlal_lane_s16(acc_hi[r], vget_high_s16(vw), va_half(va[r]), lane); \
    }                                                                                 \
  } while (0)

void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const int8_t),
                         const void* packed_w, int8_t* c, size_t c_stride,
                         const qs8_gemmlowp_params* params) {
  WHITTLE_GEMM_TILE_ROWS(MR, const int8_t, int8_t);
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 8) {
    const qs8_channel_requant h = qs8_block_header(block, 8);
    const int8_t* w = (const int8_t*)(block + 8 * 4 * sizeof(int32_t));
    int32x4_t acc_lo[MR], acc_hi[MR];
    for (size_t r = 0; r < MR; r++) {
      acc_lo[r] = vld1q_s32(h.bias);
      acc_hi[r] = vld1q_s32(h.bias + 4);
    }
    for (size_t k = 0; k < kc; k += 8) {
      int16x8_t va[MR];
      for (size_t r = 0; r < MR; r++) va[r] = vmovl_s8(vld1_s8(WHITTLE_GEMM_A_AT(r, k)));
      WHITTLE_MLAL_LANE(vget_low_s16, 0);
      WHITTLE_MLAL_LANE(vget_low_s16, 1);
      WHITTLE_MLAL_LANE(vget_low_s16, 2);
      WHITTLE_MLAL_LANE(vget_low_s16, 3);
      WHITTLE_MLAL_LANE(vget_high_s16, 0);
      WHITTLE_MLAL_LANE(vget_high_s16, 1);
      WHITTLE_MLAL_LANE(vget_high_s16, 2);
      WHITTLE_MLAL_LANE(vget_high_s16, 3);
    }
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 8);
    for (size_t r = 0; r < MR; r++) {
      const int8x8_t bytes = qs8_narrow8_neon(qs8_output_neon(acc_lo[r], &h, 0, params),
                                              qs8_output_neon(acc_hi[r], &h, 4, params), params);
      if (cols == 8) {
        vst1_s8(c_rows[r] + n0, bytes);
      } else {
        int8_t tmp[8];
        vst1_s8(tmp, bytes);
        memcpy(c_rows[r] + n0, tmp, cols);
      }
    }
    block += 8 * 4 * sizeof(int32_t) + kc * 8;
  }
}
