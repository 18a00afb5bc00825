// sparse fp32 kernels for AVX2 (compile with -mavx2 -mfma): 8 nonzeros per step, their inputs fetched
// with one vgatherdps and multiplied-accumulated by one FMA.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "sparse_conv2d_impl.h"

static float sparse_f32_dot_avx2(const float* x, const uint32_t* columns, const float* values, size_t count) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  size_t e = 0;
  for (; e + 16 <= count; e += 16) {
    const __m256i c0 = _mm256_loadu_si256((const __m256i*)(columns + e));
    const __m256i c1 = _mm256_loadu_si256((const __m256i*)(columns + e + 8));
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(values + e), _mm256_i32gather_ps(x, c0, 4), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(values + e + 8), _mm256_i32gather_ps(x, c1, 4), acc1);
  }
  for (; e + 8 <= count; e += 8) {
    const __m256i c = _mm256_loadu_si256((const __m256i*)(columns + e));
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(values + e), _mm256_i32gather_ps(x, c, 4), acc0);
  }
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  half = _mm_add_ss(half, _mm_movehdup_ps(half));
  float sum = _mm_cvtss_f32(half);
  for (; e < count; e++) {
    sum += values[e] * x[columns[e]];
  }
  return sum;
}

SPARSE_F32_DEFINE_KERNELS(avx2, sparse_f32_dot_avx2)
// 4 rows x 16 columns: 8 of the 16 ymm registers accumulate, with FMA.
typedef float sparse_planes_v8 __attribute__((vector_size(8 * sizeof(float))));
#define SPARSE_PLANES_MADD_FMA(acc, w, x) \
  ((sparse_planes_v8)_mm256_fmadd_ps((__m256)(w), (__m256)(x), (__m256)(acc)))
SPARSE_F32_DEFINE_PLANES_KERNEL(avx2, sparse_planes_v8, 8, SPARSE_PLANES_MADD_FMA)
#endif
