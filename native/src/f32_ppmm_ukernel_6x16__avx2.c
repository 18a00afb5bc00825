// AVX2 + FMA 6x16 SGEMM microkernel (f32_ppmm_impl.h): 12 ymm accumulators. Compiled with the avx2 level's
// flags in its own file; listed for WHITTLE_ISA_AVX2 (cpu/cpu-features.h).
#include "f32_vec__avx2.h"

#define MR 6
#define WHITTLE_KERNEL_NAME f32_ppmm_ukernel_6x16__avx2
#include "f32_ppmm_impl.h"
