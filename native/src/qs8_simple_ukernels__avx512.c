#define WHITTLE_SUFFIX avx512
#define WHITTLE_SUFFIX_NAME "avx512"
#include "qs8_simple_impl.h"
