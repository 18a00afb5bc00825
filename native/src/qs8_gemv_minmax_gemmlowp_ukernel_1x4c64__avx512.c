// The GEMV body (qs8_gemv_impl.h) on AVX-512 without VNNI: 32 bytes of A and of each weight row widened to
// int16 and multiplied pairwise into int32 (VPMADDWD: exact, no saturation). A is int8 (int8, or uint8 ^
// input_flip).
#include "qs8_gemv_impl__avx512.h"

// The last step of A through a masked load.
typedef struct {
  __mmask32 mask;
} qs8_gemv_tail;

static inline qs8_gemv_tail qs8_gemv_tail_of(const int8_t* a, size_t k_size, const qs8_gemmlowp_params* p) {
  (void)a;
  (void)p;
  const qs8_gemv_tail t = {(__mmask32)((UINT64_C(1) << (k_size % 32)) - 1)};
  return t;
}

// Bytes x ^ flip widened = widened x ^ the sign-extended flip.
static inline __m512i qs8_gemv_flip(__m256i bytes, const qs8_gemmlowp_params* p) {
  return _mm512_xor_si512(_mm512_cvtepi8_epi16(bytes), _mm512_set1_epi16((int16_t)(int8_t)p->input_flip));
}

#define QS8_GEMV_STEP 32
#define QS8_GEMV_LOAD_A(a, tail, p) qs8_gemv_flip(_mm256_loadu_si256((const __m256i*)(a)), p)
#define QS8_GEMV_LOAD_TAIL(a, tail, p) qs8_gemv_flip(_mm256_maskz_loadu_epi8((tail)->mask, a), p)
#define QS8_GEMV_DOT(acc, va, w) \
  _mm512_add_epi32(acc, _mm512_madd_epi16(va, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(w)))))

#define WHITTLE_KERNEL_NAME qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512
#include "qs8_gemv_impl.h"
