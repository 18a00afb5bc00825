// Codebook conv kernel for AVX2: 8 output pixels per vector (cb_conv2d_impl.h).
#if defined(__x86_64__) || defined(_M_X64)
#define CB_LANES 8
#define CB_CONV2D_NAME cb_conv2d_minmax_ukernel__avx2
#include "cb_conv2d_impl.h"
#endif
