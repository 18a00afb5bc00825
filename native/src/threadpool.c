#include "threadpool.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

// Protocol. A job is `units` units of `granularity` items (the last one may be shorter) that the threads
// claim in chunks, the caller included, with a compare-and-swap on `claim`, which holds the job number in
// its high 32 bits and the next unclaimed unit in its low 32 bits. Chunks are guided: each claim takes
// ceil(remaining / (WHITTLE_GUIDED_DIVISOR * threads)) units, so the first chunks are large (few claims)
// and the last ones a single unit, and the threads finish within about one unit of each other. The caller
// publishes a job (its fields and a fresh `claim`) under a sequence lock on `generation` and wakes the
// workers that sleep; a worker that sees a new generation copies the fields (again if the caller published
// a newer job meanwhile) and claims chunks while `claim` still names that job. So a worker that wakes late (a
// futex wake-up costs tens of microseconds on a loaded or virtualized machine, more than a whole small layer)
// finds the units already taken by the caller and goes back to waiting: two threads are never much slower
// than one. `finished` counts completed units; the caller returns when it reaches `units`, so no thread still
// runs a chunk of a returned job, and a stale claim (an old job number) always fails. Latency: both sides
// spin briefly (about 1000 PAUSEs, 10-30 us) on the atomics before sleeping on the condition variables, so
// back-to-back calls do not pay a wake-up each; longer spins would steal the core from other processes when
// the machine is oversubscribed.
#define WHITTLE_SPIN_ITERATIONS 1000
// Guided chunk size divisor: 2 leaves half of what remains to the other threads at every claim.
#define WHITTLE_GUIDED_DIVISOR 2
// whittle_threadpool_granularity: units of 1 / WHITTLE_UNITS_PER_MIN_TASK of the minimum work, so the
// last chunks of a job are short (~0.5 us) and the threads end together.
#define WHITTLE_UNITS_PER_MIN_TASK 8

typedef struct job {
  whittle_task_fn task;
  void* context;
  size_t range;
  size_t granularity;
  size_t units;  // ceil(range / granularity), < 2^32
  uint32_t number;
} job;

// The published job, read by workers without a lock (a sequence lock on `generation`, odd while the caller
// writes it), so that a spinning worker starts within a fraction of a microsecond instead of queueing on a
// mutex the caller holds.
typedef struct published_job {
  _Atomic(whittle_task_fn) task;
  _Atomic(void*) context;
  atomic_size_t range;
  atomic_size_t granularity;
  atomic_size_t units;
  atomic_uint_least32_t number;
} published_job;

struct whittle_threadpool {
  size_t threads;
  pthread_t workers[WHITTLE_MAX_THREADS];
  pthread_mutex_t mutex;  // for sleeping on the condition variables
  pthread_cond_t wake;
  pthread_cond_t done;
  pthread_mutex_t call_mutex;   // serializes parallelize() calls
  atomic_ulong generation;      // twice the job count; odd while a job is being published
  atomic_size_t sleepers;       // workers asleep (or about to sleep) on `wake`
  atomic_bool caller_asleep;    // the caller sleeps (or is about to sleep) on `done`
  atomic_uint_least64_t claim;  // (job number << 32) | next unit
  atomic_size_t finished;       // units of the current job completed
  atomic_bool stopping;
  uint32_t jobs;  // number of the last job (caller only, under call_mutex)
  published_job current;
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
// unit.
static bool run_chunks(whittle_threadpool* pool, const job* j, size_t thread) {
  bool last = false;
  uint_least64_t c = atomic_load(&pool->claim);
  for (;;) {
    const size_t next = (size_t)(c & 0xffffffffu);
    if ((uint32_t)(c >> 32) != j->number || next >= j->units) return last;
    const size_t remaining = j->units - next;
    const size_t share = WHITTLE_GUIDED_DIVISOR * pool->threads;
    const size_t take = (remaining + share - 1) / share;
    // On failure c holds the claim's new value and the chunk is recomputed from it.
    if (!atomic_compare_exchange_weak(&pool->claim, &c, c + take)) continue;
    const size_t begin = next * j->granularity;
    const size_t end = next + take == j->units ? j->range : (next + take) * j->granularity;
    j->task(j->context, thread, begin, end);
    last = atomic_fetch_add(&pool->finished, take) + take == j->units;
    c = atomic_load(&pool->claim);
  }
}

// Reads the job of an even generation `g`; false when a newer one was published meanwhile (the copy may be
// torn and the caller has moved on: look again).
static bool read_job(whittle_threadpool* pool, unsigned long g, job* j) {
  published_job* p = &pool->current;
  j->task = atomic_load_explicit(&p->task, memory_order_relaxed);
  j->context = atomic_load_explicit(&p->context, memory_order_relaxed);
  j->range = atomic_load_explicit(&p->range, memory_order_relaxed);
  j->granularity = atomic_load_explicit(&p->granularity, memory_order_relaxed);
  j->units = atomic_load_explicit(&p->units, memory_order_relaxed);
  j->number = (uint32_t)atomic_load_explicit(&p->number, memory_order_relaxed);
  atomic_thread_fence(memory_order_acquire);
  return atomic_load_explicit(&pool->generation, memory_order_relaxed) == g;
}

static void* worker_main(void* raw) {
  worker_arg arg = *(worker_arg*)raw;
  free(raw);
  whittle_threadpool* pool = arg.pool;
  unsigned long seen = 0;
  for (;;) {
    unsigned long g = atomic_load(&pool->generation);
    for (int i = 0; i < WHITTLE_SPIN_ITERATIONS && (g == seen || (g & 1)) && !atomic_load(&pool->stopping);
         i++) {
      cpu_relax();
      g = atomic_load(&pool->generation);
    }
    if ((g == seen || (g & 1)) && !atomic_load(&pool->stopping)) {
      // Nothing new after the spin: sleep. `sleepers` is raised before the last look at `generation`, and
      // the caller reads it after bumping `generation`, so one of them sees the other (no lost wake-up).
      pthread_mutex_lock(&pool->mutex);
      atomic_fetch_add(&pool->sleepers, 1);
      while (((g = atomic_load(&pool->generation)) == seen || (g & 1)) && !atomic_load(&pool->stopping)) {
        pthread_cond_wait(&pool->wake, &pool->mutex);
      }
      atomic_fetch_sub(&pool->sleepers, 1);
      pthread_mutex_unlock(&pool->mutex);
    }
    if (atomic_load(&pool->stopping)) break;
    job j;
    if (!read_job(pool, g, &j)) continue;  // superseded while reading: look at the newest one
    seen = g;
    if (run_chunks(pool, &j, arg.thread) && atomic_load(&pool->caller_asleep)) {
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
  atomic_init(&pool->sleepers, 0);
  atomic_init(&pool->caller_asleep, false);
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
  // The claim word counts units in 32 bits: a range of more than 2^32 units gets coarser units.
  if (range / granularity >= UINT32_MAX)
    granularity = (range / (UINT32_MAX - 1) + granularity) / granularity * granularity;
  const size_t units = (range + granularity - 1) / granularity;
  if (pool == NULL || pool->threads == 1 || units == 1) {
    task(context, 0, 0, range);
    return;
  }
  pthread_mutex_lock(&pool->call_mutex);
  job j;
  j.task = task;
  j.context = context;
  j.range = range;
  j.granularity = granularity;
  j.units = units;
  j.number = ++pool->jobs;
  // Publish: generation odd, the fields, the counters, generation even (release: a worker that reads the
  // new generation reads these fields).
  published_job* p = &pool->current;
  atomic_fetch_add(&pool->generation, 1);
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&p->task, j.task, memory_order_relaxed);
  atomic_store_explicit(&p->context, j.context, memory_order_relaxed);
  atomic_store_explicit(&p->range, j.range, memory_order_relaxed);
  atomic_store_explicit(&p->granularity, j.granularity, memory_order_relaxed);
  atomic_store_explicit(&p->units, j.units, memory_order_relaxed);
  atomic_store_explicit(&p->number, j.number, memory_order_relaxed);
  atomic_store(&pool->finished, 0);
  atomic_store(&pool->claim, (uint_least64_t)j.number << 32);
  atomic_fetch_add(&pool->generation, 1);
  if (atomic_load(&pool->sleepers) != 0) {
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
  }
  run_chunks(pool, &j, 0);
  for (int i = 0; i < WHITTLE_SPIN_ITERATIONS && atomic_load(&pool->finished) != j.units; i++) cpu_relax();
  if (atomic_load(&pool->finished) != j.units) {
    // As for `sleepers`: the flag is raised before the last look at `finished`, and the worker that ends the
    // job reads it after its increment.
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->caller_asleep, true);
    while (atomic_load(&pool->finished) != j.units) pthread_cond_wait(&pool->done, &pool->mutex);
    atomic_store(&pool->caller_asleep, false);
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

size_t whittle_threadpool_granularity(size_t granularity, double work_per_item, size_t range) {
  if (granularity == 0) granularity = 1;
  const double minimum = (double)whittle_threadpool_min_task_work();
  // Less than two tasks' worth of work in all: the caller runs the job alone.
  if (!(work_per_item * (double)range >= 2.0 * minimum)) return SIZE_MAX / 2;
  const double unit_minimum = minimum / WHITTLE_UNITS_PER_MIN_TASK;
  const double unit_work = work_per_item * (double)granularity;
  if (unit_work >= unit_minimum) return granularity;
  // No measurable work, or so little that the multiple would not fit: never split (one unit covers any
  // range a caller can have).
  const double units = ceil(unit_minimum / unit_work);
  if (!(unit_work > 0.0) || units * (double)granularity >= (double)(SIZE_MAX / 2)) return SIZE_MAX / 2;
  return (size_t)units * granularity;
}
