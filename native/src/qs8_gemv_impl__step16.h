// What the GEMV kernels of 16-byte steps (AVX2, NEON) share of qs8_gemv_impl.h's macros: the partial last
// step of A copied once per call into 16 zeroed bytes, and a block's 16 sums in memory. Each file adds its
// vectors, multiply-add, 4-row sums and block store, then includes qs8_gemv_impl.h.
#include <string.h>

#include "qs8_requantize.h"

typedef struct {
  int32_t v[16];
} qs8_gemv_sums;
typedef struct {
  int8_t bytes[16];
} qs8_gemv_tail;

static inline qs8_gemv_tail qs8_gemv_tail_of(const int8_t* a, size_t k_size, const qs8_gemmlowp_params* p) {
  (void)p;
  qs8_gemv_tail t = {{0}};
  memcpy(t.bytes, a + k_size / 16 * 16, k_size % 16);
  return t;
}

#define QS8_GEMV_STEP 16
#define QS8_GEMV_LOAD_TAIL(a, tail, p) QS8_GEMV_LOAD_A((tail)->bytes, tail, p)
#define QS8_GEMV_SUMS_ZERO() ((qs8_gemv_sums){{0}})
#define QS8_GEMV_ADD_GROUP(sums, g, s0, s1, s2, s3) qs8_gemv_add_group(sums, g, s0, s1, s2, s3)
#define QS8_GEMV_STORE_BLOCK(c, sums, count, h, p) qs8_gemv_store_block(c, &(sums), count, h, p)
