#define MR 1
#define WHITTLE_KERNEL_NAME qs8_gemm_minmax_gemmlowp_ukernel_1x8c4__neondot
#include "qs8_gemm_c4_impl__neondot.h"
