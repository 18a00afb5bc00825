// xnor kernels for AVX-512 BW without VPOPCNTDQ (Skylake-X, Cascade Lake): the nibble-table popcount on
// 512-bit vectors, 8 output channels per broadcast input word; activations packed 16 at a time through
// an opmask compare. Compile with -mavx512f -mavx512bw -mavx512vl -mpopcnt.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "xnor_conv2d_impl.h"

static inline __m512i xnor_popcount_bytes_avx512(__m512i v) {
  const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4));
  const __m512i low = _mm512_set1_epi8(0x0f);
  return _mm512_add_epi8(_mm512_shuffle_epi8(lut, _mm512_and_si512(v, low)),
                         _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v, 4), low)));
}

static uint32_t xnor_span_popcount_avx512(const uint64_t* x, const uint64_t* w, size_t words) {
  uint64_t count = 0;
  for (size_t i = 0; i < words; i++) {
    count += (uint64_t)_mm_popcnt_u64(x[i] ^ w[i]);
  }
  return (uint32_t)count;
}

static void xnor_block_row_avx512(const uint64_t* x, const uint64_t* wt, size_t words, uint32_t* pop) {
  __m512i total = _mm512_setzero_si512();
  size_t i = 0;
  while (i < words) {
    __m512i bytes = _mm512_setzero_si512();
    for (const size_t end = words - i < 31 ? words : i + 31; i < end; i++) {
      const __m512i v = _mm512_xor_si512(_mm512_set1_epi64((long long)x[i]), _mm512_loadu_si512(wt + 8 * i));
      bytes = _mm512_add_epi8(bytes, xnor_popcount_bytes_avx512(v));
    }
    total = _mm512_add_epi64(total, _mm512_sad_epu8(bytes, _mm512_setzero_si512()));
  }
  const __m256i sums = _mm512_cvtepi64_epi32(total);
  _mm256_storeu_si256((__m256i*)pop, _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)pop), sums));
}

static void xnor_block_store_avx512(const uint32_t* pop, int32_t valid, const float* alpha, float scale,
                                    const float* bias, float output_min, float output_max, float* out) {
  const __m256i dot = _mm256_sub_epi32(_mm256_set1_epi32(valid),
                                       _mm256_slli_epi32(_mm256_loadu_si256((const __m256i*)pop), 1));
  __m256 value = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(alpha));
  value = _mm256_mul_ps(value, _mm256_set1_ps(scale));
  value = _mm256_add_ps(value, bias != NULL ? _mm256_loadu_ps(bias) : _mm256_setzero_ps());
  const __m256 lo = _mm256_set1_ps(output_min);
  const __m256 hi = _mm256_set1_ps(output_max);
  value = _mm256_blendv_ps(value, lo, _mm256_cmp_ps(value, lo, _CMP_LT_OQ));
  value = _mm256_blendv_ps(value, hi, _mm256_cmp_ps(value, hi, _CMP_GT_OQ));
  _mm256_storeu_ps(out, value);
}

// 32 channels: four vectors per broadcast input word.
static void xnor_block32_row_avx512(const uint64_t* x, const uint64_t* wt, size_t words, uint32_t* pop) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i total[4] = {zero, zero, zero, zero};
  size_t i = 0;
  while (i < words) {
    __m512i bytes[4] = {zero, zero, zero, zero};
    for (const size_t end = words - i < 31 ? words : i + 31; i < end; i++) {
      const __m512i a = _mm512_set1_epi64((long long)x[i]);
      for (size_t v = 0; v < 4; v++) {
        const __m512i w = _mm512_loadu_si512(wt + 32 * i + 8 * v);
        bytes[v] = _mm512_add_epi8(bytes[v], xnor_popcount_bytes_avx512(_mm512_xor_si512(a, w)));
      }
    }
    for (size_t v = 0; v < 4; v++) {
      total[v] = _mm512_add_epi64(total[v], _mm512_sad_epu8(bytes[v], zero));
    }
  }
  for (size_t v = 0; v < 4; v++) {
    const __m256i sums = _mm512_cvtepi64_epi32(total[v]);
    _mm256_storeu_si256((__m256i*)(pop + 8 * v),
                        _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)(pop + 8 * v)), sums));
  }
}

static void xnor_block32_store_avx512(const uint32_t* pop, int32_t valid, const float* alpha, float scale,
                                      const float* bias, float output_min, float output_max, float* out) {
  for (size_t j = 0; j < 32; j += 8) {
    xnor_block_store_avx512(pop + j, valid, alpha + j, scale, bias != NULL ? bias + j : NULL, output_min,
                            output_max, out + j);
  }
}

XNOR_DEFINE_KERNELS2(avx512, xnor_span_popcount_avx512, 32, xnor_block32_row_avx512,
                     xnor_block32_store_avx512, 8, xnor_block_row_avx512, xnor_block_store_avx512)

// 16 sign bits per compare; the last partial 16 through a masked load, so no scalar tail.
static inline uint64_t xnor_word_sign_bits_avx512(const void* input, size_t count, int32_t zero_point) {
  (void)zero_point;
  const float* x = (const float*)input;
  const __m512 zero = _mm512_setzero_ps();
  uint64_t bits = 0;
  for (size_t c = 0; c < count; c += 16) {
    const size_t m = count - c < 16 ? count - c : 16;
    const __mmask16 valid = (__mmask16)((UINT32_C(1) << m) - 1);
    const __mmask16 lt =
        _mm512_mask_cmp_ps_mask(valid, _mm512_maskz_loadu_ps(valid, x + c), zero, _CMP_LT_OQ);
    bits |= (uint64_t)lt << c;
  }
  return bits;
}

void xnor_pack_ukernel__avx512(size_t pixels, size_t groups, size_t group_channels,
                               const float* restrict input, uint64_t* restrict output) {
  xnor_pack_shape(&groups, &group_channels);
  if (group_channels % 64 == 0) {
    // Every word holds 64 consecutive floats of the input (no word straddles a group or a pixel, none is
    // partial): one straight pass, four compares per word.
    const __m512 zero = _mm512_setzero_ps();
    const size_t words = pixels * groups * xnor_group_words(group_channels);
    for (size_t w = 0; w < words; w++) {
      // The four opmasks joined in mask registers (KUNPCK) and stored as one word.
      const float* x = input + w * 64;
      const __mmask16 b0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x), zero, _CMP_LT_OQ);
      const __mmask16 b1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16), zero, _CMP_LT_OQ);
      const __mmask16 b2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + 32), zero, _CMP_LT_OQ);
      const __mmask16 b3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + 48), zero, _CMP_LT_OQ);
      const __mmask32 low = _mm512_kunpackw((__mmask32)b1, (__mmask32)b0);
      const __mmask32 high = _mm512_kunpackw((__mmask32)b3, (__mmask32)b2);
      _store_mask64((__mmask64*)(output + w), _mm512_kunpackd((__mmask64)high, (__mmask64)low));
    }
    return;
  }
  if (group_channels == 32) {
    // One half word per group (the small VGG's 32-channel layers): two compares, no per-word call.
    const __m512 zero = _mm512_setzero_ps();
    for (size_t w = 0; w < pixels * groups; w++) {
      const float* x = input + w * 32;
      const uint64_t b0 = _cvtmask16_u32(_mm512_cmp_ps_mask(_mm512_loadu_ps(x), zero, _CMP_LT_OQ));
      const uint64_t b1 = _cvtmask16_u32(_mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16), zero, _CMP_LT_OQ));
      output[w] = b0 | b1 << 16;
    }
    return;
  }
  xnor_pack_words(pixels, groups, group_channels, input, sizeof(float), 0, output,
                  xnor_word_sign_bits_avx512);
}

// int8: the whole word in one masked byte compare (VPCMPB), 64 sign bits at once.
static inline uint64_t xnor_word_qs8_sign_bits_avx512(const void* q, size_t count, int32_t zero_point) {
  const __mmask64 valid = count >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << count) - 1);
  return _cvtmask64_u64(_mm512_mask_cmplt_epi8_mask(valid, _mm512_maskz_loadu_epi8(valid, q),
                                                    _mm512_set1_epi8((char)zero_point)));
}

void xnor_pack_qs8_ukernel__avx512(size_t pixels, size_t groups, size_t group_channels,
                                   const int8_t* restrict input, int32_t zero_point,
                                   uint64_t* restrict output) {
  xnor_pack_shape(&groups, &group_channels);
  if (group_channels == 32) {
    // One half word per group: one 32-byte compare each, no per-word call.
    const __m256i zp = _mm256_set1_epi8((char)zero_point);
    for (size_t w = 0; w < pixels * groups; w++) {
      output[w] =
          _cvtmask32_u32(_mm256_cmplt_epi8_mask(_mm256_loadu_si256((const __m256i*)(input + w * 32)), zp));
    }
    return;
  }
  xnor_pack_words(pixels, groups, group_channels, input, 1, zero_point, output,
                  xnor_word_qs8_sign_bits_avx512);
}
#endif
