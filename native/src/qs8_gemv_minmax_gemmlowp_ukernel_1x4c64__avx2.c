#include <string.h>

#include "qs8_requantize.h"

// Batch-1 fully-connected on AVX2, on the packing of the GEMV list (qs8_ops.h): 4 weight rows at a time
// share each 16 bytes of A, widened to int16 and multiplied pairwise into int32 (VPMADDWD: exact, no
// saturation), so the sums wrap exactly as the scalar kernel's. A is int8 (int8 or uint8 ^ input_flip).

// Sums of the 8 int32 lanes of each of a, b, c, d, as the 4 lanes of the result.
static inline __m128i reduce4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

static inline __m256i widen(const int8_t* x) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)x));
}

void qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx2(size_t nc, size_t k_size, const int8_t* a,
                                                   const void* packed_w, int8_t* c,
                                                   const qs8_gemmlowp_params* params) {
  const qs8_gemmlowp_params p = *params;  // c may alias *params (int8_t*)
  const size_t kc = (k_size + 63) / 64 * 64;
  const size_t k_main = k_size / 16 * 16;
  // The last partial 16 bytes of A, zero-padded (the kernel never reads past k_size); its lanes past k_size
  // meet zero weights.
  int8_t tail[16] = {0};
  memcpy(tail, a + k_main, k_size - k_main);
  const __m256i flip = _mm256_set1_epi16((int16_t)(int8_t)p.input_flip);
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 16) {
    const qs8_channel_requant h = qs8_block_header(block, 16);
    const int8_t* w = (const int8_t*)(block + 16 * 4 * sizeof(int32_t));
    int32_t sums[16] = {0};
    for (size_t g = 0; g < 16 && n0 + g < nc; g += 4) {
      const int8_t* w0 = w + g * kc;
      const int8_t* w1 = w0 + kc;
      const int8_t* w2 = w1 + kc;
      const int8_t* w3 = w2 + kc;
      __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
      // Past k_size the weights are zero: the tail's lanes there add nothing.
      for (size_t k = 0; k < k_size; k += 16) {
        // Bytes x ^ flip widened = widened x ^ the sign-extended flip.
        const __m256i va = _mm256_xor_si256(widen(k < k_main ? a + k : tail), flip);
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(va, widen(w0 + k)));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(va, widen(w1 + k)));
        s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(va, widen(w2 + k)));
        s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(va, widen(w3 + k)));
      }
      _mm_storeu_si128((__m128i*)(sums + g), reduce4(s0, s1, s2, s3));
    }
    const size_t count = nc - n0 < 16 ? nc - n0 : 16;
    const __m256i acc0 = _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)sums),
                                          _mm256_loadu_si256((const __m256i*)h.bias));
    const __m256i acc1 = _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)(sums + 8)),
                                          _mm256_loadu_si256((const __m256i*)(h.bias + 8)));
    const __m128i bytes =
        qs8_narrow16_avx2(qs8_output_avx2(acc0, &h, 0, &p), qs8_output_avx2(acc1, &h, 8, &p), &p);
    if (count == 16) {
      _mm_storeu_si128((__m128i*)(c + n0), bytes);
    } else {
      int8_t out[16];
      _mm_storeu_si128((__m128i*)out, bytes);
      memcpy(c + n0, out, count);
    }
    block += 16 * 4 * sizeof(int32_t) + 16 * kc;
  }
}
