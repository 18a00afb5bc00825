// The GEMV body (qs8_gemv_impl.h) on AVX2: 16 bytes of A and of each weight row widened to int16 and
// multiplied pairwise into int32 (VPMADDWD: exact, no saturation). A is int8 (int8, or uint8 ^ input_flip).
#include "qs8_gemv_impl__step16.h"

typedef __m256i qs8_gemv_acc;
typedef __m256i qs8_gemv_a;

// Bytes x ^ flip widened = widened x ^ the sign-extended flip.
static inline __m256i qs8_gemv_widen(const int8_t* x) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)x));
}

// Sums of the 8 int32 lanes of each of s0..s3 into lanes g .. g + 3.
static inline qs8_gemv_sums qs8_gemv_add_group(qs8_gemv_sums sums, size_t g, __m256i s0, __m256i s1,
                                               __m256i s2, __m256i s3) {
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(s0, s1), _mm256_hadd_epi32(s2, s3));
  _mm_storeu_si128((__m128i*)(sums.v + g),
                   _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)));
  return sums;
}

static inline void qs8_gemv_store_block(int8_t* c, const qs8_gemv_sums* sums, size_t count,
                                        const qs8_channel_requant* h, const qs8_gemmlowp_params* p) {
  const __m256i acc0 = _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)sums->v),
                                        _mm256_loadu_si256((const __m256i*)h->bias));
  const __m256i acc1 = _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)(sums->v + 8)),
                                        _mm256_loadu_si256((const __m256i*)(h->bias + 8)));
  const __m128i bytes = qs8_narrow16_avx2(qs8_output_avx2(acc0, h, 0, p), qs8_output_avx2(acc1, h, 8, p), p);
  int8_t out[16];
  _mm_storeu_si128((__m128i*)out, bytes);
  memcpy(c, out, count);
}

#define QS8_GEMV_LOAD_A(a, tail, p) \
  _mm256_xor_si256(qs8_gemv_widen(a), _mm256_set1_epi16((int16_t)(int8_t)(p)->input_flip))
#define QS8_GEMV_ZERO() _mm256_setzero_si256()
#define QS8_GEMV_DOT(acc, va, w) _mm256_add_epi32(acc, _mm256_madd_epi16(va, qs8_gemv_widen(w)))
#define QS8_GEMV_ADD(x, y) _mm256_add_epi32(x, y)

#define WHITTLE_KERNEL_NAME qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx2
#include "qs8_gemv_impl.h"
