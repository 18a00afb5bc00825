#include <immintrin.h>

#include "qs8_requantize.h"

// Batch-1 fully-connected: each output channel's weights are one contiguous row, so no column of a block
// is wasted on a narrow layer; 4 rows at a time share each 64-byte chunk of A, with two sets of accumulators
// (even and odd chunks) to cover VPDPBUSD's latency. A is uint8 (int8 ^ 0x80; the bias takes back the
// extra 128 * sum(w)).
void qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512vnni(size_t nc, size_t k_size, const int8_t* a,
                                                         const void* packed_w, int8_t* c,
                                                         const qs8_gemmlowp_params* params) {
  const qs8_gemmlowp_params p = *params;  // c may alias *params (int8_t*)
  const size_t kc = (k_size + 63) / 64 * 64;
  const __m512i flip = _mm512_set1_epi8((char)p.input_flip);
  // The last chunk of A, read with a mask (the kernel never reads past k_size); lanes past k_size meet zero
  // weights.
  const __mmask64 tail = k_size % 64 == 0 ? ~(__mmask64)0 : ((__mmask64)1 << (k_size % 64)) - 1;
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
      __m512i e0 = _mm512_setzero_si512(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
      size_t k = 0;
      for (; k + 128 <= kc; k += 128) {
        const __m512i va = _mm512_xor_si512(_mm512_loadu_si512(a + k), flip);
        const __m512i vb = _mm512_xor_si512(
            k + 128 < kc ? _mm512_loadu_si512(a + k + 64) : _mm512_maskz_loadu_epi8(tail, a + k + 64), flip);
        e0 = _mm512_dpbusd_epi32(e0, va, _mm512_loadu_si512(w0 + k));
        e1 = _mm512_dpbusd_epi32(e1, va, _mm512_loadu_si512(w1 + k));
        e2 = _mm512_dpbusd_epi32(e2, va, _mm512_loadu_si512(w2 + k));
        e3 = _mm512_dpbusd_epi32(e3, va, _mm512_loadu_si512(w3 + k));
        o0 = _mm512_dpbusd_epi32(o0, vb, _mm512_loadu_si512(w0 + k + 64));
        o1 = _mm512_dpbusd_epi32(o1, vb, _mm512_loadu_si512(w1 + k + 64));
        o2 = _mm512_dpbusd_epi32(o2, vb, _mm512_loadu_si512(w2 + k + 64));
        o3 = _mm512_dpbusd_epi32(o3, vb, _mm512_loadu_si512(w3 + k + 64));
      }
      if (k < kc) {
        const __m512i va = _mm512_xor_si512(_mm512_maskz_loadu_epi8(tail, a + k), flip);
        e0 = _mm512_dpbusd_epi32(e0, va, _mm512_loadu_si512(w0 + k));
        e1 = _mm512_dpbusd_epi32(e1, va, _mm512_loadu_si512(w1 + k));
        e2 = _mm512_dpbusd_epi32(e2, va, _mm512_loadu_si512(w2 + k));
        e3 = _mm512_dpbusd_epi32(e3, va, _mm512_loadu_si512(w3 + k));
      }
      const __m128i s = qs8_sum4_avx512(_mm512_add_epi32(e0, o0), _mm512_add_epi32(e1, o1),
                                        _mm512_add_epi32(e2, o2), _mm512_add_epi32(e3, o3));
      sums = qs8_gemv_add_sums_avx512(sums, s);
    }
    qs8_gemv_store_block_avx512(c + n0, sums, nc - n0 < 16 ? nc - n0 : 16, &h, &p);
    block += 16 * 4 * sizeof(int32_t) + 16 * kc;
  }
}
