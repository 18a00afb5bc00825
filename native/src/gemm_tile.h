// The tile bookkeeping every GEMM micro-kernel body shares (f32_gemm_impl__*.h, qs8_gemm_*impl__*.h and the
// portable f32 4x4 tile): which rows of A and C a tile of mr <= MR rows reads and writes, and how many of
// the NR columns of a column block are real. The SIMD bodies differ per ISA; this part does not.
#ifndef WHITTLE_GEMM_TILE_H_
#define WHITTLE_GEMM_TILE_H_

#include <stddef.h>

// Declares a_rows[rows] and c_rows[rows] from the micro-kernel parameters mr, a, a_stride, c and c_stride
// (the names of the GEMM ukernel ABI; strides in elements). A tile of mr < rows still runs all rows, so
// the k loop has no branch: rows past mr repeat the last valid row, compute the same result and write it
// to the same place.
#define WHITTLE_GEMM_TILE_ROWS(rows, a_type, c_type) \
  a_type* a_rows[rows];                              \
  c_type* c_rows[rows];                              \
  for (size_t r = 0; r < (rows); r++) {              \
    const size_t row = r < mr ? r : mr - 1;          \
    a_rows[r] = a + row * a_stride;                  \
    c_rows[r] = c + row * c_stride;                  \
  }

// Columns of the block starting at column n0 that exist in a row of nc: nr except in the last block.
static inline size_t whittle_gemm_tile_cols(size_t nc, size_t n0, size_t nr) {
  return nc - n0 < nr ? nc - n0 : nr;
}

#endif  // WHITTLE_GEMM_TILE_H_
