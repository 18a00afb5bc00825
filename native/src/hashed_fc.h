// HashedNets (Chen et al. 2015) fully-connected kernels: fp32 weights W[o][k] that are signed hash buckets.
//
// Storage (native/formats.md): buckets fp32 [bucket_count] and a uint32 seed. Element i = o * K + k of the
// [output_channels][K] weight matrix (K = input_channels) is
//   h = hashed_index_hash(i, seed)        murmur3's 32-bit finalizer of i * 0x9e3779b1 + seed
//   W[o][k] = (h & 0x80000000 ? -1 : +1) * buckets[h % bucket_count]
// exactly agent/package/encodings.ts hashedSlot / toFloat32 (the package format's one definition; the
// runtime's test compares the two). The layer holds either the whole expanded matrix, made once at load by
// hashed_f32_expand (memory: 4 * output_channels * K bytes), or only the buckets: the kernel then expands one
// row at a time into a caller-provided workspace of K floats, per calling thread, and uses it for every
// image of the batch. Both give the same bits: a row's dot product with an input row is computed the same
// way whatever the batch, the channel range or where the row came from, so the result of an image does not
// depend on the batch size.
//
// fp32: output[b][o] = clamp(sum_k W[o][k] * x[b][k] + bias[o]); within 1e-5 of sum |W * x| of the
// reference (another summation order).
//
// Preconditions (the caller checks them; the kernels do not): 0 <= oc_begin <= oc_end <= output_channels,
// bucket_count >= 1, output_channels * K < 2^32, buffers of the documented sizes, the output not
// overlapping any input; weights (expanded, [output_channels][K]) or else a workspace of K floats.
//
// Functions the binding exposes:
//   hashed_f32_select(level) -> {fc}: hashed_f32_fc_minmax_ukernel__{scalar,avx2,avx512,neon}
//   hashed_f32_fc_minmax_ukernel__reference (double accumulation, every weight hashed on the spot)
//   hashed_f32_expand (rows of the expanded matrix)
#ifndef WHITTLE_HASHED_FC_H_
#define WHITTLE_HASHED_FC_H_

#include <stddef.h>
#include <stdint.h>

#include "kernel_abi.h"

WHITTLE_EXTERN_C_BEGIN

// Limits the binding checks: the package's (agent/package/manifest.ts MAX_HASHED_ELEMENTS), so an element
// index fits the hash's uint32.
#define HASHED_MAX_ELEMENTS (UINT32_C(1) << 24)
#define HASHED_MAX_BUCKETS HASHED_MAX_ELEMENTS
// The binding expands a layer's weights at load (onto the fp32 operator) up to this many bytes of fp32
// weights; a larger layer keeps only its buckets and runs on the kernels here, a row at a time.
#define HASHED_EXPAND_MAX_BYTES (UINT32_C(16) << 20)

// The index hash: murmur3's 32-bit finalizer (encodings.ts hashIndex).
static inline uint32_t hashed_index_hash(uint32_t index, uint32_t seed) {
  uint32_t h = index * UINT32_C(0x9e3779b1) + seed;
  h ^= h >> 16;
  h *= UINT32_C(0x85ebca6b);
  h ^= h >> 13;
  h *= UINT32_C(0xc2b2ae35);
  h ^= h >> 16;
  return h;
}

// Rows [row_begin, row_end) of the expanded [rows][k] matrix into out[(r - row_begin) * k + j].
void hashed_f32_expand(size_t k, size_t row_begin, size_t row_end, const float* buckets,
                       uint32_t bucket_count, uint32_t seed, float* out);

typedef void (*hashed_f32_fc_fn)(size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin,
                                 size_t oc_end, const float* input, const float* weights,
                                 const float* buckets, uint32_t bucket_count, uint32_t seed,
                                 const float* bias, float output_min, float output_max, float* workspace,
                                 float* output);

#define HASHED_F32_DECLARE(isa)                                                                    \
  void hashed_f32_fc_minmax_ukernel__##isa(                                                        \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end, \
      const float* WHITTLE_RESTRICT input, const float* WHITTLE_RESTRICT weights,                  \
      const float* WHITTLE_RESTRICT buckets, uint32_t bucket_count, uint32_t seed,                 \
      const float* WHITTLE_RESTRICT bias, float output_min, float output_max,                      \
      float* WHITTLE_RESTRICT workspace, float* WHITTLE_RESTRICT output);

// weights and workspace are ignored: the reference hashes every weight where it uses it.
HASHED_F32_DECLARE(reference)
HASHED_F32_DECLARE(scalar)
#if defined(__x86_64__) || defined(_M_X64)
HASHED_F32_DECLARE(avx2)
HASHED_F32_DECLARE(avx512)
#endif
#if defined(__arm__) || defined(__aarch64__)
HASHED_F32_DECLARE(neon)
#endif

typedef struct hashed_f32_variant {
  whittle_isa isa;
  const char* name;
  hashed_f32_fc_fn fc;
} hashed_f32_variant;

// Every compiled-in variant except the reference, in the order of kernel_abi.h (best first, scalar last).
WHITTLE_DECLARE_VARIANTS(hashed_f32)

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_HASHED_FC_H_
