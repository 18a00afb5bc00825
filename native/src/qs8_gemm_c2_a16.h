// A rows for the c2 (VPMADDWD) qs8 GEMM kernels, sign-extended to int16 so that each (row, k pair) is a
// single 32-bit broadcast load instead of two byte loads, two extensions, a shift and an OR per pair and per
// column block. Included by qs8_gemm_c2_impl__avx2.h and qs8_gemm_c2_impl__avx512.h (AVX2 instructions only).
#ifndef WHITTLE_QS8_GEMM_C2_A16_H_
#define WHITTLE_QS8_GEMM_C2_A16_H_

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// k per conversion block: rows of kc <= this are converted once per call, longer ones once per column block
// and k block (an extension per 16 k against 16 VPMADDWD per row and 16 columns).
#define QS8_C2_A16_BLOCK 1024

// dst[i] = src[i] for i < len, sign-extended.
static inline void qs8_c2_widen_span(const int8_t* src, size_t len, int16_t* dst) {
  size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    _mm256_storeu_si256((__m256i*)(dst + i),
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(src + i))));
  }
  for (; i < len; i++) dst[i] = src[i];
}

// a16[r * QS8_C2_A16_BLOCK + i] = a_rows[r][k0 + i] for i < len (len <= QS8_C2_A16_BLOCK).
static inline void qs8_c2_widen_rows(size_t rows, const int8_t* const* a_rows, size_t k0, size_t len,
                                     int16_t* a16) {
  for (size_t r = 0; r < rows; r++) qs8_c2_widen_span(a_rows[r] + k0, len, a16 + r * QS8_C2_A16_BLOCK);
}

// The same for the indirect GEMM's rows (gemm_tile.h): A[r][k] = a_rows[r][k_offsets[k / group] + k % group];
// k0 and len are multiples of the group. Groups that lie end to end (a kernel row's taps without dilation)
// are widened as one span.
static inline void qs8_c2_widen_rows_indirect(size_t rows, const int8_t* const* a_rows,
                                              const int32_t* k_offsets, size_t group, size_t k0, size_t len,
                                              int16_t* a16) {
  for (size_t r = 0; r < rows; r++) {
    int16_t* dst = a16 + r * QS8_C2_A16_BLOCK;
    for (size_t g = 0; g < len;) {
      const int32_t first = k_offsets[(k0 + g) / group];
      size_t span = group;
      while (g + span < len && k_offsets[(k0 + g + span) / group] == first + (int32_t)span) span += group;
      qs8_c2_widen_span(a_rows[r] + first, span, dst + g);
      g += span;
    }
  }
}

#if defined(WHITTLE_IGEMM)
#define QS8_C2_WIDEN_ROWS(rows, k0, len, a16) \
  qs8_c2_widen_rows_indirect(rows, a_rows, k_offsets, WHITTLE_IGEMM_GROUP, k0, len, a16)
#else
#define QS8_C2_WIDEN_ROWS(rows, k0, len, a16) qs8_c2_widen_rows(rows, a_rows, k0, len, a16)
#endif

// The (k, k + 1) pair of a widened row as the 32-bit lane VPMADDWD multiplies.
static inline int32_t qs8_c2_pair(const int16_t* row, size_t k) {
  int32_t pair;
  memcpy(&pair, row + k, sizeof(pair));
  return pair;
}

#endif  // WHITTLE_QS8_GEMM_C2_A16_H_
