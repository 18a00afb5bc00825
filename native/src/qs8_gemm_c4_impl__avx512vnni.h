// Body of the qs8 GEMM kernels MRx32c4 with VPDPBUSD; each
// qs8_gemm_minmax_gemmlowp_ukernel_<MR>x32c4__avx512vnni.c defines MR and the function name, then includes
// this file (and qs8_igemm_minmax_gemmlowp_ukernel_<MR>x32c4__avx512vnni.c, with WHITTLE_IGEMM: gemm_tile.h).
// MR is a compile-time constant, so the accumulator arrays live in registers (2 x MR ZMM). A block of at
// most 16 real columns (layers of 16 output channels or fewer: stems, LeNet) runs one ZMM per row.
//
// VPDPBUSD multiplies u8 x s8 and sums 4 consecutive k into int32 lanes. Its first multiplicand is
// unsigned, so A arrives as uint8 (int8 ^ 0x80, a_unsigned in the list) and the packed bias already
// subtracts the extra 128 * sum(w) (qs8_conv2d.c).
#include <immintrin.h>
#include <string.h>

#include "gemm_tile.h"
#include "qs8_requantize.h"

#ifndef QS8_VNNI_PREFETCH
#define QS8_VNNI_PREFETCH 2048
#endif
// The IGEMM over real taps only streams the weights of layers of few pixels from L3 (ResNet-18's last stages)
// and asks for them further ahead: its runs of one or two rows consume them faster than the 4-row kernel.
#ifndef QS8_VNNI_RUNS_PREFETCH
#define QS8_VNNI_RUNS_PREFETCH 4096
#endif

#if MR > 8
#error "the MRx32c4 VNNI body has accumulators for at most 8 rows"
#endif

#if MR == 1 && !defined(WHITTLE_IGEMM) && !defined(QS8_VNNI_ROW64)
#define QS8_VNNI_ROW64
// One row of two blocks (64 columns, `cols` > 32 of them real): each group of 4 k is one broadcast for 4
// ZMM of weights, and even and odd groups go to their own accumulators, so 8 independent VPDPBUSD chains
// cover its latency (a batch-1 fully-connected layer has no other rows to do so).
// `last` is false when cols <= 48: the 16 columns of zero weights are then neither loaded nor multiplied
// (a constant at each call, so each variant compiles without the test).
static inline __attribute__((always_inline)) void qs8_vnni_row64(const int8_t* a, size_t kc,
                                                                 const unsigned char* block,
                                                                 size_t block_bytes, int8_t* c, size_t cols,
                                                                 const qs8_gemmlowp_params* params,
                                                                 bool last) {
  const size_t header = 32 * 4 * sizeof(int32_t);
  const int8_t* w0 = (const int8_t*)(block + header);
  const int8_t* w1 = (const int8_t*)(block + block_bytes + header);
  const __m512i zero = _mm512_setzero_si512();
  __m512i e00 = zero, e01 = zero, e10 = zero, e11 = zero, o00 = zero, o01 = zero, o10 = zero, o11 = zero;
  size_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    int32_t quads[2];
    memcpy(quads, a + k, sizeof(quads));
    const __m512i va = _mm512_set1_epi32(quads[0]), vb = _mm512_set1_epi32(quads[1]);
    const size_t at = k * 32;
    e00 = _mm512_dpbusd_epi32(e00, va, _mm512_loadu_si512(w0 + at));
    e01 = _mm512_dpbusd_epi32(e01, va, _mm512_loadu_si512(w0 + at + 64));
    e10 = _mm512_dpbusd_epi32(e10, va, _mm512_loadu_si512(w1 + at));
    if (last) e11 = _mm512_dpbusd_epi32(e11, va, _mm512_loadu_si512(w1 + at + 64));
    o00 = _mm512_dpbusd_epi32(o00, vb, _mm512_loadu_si512(w0 + at + 128));
    o01 = _mm512_dpbusd_epi32(o01, vb, _mm512_loadu_si512(w0 + at + 192));
    o10 = _mm512_dpbusd_epi32(o10, vb, _mm512_loadu_si512(w1 + at + 128));
    if (last) o11 = _mm512_dpbusd_epi32(o11, vb, _mm512_loadu_si512(w1 + at + 192));
  }
  if (k < kc) {
    int32_t quad;
    memcpy(&quad, a + k, sizeof(quad));
    const __m512i va = _mm512_set1_epi32(quad);
    const size_t at = k * 32;
    e00 = _mm512_dpbusd_epi32(e00, va, _mm512_loadu_si512(w0 + at));
    e01 = _mm512_dpbusd_epi32(e01, va, _mm512_loadu_si512(w0 + at + 64));
    e10 = _mm512_dpbusd_epi32(e10, va, _mm512_loadu_si512(w1 + at));
    if (last) e11 = _mm512_dpbusd_epi32(e11, va, _mm512_loadu_si512(w1 + at + 64));
  }
  const __m512i sums[4] = {_mm512_add_epi32(e00, o00), _mm512_add_epi32(e01, o01), _mm512_add_epi32(e10, o10),
                           _mm512_add_epi32(e11, o11)};
  for (size_t q = 0; q < 4 && q * 16 < cols; q++) {
    const qs8_channel_requant h = qs8_block_header(block + q / 2 * block_bytes, 32);
    const size_t n = q % 2 * 16;
    const __m512i acc = _mm512_add_epi32(sums[q], _mm512_loadu_si512(h.bias + n));
    qs8_store16_bytes_avx512(c + q * 16, qs8_output_avx512(acc, &h, n, params), cols - q * 16);
  }
}
#endif

void WHITTLE_KERNEL_NAME(size_t mr, size_t nc, size_t kc, WHITTLE_GEMM_A_PARAMS(const int8_t),
                         const void* packed_w, int8_t* c, size_t c_stride,
                         const qs8_gemmlowp_params* params) {
  WHITTLE_GEMM_TILE_ROWS(MR, const int8_t, int8_t);
  const unsigned char* block = packed_w;
  size_t first = 0;  // the columns before it ran two blocks at a time
#if MR == 1 && !defined(WHITTLE_IGEMM)
  const size_t block_bytes = 32 * 4 * sizeof(int32_t) + kc * 32;
  const qs8_gemmlowp_params p = *params;  // c may alias *params (int8_t*)
  for (; first + 32 < nc; first += 64, block += 2 * block_bytes) {
    const size_t cols = nc - first < 64 ? nc - first : 64;
    if (cols > 48) {
      qs8_vnni_row64(a_rows[0], kc, block, block_bytes, c_rows[0] + first, cols, &p, true);
    } else {
      qs8_vnni_row64(a_rows[0], kc, block, block_bytes, c_rows[0] + first, cols, &p, false);
    }
  }
#endif
  for (size_t n0 = first; n0 < nc; n0 += 32) {
    const qs8_channel_requant h = qs8_block_header(block, 32);
    const int8_t* w = (const int8_t*)(block + 32 * 4 * sizeof(int32_t));
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 32);
    if (cols <= 16 && MR > 1) {
      // One named accumulator per row, pinned across the k loop like the pairs below (with an array GCC
      // copied every accumulator twice per k step: 16 moves per 8 VPDPBUSD).
      __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
#define QS8_VNNI_NARROW_ROW(r)                                     \
  if (MR > r) {                                                    \
    int32_t quad;                                                  \
    memcpy(&quad, WHITTLE_GEMM_A_AT(r, k), 4);                     \
    c##r = _mm512_dpbusd_epi32(c##r, _mm512_set1_epi32(quad), w0); \
  }
      for (size_t k = 0; k < kc; k += 4) {
        const __m512i w0 = _mm512_loadu_si512(w);
        w += 128;
        QS8_VNNI_NARROW_ROW(0);
        QS8_VNNI_NARROW_ROW(1);
        QS8_VNNI_NARROW_ROW(2);
        QS8_VNNI_NARROW_ROW(3);
        QS8_VNNI_NARROW_ROW(4);
        QS8_VNNI_NARROW_ROW(5);
        QS8_VNNI_NARROW_ROW(6);
        QS8_VNNI_NARROW_ROW(7);
#if defined(__GNUC__)
        __asm__("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6), "+v"(c7));
#endif
      }
#undef QS8_VNNI_NARROW_ROW
      const __m512i acc[8] = {c0, c1, c2, c3, c4, c5, c6, c7};
      const __m512i b0 = _mm512_loadu_si512(h.bias);
      const qs8_output16_avx512 out0 = qs8_output16_load_avx512(&h, 0, params);
      // The output stage without the left shift and saturation steps when no channel needs them.
#define QS8_VNNI_NARROW_STORE(general)                                                            \
  for (size_t r = 0; r < MR; r++) {                                                               \
    const __m512i v = qs8_output16_avx512_apply_as(_mm512_add_epi32(acc[r], b0), &out0, general); \
    qs8_store16_bytes_avx512(c_rows[r] + n0, v, cols);                                            \
  }
      if (out0.general) {
        QS8_VNNI_NARROW_STORE(true)
      } else {
        QS8_VNNI_NARROW_STORE(false)
      }
#undef QS8_VNNI_NARROW_STORE
      block += 32 * 4 * sizeof(int32_t) + kc * 32;
      continue;
    }
    // One named pair of accumulators per row (rows >= MR are dead code the compiler drops). With arrays
    // acc0[MR] / acc1[MR] in the k loop, GCC kept two copies of every accumulator across the loop's back
    // edge and spilled some to the stack: ~10 extra moves per 16 VPDPBUSD, ~40 % of the kernel's time at
    // MR = 8. They start at 0; the bias is added after the loop (int32 adds wrap, so the sum is the same).
    const __m512i zero = _mm512_setzero_si512();
    __m512i c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero, c30 = zero, c31 = zero;
    __m512i c40 = zero, c41 = zero, c50 = zero, c51 = zero, c60 = zero, c61 = zero, c70 = zero, c71 = zero;
    size_t k = 0;
    if (MR == 1) {
      // One row has only 2 accumulator chains, so VPDPBUSD's latency would bound it: a second pair of
      // accumulators takes every other group of 4 k.
      __m512i odd0 = _mm512_setzero_si512(), odd1 = _mm512_setzero_si512();
      for (; k + 8 <= kc; k += 8) {
        int32_t quads[2];
        memcpy(&quads[0], WHITTLE_GEMM_A_AT(0, k), sizeof(quads[0]));
        memcpy(&quads[1], WHITTLE_GEMM_A_AT(0, k + 4), sizeof(quads[1]));
        const __m512i va0 = _mm512_set1_epi32(quads[0]), va1 = _mm512_set1_epi32(quads[1]);
        c00 = _mm512_dpbusd_epi32(c00, va0, _mm512_loadu_si512(w));
        c01 = _mm512_dpbusd_epi32(c01, va0, _mm512_loadu_si512(w + 64));
        odd0 = _mm512_dpbusd_epi32(odd0, va1, _mm512_loadu_si512(w + 128));
        odd1 = _mm512_dpbusd_epi32(odd1, va1, _mm512_loadu_si512(w + 192));
        w += 256;
      }
      c00 = _mm512_add_epi32(c00, odd0);
      c01 = _mm512_add_epi32(c01, odd1);
    }
#define QS8_VNNI_ROW(r)                             \
  if (MR > r) {                                     \
    int32_t quad;                                   \
    memcpy(&quad, WHITTLE_GEMM_A_AT(r, k), 4);      \
    const __m512i va = _mm512_set1_epi32(quad);     \
    c##r##0 = _mm512_dpbusd_epi32(c##r##0, va, w0); \
    c##r##1 = _mm512_dpbusd_epi32(c##r##1, va, w1); \
  }
    for (; k < kc; k += 4) {
      const __m512i w0 = _mm512_loadu_si512(w);
      const __m512i w1 = _mm512_loadu_si512(w + 64);
#if defined(WHITTLE_IGEMM)
      if (MR <= 4) {
        // The short IGEMM runs layers of few pixels, whose 3x3 weights stream from L3 with little reuse
        // (ResNet-18's 2 x 2 layers: 2.4 MB each, 4 rows per weight): asked for QS8_VNNI_PREFETCH bytes ahead
        // (kernels_bench, CPU time: +6-9 % on that layer; the 1x1 GEMM of 4 rows ran 4 % slower with it).
        _mm_prefetch((const char*)(w + QS8_VNNI_PREFETCH), _MM_HINT_T0);
        _mm_prefetch((const char*)(w + QS8_VNNI_PREFETCH + 64), _MM_HINT_T0);
      }
#endif
      w += 128;
      QS8_VNNI_ROW(0);
      QS8_VNNI_ROW(1);
      QS8_VNNI_ROW(2);
      QS8_VNNI_ROW(3);
      QS8_VNNI_ROW(4);
      QS8_VNNI_ROW(5);
      QS8_VNNI_ROW(6);
      QS8_VNNI_ROW(7);
#if defined(__GNUC__)
      // An empty asm that "modifies" every accumulator pins each to one register across iterations.
      // (Two statements: an asm takes at most 30 operands, and "+v" counts twice.)
      __asm__("" : "+v"(c00), "+v"(c01), "+v"(c10), "+v"(c11), "+v"(c20), "+v"(c21), "+v"(c30), "+v"(c31));
      __asm__("" : "+v"(c40), "+v"(c41), "+v"(c50), "+v"(c51), "+v"(c60), "+v"(c61), "+v"(c70), "+v"(c71));
#endif
    }
#undef QS8_VNNI_ROW
    const __m512i c0[8] = {c00, c10, c20, c30, c40, c50, c60, c70};
    const __m512i c1[8] = {c01, c11, c21, c31, c41, c51, c61, c71};
    __m512i acc0[MR], acc1[MR];
    const __m512i b0 = _mm512_loadu_si512(h.bias), b1 = _mm512_loadu_si512(h.bias + 16);
    for (size_t r = 0; r < MR; r++) {
      acc0[r] = _mm512_add_epi32(c0[r], b0);
      acc1[r] = _mm512_add_epi32(c1[r], b1);
    }
    const qs8_output16_avx512 out0 = qs8_output16_load_avx512(&h, 0, params);
    const qs8_output16_avx512 out1 = qs8_output16_load_avx512(&h, 16, params);
#define QS8_VNNI_STORE(general)                                                                            \
  for (size_t r = 0; r < MR; r++) {                                                                        \
    qs8_store16_bytes_avx512(c_rows[r] + n0, qs8_output16_avx512_apply_as(acc0[r], &out0, general), cols); \
    if (cols > 16) {                                                                                       \
      const __m512i v = qs8_output16_avx512_apply_as(acc1[r], &out1, general);                             \
      qs8_store16_bytes_avx512(c_rows[r] + n0 + 16, v, cols - 16);                                         \
    }                                                                                                      \
  }
    if (out0.general || (cols > 16 && out1.general)) {
      QS8_VNNI_STORE(true)
    } else {
      QS8_VNNI_STORE(false)
    }
#undef QS8_VNNI_STORE
    block += 32 * 4 * sizeof(int32_t) + kc * 32;
  }
}

#if defined(WHITTLE_IGEMM) && defined(WHITTLE_IGEMM_RUNS_NAME)
// acc[row[i]] += the run's k range of A row row[i] times the block's weights w (at k = 0), for the n rows of
// one run (n a constant at each call: the rows' accumulators are named registers, as in the body above).
// One or two rows alternate two accumulator sets over even and odd groups of 4 k, so that 4 or 8 VPDPBUSD
// chains cover its latency (a corner pixel's tap has no other row).
static inline __attribute__((always_inline)) void qs8_vnni_run_rows(size_t n, const int8_t* const* a,
                                                                    const int32_t* k_offsets,
                                                                    const qs8_igemm_run* run, const int8_t* w,
                                                                    int32_t (*acc)[32]) {
  // A run lies in one segment: each row's A is contiguous over it, from its first group's place on.
  const size_t k_begin = run->k_begin, groups = (run->k_end - k_begin) / 4;
  const int32_t at = k_offsets[k_begin / 4];
  const int8_t* p0 = a[run->row[0]] + at;
  const int8_t* p1 = n > 1 ? a[run->row[1]] + at : p0;
  const int8_t* p2 = n > 2 ? a[run->row[2]] + at : p0;
  const int8_t* p3 = n > 3 ? a[run->row[3]] + at : p0;
  const int8_t* p4 = n > 4 ? a[run->row[4]] + at : p0;
  const int8_t* p5 = n > 5 ? a[run->row[5]] + at : p0;
  const int8_t* p6 = n > 6 ? a[run->row[6]] + at : p0;
  const int8_t* p7 = n > 7 ? a[run->row[7]] + at : p0;
  const __m512i zero = _mm512_setzero_si512();
  __m512i c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero, c30 = zero, c31 = zero;
  __m512i c40 = zero, c41 = zero, c50 = zero, c51 = zero, c60 = zero, c61 = zero, c70 = zero, c71 = zero;
  w += k_begin * 32;
  size_t g = 0;  // groups of 4 k done
#define QS8_VNNI_RUN_ROW(r, x0, x1, k)                            \
  if (n > r) {                                                    \
    int32_t quad;                                                 \
    memcpy(&quad, p##r + (k), 4);                                 \
    const __m512i va = _mm512_set1_epi32(quad);                   \
    x0 = _mm512_dpbusd_epi32(x0, va, _mm512_loadu_si512(w));      \
    x1 = _mm512_dpbusd_epi32(x1, va, _mm512_loadu_si512(w + 64)); \
  }
  if (n <= 2) {
    // c20 .. c31 hold the odd groups of rows 0 and 1.
    for (; g + 2 <= groups; g += 2) {
      const size_t k = g * 4;
      _mm_prefetch((const char*)(w + QS8_VNNI_RUNS_PREFETCH), _MM_HINT_T0);
      _mm_prefetch((const char*)(w + QS8_VNNI_RUNS_PREFETCH + 64), _MM_HINT_T0);
      _mm_prefetch((const char*)(w + QS8_VNNI_RUNS_PREFETCH + 128), _MM_HINT_T0);
      _mm_prefetch((const char*)(w + QS8_VNNI_RUNS_PREFETCH + 192), _MM_HINT_T0);
      QS8_VNNI_RUN_ROW(0, c00, c01, k);
      QS8_VNNI_RUN_ROW(1, c10, c11, k);
      w += 128;
      QS8_VNNI_RUN_ROW(0, c20, c21, k + 4);
      QS8_VNNI_RUN_ROW(1, c30, c31, k + 4);
      w += 128;
#if defined(__GNUC__)
      __asm__("" : "+v"(c00), "+v"(c01), "+v"(c10), "+v"(c11), "+v"(c20), "+v"(c21), "+v"(c30), "+v"(c31));
#endif
    }
    c00 = _mm512_add_epi32(c00, c20);
    c01 = _mm512_add_epi32(c01, c21);
    c10 = _mm512_add_epi32(c10, c30);
    c11 = _mm512_add_epi32(c11, c31);
  }
  for (; g < groups; g++) {
    const size_t k = g * 4;
    _mm_prefetch((const char*)(w + QS8_VNNI_RUNS_PREFETCH), _MM_HINT_T0);
    _mm_prefetch((const char*)(w + QS8_VNNI_RUNS_PREFETCH + 64), _MM_HINT_T0);
    QS8_VNNI_RUN_ROW(0, c00, c01, k);
    QS8_VNNI_RUN_ROW(1, c10, c11, k);
    QS8_VNNI_RUN_ROW(2, c20, c21, k);
    QS8_VNNI_RUN_ROW(3, c30, c31, k);
    QS8_VNNI_RUN_ROW(4, c40, c41, k);
    QS8_VNNI_RUN_ROW(5, c50, c51, k);
    QS8_VNNI_RUN_ROW(6, c60, c61, k);
    QS8_VNNI_RUN_ROW(7, c70, c71, k);
    w += 128;
#if defined(__GNUC__)
    __asm__("" : "+v"(c00), "+v"(c01), "+v"(c10), "+v"(c11), "+v"(c20), "+v"(c21), "+v"(c30), "+v"(c31));
    __asm__("" : "+v"(c40), "+v"(c41), "+v"(c50), "+v"(c51), "+v"(c60), "+v"(c61), "+v"(c70), "+v"(c71));
#endif
  }
#undef QS8_VNNI_RUN_ROW
  const __m512i s0[8] = {c00, c10, c20, c30, c40, c50, c60, c70};
  const __m512i s1[8] = {c01, c11, c21, c31, c41, c51, c61, c71};
  for (size_t r = 0; r < n; r++) {
    int32_t* row = acc[run->row[r]];
    _mm512_store_si512(row, _mm512_add_epi32(_mm512_load_si512(row), s0[r]));
    _mm512_store_si512(row + 16, _mm512_add_epi32(_mm512_load_si512(row + 16), s1[r]));
  }
}

void WHITTLE_IGEMM_RUNS_NAME(size_t mr, size_t nc, size_t kc, const int8_t* const* a,
                             const int32_t* k_offsets, const qs8_igemm_run* runs, size_t run_count,
                             const int32_t* const* row_bias, const void* packed_w, int8_t* c, size_t c_stride,
                             const qs8_gemmlowp_params* params) {
  const unsigned char* block = packed_w;
  const size_t block_bytes = 32 * 4 * sizeof(int32_t) + kc * 32;
  for (size_t n0 = 0; n0 < nc; n0 += 32, block += block_bytes) {
    const qs8_channel_requant h = qs8_block_header(block, 32);
    const int8_t* w = (const int8_t*)(block + 32 * 4 * sizeof(int32_t));
    const size_t cols = whittle_gemm_tile_cols(nc, n0, 32);
    // Each row's accumulators start at its bias' plus its correction for the taps it skips.
    __attribute__((aligned(64))) int32_t acc[QS8_IGEMM_MAX_MR][32];
    const __m512i b0 = _mm512_loadu_si512(h.bias), b1 = _mm512_loadu_si512(h.bias + 16);
    for (size_t r = 0; r < mr; r++) {
      _mm512_store_si512(acc[r], _mm512_add_epi32(b0, _mm512_loadu_si512(row_bias[r] + n0)));
      _mm512_store_si512(acc[r] + 16, _mm512_add_epi32(b1, _mm512_loadu_si512(row_bias[r] + n0 + 16)));
    }
    for (size_t i = 0; i < run_count; i++) {
      switch (runs[i].rows) {
        case 1:
          qs8_vnni_run_rows(1, a, k_offsets, &runs[i], w, acc);
          break;
        case 2:
          qs8_vnni_run_rows(2, a, k_offsets, &runs[i], w, acc);
          break;
        case 3:
          qs8_vnni_run_rows(3, a, k_offsets, &runs[i], w, acc);
          break;
        case 4:
          qs8_vnni_run_rows(4, a, k_offsets, &runs[i], w, acc);
          break;
        case 5:
          qs8_vnni_run_rows(5, a, k_offsets, &runs[i], w, acc);
          break;
        case 6:
          qs8_vnni_run_rows(6, a, k_offsets, &runs[i], w, acc);
          break;
        case 7:
          qs8_vnni_run_rows(7, a, k_offsets, &runs[i], w, acc);
          break;
        default:
          qs8_vnni_run_rows(8, a, k_offsets, &runs[i], w, acc);
          break;
      }
    }
    const qs8_output16_avx512 out0 = qs8_output16_load_avx512(&h, 0, params);
    const qs8_output16_avx512 out1 = qs8_output16_load_avx512(&h, 16, params);
    const bool general = out0.general || (cols > 16 && out1.general);
    for (size_t r = 0; r < mr; r++) {
      int8_t* row = c + r * c_stride + n0;
      qs8_store16_bytes_avx512(row, qs8_output16_avx512_apply_as(_mm512_load_si512(acc[r]), &out0, general),
                               cols);
      if (cols > 16) {
        const __m512i v = qs8_output16_avx512_apply_as(_mm512_load_si512(acc[r] + 16), &out1, general);
        qs8_store16_bytes_avx512(row + 16, v, cols - 16);
      }
    }
  }
}
#endif
