// AVX-512F 6x32 SGEMM microkernel (f32_ppmm_impl.h): 12 zmm accumulators. Compiled with the avx512 level's
// flags in its own file; listed for WHITTLE_ISA_AVX512 (cpu/cpu-features.h).
#include "f32_vec__avx512.h"

#define MR 6
#define WHITTLE_KERNEL_NAME f32_ppmm_ukernel_6x32__avx512
#include "f32_ppmm_impl.h"
