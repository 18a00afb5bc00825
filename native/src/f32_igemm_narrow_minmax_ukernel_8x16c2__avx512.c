#define MR 8
#define NARROW_SINGLES 1
#define WHITTLE_KERNEL_NAME f32_igemm_narrow_minmax_ukernel_8x16c2__avx512
#include "f32_igemm_narrow_impl__avx512.h"
