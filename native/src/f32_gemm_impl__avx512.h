// The f32 GEMM kernels MRx32 for AVX-512: f32_gemm_impl.h on 16-float ZMM vectors, column tails by masked
// stores; a block of at most 16 columns sums odd k apart (F32_GEMM_HALF_ODD_K).
#include "f32_vec__avx512.h"

#define F32_GEMM_HALF_ODD_K 1
#include "f32_gemm_impl.h"
