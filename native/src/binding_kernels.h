// Node-API registration of the kernel library's infrastructure (CPU features, ISA, threads) and of the fp32
// and int8 operators. Called once from binding.cc's Init.
#ifndef WHITTLE_BINDING_KERNELS_H_
#define WHITTLE_BINDING_KERNELS_H_

#include <napi.h>

#include <initializer_list>
#include <shared_mutex>
#include <vector>

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

// The JS class of a packed layer (PackedLayer in native/index.ts): run(input, output),
// runReference(input, output), dispose() and the kernel, inputLength, outputLength, outputHeight and
// outputWidth accessors. Conv2d (fp32/int8) and FormatLayer (the compressed formats) both define it, so that
// the loader sees one interface. A Layer befriends DefinePackedLayer<Layer> to keep its methods private.
// `extra`: a layer's own properties beside these.
template <typename Layer>
Napi::Function DefinePackedLayer(Napi::Env env, const char* name,
                                 std::initializer_list<typename Layer::PropertyDescriptor> extra = {}) {
  std::vector<typename Layer::PropertyDescriptor> properties = {
      Layer::template InstanceMethod<&Layer::Run>("run"),
      Layer::template InstanceMethod<&Layer::RunReference>("runReference"),
      Layer::template InstanceMethod<&Layer::Dispose>("dispose"),
      Layer::template InstanceAccessor<&Layer::Kernel>("kernel"),
      Layer::template InstanceAccessor<&Layer::InputLength>("inputLength"),
      Layer::template InstanceAccessor<&Layer::OutputLength>("outputLength"),
      Layer::template InstanceAccessor<&Layer::OutputHeight>("outputHeight"),
      Layer::template InstanceAccessor<&Layer::OutputWidth>("outputWidth")};
  properties.insert(properties.end(), extra.begin(), extra.end());
  return Layer::DefineClass(env, name, properties);
}

}  // namespace whittle

#endif  // WHITTLE_BINDING_KERNELS_H_
