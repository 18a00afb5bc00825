#define MR 6
#define WHITTLE_KERNEL_NAME f32_gemm_minmax_ukernel_6x32__avx512
#include "f32_gemm_impl__avx512.h"
