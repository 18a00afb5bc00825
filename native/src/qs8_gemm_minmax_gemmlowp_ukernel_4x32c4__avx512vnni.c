#define MR 4
#define WHITTLE_KERNEL_NAME qs8_gemm_minmax_gemmlowp_ukernel_4x32c4__avx512vnni
#include "qs8_gemm_c4_impl__avx512vnni.h"
