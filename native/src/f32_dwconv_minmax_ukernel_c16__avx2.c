#include "f32_vec__avx2.h"

#define WHITTLE_KERNEL_NAME f32_dwconv_minmax_ukernel_c16__avx2
#include "f32_dwconv_impl.h"
