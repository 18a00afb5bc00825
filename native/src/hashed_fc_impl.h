// The hashed fully-connected kernel body (hashed_fc.h) for one ISA: included by hashed_fc__<isa>.c after
// its f32_vec__<isa>.h (or by hashed_fc.c with the scalar vector below), with HASHED_FC_NAME the kernel's
// name. A row's dot product with an input row: two vector accumulators over K, the tail in a partial vector,
// the lanes summed in order; the same for every image, batch and channel range.
#include "hashed_fc.h"

static inline float hashed_dot(const float* x, const float* w, size_t k) {
  f32v acc0 = F32V_ZERO(), acc1 = F32V_ZERO();
  size_t j = 0;
  for (; j + 2 * F32V_W <= k; j += 2 * F32V_W) {
    acc0 = F32V_FMA(F32V_LOAD(x + j), F32V_LOAD(w + j), acc0);
    acc1 = F32V_FMA(F32V_LOAD(x + j + F32V_W), F32V_LOAD(w + j + F32V_W), acc1);
  }
  if (j + F32V_W <= k) {
    acc0 = F32V_FMA(F32V_LOAD(x + j), F32V_LOAD(w + j), acc0);
    j += F32V_W;
  }
  if (j < k) acc1 = F32V_FMA(f32v_load_n(x + j, k - j), f32v_load_n(w + j, k - j), acc1);
  float lanes[F32V_W];
  F32V_STORE(lanes, F32V_ADD(acc0, acc1));
  float sum = 0.0f;
  for (size_t l = 0; l < F32V_W; l++) sum += lanes[l];
  return sum;
}

void HASHED_FC_NAME(size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin,
                    size_t oc_end, const float* WHITTLE_RESTRICT input, const float* WHITTLE_RESTRICT weights,
                    const float* WHITTLE_RESTRICT buckets, uint32_t bucket_count, uint32_t seed,
                    const float* WHITTLE_RESTRICT bias, float output_min, float output_max,
                    float* WHITTLE_RESTRICT workspace, float* WHITTLE_RESTRICT output) {
  const size_t k = input_channels;
  for (size_t o = oc_begin; o < oc_end; o++) {
    const float* row = workspace;
    if (weights != NULL) {
      row = weights + o * k;
    } else {
      hashed_f32_expand(k, o, o + 1, buckets, bucket_count, seed, workspace);
    }
    const float b = bias != NULL ? bias[o] : 0.0f;
    for (size_t n = 0; n < batch; n++) {
      const float sum = hashed_dot(input + n * k, row, k) + b;
      output[n * output_channels + o] = whittle_clamp_f32(sum, output_min, output_max);
    }
  }
}
