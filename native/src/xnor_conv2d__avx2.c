// xnor kernels for AVX2 (compile with -mavx2 -mfma -mpopcnt). Popcount of 256-bit vectors with the nibble
// lookup table (two vpshufb), byte counts summed by vpsadbw into one 64-bit lane per output channel: the
// blocked driver processes 4 output channels per broadcast input word.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "xnor_conv2d_impl.h"

static inline __m256i xnor_popcount_bytes_avx2(__m256i v) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3,
                                       1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)),
                         _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
}

static uint32_t xnor_span_popcount_avx2(const uint64_t* x, const uint64_t* w, size_t words) {
  size_t i = 0;
  uint64_t count = 0;
  if (words >= 8) {
    __m256i total = _mm256_setzero_si256();
    while (i + 4 <= words) {
      // At most 8 per byte per vector: 31 vectors fit a byte before vpsadbw folds them.
      __m256i bytes = _mm256_setzero_si256();
      for (size_t end = i + 4 * 31; i + 4 <= words && i < end; i += 4) {
        const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(x + i)),
                                           _mm256_loadu_si256((const __m256i*)(w + i)));
        bytes = _mm256_add_epi8(bytes, xnor_popcount_bytes_avx2(v));
      }
      total = _mm256_add_epi64(total, _mm256_sad_epu8(bytes, _mm256_setzero_si256()));
    }
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i*)lanes, total);
    count = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  }
  for (; i < words; i++) {
    count += (uint64_t)_mm_popcnt_u64(x[i] ^ w[i]);
  }
  return (uint32_t)count;
}

static void xnor_block_row_avx2(const uint64_t* x, const uint64_t* wt, size_t words, uint32_t* pop) {
  __m256i total = _mm256_setzero_si256();
  size_t i = 0;
  while (i < words) {
    __m256i bytes = _mm256_setzero_si256();
    for (const size_t end = words - i < 31 ? words : i + 31; i < end; i++) {
      const __m256i v = _mm256_xor_si256(_mm256_set1_epi64x((long long)x[i]),
                                         _mm256_loadu_si256((const __m256i*)(wt + 4 * i)));
      bytes = _mm256_add_epi8(bytes, xnor_popcount_bytes_avx2(v));
    }
    total = _mm256_add_epi64(total, _mm256_sad_epu8(bytes, _mm256_setzero_si256()));
  }
  uint64_t lanes[4];
  _mm256_storeu_si256((__m256i*)lanes, total);
  for (size_t j = 0; j < 4; j++) {
    pop[j] += (uint32_t)lanes[j];
  }
}

static void xnor_block_store_avx2(const uint32_t* pop, int32_t valid, const float* alpha, float scale,
                                  const float* bias, float output_min, float output_max, float* out) {
  const __m128i dot =
      _mm_sub_epi32(_mm_set1_epi32(valid), _mm_slli_epi32(_mm_loadu_si128((const __m128i*)pop), 1));
  __m128 value = _mm_mul_ps(_mm_cvtepi32_ps(dot), _mm_loadu_ps(alpha));
  value = _mm_mul_ps(value, _mm_set1_ps(scale));
  value = _mm_add_ps(value, bias != NULL ? _mm_loadu_ps(bias) : _mm_setzero_ps());
  const __m128 lo = _mm_set1_ps(output_min);
  const __m128 hi = _mm_set1_ps(output_max);
  value = _mm_blendv_ps(value, lo, _mm_cmp_ps(value, lo, _CMP_LT_OQ));
  value = _mm_blendv_ps(value, hi, _mm_cmp_ps(value, hi, _CMP_GT_OQ));
  _mm_storeu_ps(out, value);
}

// 16 channels: four vectors per broadcast input word.
static void xnor_block16_row_avx2(const uint64_t* x, const uint64_t* wt, size_t words, uint32_t* pop) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i total[4] = {zero, zero, zero, zero};
  size_t i = 0;
  while (i < words) {
    __m256i bytes[4] = {zero, zero, zero, zero};
    for (const size_t end = words - i < 31 ? words : i + 31; i < end; i++) {
      const __m256i a = _mm256_set1_epi64x((long long)x[i]);
      for (size_t v = 0; v < 4; v++) {
        const __m256i w = _mm256_loadu_si256((const __m256i*)(wt + 16 * i + 4 * v));
        bytes[v] = _mm256_add_epi8(bytes[v], xnor_popcount_bytes_avx2(_mm256_xor_si256(a, w)));
      }
    }
    for (size_t v = 0; v < 4; v++) {
      total[v] = _mm256_add_epi64(total[v], _mm256_sad_epu8(bytes[v], zero));
    }
  }
  for (size_t v = 0; v < 4; v++) {
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i*)lanes, total[v]);
    for (size_t j = 0; j < 4; j++) {
      pop[4 * v + j] += (uint32_t)lanes[j];
    }
  }
}

static void xnor_block16_store_avx2(const uint32_t* pop, int32_t valid, const float* alpha, float scale,
                                    const float* bias, float output_min, float output_max, float* out) {
  for (size_t j = 0; j < 16; j += 4) {
    xnor_block_store_avx2(pop + j, valid, alpha + j, scale, bias != NULL ? bias + j : NULL, output_min,
                          output_max, out + j);
  }
}

XNOR_DEFINE_KERNELS2(avx2, xnor_span_popcount_avx2, 16, xnor_block16_row_avx2, xnor_block16_store_avx2, 4,
                     xnor_block_row_avx2, xnor_block_store_avx2)

// 8 sign bits per compare (VCMPPS, VMOVMSKPS).
static inline uint64_t xnor_word_sign_bits_avx2(const void* input, size_t count, int32_t zero_point) {
  (void)zero_point;
  const float* x = (const float*)input;
  const __m256 zero = _mm256_setzero_ps();
  uint64_t bits = 0;
  size_t c = 0;
  for (; c + 8 <= count; c += 8) {
    const __m256 lt = _mm256_cmp_ps(_mm256_loadu_ps(x + c), zero, _CMP_LT_OQ);
    bits |= (uint64_t)(uint32_t)_mm256_movemask_ps(lt) << c;
  }
  return xnor_sign_bits_tail(x, c, count, bits);
}

void xnor_pack_ukernel__avx2(size_t pixels, size_t groups, size_t group_channels, const float* restrict input,
                             uint64_t* restrict output) {
  xnor_pack_words(pixels, groups, group_channels, input, sizeof(float), 0, output, xnor_word_sign_bits_avx2);
}

// int8: 32 sign bits per compare (VPCMPGTB zero_point > q, VPMOVMSKB).
static inline uint64_t xnor_word_qs8_sign_bits_avx2(const void* input, size_t count, int32_t zero_point) {
  const int8_t* q = (const int8_t*)input;
  const __m256i zp = _mm256_set1_epi8((char)zero_point);
  uint64_t bits = 0;
  size_t c = 0;
  for (; c + 32 <= count; c += 32) {
    const __m256i lt = _mm256_cmpgt_epi8(zp, _mm256_loadu_si256((const __m256i*)(q + c)));
    bits |= (uint64_t)(uint32_t)_mm256_movemask_epi8(lt) << c;
  }
  return xnor_qs8_sign_bits_tail(q, c, count, zero_point, bits);
}

void xnor_pack_qs8_ukernel__avx2(size_t pixels, size_t groups, size_t group_channels,
                                 const int8_t* restrict input, int32_t zero_point,
                                 uint64_t* restrict output) {
  xnor_pack_words(pixels, groups, group_channels, input, 1, zero_point, output, xnor_word_qs8_sign_bits_avx2);
}
#endif
