#include "threadpool.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

// Protocol. A job is split into `chunks` contiguous chunks (up to WHITTLE_CHUNKS_PER_THREAD per thread, of
// equal size give or take one unit of `granularity` items, so equally fast threads get equal shares) that
// the threads claim one at a time, the caller included, with a compare-and-swap on `claim`, which holds the
// job number in its high 32 bits and the next unclaimed chunk in its low 32 bits. The caller publishes a job
// (its fields and a fresh `claim`) under `mutex`, bumps `generation` and broadcasts `wake`; a worker that
// sees a new generation copies the fields under `mutex` and claims chunks while `claim` still names that
// job. So a worker that wakes late (a futex wake-up costs tens of microseconds on a loaded or virtualized
// machine, more than a whole small layer) finds the chunks already taken by the caller and goes back to
// waiting: two threads are never much slower than one. `finished` counts completed chunks; the caller
// returns when it reaches `chunks`, so no thread still runs a chunk of a returned job, and a stale claim
// (an old job number) always fails.
// Latency: both sides spin briefly (about 1000 PAUSEs, 10-30 us) on the atomics before sleeping on the
// condition variables, so back-to-back calls do not pay a wake-up each; longer spins would steal the core
// from other processes when the machine is oversubscribed.
#define WHITTLE_SPIN_ITERATIONS 1000
// More chunks than threads lets the faster thread take more of a job (a worker that starts late, a core
// shared with another process) at the price of one compare-and-swap per chunk.
#define WHITTLE_CHUNKS_PER_THREAD 4

typedef struct job {
  whittle_task_fn task;
  void* context;
  size_t range;
  size_t granularity;
  size_t units;   // ceil(range / granularity)
  size_t chunks;  // <= units; chunk i is units [i * units / chunks, (i + 1) * units / chunks)
  uint32_t number;
} job;

struct whittle_threadpool {
  size_t threads;
  pthread_t workers[WHITTLE_MAX_THREADS];
  pthread_mutex_t mutex;  // guards `current` and the condition variables
  pthread_cond_t wake;
  pthread_cond_t done;
  pthread_mutex_t call_mutex;  // serializes parallelize() calls
  atomic_ulong generation;
  atomic_uint_least64_t claim;  // (job number << 32) | next chunk
  atomic_size_t finished;       // chunks of the current job completed
  atomic_bool stopping;
  job current;
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

// Claims and runs chunks of job j until none is left. Returns whether this thread completed the job's last
// chunk.
static bool run_chunks(whittle_threadpool* pool, const job* j, size_t thread) {
  bool last = false;
  uint_least64_t c = atomic_load(&pool->claim);
  for (;;) {
    if ((uint32_t)(c >> 32) != j->number || (c & 0xffffffffu) >= j->chunks) return last;
    if (!atomic_compare_exchange_weak(&pool->claim, &c, c + 1)) continue;  // c now holds the new value
    const size_t i = (size_t)(c & 0xffffffffu);
    const size_t begin = i * j->units / j->chunks * j->granularity;
    const size_t end_unit = (i + 1) * j->units / j->chunks;
    const size_t end = end_unit == j->units ? j->range : end_unit * j->granularity;
    j->task(j->context, thread, begin, end);
    last = atomic_fetch_add(&pool->finished, 1) + 1 == j->chunks;
    c = atomic_load(&pool->claim);
  }
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
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stopping)) {
      pthread_cond_wait(&pool->wake, &pool->mutex);
    }
    const job j = pool->current;
    seen = atomic_load(&pool->generation);
    pthread_mutex_unlock(&pool->mutex);
    if (atomic_load(&pool->stopping)) break;
    if (run_chunks(pool, &j, arg.thread)) {
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
  atomic_init(&pool->claim, 0);
  atomic_init(&pool->finished, 0);
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
  size_t chunks = pool->threads * WHITTLE_CHUNKS_PER_THREAD;
  if (chunks > units) chunks = units;
  job j;
  j.task = task;
  j.context = context;
  j.range = range;
  j.granularity = granularity;
  j.units = units;
  j.chunks = chunks;
  pthread_mutex_lock(&pool->mutex);
  j.number = pool->current.number + 1;
  pool->current = j;
  atomic_store(&pool->finished, 0);
  atomic_store(&pool->claim, (uint_least64_t)j.number << 32);
  atomic_fetch_add(&pool->generation, 1);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mutex);
  run_chunks(pool, &j, 0);
  for (int i = 0; i < WHITTLE_SPIN_ITERATIONS && atomic_load(&pool->finished) != j.chunks; i++) cpu_relax();
  if (atomic_load(&pool->finished) != j.chunks) {
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load(&pool->finished) != j.chunks) pthread_cond_wait(&pool->done, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
  }
  pthread_mutex_unlock(&pool->call_mutex);
}

// SIZE_MAX: the environment has not been read yet.
static atomic_size_t min_task_work = SIZE_MAX;

size_t whittle_threadpool_min_task_work(void) {
  size_t work = atomic_load_explicit(&min_task_work, memory_order_relaxed);
  if (work == SIZE_MAX) {
    work = WHITTLE_MIN_TASK_WORK;
    const char* env = getenv("WHITTLE_MIN_TASK_WORK");
    if (env != NULL && *env >= '0' && *env <= '9') {
      char* end = NULL;
      const unsigned long long value = strtoull(env, &end, 10);
      if (*end == '\0' && value < SIZE_MAX) work = (size_t)value;
    }
    atomic_store_explicit(&min_task_work, work, memory_order_relaxed);
  }
  return work;
}

void whittle_threadpool_set_min_task_work(size_t work) {
  atomic_store_explicit(&min_task_work, work == SIZE_MAX ? SIZE_MAX - 1 : work, memory_order_relaxed);
}

size_t whittle_threadpool_granularity(size_t granularity, double work_per_item) {
  if (granularity == 0) granularity = 1;
  const double minimum = (double)whittle_threadpool_min_task_work();
  const double unit_work = work_per_item * (double)granularity;
  if (unit_work >= minimum) return granularity;
  // No measurable work, or so little that the multiple would not fit: never split (one unit covers any
  // range a caller can have).
  const double units = ceil(minimum / unit_work);
  if (!(unit_work > 0.0) || units * (double)granularity >= (double)(SIZE_MAX / 2)) return SIZE_MAX / 2;
  return (size_t)units * granularity;
}
