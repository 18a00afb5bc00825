// fp32 vectors for AVX2 (FMA): 8-float YMM (f32_vec.h).
#include <immintrin.h>

typedef __m256 f32v;
#define F32V_W 8
#define F32V_X86(op) _mm256_##op##_ps

#include "f32_vec.h"
