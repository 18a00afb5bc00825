// Hashed fully-connected kernel for AVX2 (hashed_fc_impl.h).
#if defined(__x86_64__) || defined(_M_X64)
#include "f32_vec__avx2.h"
#define HASHED_FC_NAME hashed_f32_fc_minmax_ukernel__avx2
#include "hashed_fc_impl.h"
#endif
