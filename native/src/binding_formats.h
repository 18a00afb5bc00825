// Node-API registration of the compressed-format kernels (fixed16, fixed8, binary-weights, xnor, ternary,
// sparse, codebook). Called once from binding.cc's Init, after RegisterKernels.
#ifndef WHITTLE_BINDING_FORMATS_H_
#define WHITTLE_BINDING_FORMATS_H_

#include <napi.h>

namespace whittle {

// Adds the FormatLayer class (new FormatLayer(format, layer, args)) and the fixed-point quantizers
// (fixedPointQuantize, fixedPointDequantize) to exports.
void RegisterFormatKernels(Napi::Env env, Napi::Object exports);

}  // namespace whittle

#endif  // WHITTLE_BINDING_FORMATS_H_
