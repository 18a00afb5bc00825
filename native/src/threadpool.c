#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

// Protocol. The caller publishes a job (task, context, range, chunk) under `mutex`, sets `pending` to the
// number of workers and bumps `generation`, then broadcasts `wake`. Each worker, on seeing a new
// generation, runs its chunk and decrements `pending`; the one that brings it to zero signals `done` under
// `mutex`. The job fields are written before the (sequentially consistent) generation bump and read after
// a worker observes it, so they never race.
// Latency: a kernel call is often tens of microseconds, less than a futex wake-up round trip, so both sides
// spin briefly (about 1000 PAUSEs, ~15 us) on the atomics before sleeping on the condition variables; longer
// spins would steal the core from other processes when the machine is oversubscribed.
#define WHITTLE_SPIN_ITERATIONS 1000

struct whittle_threadpool {
  size_t threads;
  pthread_t workers[WHITTLE_MAX_THREADS];
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  pthread_cond_t done;
  pthread_mutex_t call_mutex;  // serializes parallelize() calls
  atomic_ulong generation;
  atomic_size_t pending;  // workers still running the current job
  atomic_bool stopping;
  whittle_task_fn task;
  void* context;
  size_t range;
  size_t chunk;  // items per thread, a multiple of the granularity
};

typedef struct {
  whittle_threadpool* pool;
  size_t thread;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ volatile("yield");
#endif
}

static void run_chunk(whittle_threadpool* pool, size_t thread) {
  const size_t begin = thread * pool->chunk;
  if (begin >= pool->range) return;
  size_t end = begin + pool->chunk;
  if (end > pool->range) end = pool->range;
  pool->task(pool->context, thread, begin, end);
}

static void* worker_main(void* raw) {
  worker_arg arg = *(worker_arg*)raw;
  free(raw);
  whittle_threadpool* pool = arg.pool;
  unsigned long seen = 0;
  for (;;) {
    for (int i = 0; i < WHITTLE_SPIN_ITERATIONS; i++) {
      if (atomic_load(&pool->generation) != seen || atomic_load(&pool->stopping)) break;
      cpu_relax();
    }
    if (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stopping)) {
      pthread_mutex_lock(&pool->mutex);
      while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stopping)) {
        pthread_cond_wait(&pool->wake, &pool->mutex);
      }
      pthread_mutex_unlock(&pool->mutex);
    }
    if (atomic_load(&pool->stopping)) break;
    seen = atomic_load(&pool->generation);
    run_chunk(pool, arg.thread);
    if (atomic_fetch_sub(&pool->pending, 1) == 1) {
      pthread_mutex_lock(&pool->mutex);
      pthread_cond_signal(&pool->done);
      pthread_mutex_unlock(&pool->mutex);
    }
  }
  return NULL;
}

whittle_threadpool* whittle_threadpool_create(size_t threads) {
  if (threads < 1 || threads > WHITTLE_MAX_THREADS) return NULL;
  whittle_threadpool* pool = calloc(1, sizeof(*pool));
  if (pool == NULL) return NULL;
  pool->threads = 1;
  atomic_init(&pool->generation, 0);
  atomic_init(&pool->pending, 0);
  atomic_init(&pool->stopping, false);
  pthread_mutex_init(&pool->mutex, NULL);
  pthread_mutex_init(&pool->call_mutex, NULL);
  pthread_cond_init(&pool->wake, NULL);
  pthread_cond_init(&pool->done, NULL);
  for (size_t t = 1; t < threads; t++) {
    worker_arg* arg = malloc(sizeof(*arg));
    if (arg == NULL) break;
    arg->pool = pool;
    arg->thread = t;
    if (pthread_create(&pool->workers[t], NULL, worker_main, arg) != 0) {
      free(arg);
      break;
    }
    pool->threads = t + 1;
  }
  if (pool->threads != threads) {
    whittle_threadpool_destroy(pool);
    return NULL;
  }
  return pool;
}

void whittle_threadpool_destroy(whittle_threadpool* pool) {
  if (pool == NULL) return;
  pthread_mutex_lock(&pool->mutex);
  atomic_store(&pool->stopping, true);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mutex);
  for (size_t t = 1; t < pool->threads; t++) pthread_join(pool->workers[t], NULL);
  pthread_cond_destroy(&pool->wake);
  pthread_cond_destroy(&pool->done);
  pthread_mutex_destroy(&pool->mutex);
  pthread_mutex_destroy(&pool->call_mutex);
  free(pool);
}

size_t whittle_threadpool_threads(const whittle_threadpool* pool) { return pool == NULL ? 1 : pool->threads; }

void whittle_threadpool_parallelize(whittle_threadpool* pool, whittle_task_fn task, void* context,
                                    size_t range, size_t granularity) {
  if (range == 0) return;
  if (granularity == 0) granularity = 1;
  const size_t units = (range + granularity - 1) / granularity;
  if (pool == NULL || pool->threads == 1 || units == 1) {
    task(context, 0, 0, range);
    return;
  }
  pthread_mutex_lock(&pool->call_mutex);
  const size_t threads = pool->threads;
  pthread_mutex_lock(&pool->mutex);
  pool->task = task;
  pool->context = context;
  pool->range = range;
  pool->chunk = ((units + threads - 1) / threads) * granularity;
  atomic_store(&pool->pending, threads - 1);
  atomic_fetch_add(&pool->generation, 1);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mutex);
  run_chunk(pool, 0);
  for (int i = 0; i < WHITTLE_SPIN_ITERATIONS && atomic_load(&pool->pending) != 0; i++) cpu_relax();
  if (atomic_load(&pool->pending) != 0) {
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load(&pool->pending) != 0) pthread_cond_wait(&pool->done, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
  }
  pthread_mutex_unlock(&pool->call_mutex);
}
