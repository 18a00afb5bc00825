// The Node-API surface of the kernel library: registers exports and turns JavaScript arguments into
// checked plain values. No kernel sees a JavaScript value, and no bad argument reaches a kernel: every
// check throws a TypeError or RangeError that names the argument, in one format:
//   Expected <what> for <name> but received <value>
#include <napi.h>

#include "binding_formats.h"
#include "binding_kernels.h"
#include "binding_plan.h"
#include "binding_train.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // CPU features, threads and the fp32 / int8 operators (binding_kernels.cc).
  whittle::RegisterKernels(env, exports);
  // The compressed-format layers (binding_formats.cc).
  whittle::RegisterFormatKernels(env, exports);
  // The fp32 training kernels (binding_train.cc).
  whittle::RegisterTrainKernels(env, exports);
  // Execution plans over the layers and operators above (binding_plan.cc).
  whittle::RegisterPlan(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(whittle_native, Init)
