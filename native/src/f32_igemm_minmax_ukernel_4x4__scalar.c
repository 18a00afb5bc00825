#define WHITTLE_IGEMM
#define WHITTLE_KERNEL_NAME f32_igemm_minmax_ukernel_4x4__scalar
#include "f32_gemm_impl__scalar.h"
