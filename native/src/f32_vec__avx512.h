// fp32 vectors for AVX-512F: 16-float ZMM (f32_vec.h); partial stores are masked.
#include <immintrin.h>

typedef __m512 f32v;
#define F32V_W 16
#define F32V_X86(op) _mm512_##op##_ps
#define F32V_STORE_N(p, v, n) _mm512_mask_storeu_ps(p, (n) >= 16 ? 0xFFFF : (__mmask16)((1u << (n)) - 1), v)

#include "f32_vec.h"
