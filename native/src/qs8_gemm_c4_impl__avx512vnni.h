// Body of the qs8 GEMM kernels MRx32c4 with VPDPBUSD; each
// qs8_gemm_minmax_gemmlowp_ukernel_<MR>x32c4__avx512vnni.c defines MR and the function name, then includes
// this file. MR is a compile-time constant, so the accumulator arrays live in registers (2 x MR ZMM).
//
// VPDPBUSD multiplies u8 x s8 and sums 4 consecutive k into int32 lanes. Its first multiplicand is
// unsigned, so A arrives as uint8 (int8 ^ 0x80, a_unsigned in the list) and the packed bias already
// subtracts the extra 128 * sum(w) (qs8_conv2d.c).
#include <immintrin.h>
#include <string.h>

#include "qs8_requantize.h"

void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                         const void* packed_w, int8_t* c, size_t c_stride,
                         const qs8_gemmlowp_params* params) {
  const int8_t* a_rows[MR];
  int8_t* c_rows[MR];
  for (size_t r = 0; r < MR; r++) {
    // Rows past mr repeat the last valid row: same result, written to the same place.
    const size_t row = r < mr ? r : mr - 1;
    a_rows[r] = a + row * a_stride;
    c_rows[r] = c + row * c_stride;
  }
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 32) {
    const qs8_channel_requant h = qs8_block_header(block, 32);
    const int8_t* w = (const int8_t*)(block + 32 * 4 * sizeof(int32_t));
    const __m512i b0 = _mm512_loadu_si512(h.bias), b1 = _mm512_loadu_si512(h.bias + 16);
    __m512i acc0[MR], acc1[MR];
    for (size_t r = 0; r < MR; r++) {
      acc0[r] = b0;
      acc1[r] = b1;
    }
    size_t k = 0;
    if (MR == 1) {
      // One row has only 2 accumulator chains, so VPDPBUSD's latency would bound it: a second pair of
      // accumulators takes every other group of 4 k.
      __m512i acc0_odd = _mm512_setzero_si512(), acc1_odd = _mm512_setzero_si512();
      for (; k + 8 <= kc; k += 8) {
        int32_t quads[2];
        memcpy(quads, a_rows[0] + k, sizeof(quads));
        const __m512i va0 = _mm512_set1_epi32(quads[0]), va1 = _mm512_set1_epi32(quads[1]);
        acc0[0] = _mm512_dpbusd_epi32(acc0[0], va0, _mm512_loadu_si512(w));
        acc1[0] = _mm512_dpbusd_epi32(acc1[0], va0, _mm512_loadu_si512(w + 64));
        acc0_odd = _mm512_dpbusd_epi32(acc0_odd, va1, _mm512_loadu_si512(w + 128));
        acc1_odd = _mm512_dpbusd_epi32(acc1_odd, va1, _mm512_loadu_si512(w + 192));
        w += 256;
      }
      acc0[0] = _mm512_add_epi32(acc0[0], acc0_odd);
      acc1[0] = _mm512_add_epi32(acc1[0], acc1_odd);
    }
    for (; k < kc; k += 4) {
      const __m512i w0 = _mm512_loadu_si512(w);
      const __m512i w1 = _mm512_loadu_si512(w + 64);
      w += 128;
      for (size_t r = 0; r < MR; r++) {
        int32_t quad;
        memcpy(&quad, a_rows[r] + k, sizeof(quad));
        const __m512i va = _mm512_set1_epi32(quad);
        acc0[r] = _mm512_dpbusd_epi32(acc0[r], va, w0);
        acc1[r] = _mm512_dpbusd_epi32(acc1[r], va, w1);
      }
    }
    const size_t cols = nc - n0 < 32 ? nc - n0 : 32;
    for (size_t r = 0; r < MR; r++) {
      qs8_store16_avx512(c_rows[r] + n0, qs8_output_avx512(acc0[r], &h, 0, params), cols, params);
      if (cols > 16) {
        qs8_store16_avx512(c_rows[r] + n0 + 16, qs8_output_avx512(acc1[r], &h, 16, params), cols - 16,
                           params);
      }
    }
    block += 32 * 4 * sizeof(int32_t) + kc * 32;
  }
}
