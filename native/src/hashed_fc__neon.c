// Hashed fully-connected kernel for NEON, ARMv7 and AArch64 (hashed_fc_impl.h).
#if defined(__arm__) || defined(__aarch64__)
#include "f32_vec__neon.h"
#define HASHED_FC_NAME hashed_f32_fc_minmax_ukernel__neon
#include "hashed_fc_impl.h"
#endif
