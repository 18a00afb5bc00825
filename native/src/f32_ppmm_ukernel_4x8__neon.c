// NEON 4x8 SGEMM microkernel (f32_ppmm_impl.h; ARMv7 NEON and AArch64 Advanced SIMD): 8 Q accumulators;
// 4 rows fit the 16 Q registers of ARMv7. The multiply-add is the inference kernels' (f32_mla__neon.h):
// fused on AArch64, multiply then add on ARMv7.
#include "f32_vec__neon.h"

#define MR 4
#define WHITTLE_KERNEL_NAME f32_ppmm_ukernel_4x8__neon
#include "f32_ppmm_impl.h"
