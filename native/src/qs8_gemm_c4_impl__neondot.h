// Body of the qs8 GEMM kernels MRx8c4 with SDOT (AArch64 dot product); each
// qs8_gemm_minmax_gemmlowp_ukernel_<MR>x8c4__neondot.c defines MR and the function name, then includes this
// file.
// The qs8_igemm_* files include it too, with WHITTLE_IGEMM and WHITTLE_IGEMM_GROUP (gemm_tile.h).
#include <arm_neon.h>
#include <string.h>

#include "gemm_tile.h"
#include "qs8_requantize.h"

// MR rows x 8 columns, KR = 4, k in steps of 16 (k_align 16): SDOT multiplies 4 int8 of a row (one lane of
// a 16-byte A load) by 4 k of 4 columns and adds the sums into int32 lanes.
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
    for (size_t k = 0; k < kc; k += 16) {
      int8x16_t va[MR];
      for (size_t r = 0; r < MR; r++) va[r] = vld1q_s8(WHITTLE_GEMM_A_AT(r, k));
#define WHITTLE_SDOT_LANE(lane)                                  \
  do {                                                           \
    const int8x16_t w_lo = vld1q_s8(w), w_hi = vld1q_s8(w + 16); \
    w += 32;                                                     \
    for (size_t r = 0; r < MR; r++) {                            \
      acc_lo[r] = vdotq_laneq_s32(acc_lo[r], w_lo, va[r], lane); \
      acc_hi[r] = vdotq_laneq_s32(acc_hi[r], w_hi, va[r], lane); \
    }                                                            \
  } while (0)
      WHITTLE_SDOT_LANE(0);
      WHITTLE_SDOT_LANE(1);
      WHITTLE_SDOT_LANE(2);
      WHITTLE_SDOT_LANE(3);
#undef WHITTLE_SDOT_LANE
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
