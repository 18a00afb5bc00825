// A small pthread pool for parallel-for with static chunking.
//
// Invariants: the pool owns threads - 1 workers; the calling thread runs chunk 0 itself. A call allocates
// nothing, and runs inline when the pool has one thread or is NULL. Calls are serialized by a mutex, so a
// pool may be shared, but a task must not call back into the same pool (it would deadlock).
#ifndef WHITTLE_THREADPOOL_H_
#define WHITTLE_THREADPOOL_H_

#include <stddef.h>

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

// Splits [0, range) into at most `threads` contiguous chunks, each a multiple of `granularity` items
// (except the last), runs task on each, and returns when all are done. granularity 0 is treated as 1.
// Chunk i always goes to thread i, so per-thread scratch indexed by `thread` needs no locking.
void whittle_threadpool_parallelize(whittle_threadpool* pool, whittle_task_fn task, void* context,
                                    size_t range, size_t granularity);

#ifdef __cplusplus
}
#endif

#endif  // WHITTLE_THREADPOOL_H_
