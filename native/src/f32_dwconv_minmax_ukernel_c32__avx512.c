#include "f32_vec__avx512.h"

#define WHITTLE_KERNEL_NAME f32_dwconv_minmax_ukernel_c32__avx512
#include "f32_dwconv_impl.h"
