// The GEMV body (qs8_gemv_impl.h) with VPDPBUSD on 64-byte steps of A. VPDPBUSD multiplies u8 x s8, so A is
// uint8 (int8 ^ 0x80; the bias takes back the extra 128 * sum(w)).
#include "qs8_gemv_impl__avx512.h"

// The last step of A through a masked load.
typedef struct {
  __mmask64 mask;
} qs8_gemv_tail;

static inline qs8_gemv_tail qs8_gemv_tail_of(const int8_t* a, size_t k_size, const qs8_gemmlowp_params* p) {
  (void)a;
  (void)p;
  const qs8_gemv_tail t = {((__mmask64)1 << (k_size % 64)) - 1};
  return t;
}

static inline __m512i qs8_gemv_flip(__m512i bytes, const qs8_gemmlowp_params* p) {
  return _mm512_xor_si512(bytes, _mm512_set1_epi8((char)p->input_flip));
}

#define QS8_GEMV_STEP 64
#define QS8_GEMV_LOAD_A(a, tail, p) qs8_gemv_flip(_mm512_loadu_si512(a), p)
#define QS8_GEMV_LOAD_TAIL(a, tail, p) qs8_gemv_flip(_mm512_maskz_loadu_epi8((tail)->mask, a), p)
#define QS8_GEMV_DOT(acc, va, w) _mm512_dpbusd_epi32(acc, va, _mm512_loadu_si512(w))

#define WHITTLE_KERNEL_NAME qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512vnni
#include "qs8_gemv_impl.h"
