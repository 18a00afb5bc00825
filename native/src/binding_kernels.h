// Node-API registration of the kernel library's infrastructure (CPU features, ISA, threads) and of the fp32
// and int8 operators. Called once from binding.cc's Init.
#ifndef WHITTLE_BINDING_KERNELS_H_
#define WHITTLE_BINDING_KERNELS_H_

#include <napi.h>

#include <shared_mutex>

#include "threadpool.h"

namespace whittle {

// Adds cpuFeatures, activeIsa, setThreads, getThreads, Conv2d and the stateless operators to exports.
// Throws a JS Error (so the addon does not load) when WHITTLE_ISA names a path this CPU cannot run.
void RegisterKernels(Napi::Env env, Napi::Object exports);

// The process-wide thread pool set by setThreads, held for the duration of one kernel call: setThreads
// (from another worker thread) waits until no call is using the old pool before destroying it.
class ThreadPoolLease {
 public:
  ThreadPoolLease();
  whittle_threadpool* pool() const { return pool_; }  // NULL = run on the calling thread

 private:
  std::shared_lock<std::shared_mutex> lock_;
  whittle_threadpool* pool_;
};

}  // namespace whittle

#endif  // WHITTLE_BINDING_KERNELS_H_
