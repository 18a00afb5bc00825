#define WHITTLE_SUFFIX neon
#define WHITTLE_SUFFIX_NAME "neon"
#include "qs8_simple_impl.h"
