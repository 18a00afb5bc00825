#define WHITTLE_SUFFIX avx2
#define WHITTLE_SUFFIX_NAME "avx2"
#include "qs8_simple_impl.h"
