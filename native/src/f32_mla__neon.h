// The fp32 multiply-add of every NEON kernel (inference GEMM and depthwise conv, training SGEMM):
// WHITTLE_VMLA(acc, a, b) = acc + a * b on four lanes. ARMv7 NEON has no fused multiply-add without VFPv4,
// so it multiplies then adds (vmlaq, two roundings, as the scalar kernels); AArch64 fuses (vfmaq, one
// rounding, as the x86 FMA kernels).
#ifndef WHITTLE_F32_MLA_NEON_H_
#define WHITTLE_F32_MLA_NEON_H_

#include <arm_neon.h>

#if defined(__aarch64__)
#define WHITTLE_VMLA(acc, a, b) vfmaq_f32(acc, a, b)
#else
#define WHITTLE_VMLA(acc, a, b) vmlaq_f32(acc, a, b)
#endif

#endif  // WHITTLE_F32_MLA_NEON_H_
