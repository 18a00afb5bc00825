#define MR 1
#define WHITTLE_IGEMM
#define WHITTLE_KERNEL_NAME f32_igemm_minmax_ukernel_1x16__avx2
#include "f32_gemm_impl__avx2.h"
