#define MR 4
#define WHITTLE_KERNEL_NAME f32_gemm_minmax_ukernel_4x16__avx2
#include "f32_gemm_impl__avx2.h"
