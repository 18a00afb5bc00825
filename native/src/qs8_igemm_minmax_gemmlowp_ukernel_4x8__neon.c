#define MR 4
#define WHITTLE_IGEMM
#define WHITTLE_IGEMM_GROUP 8
#define WHITTLE_KERNEL_NAME qs8_igemm_minmax_gemmlowp_ukernel_4x8__neon
#include "qs8_gemm_impl__neon.h"
