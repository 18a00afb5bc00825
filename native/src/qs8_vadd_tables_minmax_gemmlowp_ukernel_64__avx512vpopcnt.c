// The residual add over rescale tables (qs8_add_tables), 64 elements at a time with AVX-512 VBMI byte
// permutes (the avx512vpopcnt level requires VBMI). Per input and table byte plane, two VPERMT2B look the 64
// bytes up in the plane's entries 0-127 and 128-255 and the index's top bit picks one; the four planes
// interleave into 4 vectors of int32, vector j's 128-bit lane L holding elements 16 L + 4 j .. 16 L + 4 j
// + 3. The sums are requantized as in the 16-wide kernel (qs8_requantize_avx512_as) and packed back in
// element order by the packs that undo that interleave. This replaces two of the add's three requantizations
// per element by ~5 operations per 16 elements and input.
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qs8_requantize.h"

static inline __attribute__((always_inline)) void lookup64(__m512i index, const uint8_t (*plane)[256],
                                                           __m512i out[4]) {
  const __mmask64 high = _mm512_movepi8_mask(index);
  __m512i bytes[4];
  for (int k = 0; k < 4; k++) {
    const __m512i lo =
        _mm512_permutex2var_epi8(_mm512_load_si512(plane[k]), index, _mm512_load_si512(plane[k] + 64));
    const __m512i hi =
        _mm512_permutex2var_epi8(_mm512_load_si512(plane[k] + 128), index, _mm512_load_si512(plane[k] + 192));
    bytes[k] = _mm512_mask_blend_epi8(high, lo, hi);
  }
  const __m512i lo01 = _mm512_unpacklo_epi8(bytes[0], bytes[1]),
                hi01 = _mm512_unpackhi_epi8(bytes[0], bytes[1]);
  const __m512i lo23 = _mm512_unpacklo_epi8(bytes[2], bytes[3]),
                hi23 = _mm512_unpackhi_epi8(bytes[2], bytes[3]);
  out[0] = _mm512_unpacklo_epi16(lo01, lo23);
  out[1] = _mm512_unpackhi_epi16(lo01, lo23);
  out[2] = _mm512_unpacklo_epi16(hi01, hi23);
  out[3] = _mm512_unpackhi_epi16(hi01, hi23);
}

// `general`: the output requantization shifts left or has multiplier INT32_MIN (qs8_requantize_avx512_as).
static inline __attribute__((always_inline)) void vadd_as(size_t n, const void* a, const void* b, void* y,
                                                          const qs8_add_params* p, const qs8_add_tables* t,
                                                          bool u, bool general) {
  const __m512i multiplier = _mm512_set1_epi32(p->output_multiplier);
  const __m512i left = _mm512_set1_epi32(p->output_shift > 0 ? p->output_shift : 0);
  const __m512i right = _mm512_set1_epi32(p->output_shift > 0 ? 0 : -p->output_shift);
  // The output zero point is added after clamping to [min - zp, max - zp]: no overflow, the scalar clamp.
  const __m512i lo = _mm512_set1_epi32(p->output_min - p->output_zero_point);
  const __m512i hi = _mm512_set1_epi32(p->output_max - p->output_zero_point);
  const __m512i zero_point = _mm512_set1_epi32(p->output_zero_point);
  for (size_t i = 0; i < n; i += 64) {
    // The last vector's missing bytes read as 0 (a valid index) and are not stored.
    const __mmask64 m = n - i >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (n - i)) - 1;
    __m512i sa[4], sb[4], v[4];
    lookup64(_mm512_maskz_loadu_epi8(m, (const unsigned char*)a + i), t->a, sa);
    lookup64(_mm512_maskz_loadu_epi8(m, (const unsigned char*)b + i), t->b, sb);
    for (int j = 0; j < 4; j++) {
      const __m512i sum = _mm512_add_epi32(sa[j], sb[j]);
      const __m512i r = qs8_requantize_avx512_as(sum, multiplier, left, right, general);
      v[j] = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(r, lo), hi), zero_point);
    }
    // In the type's range: the saturating packs keep every value (uint8 0..255: words, then unsigned bytes).
    const __m512i w01 = _mm512_packs_epi32(v[0], v[1]), w23 = _mm512_packs_epi32(v[2], v[3]);
    const __m512i bytes = u ? _mm512_packus_epi16(w01, w23) : _mm512_packs_epi16(w01, w23);
    _mm512_mask_storeu_epi8((unsigned char*)y + i, m, bytes);
  }
}

void qs8_vadd_tables_minmax_gemmlowp_ukernel_64__avx512vpopcnt(size_t n, const void* a, const void* b,
                                                               void* y, const qs8_add_params* p,
                                                               const qs8_add_tables* t) {
  const bool general = p->output_shift > 0 || p->output_multiplier == INT32_MIN;
  if (p->unsigned_activations) {
    if (general) {
      vadd_as(n, a, b, y, p, t, true, true);
    } else {
      vadd_as(n, a, b, y, p, t, true, false);
    }
  } else if (general) {
    vadd_as(n, a, b, y, p, t, false, true);
  } else {
    vadd_as(n, a, b, y, p, t, false, false);
  }
}
