// Codebook conv kernel for NEON (ARMv7 and AArch64): 4 output pixels per vector (cb_conv2d_impl.h).
#if defined(__arm__) || defined(__aarch64__)
#define CB_LANES 4
#define CB_CONV2D_NAME cb_conv2d_minmax_ukernel__neon
#include "cb_conv2d_impl.h"
#endif
