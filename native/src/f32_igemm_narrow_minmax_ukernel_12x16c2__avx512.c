#define MR 12
#define NARROW_SINGLES 0
#define WHITTLE_KERNEL_NAME f32_igemm_narrow_minmax_ukernel_12x16c2__avx512
#include "f32_igemm_narrow_impl__avx512.h"
