#define WHITTLE_SUFFIX scalar
#define WHITTLE_SUFFIX_NAME "scalar"
#include "qs8_simple_impl.h"
