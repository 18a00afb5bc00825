#define MR 8
#define WHITTLE_IGEMM
#define WHITTLE_IGEMM_GROUP 4
#define WHITTLE_KERNEL_NAME qs8_igemm_minmax_gemmlowp_ukernel_8x32c4__avx512vnni
// and the variant over real taps only (qs8_igemm_runs_ukernel_fn), which shares the block layout.
#define WHITTLE_IGEMM_RUNS_NAME qs8_igemm_runs_minmax_gemmlowp_ukernel_8x32c4__avx512vnni
#include "qs8_gemm_c4_impl__avx512vnni.h"
