#include "threadpool.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_abi.h"

// Protocol. A job is `units` units of `granularity` items (the last one may be shorter). Every thread, the
// caller included as thread 0, owns a contiguous block of units, [t * units / threads, (t + 1) * units /
// threads), in a slot of its own (an atomic (next << 32) | end). It claims its block from the front in
// chunks of a quarter of what remains, and when its block is empty it steals half of what remains of
// another thread's block, from the back. So in the usual case every thread runs the same rows of a layer on
// every call: the output lines it writes (and the input rows it reads) stay in its own core's cache instead
// of moving between cores each call (sparse VGG layer: 19.8 us per half with fixed blocks against 23.2 us
// with chunks claimed in arrival order, on a 2-vCPU EPYC guest). A late or slow thread still costs little:
// the others steal its block.
//
// Cache lines. A cross-core transfer costs ~0.2 us here (a 0.45 us round trip), so the hot path touches as
// few shared lines as possible: a worker enters a job with one line (generation, `active` and the job), each
// thread counts the units it ran in its own slot line (`done`, one writer: a plain release store, no locked
// instruction on a line another core wants), and the caller sums the counters only when its own share is
// done. A shared completion counter cost every chunk a transfer: 3 us of a 22 us two-thread int8 VGG call.
//
// Publication. The caller publishes a job with `generation` odd, waits until no worker is `active` in the
// previous job, writes the job and the slots, and makes `generation` even again (release). A worker that
// sees a new even generation raises `active`, then checks that `generation` has not moved (sequentially
// consistent on both sides: either the caller sees the worker active and waits for it to leave, or the
// worker sees the new publication and backs off), and only then reads the job and touches the slots. So no
// worker ever claims from slots of a job other than the one it read, and a worker that wakes late (a futex
// wake-up costs tens of microseconds on a virtualized machine, more than a whole small layer) finds its
// block stolen by the caller and leaves: two threads are never much slower than one. The caller returns
// when the `done` counters add up to `units`. Latency: both sides spin briefly (about 1000 PAUSEs, 10-30
// us) on the atomics before sleeping on the condition variables, so back-to-back calls do not pay a wake-up
// each; longer spins would steal the core from other processes when the machine is oversubscribed.
#define WHITTLE_SPIN_ITERATIONS 1000
// An owner claims ceil(remaining / WHITTLE_OWNER_DIVISOR) of its block at a time: few task calls, and the
// last claims are single units that others can still steal around.
#define WHITTLE_OWNER_DIVISOR 4
// whittle_threadpool_granularity: units of 1 / WHITTLE_UNITS_PER_MIN_TASK of the minimum work, so the
// last chunks of a job are short (~0.5 us) and the threads end together.
#define WHITTLE_UNITS_PER_MIN_TASK 8

typedef struct job {
  whittle_task_fn task;
  void* context;
  size_t range;
  size_t granularity;
  size_t units;  // ceil(range / granularity), < 2^32
} job;

// One thread's block of the current job and the units that thread ran, alone on a cache line.
typedef struct slot {
  _Alignas(64) atomic_uint_least64_t block;  // (next unit << 32) | end unit
  atomic_size_t done;                        // units this thread ran in the current job (it alone writes)
} slot;

struct whittle_threadpool {
  // What a worker reads to enter a job, on one line. `current` is written by the caller only while
  // generation is odd and no worker is active.
  _Alignas(64) atomic_ulong generation;  // twice the job count; odd while a job is being published
  atomic_size_t active;  // workers inside a job (between their check of generation and leaving)
  job current;
  slot slots[WHITTLE_MAX_THREADS];
  // Cold: written when a thread sleeps or the pool stops.
  _Alignas(64) atomic_size_t sleepers;  // workers asleep (or about to sleep) on `wake`
  atomic_bool caller_asleep;            // the caller sleeps (or is about to sleep) on `done`
  atomic_bool stopping;
  atomic_size_t holds;  // whittle_threadpool_hold minus release: workers spin instead of sleeping while > 0
  size_t threads;
  pthread_t workers[WHITTLE_MAX_THREADS];
  pthread_mutex_t mutex;  // for sleeping on the condition variables
  pthread_cond_t wake;
  pthread_cond_t done;
  pthread_mutex_t call_mutex;  // serializes parallelize() calls
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

static inline uint_least64_t initial_block(const job* j, size_t thread, size_t threads) {
  const uint_least64_t first = thread * j->units / threads, end = (thread + 1) * j->units / threads;
  return first << 32 | end;
}

// Runs units [first, last) of job j as one task call and counts them in the thread's `done`.
static void run_units(whittle_threadpool* pool, const job* j, size_t thread, size_t first, size_t last,
                      size_t* done) {
  const size_t begin = first * j->granularity;
  const size_t end = last == j->units ? j->range : last * j->granularity;
  j->task(j->context, thread, begin, end);
  *done += last - first;
  atomic_store_explicit(&pool->slots[thread].done, *done, memory_order_release);
}

// Runs thread `thread`'s share of job j: its own block from the front, then what it can steal from the
// other blocks' backs.
static void run_job(whittle_threadpool* pool, const job* j, size_t thread) {
  size_t done = 0;
  const size_t threads = pool->threads;
  atomic_uint_least64_t* own = &pool->slots[thread].block;
  // The first claim goes straight for the block as published (a compare-and-swap takes the line in one
  // transfer; a load first would take two); a thief that got there first makes it retry.
  uint_least64_t b = initial_block(j, thread, threads);
  for (;;) {
    const uint32_t next = (uint32_t)(b >> 32), end = (uint32_t)b;
    if (next >= end) break;
    const uint32_t take = (end - next + WHITTLE_OWNER_DIVISOR - 1) / WHITTLE_OWNER_DIVISOR;
    // On failure b holds the slot's new value (a thief moved the end) and the claim is recomputed.
    if (!atomic_compare_exchange_weak(own, &b, b + ((uint_least64_t)take << 32))) continue;
    run_units(pool, j, thread, next, next + take, &done);
    b = atomic_load_explicit(own, memory_order_relaxed);
  }
  for (size_t k = 1; k < threads; k++) {
    atomic_uint_least64_t* victim = &pool->slots[(thread + k) % threads].block;
    b = atomic_load(victim);
    for (;;) {
      const uint32_t next = (uint32_t)(b >> 32), end = (uint32_t)b;
      if (next >= end) break;
      const uint32_t take = (end - next + 1) / 2;
      if (!atomic_compare_exchange_weak(victim, &b, b - take)) continue;
      run_units(pool, j, thread, end - take, end, &done);
      b = atomic_load(victim);
    }
  }
}

// Units of the current job completed so far, by all threads.
static size_t units_done(whittle_threadpool* pool) {
  size_t total = 0;
  for (size_t t = 0; t < pool->threads; t++) {
    total += atomic_load_explicit(&pool->slots[t].done, memory_order_acquire);
  }
  return total;
}

static void* worker_main(void* raw) {
  worker_arg arg = *(worker_arg*)raw;
  free(raw);
  whittle_threadpool* pool = arg.pool;
  unsigned long seen = 0;
  for (;;) {
    unsigned long g = atomic_load(&pool->generation);
    // A held pool (whittle_threadpool_hold) keeps looking for as long as it is held, past the spin yielding
    // its core between looks: on a machine with more runnable threads than cores, a worker spinning through
    // the single-threaded steps of a run would take the time those steps need.
    for (int i = 0; (g == seen || (g & 1)) && !atomic_load(&pool->stopping);) {
      if (i < WHITTLE_SPIN_ITERATIONS) {
        cpu_relax();
        i++;
      } else if (atomic_load_explicit(&pool->holds, memory_order_relaxed) != 0) {
        sched_yield();
      } else {
        break;
      }
      g = atomic_load(&pool->generation);
    }
    if ((g == seen || (g & 1)) && !atomic_load(&pool->stopping)) {
      // Nothing new after the spin: sleep. `sleepers` is raised before the last look at `generation`, and
      // the caller reads it after bumping `generation`, so one of them sees the other (no lost wake-up).
      pthread_mutex_lock(&pool->mutex);
      atomic_fetch_add(&pool->sleepers, 1);
      // A hold wakes the sleepers (under the mutex, after raising `holds`) so that they spin for its jobs.
      while (((g = atomic_load(&pool->generation)) == seen || (g & 1)) && !atomic_load(&pool->stopping) &&
             atomic_load(&pool->holds) == 0) {
        pthread_cond_wait(&pool->wake, &pool->mutex);
      }
      atomic_fetch_sub(&pool->sleepers, 1);
      pthread_mutex_unlock(&pool->mutex);
      if ((g == seen || (g & 1)) && !atomic_load(&pool->stopping)) continue;  // woken by a hold: spin
    }
    if (atomic_load(&pool->stopping)) break;
    // Enter job g, unless the caller has started to publish another one meanwhile (then look again).
    atomic_fetch_add(&pool->active, 1);
    if (atomic_load(&pool->generation) != g) {
      atomic_fetch_sub(&pool->active, 1);
      continue;
    }
    seen = g;
    const job j = pool->current;
    run_job(pool, &j, arg.thread);
    // The caller may be asleep waiting for the units this thread ran: `caller_asleep` is read after this
    // thread's last `done` store (sequentially consistent fence), and the caller raises it before its last
    // sum, so one of them sees the other. A signal while other threads still run is harmless: the caller
    // sums again and goes back to sleep.
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&pool->caller_asleep)) {
      pthread_mutex_lock(&pool->mutex);
      pthread_cond_signal(&pool->done);
      pthread_mutex_unlock(&pool->mutex);
    }
    atomic_fetch_sub(&pool->active, 1);
  }
  return NULL;
}

whittle_threadpool* whittle_threadpool_create(size_t threads) {
  if (threads < 1 || threads > WHITTLE_MAX_THREADS) return NULL;
  // The hot lines are cache-line aligned: aligned_alloc wants a multiple of the alignment.
  const size_t bytes = (sizeof(whittle_threadpool) + 63) / 64 * 64;
  whittle_threadpool* pool = aligned_alloc(64, bytes);
  if (pool == NULL) return NULL;
  memset(pool, 0, bytes);
  pool->threads = 1;
  for (size_t t = 0; t < WHITTLE_MAX_THREADS; t++) {
    atomic_init(&pool->slots[t].block, 0);
    atomic_init(&pool->slots[t].done, 0);
  }
  atomic_init(&pool->generation, 0);
  atomic_init(&pool->active, 0);
  atomic_init(&pool->sleepers, 0);
  atomic_init(&pool->caller_asleep, false);
  atomic_init(&pool->stopping, false);
  atomic_init(&pool->holds, 0);
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

WHITTLE_HOT size_t whittle_threadpool_threads(const whittle_threadpool* pool) {
  return pool == NULL ? 1 : pool->threads;
}

WHITTLE_HOT void whittle_threadpool_parallelize(whittle_threadpool* pool, whittle_task_fn task, void* context,
                                                size_t range, size_t granularity) {
  if (range == 0) return;
  if (granularity == 0) granularity = 1;
  // The slots count units in 32 bits: a range of more than 2^32 units gets coarser units.
  if (range / granularity >= UINT32_MAX)
    granularity = (range / (UINT32_MAX - 1) + granularity) / granularity * granularity;
  const size_t units = (range + granularity - 1) / granularity;
  if (pool == NULL || pool->threads == 1 || units == 1) {
    task(context, 0, 0, range);
    return;
  }
  pthread_mutex_lock(&pool->call_mutex);
  // Publish: generation odd, wait for the workers still in the previous job to leave it (they have no units
  // left, so this is a moment unless one was preempted there), the job and the blocks, generation even.
  atomic_fetch_add(&pool->generation, 1);
  for (unsigned spins = 0; atomic_load(&pool->active) != 0; spins++) {
    if (spins < WHITTLE_SPIN_ITERATIONS) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }
  pool->current = (job){task, context, range, granularity, units};
  const size_t threads = pool->threads;
  for (size_t t = 0; t < threads; t++) {
    atomic_store_explicit(&pool->slots[t].block, initial_block(&pool->current, t, threads),
                          memory_order_relaxed);
    atomic_store_explicit(&pool->slots[t].done, 0, memory_order_relaxed);
  }
  atomic_fetch_add(&pool->generation, 1);
  if (atomic_load(&pool->sleepers) != 0) {
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
  }
  const job j = pool->current;
  run_job(pool, &j, 0);
  for (int i = 0; i < WHITTLE_SPIN_ITERATIONS && units_done(pool) != units; i++) cpu_relax();
  if (units_done(pool) != units) {
    // As for `sleepers`: the flag is raised before the last sum, and each worker reads it after its last
    // `done` store.
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->caller_asleep, true);
    while (units_done(pool) != units) pthread_cond_wait(&pool->done, &pool->mutex);
    atomic_store(&pool->caller_asleep, false);
    pthread_mutex_unlock(&pool->mutex);
  }
  pthread_mutex_unlock(&pool->call_mutex);
}

WHITTLE_HOT void whittle_threadpool_hold(whittle_threadpool* pool) {
  if (pool == NULL || pool->threads == 1) return;
  // The first hold wakes the sleepers: `holds` is raised before `sleepers` is read, and a worker raises
  // `sleepers` before its last look at `holds` (both sequentially consistent), so one sees the other.
  if (atomic_fetch_add(&pool->holds, 1) == 0 && atomic_load(&pool->sleepers) != 0) {
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
  }
}

WHITTLE_HOT void whittle_threadpool_release(whittle_threadpool* pool) {
  if (pool == NULL || pool->threads == 1) return;
  size_t holds = atomic_load(&pool->holds);
  while (holds != 0 && !atomic_compare_exchange_weak(&pool->holds, &holds, holds - 1)) {
  }
}

// SIZE_MAX: the environment has not been read yet.
static atomic_size_t min_task_work = SIZE_MAX;

WHITTLE_HOT size_t whittle_threadpool_min_task_work(void) {
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

WHITTLE_HOT size_t whittle_threadpool_granularity(const whittle_threadpool* pool, size_t granularity,
                                                  double work_per_item, size_t range) {
  if (granularity == 0) granularity = 1;
  double minimum = (double)whittle_threadpool_min_task_work();
  if (pool != NULL && atomic_load_explicit(&((whittle_threadpool*)pool)->holds, memory_order_relaxed) != 0)
    minimum /= WHITTLE_HELD_MIN_TASK_DIVISOR;
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

struct whittle_thread {
  pthread_t id;
  void (*fn)(void*);
  void* arg;
};

static void* thread_main(void* raw) {
  whittle_thread* thread = raw;
  thread->fn(thread->arg);
  return NULL;
}

whittle_thread* whittle_thread_start(void (*fn)(void* arg), void* arg) {
  whittle_thread* thread = malloc(sizeof(*thread));
  if (thread == NULL) return NULL;
  thread->fn = fn;
  thread->arg = arg;
  if (pthread_create(&thread->id, NULL, thread_main, thread) != 0) {
    free(thread);
    return NULL;
  }
  return thread;
}

void whittle_thread_join(whittle_thread* thread) {
  if (thread == NULL) return;
  pthread_join(thread->id, NULL);
  free(thread);
}
