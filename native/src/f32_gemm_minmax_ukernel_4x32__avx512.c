#define MR 4
#define WHITTLE_KERNEL_NAME f32_gemm_minmax_ukernel_4x32__avx512
#include "f32_gemm_impl__avx512.h"
