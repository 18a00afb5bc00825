#include <immintrin.h>

#include "qs8_requantize.h"

// Batch-1 fully-connected on AVX-512 without VNNI, on the packing of the GEMV list (qs8_ops.h): 4 weight rows
// at a time share each 32 bytes of A, widened to int16 and multiplied pairwise into int32 (VPMADDWD: exact,
// no saturation), so the sums wrap exactly as the scalar kernel's. A is int8 (int8 or uint8 ^ input_flip).

static inline __m512i widen(const int8_t* x) {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)x));
}

void qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512(size_t nc, size_t k_size, const int8_t* a,
                                                     const void* packed_w, int8_t* c,
                                                     const qs8_gemmlowp_params* params) {
  const qs8_gemmlowp_params p = *params;  // c may alias *params (int8_t*)
  const size_t kc = (k_size + 63) / 64 * 64;
  const size_t k_main = k_size / 32 * 32;
  // The last partial 32 bytes of A through a masked load (the kernel never reads past k_size); its lanes
  // past k_size meet zero weights.
  const __mmask32 tail = (__mmask32)((UINT64_C(1) << (k_size - k_main)) - 1);
  // Bytes x ^ flip widened = widened x ^ the sign-extended flip.
  const __m512i flip = _mm512_set1_epi16((int16_t)(int8_t)p.input_flip);
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 16) {
    const qs8_channel_requant h = qs8_block_header(block, 16);
    const int8_t* w = (const int8_t*)(block + 16 * 4 * sizeof(int32_t));
    __m512i sums = _mm512_setzero_si512();
    for (size_t g = 0; g < 16 && n0 + g < nc; g += 4) {
      const int8_t* w0 = w + g * kc;
      const int8_t* w1 = w0 + kc;
      const int8_t* w2 = w1 + kc;
      const int8_t* w3 = w2 + kc;
      __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
      // Past k_size the weights are zero: the tail's lanes there add nothing.
      for (size_t k = 0; k < k_size; k += 32) {
        const __m512i va = _mm512_xor_si512(
            k < k_main ? widen(a + k) : _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(tail, a + k)), flip);
        s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(va, widen(w0 + k)));
        s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(va, widen(w1 + k)));
        s2 = _mm512_add_epi32(s2, _mm512_madd_epi16(va, widen(w2 + k)));
        s3 = _mm512_add_epi32(s3, _mm512_madd_epi16(va, widen(w3 + k)));
      }
      const __m128i s = qs8_sum4_avx512(s0, s1, s2, s3);
      sums = qs8_gemv_add_sums_avx512(sums, s);
    }
    qs8_gemv_store_block_avx512(c + n0, sums, nc - n0 < 16 ? nc - n0 : 16, &h, &p);
    block += 16 * 4 * sizeof(int32_t) + 16 * kc;
  }
}
