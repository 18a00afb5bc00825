// The f32 GEMM kernels MRx8 for NEON (ARMv7 and AArch64): f32_gemm_impl.h on 4-float Q vectors; MR = 4 fits
// the 16 Q registers of ARMv7. (No half-block path: a block is only 8 columns; no odd-k split for one row.)
#include "f32_vec__neon.h"

#define F32_GEMM_HALF_BLOCK 0
#define F32_GEMM_ONE_ROW_ODD_K 0
#include "f32_gemm_impl.h"
