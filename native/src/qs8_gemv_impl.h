// Body of the int8 GEMV kernels 1x4c64 (qs8_gemv_ukernel_fn: batch-1 fully-connected on the packing of the
// GEMV list, qs8_ops.h): each output channel's weights are one contiguous row, so no column of a block is
// wasted on a narrow layer. 4 rows at a time share each step of A, with two sets of accumulators (even and
// odd steps) to cover the multiply-add's latency; the 4 rows' sums then go into the block's 16 sums, and the
// block gets bias, output stage and store. Every ISA's sums wrap exactly as the scalar kernel's.
//
// Each qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__<isa>.c defines WHITTLE_KERNEL_NAME and, before including
// this file (the AVX-512 pair shares part in qs8_gemv_impl__avx512.h, AVX2 and NEON in
// qs8_gemv_impl__step16.h):
//   QS8_GEMV_STEP                    bytes of A per multiply-add step (a divisor of 64);
//   qs8_gemv_acc                     an accumulator vector of int32;
//   qs8_gemv_a                       one step of A as the multiply-add takes it;
//   qs8_gemv_tail                    what loading the last, partial step of A needs (built once per call);
//   qs8_gemv_tail_of(a, k_size, p)   that, for A and *p (the kernel never reads A past k_size);
//   QS8_GEMV_LOAD_A(a, tail, p)      the step of A at `a` in the kernel's domain (input_flip applied);
//   QS8_GEMV_LOAD_TAIL(a, tail, p)   the same for the partial last step at `a`; its lanes past k_size may
//                                    hold anything, as they meet zero weights;
//   QS8_GEMV_ZERO()                  a zero accumulator;
//   QS8_GEMV_DOT(acc, va, w)         acc + the dot products of va with the step of weights at w;
//   QS8_GEMV_ADD(x, y)               lane-wise sum of two accumulators;
//   qs8_gemv_sums                    a block's 16 int32 sums;
//   QS8_GEMV_SUMS_ZERO()             16 zero sums;
//   QS8_GEMV_ADD_GROUP(sums, g, s0, s1, s2, s3)
//                                    sums with the 4 accumulators' totals in lanes g .. g + 3 (g = 0, 4, 8,
//                                    12, in this order);
//   QS8_GEMV_STORE_BLOCK(c, sums, count, h, p)
//                                    stores the block's first `count` outputs: sums + bias, output stage.
#include "qs8_requantize.h"

void WHITTLE_KERNEL_NAME(size_t nc, size_t k_size, const int8_t* a, const void* packed_w, int8_t* c,
                         const qs8_gemmlowp_params* params) {
  const qs8_gemmlowp_params p = *params;  // c may alias *params (int8_t*)
  const size_t kc = (k_size + 63) / 64 * 64;
  const size_t k_main = k_size / QS8_GEMV_STEP * QS8_GEMV_STEP;
  const qs8_gemv_tail tail = qs8_gemv_tail_of(a, k_size, &p);
  const unsigned char* block = packed_w;
  for (size_t n0 = 0; n0 < nc; n0 += 16) {
    const qs8_channel_requant h = qs8_block_header(block, 16);
    const int8_t* w = (const int8_t*)(block + 16 * 4 * sizeof(int32_t));
    qs8_gemv_sums sums = QS8_GEMV_SUMS_ZERO();
    for (size_t g = 0; g < 16 && n0 + g < nc; g += 4) {
      const int8_t* w0 = w + g * kc;
      const int8_t* w1 = w0 + kc;
      const int8_t* w2 = w1 + kc;
      const int8_t* w3 = w2 + kc;
      qs8_gemv_acc e0 = QS8_GEMV_ZERO(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
      size_t k = 0;
      for (; k + 2 * QS8_GEMV_STEP <= k_main; k += 2 * QS8_GEMV_STEP) {
        const qs8_gemv_a va = QS8_GEMV_LOAD_A(a + k, &tail, &p);
        const qs8_gemv_a vb = QS8_GEMV_LOAD_A(a + k + QS8_GEMV_STEP, &tail, &p);
        e0 = QS8_GEMV_DOT(e0, va, w0 + k);
        e1 = QS8_GEMV_DOT(e1, va, w1 + k);
        e2 = QS8_GEMV_DOT(e2, va, w2 + k);
        e3 = QS8_GEMV_DOT(e3, va, w3 + k);
        o0 = QS8_GEMV_DOT(o0, vb, w0 + k + QS8_GEMV_STEP);
        o1 = QS8_GEMV_DOT(o1, vb, w1 + k + QS8_GEMV_STEP);
        o2 = QS8_GEMV_DOT(o2, vb, w2 + k + QS8_GEMV_STEP);
        o3 = QS8_GEMV_DOT(o3, vb, w3 + k + QS8_GEMV_STEP);
      }
      // At most one whole step and the partial one are left; past k_size the weights are zero.
      for (; k < k_size; k += QS8_GEMV_STEP) {
        const qs8_gemv_a va =
            k < k_main ? QS8_GEMV_LOAD_A(a + k, &tail, &p) : QS8_GEMV_LOAD_TAIL(a + k, &tail, &p);
        e0 = QS8_GEMV_DOT(e0, va, w0 + k);
        e1 = QS8_GEMV_DOT(e1, va, w1 + k);
        e2 = QS8_GEMV_DOT(e2, va, w2 + k);
        e3 = QS8_GEMV_DOT(e3, va, w3 + k);
      }
      sums = QS8_GEMV_ADD_GROUP(sums, g, QS8_GEMV_ADD(e0, o0), QS8_GEMV_ADD(e1, o1), QS8_GEMV_ADD(e2, o2),
                                QS8_GEMV_ADD(e3, o3));
    }
    QS8_GEMV_STORE_BLOCK(c + n0, sums, nc - n0 < 16 ? nc - n0 : 16, &h, &p);
    block += 16 * 4 * sizeof(int32_t) + 16 * kc;
  }
}
