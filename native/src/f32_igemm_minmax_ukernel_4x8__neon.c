#define MR 4
#define WHITTLE_IGEMM
#define WHITTLE_KERNEL_NAME f32_igemm_minmax_ukernel_4x8__neon
#include "f32_gemm_impl__neon.h"
