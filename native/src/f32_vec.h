// The fp32 vector operations of the SIMD kernel bodies (f32_gemm_impl.h, f32_ppmm_impl.h), for the ISA of
// the f32_vec__<isa>.h that includes this file. That header defines the vector type f32v of F32V_W floats
// and either F32V_X86(op), the _mm256_/_mm512_ intrinsic of `op` on floats (the operations below follow
// from it), or each operation:
//   F32V_LOAD(p), F32V_STORE(p, v), F32V_BCAST(p) (*p in every lane), F32V_SPLAT(x), F32V_ZERO(),
//   F32V_ADD(a, b), F32V_FMA(a, b, acc) = acc + a * b, F32V_CLAMP(v, lo, hi) = min(max(v, lo), hi);
// and, where the ISA has masked loads and stores, F32V_LOAD_N(p, n) and F32V_STORE_N(p, v, n): the first
// n <= F32V_W lanes (the rest 0 on loads). f32v_load_n and f32v_store_n use them, or else a full access
// when n = F32V_W and a copy otherwise, so no float past the first n is read or written.
#ifndef WHITTLE_F32_VEC_H_
#define WHITTLE_F32_VEC_H_

#include <stddef.h>

#if defined(F32V_X86)
#define F32V_LOAD(p) F32V_X86(loadu)(p)
#define F32V_STORE(p, v) F32V_X86(storeu)(p, v)
#define F32V_BCAST(p) F32V_X86(set1)(*(p))
#define F32V_SPLAT(x) F32V_X86(set1)(x)
#define F32V_ZERO() F32V_X86(setzero)()
#define F32V_ADD(a, b) F32V_X86(add)(a, b)
#define F32V_FMA(a, b, acc) F32V_X86(fmadd)(a, b, acc)
#define F32V_CLAMP(v, lo, hi) F32V_X86(min)(F32V_X86(max)(v, lo), hi)
#endif
static inline void f32v_store_n(float* p, f32v v, size_t n) {
#if defined(F32V_STORE_N)
  F32V_STORE_N(p, v, n);
#else
  if (n == F32V_W) {
    F32V_STORE(p, v);
  } else {
    float tmp[F32V_W];
    F32V_STORE(tmp, v);
    for (size_t i = 0; i < n; i++) p[i] = tmp[i];
  }
#endif
}

static inline f32v f32v_load_n(const float* p, size_t n) {
#if defined(F32V_LOAD_N)
  return F32V_LOAD_N(p, n);
#else
  if (n == F32V_W) return F32V_LOAD(p);
  float tmp[F32V_W] = {0};
  for (size_t i = 0; i < n; i++) tmp[i] = p[i];
  return F32V_LOAD(tmp);
#endif
}

#endif  // WHITTLE_F32_VEC_H_
