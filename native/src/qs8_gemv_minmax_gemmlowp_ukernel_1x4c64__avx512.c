#include <immintrin.h>

#include "qs8_requantize.h"

// Batch-1 fully-connected on AVX-512 without VNNI, on the packing of the GEMV list (qs8_ops.h): 4 weight rows
// at a time share each 32 bytes of A, widened to int16 and multiplied pairwise into int32 (VPMADDWD: exact,
// no saturation), so the sums wrap exactly as the scalar kernel's. A is int8 (int8 or uint8 ^ input_flip).

// Sums of the 16 int32 lanes of each of a, b, c, d, as the 4 lanes of the result.
static inline __m128i reduce4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m256i a8 = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
  const __m256i b8 = _mm256_add_epi32(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1));
  const __m256i c8 = _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
  const __m256i d8 = _mm256_add_epi32(_mm512_castsi512_si256(d), _mm512_extracti64x4_epi64(d, 1));
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a8, b8), _mm256_hadd_epi32(c8, d8));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

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
      sums = _mm512_inserti32x4(sums, reduce4(s0, s1, s2, s3), 0);
      // Rotate the 4 new sums up to their place: lanes g .. g + 3 once all groups are in.
      sums = _mm512_alignr_epi32(sums, sums, 4);
    }
    // After the groups present, the lanes were rotated once per group: undo for fewer than 4 groups.
    const size_t groups = (nc - n0 < 16 ? nc - n0 + 3 : 16) / 4;
    for (size_t r = groups; r < 4; r++) sums = _mm512_alignr_epi32(sums, sums, 4);
    const __m512i acc = _mm512_add_epi32(sums, _mm512_loadu_si512(h.bias));
    qs8_store16_avx512(c + n0, qs8_output_avx512(acc, &h, 0, &p), nc - n0 < 16 ? nc - n0 : 16, &p);
    block += 16 * 4 * sizeof(int32_t) + 16 * kc;
  }
}
