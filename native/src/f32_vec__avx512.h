// fp32 vectors for AVX-512F: 16-float ZMM (f32_vec.h); partial loads and stores are masked.
#include <immintrin.h>

typedef __m512 f32v;
#define F32V_W 16
#define F32V_X86(op) _mm512_##op##_ps
#define F32V_MASK(n) ((n) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n)) - 1))
#define F32V_LOAD_N(p, n) _mm512_maskz_loadu_ps(F32V_MASK(n), p)
#define F32V_STORE_N(p, v, n) _mm512_mask_storeu_ps(p, F32V_MASK(n), v)

#include "f32_vec.h"
