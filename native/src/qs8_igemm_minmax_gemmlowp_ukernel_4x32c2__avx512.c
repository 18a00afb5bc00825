#define MR 4
#define WHITTLE_IGEMM
#define WHITTLE_IGEMM_GROUP 4
#define WHITTLE_KERNEL_NAME qs8_igemm_minmax_gemmlowp_ukernel_4x32c2__avx512
#include "qs8_gemm_c2_impl__avx512.h"
