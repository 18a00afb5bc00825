#define MR 1
#define WHITTLE_KERNEL_NAME qs8_gemm_minmax_gemmlowp_ukernel_1x32c2__avx512
#include "qs8_gemm_c2_impl__avx512.h"
