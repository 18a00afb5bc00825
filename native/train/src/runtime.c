// Thread pool (pthreads, no OpenMP), ISA detection and dispatch, scratch memory.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define F32_X86 1
#else
#define F32_X86 0
#endif

// ---- Thread pool ----
// Invariant: workers 1..F32_MAX_THREADS-1 wait for `generation` to change; each runs its slot when
// thread index < active_threads, then decrements `pending`. The caller runs slot 0 and waits for pending 0.

static pthread_mutex_t pool_call_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;
static unsigned long pool_generation = 0;
static int pool_started = 0;
static int pool_active_threads = 1;
static int pool_pending = 0;
static f32_task_fn pool_task = NULL;
static void* pool_context = NULL;

static void* pool_worker(void* arg) {
  const int index = (int)(size_t)arg;
  unsigned long seen = 0;
  for (;;) {
    pthread_mutex_lock(&pool_lock);
    while (pool_generation == seen) pthread_cond_wait(&pool_work, &pool_lock);
    seen = pool_generation;
    const int threads = pool_active_threads;
    f32_task_fn task = pool_task;
    void* context = pool_context;
    pthread_mutex_unlock(&pool_lock);
    if (index < threads) {
      task(context, index, threads);
      pthread_mutex_lock(&pool_lock);
      if (--pool_pending == 0) pthread_cond_signal(&pool_done);
      pthread_mutex_unlock(&pool_lock);
    }
  }
  return NULL;
}

static int pool_start_workers(void) {
  if (pool_started) return pool_started;
  int started = 1;
  for (int i = 1; i < F32_MAX_THREADS; i++) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, pool_worker, (void*)(size_t)i) != 0) break;
    pthread_attr_destroy(&attr);
    started++;
  }
  pool_started = started;
  return started;
}

void f32_parallel(int threads, f32_task_fn task, void* context) {
  if (threads <= 1) {
    task(context, 0, 1);
    return;
  }
  pthread_mutex_lock(&pool_call_lock);
  const int available = pool_start_workers();
  if (threads > available) threads = available;
  if (threads <= 1) {
    pthread_mutex_unlock(&pool_call_lock);
    task(context, 0, 1);
    return;
  }
  pthread_mutex_lock(&pool_lock);
  pool_task = task;
  pool_context = context;
  pool_active_threads = threads;
  pool_pending = threads - 1;
  pool_generation++;
  pthread_cond_broadcast(&pool_work);
  pthread_mutex_unlock(&pool_lock);
  task(context, 0, threads);
  pthread_mutex_lock(&pool_lock);
  while (pool_pending > 0) pthread_cond_wait(&pool_done, &pool_lock);
  pthread_mutex_unlock(&pool_lock);
  pthread_mutex_unlock(&pool_call_lock);
}

static int configured_threads = 2;

int f32_train_threads(void) { return configured_threads; }

int f32_train_set_threads(int threads) {
  if (threads < 1 || threads > F32_MAX_THREADS) return -1;
  configured_threads = threads;
  return 0;
}

// ---- ISA detection ----

static int isa_detected = 0;
static f32_isa isa_best_value = F32_ISA_SCALAR;
static f32_isa isa_current = F32_ISA_SCALAR;

#if F32_X86
static unsigned long long read_xcr0(void) {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}
#endif

static f32_isa detect_isa(void) {
#if F32_X86 && defined(WHITTLE_TRAIN_HAVE_AVX2)
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return F32_ISA_SCALAR;
  const int osxsave = (ecx >> 27) & 1, fma = (ecx >> 12) & 1, avx = (ecx >> 28) & 1;
  if (!osxsave || !avx || !fma) return F32_ISA_SCALAR;
  const unsigned long long xcr0 = read_xcr0();
  if ((xcr0 & 0x6) != 0x6) return F32_ISA_SCALAR;  // the OS saves XMM and YMM state
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return F32_ISA_SCALAR;
  const int avx2 = (ebx >> 5) & 1, avx512f = (ebx >> 16) & 1;
  if (!avx2) return F32_ISA_SCALAR;
#if defined(WHITTLE_TRAIN_HAVE_AVX512)
  if (avx512f && (xcr0 & 0xe6) == 0xe6) return F32_ISA_AVX512;  // and opmask + ZMM state
#else
  (void)avx512f;
#endif
  return F32_ISA_AVX2;
#else
  return F32_ISA_SCALAR;
#endif
}

static void ensure_detected(void) {
  if (isa_detected) return;
  isa_best_value = detect_isa();
  isa_current = isa_best_value;
  isa_detected = 1;
}

f32_isa f32_train_isa_best(void) {
  ensure_detected();
  return isa_best_value;
}

f32_isa f32_train_isa(void) {
  ensure_detected();
  return isa_current;
}

int f32_train_set_isa(f32_isa isa) {
  ensure_detected();
  if ((int)isa < 0 || isa > isa_best_value) return -1;
  isa_current = isa;
  return 0;
}

const char* f32_train_isa_name(f32_isa isa) {
  switch (isa) {
    case F32_ISA_AVX2:
      return "avx2";
    case F32_ISA_AVX512:
      return "avx512";
    default:
      return "scalar";
  }
}

// One table drives dispatch; tests force each row through f32_train_set_isa.
static const f32_gemm_config gemm_configs[] = {
    {4, 8, f32_gemm_ukernel_4x8__scalar},
#if defined(WHITTLE_TRAIN_HAVE_AVX2)
    {6, 16, f32_gemm_ukernel_6x16__avx2},
#else
    {4, 8, f32_gemm_ukernel_4x8__scalar},
#endif
#if defined(WHITTLE_TRAIN_HAVE_AVX512)
    {6, 32, f32_gemm_ukernel_6x32__avx512},
#else
    {4, 8, f32_gemm_ukernel_4x8__scalar},
#endif
};

const f32_gemm_config* f32_gemm_config_current(void) { return &gemm_configs[f32_train_isa()]; }

// ---- Scratch ----

typedef struct {
  float* data;
  size_t floats;
} scratch_block;

static scratch_block scratch[F32_MAX_THREADS][4];

float* f32_scratch(int thread, int slot, size_t floats) {
  scratch_block* block = &scratch[thread][slot];
  if (block->floats < floats) {
    free(block->data);
    block->data = NULL;
    block->floats = 0;
    size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
    void* p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    block->data = (float*)p;
    block->floats = floats;
  }
  return block->data;
}

void f32_bias_activation(float* y, size_t rows, size_t channels, const float* bias, f32_activation act) {
  if (bias == NULL && act == F32_ACT_LINEAR) return;
  for (size_t r = 0; r < rows; r++) {
    float* row = y + r * channels;
    if (bias != NULL)
      for (size_t c = 0; c < channels; c++) row[c] += bias[c];
    if (act == F32_ACT_RELU) {
      for (size_t c = 0; c < channels; c++) row[c] = row[c] < 0.0f ? 0.0f : row[c];  // NaN stays NaN
    } else if (act == F32_ACT_RELU6) {
      for (size_t c = 0; c < channels; c++) {
        const float v = row[c] < 0.0f ? 0.0f : row[c];
        row[c] = v > 6.0f ? 6.0f : v;
      }
    }
  }
}
