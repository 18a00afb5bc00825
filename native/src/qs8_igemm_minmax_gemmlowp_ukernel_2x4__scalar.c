#define WHITTLE_IGEMM
#define WHITTLE_IGEMM_GROUP 4
#define WHITTLE_KERNEL_NAME qs8_igemm_minmax_gemmlowp_ukernel_2x4__scalar
#include "qs8_gemm_impl__scalar.h"
