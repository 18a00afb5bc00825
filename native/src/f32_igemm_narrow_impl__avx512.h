// Body of the indirect GEMM kernels of the convolutions with at most 16 output channels (LeNet-sized layers,
// stems), AVX-512: MR rows x 16 columns; each f32_igemm_narrow_minmax_ukernel_<MR>x16c2__avx512.c defines MR,
// NARROW_SINGLES and the function name, then includes this file. With one vector of columns per row, a
// 1-float broadcast per FMA would make the loads (two per cycle) the bound; here most reduction elements come
// in adjacent pairs (f32_ops.h, f32_igemm_narrow_ukernel_fn), read with one 64-bit broadcast that feeds two
// FMAs: lane 2j of one accumulator sums the pair's first elements for column col(j), lane 2j + 1 its second
// ones, and the epilogue adds the two (the sum order of the 32-column kernel's narrow path: evens, odds, then
// both). Single elements: with NARROW_SINGLES, in a third accumulator per row (one FMA each; 3 x MR
// accumulators, so MR <= 8), added last; without, in the even lanes of the pair accumulators (two FMAs each).
#include <immintrin.h>
#include <string.h>

#include "f32_ops.h"
#define WHITTLE_IGEMM
#include "gemm_tile.h"

// Every loop over the tile's rows unrolled, so the accumulators stay in registers between the loops.
#define NARROW_ROWS _Pragma("GCC unroll 16") for (size_t r = 0; r < MR; r++)

void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t pairs, size_t singles, const float* const* a,
                         const int32_t* offsets, const float* w, float* c, size_t c_stride, float min,
                         float max) {
  WHITTLE_GEMM_TILE_ROWS(MR, const float, float);
  // Within each 128-bit lane, unpacklo pairs columns 4L and 4L + 1, unpackhi columns 4L + 2 and 4L + 3.
  const __m512 bias = _mm512_loadu_ps(w), zero = _mm512_setzero_ps();
  w += 16;
  __m512 lo[MR], hi[MR];
  const __m512 bias_lo = _mm512_unpacklo_ps(bias, zero), bias_hi = _mm512_unpackhi_ps(bias, zero);
  NARROW_ROWS {
    lo[r] = bias_lo;
    hi[r] = bias_hi;
  }
  for (size_t p = 0; p < pairs; p++) {
    const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);
    w += 32;
    const __m512 wlo = _mm512_unpacklo_ps(w0, w1), whi = _mm512_unpackhi_ps(w0, w1);
    const int32_t offset = offsets[p];
    NARROW_ROWS {
      double pair;
      memcpy(&pair, a_rows[r] + offset, sizeof(pair));
      const __m512 va = _mm512_castpd_ps(_mm512_set1_pd(pair));
      lo[r] = _mm512_fmadd_ps(va, wlo, lo[r]);
      hi[r] = _mm512_fmadd_ps(va, whi, hi[r]);
    }
  }
#if NARROW_SINGLES
  __m512 sg[MR];
  NARROW_ROWS sg[r] = zero;
  for (size_t s = 0; s < singles; s++) {
    const __m512 w0 = _mm512_loadu_ps(w);
    w += 16;
    const int32_t offset = offsets[pairs + s];
    NARROW_ROWS sg[r] = _mm512_fmadd_ps(_mm512_set1_ps(a_rows[r][offset]), w0, sg[r]);
  }
#else
  // Single elements go to the even lanes (their odd-lane weights are zero).
  for (size_t s = 0; s < singles; s++) {
    const __m512 w0 = _mm512_loadu_ps(w);
    w += 16;
    const __m512 wlo = _mm512_unpacklo_ps(w0, zero), whi = _mm512_unpackhi_ps(w0, zero);
    const int32_t offset = offsets[pairs + s];
    NARROW_ROWS {
      const __m512 va = _mm512_set1_ps(a_rows[r][offset]);
      lo[r] = _mm512_fmadd_ps(va, wlo, lo[r]);
      hi[r] = _mm512_fmadd_ps(va, whi, hi[r]);
    }
  }
#endif
  const __m512 vmin = _mm512_set1_ps(min), vmax = _mm512_set1_ps(max);
  const __mmask16 mask = (__mmask16)((1u << nc) - 1);
  NARROW_ROWS {
    // Lanes 0 and 2 of each 128-bit lane: evens + odds of its two columns; then columns back in order.
    const __m512 sum_lo = _mm512_add_ps(lo[r], _mm512_permute_ps(lo[r], 0xB1));
    const __m512 sum_hi = _mm512_add_ps(hi[r], _mm512_permute_ps(hi[r], 0xB1));
    __m512 v = _mm512_shuffle_ps(sum_lo, sum_hi, 0x88);
#if NARROW_SINGLES
    v = _mm512_add_ps(v, sg[r]);
#endif
    _mm512_mask_storeu_ps(c_rows[r], mask, _mm512_min_ps(_mm512_max_ps(v, vmin), vmax));
  }
}
