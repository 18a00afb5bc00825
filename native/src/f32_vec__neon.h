// fp32 vectors for NEON (ARMv7 and AArch64): 4-float Q registers (f32_vec.h); the multiply-add is
// f32_mla__neon.h's.
#include <arm_neon.h>

#include "f32_mla__neon.h"

typedef float32x4_t f32v;
#define F32V_W 4
#define F32V_LOAD(p) vld1q_f32(p)
#define F32V_STORE(p, v) vst1q_f32(p, v)
#define F32V_BCAST(p) vld1q_dup_f32(p)
#define F32V_SPLAT(x) vdupq_n_f32(x)
#define F32V_ZERO() vdupq_n_f32(0.0f)
#define F32V_ADD(a, b) vaddq_f32(a, b)
#define F32V_FMA(a, b, acc) WHITTLE_VMLA(acc, a, b)
#define F32V_CLAMP(v, lo, hi) vminq_f32(vmaxq_f32(v, lo), hi)

#include "f32_vec.h"
