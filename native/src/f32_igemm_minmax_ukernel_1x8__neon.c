#define MR 1
#define WHITTLE_IGEMM
#define WHITTLE_KERNEL_NAME f32_igemm_minmax_ukernel_1x8__neon
#include "f32_gemm_impl__neon.h"
