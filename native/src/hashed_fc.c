// hashed reference and scalar kernels, the row expansion, and the variant list.
#include "hashed_fc.h"

// h % count without a division (a 32-bit DIV per weight was most of the on-the-fly expansion): the quotient
// from a double product, at most 1 off (h < 2^32 is exact, 1 / count has a relative error below 2^-53), then
// corrected; exact for every h and count >= 1.
static inline uint32_t hashed_mod(uint32_t h, uint32_t count, double inverse) {
  int64_t r = (int64_t)h - (int64_t)(uint64_t)((double)h * inverse) * (int64_t)count;
  if (r < 0) r += count;
  if (r >= (int64_t)count) r -= count;
  return (uint32_t)r;
}

void hashed_f32_expand(size_t k, size_t row_begin, size_t row_end, const float* buckets,
                       uint32_t bucket_count, uint32_t seed, float* out) {
  const double inverse = 1.0 / (double)bucket_count;
  for (size_t r = row_begin; r < row_end; r++) {
    float* row = out + (r - row_begin) * k;
    const uint32_t first = (uint32_t)(r * k);
    for (size_t j = 0; j < k; j++) {
      const uint32_t h = hashed_index_hash(first + (uint32_t)j, seed);
      const float v = buckets[hashed_mod(h, bucket_count, inverse)];
      row[j] = (h & UINT32_C(0x80000000)) != 0 ? -v : v;
    }
  }
}

void hashed_f32_fc_minmax_ukernel__reference(size_t batch, size_t input_channels, size_t output_channels,
                                             size_t oc_begin, size_t oc_end, const float* restrict input,
                                             const float* restrict weights, const float* restrict buckets,
                                             uint32_t bucket_count, uint32_t seed, const float* restrict bias,
                                             float output_min, float output_max, float* restrict workspace,
                                             float* restrict output) {
  (void)weights;
  (void)workspace;
  for (size_t n = 0; n < batch; n++) {
    for (size_t o = oc_begin; o < oc_end; o++) {
      double sum = bias != NULL ? (double)bias[o] : 0.0;
      for (size_t k = 0; k < input_channels; k++) {
        const uint32_t h = hashed_index_hash((uint32_t)(o * input_channels + k), seed);
        const double w = (h & UINT32_C(0x80000000)) != 0 ? -(double)buckets[h % bucket_count]
                                                         : (double)buckets[h % bucket_count];
        sum += w * (double)input[n * input_channels + k];
      }
      output[n * output_channels + o] = whittle_clamp_f32((float)sum, output_min, output_max);
    }
  }
}

// The scalar kernel: the SIMD body over a vector of one float.
typedef float f32v;
#define F32V_W 1
#define F32V_LOAD(p) (*(p))
#define F32V_STORE(p, v) (*(p) = (v))
#define F32V_ZERO() 0.0f
#define F32V_ADD(a, b) ((a) + (b))
#define F32V_FMA(a, b, acc) ((acc) + (a) * (b))
#include "f32_vec.h"
#define HASHED_FC_NAME hashed_f32_fc_minmax_ukernel__scalar
#include "hashed_fc_impl.h"

const hashed_f32_variant hashed_f32_variants[] = {
#if defined(__arm__) || defined(__aarch64__)
    {WHITTLE_ISA_NEON, "neon", hashed_f32_fc_minmax_ukernel__neon},
#endif
#if defined(__x86_64__) || defined(_M_X64)
    {WHITTLE_ISA_AVX512, "avx512", hashed_f32_fc_minmax_ukernel__avx512},
    {WHITTLE_ISA_AVX2, "avx2", hashed_f32_fc_minmax_ukernel__avx2},
#endif
    {WHITTLE_ISA_SCALAR, "scalar", hashed_f32_fc_minmax_ukernel__scalar},
};
WHITTLE_DEFINE_VARIANT_SELECT(hashed_f32)
