#define WHITTLE_SUFFIX neon
#define WHITTLE_SUFFIX_NAME "neon"
#include "f32_simple_impl.h"
