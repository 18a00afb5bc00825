#define WHITTLE_SUFFIX scalar
#define WHITTLE_SUFFIX_NAME "scalar"
#include "f32_simple_impl.h"
