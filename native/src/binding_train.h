// Node-API registration of the fp32 training kernels (f32_train_ops.h). Called once from binding.cc's Init.
#ifndef WHITTLE_BINDING_TRAIN_H_
#define WHITTLE_BINDING_TRAIN_H_

#include <napi.h>

namespace whittle {

// Adds conv2dForward, batchMatMul, ..., adamUpdate, retainFreedMemory, isa and setIsa to exports (threads
// are set by binding_kernels' setThreads, for every kernel of the library).
void RegisterTrainKernels(Napi::Env env, Napi::Object exports);

}  // namespace whittle

#endif  // WHITTLE_BINDING_TRAIN_H_
