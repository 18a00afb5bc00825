#define MR 1
#define WHITTLE_IGEMM
#define WHITTLE_KERNEL_NAME f32_igemm_minmax_ukernel_1x32__avx512
#include "f32_gemm_impl__avx512.h"
