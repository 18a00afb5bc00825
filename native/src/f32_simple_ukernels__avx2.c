#define WHITTLE_SUFFIX avx2
#define WHITTLE_SUFFIX_NAME "avx2"
#include "f32_simple_impl.h"
