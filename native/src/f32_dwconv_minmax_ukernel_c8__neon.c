#include "f32_vec__neon.h"

#define WHITTLE_KERNEL_NAME f32_dwconv_minmax_ukernel_c8__neon
#include "f32_dwconv_impl.h"
