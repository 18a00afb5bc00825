// The tile bookkeeping every GEMM micro-kernel body shares (f32_gemm_impl__*.h, qs8_gemm_*impl__*.h and the
// portable f32 4x4 tile): which rows of A and C a tile of mr <= MR rows reads and writes, and how many of
// the NR columns of a column block are real. The SIMD bodies differ per ISA; this part does not.
#ifndef WHITTLE_GEMM_TILE_H_
#define WHITTLE_GEMM_TILE_H_

#include <stddef.h>
#include <stdint.h>

// Declares a_rows[rows] and c_rows[rows] from the micro-kernel parameters mr, a, a_stride (or the IGEMM's
// row pointers), c and c_stride (the names of the GEMM ukernel ABI; strides in elements). A tile of mr < rows
// still runs all rows, so the k loop has no branch: rows past mr repeat the last valid row, compute the same
// result and write it to the same place.
#define WHITTLE_GEMM_TILE_ROWS(rows, a_type, c_type) \
  a_type *a_rows[rows];                              \
  c_type *c_rows[rows];                              \
  for (size_t r = 0; r < (rows); r++) {              \
    const size_t row = r < mr ? r : mr - 1;          \
    a_rows[r] = WHITTLE_GEMM_A_ROW(row);             \
    c_rows[r] = c + row * c_stride;                  \
  }

// The A operand of a GEMM body: the first element of each tile row (A_ROW), and where element (row r,
// reduction index k) of A is (A_AT). A body included with WHITTLE_IGEMM defined is the indirect GEMM of the
// convolutions (f32_ops.h): a[r] points at the input that the first tap of the tile's output pixel r reads
// in the padded input, and k_offsets[g] is the place of the g-th group of WHITTLE_IGEMM_GROUP consecutive
// reduction elements (fp32: 1 element; int8: the kernel's k_align bytes, which its loads read at once)
// relative to it, so A is read where it lies and no im2col copy is made.
#if defined(WHITTLE_IGEMM)
#ifndef WHITTLE_IGEMM_GROUP
#define WHITTLE_IGEMM_GROUP 1
#endif
#define WHITTLE_GEMM_A_PARAMS(a_type) a_type *const *a, const int32_t *k_offsets
#define WHITTLE_GEMM_A_ROW(row) (a[row])
#define WHITTLE_GEMM_A_AT(r, k) (a_rows[r] + k_offsets[(k) / WHITTLE_IGEMM_GROUP] + (k) % WHITTLE_IGEMM_GROUP)
#else
#define WHITTLE_GEMM_A_PARAMS(a_type) a_type *a, size_t a_stride
#define WHITTLE_GEMM_A_ROW(row) (a + (row)*a_stride)
#define WHITTLE_GEMM_A_AT(r, k) (a_rows[r] + (k))
#endif

// Columns of the block starting at column n0 that exist in a row of nc: nr except in the last block.
static inline size_t whittle_gemm_tile_cols(size_t nc, size_t n0, size_t nr) {
  return nc - n0 < nr ? nc - n0 : nr;
}

#endif  // WHITTLE_GEMM_TILE_H_
