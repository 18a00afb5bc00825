// fp32 vectors for AVX2 (FMA): 8-float YMM (f32_vec.h); partial loads and stores are masked (a full store
// stays a plain one).
#include <immintrin.h>

typedef __m256 f32v;
#define F32V_W 8
#define F32V_X86(op) _mm256_##op##_ps
#define F32V_LOAD_N(p, n) _mm256_maskload_ps(p, f32v_avx2_mask(n))
#define F32V_STORE_N(p, v, n) f32v_avx2_store_n(p, v, n)

// Lanes < n (<= 8) set.
static inline __m256i f32v_avx2_mask(size_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline void f32v_avx2_store_n(float* p, __m256 v, size_t n) {
  if (n == 8) {
    _mm256_storeu_ps(p, v);
  } else {
    _mm256_maskstore_ps(p, f32v_avx2_mask(n), v);
  }
}

#include "f32_vec.h"
