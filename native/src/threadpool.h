// A small pthread pool for parallel-for over per-thread blocks with work stealing.
//
// Invariants: the pool owns threads - 1 workers; the calling thread takes part in every job. A call allocates
// nothing, and runs inline when the pool has one thread or is NULL. Calls are serialized by a mutex, so a
// pool may be shared, but a task must not call back into the same pool (it would deadlock).
#ifndef WHITTLE_THREADPOOL_H_
#define WHITTLE_THREADPOOL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Largest thread count a pool accepts.
#define WHITTLE_MAX_THREADS 64

typedef struct whittle_threadpool whittle_threadpool;

// Runs items [begin, end) of a parallel-for on thread `thread` (0 = the caller, < the pool's thread count).
typedef void (*whittle_task_fn)(void* context, size_t thread, size_t begin, size_t end);

// Creates a pool with `threads` threads in total (1..WHITTLE_MAX_THREADS, the caller included).
// Returns NULL when threads is out of range or a thread cannot be started.
whittle_threadpool* whittle_threadpool_create(size_t threads);

// Joins the workers and frees the pool; NULL is a no-op.
void whittle_threadpool_destroy(whittle_threadpool* pool);

// 1 for NULL.
size_t whittle_threadpool_threads(const whittle_threadpool* pool);

// Splits [0, range) into contiguous chunks, each a multiple of `granularity` items (except the last), runs
// task on each, and returns when all are done. granularity 0 is treated as 1; a caller that wants fewer
// tasks for a small job passes a larger granularity (one unit runs inline on the caller). Thread t owns the
// t-th of `threads` equal blocks of the range and usually runs it, so a thread works on the same rows on
// every call (they stay in its core's cache); a thread that finishes early steals from the end of another's
// block, so a late or slower thread runs less. Which thread runs which chunk can therefore vary; `thread` is
// always the index of the thread running the task, so per-thread scratch indexed by it needs no locking.
void whittle_threadpool_parallelize(whittle_threadpool* pool, whittle_task_fn task, void* context,
                                    size_t range, size_t granularity);

// A held pool keeps its workers awake between jobs: whittle_threadpool_hold wakes the sleeping workers once
// (without a job) and they spin on the next publication until whittle_threadpool_release, so a sequence of
// parallelize calls (the steps of one model run, with single-threaded steps in between) pays one wake-up in
// all instead of one per call that found the workers asleep. Holds nest (a counter); a release without a
// hold is a no-op. Both are cheap (an atomic and, for the first hold with sleepers, one broadcast), NULL is a
// no-op. Hold only for a bounded span: held workers spin, taking their cores from other processes.
void whittle_threadpool_hold(whittle_threadpool* pool);
void whittle_threadpool_release(whittle_threadpool* pool);

// Work below which giving part of a job to another thread does not pay, in multiply-accumulates of the
// fp32 / int8 kernels (about 3-5 us single-threaded on the x86 the benchmark runs on, several times more
// on ARM). Handing over a task costs about a microsecond when the worker is awake and tens of microseconds
// when it must be woken or was preempted mid-task on a busy machine (the caller then waits for it).
#define WHITTLE_MIN_TASK_WORK 524288

// The minimum work per task in force: WHITTLE_MIN_TASK_WORK, or the environment variable
// WHITTLE_MIN_TASK_WORK (a decimal integer, read once, anything else ignored; the tests set 0 so that
// their small layers still exercise the multi-threaded paths), or the last
// whittle_threadpool_set_min_task_work().
size_t whittle_threadpool_min_task_work(void);
void whittle_threadpool_set_min_task_work(size_t work);

// A held pool's workers spin on the next job (whittle_threadpool_hold), so handing one a task costs about a
// microsecond instead of a wake-up: within a hold, the minimum work per task is
// whittle_threadpool_min_task_work() divided by this. With the full minimum, MobileNet-0.5 at 96x96 split
// only its pointwise layers (1.2-2.4 M MACs); its stem and depthwise layers (0.3-1 M MACs, 5-25 us) stayed on
// one thread.
#define WHITTLE_HELD_MIN_TASK_DIVISOR 8

// The granularity to pass to whittle_threadpool_parallelize(pool, ...) for `range` items of `work_per_item`
// each (in the units of WHITTLE_MIN_TASK_WORK) that must be handed out `granularity` at a time (0 is treated
// as 1). The minimum work is whittle_threadpool_min_task_work(), divided by WHITTLE_HELD_MIN_TASK_DIVISOR
// while `pool` is held (NULL: never held). A job with less than twice the minimum work in all gets a
// granularity that covers it, so it runs inline on the calling thread. A larger job gets the smallest
// multiple of `granularity` whose work reaches an eighth of the minimum: the pool's claims then shrink to
// single units at the end of each block, so the threads finish within a fraction of a microsecond of each
// other.
size_t whittle_threadpool_granularity(const whittle_threadpool* pool, size_t granularity,
                                      double work_per_item, size_t range);

// One thread of its own (not a pool's worker), for a long-running loop such as the agent's native frame
// loop (frame_source.h): whittle_thread_start runs fn(arg) on a new thread and returns it, or NULL when the
// thread cannot be started; whittle_thread_join waits for fn to return and frees the handle.
typedef struct whittle_thread whittle_thread;
whittle_thread* whittle_thread_start(void (*fn)(void* arg), void* arg);
void whittle_thread_join(whittle_thread* thread);

#ifdef __cplusplus
}
#endif

#endif  // WHITTLE_THREADPOOL_H_
