#define MR 4
#define WHITTLE_IGEMM
#define WHITTLE_IGEMM_GROUP 4
#define WHITTLE_KERNEL_NAME qs8_igemm_minmax_gemmlowp_ukernel_4x16c2__avx2
#include "qs8_gemm_c2_impl__avx2.h"
