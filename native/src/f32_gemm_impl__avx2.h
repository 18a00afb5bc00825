// The f32 GEMM kernels MRx16 for AVX2 (FMA): f32_gemm_impl.h on 8-float YMM vectors; a block of at most 8
// columns sums k in order.
#include "f32_vec__avx2.h"

#define F32_GEMM_HALF_ODD_K 0
#include "f32_gemm_impl.h"
