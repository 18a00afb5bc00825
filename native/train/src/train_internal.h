// Internals shared by the training kernels: the thread pool, the SGEMM microkernel table, scratch memory.
#ifndef WHITTLE_TRAIN_INTERNAL_H_
#define WHITTLE_TRAIN_INTERNAL_H_

#include <stddef.h>

#include "f32_train.h"

// Runs task(context, t, threads) for t in [0, threads); t = 0 on the calling thread. Calls are serialized;
// a task must not call f32_parallel again (it would deadlock).
typedef void (*f32_task_fn)(void* context, int thread, int threads);
void f32_parallel(int threads, f32_task_fn task, void* context);

// An MR x NR microkernel over packed panels: a holds kc columns of MR values, b holds kc rows of NR values.
// c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0) + sum_p a[p * MR + i] * b[p * NR + j], a full tile.
typedef void (*f32_gemm_ukernel_fn)(size_t kc, const float* a, const float* b, float* c, size_t ldc,
                                    int accumulate);

typedef struct {
  size_t mr, nr;
  f32_gemm_ukernel_fn ukernel;
} f32_gemm_config;

// The microkernel of the ISA in use.
const f32_gemm_config* f32_gemm_config_current(void);

void f32_gemm_ukernel_4x8__scalar(size_t kc, const float* a, const float* b, float* c, size_t ldc,
                                  int accumulate);
void f32_gemm_ukernel_6x16__avx2(size_t kc, const float* a, const float* b, float* c, size_t ldc,
                                 int accumulate);
void f32_gemm_ukernel_6x32__avx512(size_t kc, const float* a, const float* b, float* c, size_t ldc,
                                   int accumulate);

// Per-thread scratch that grows and is kept (slot 0..3 per thread; 64-byte aligned). NULL when out of memory.
float* f32_scratch(int thread, int slot, size_t floats);

// Applies bias (per last-axis channel, may be NULL) and activation to rows x channels values.
void f32_bias_activation(float* y, size_t rows, size_t channels, const float* bias, f32_activation act);

// f32_sgemm on the calling thread, using the scratch of thread index `thread` (a task's own index).
void f32_sgemm_on_thread(int thread, int trans_a, int trans_b, size_t m, size_t n, size_t k, const float* a,
                         size_t lda, const float* b, size_t ldb, float beta, float* c, size_t ldc);

#endif  // WHITTLE_TRAIN_INTERNAL_H_
