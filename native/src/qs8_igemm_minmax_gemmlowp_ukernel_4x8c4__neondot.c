#define MR 4
#define WHITTLE_IGEMM
#define WHITTLE_IGEMM_GROUP 16
#define WHITTLE_KERNEL_NAME qs8_igemm_minmax_gemmlowp_ukernel_4x8c4__neondot
#include "qs8_gemm_c4_impl__neondot.h"
