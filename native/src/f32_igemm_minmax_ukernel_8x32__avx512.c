#define MR 8
#define WHITTLE_IGEMM
#define WHITTLE_KERNEL_NAME f32_igemm_minmax_ukernel_8x32__avx512
#include "f32_gemm_impl__avx512.h"
