// The Node-API surface of the kernel library: registers exports and turns JavaScript arguments into
// checked plain values. No kernel sees a JavaScript value, and no bad argument reaches a kernel: every
// check throws a TypeError or RangeError that names the argument, in one format:
//   Expected <what> for <name> but received <value>
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "binding_formats.h"
#include "binding_kernels.h"
#include "binding_train.h"
#include "qs8_fc.h"

namespace {

// Largest batch and output_channels accepted; keeps every element count and byte size far from overflow.
constexpr int64_t kMaxDimension = INT64_C(1) << 24;

std::string Describe(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined:
      return "undefined";
    case napi_null:
      return "null";
    case napi_boolean:
      return std::string("boolean ") + (value.As<Napi::Boolean>().Value() ? "true" : "false");
    case napi_number: {
      return "number " + value.ToString().Utf8Value();
    }
    case napi_string:
      return "string";
    case napi_symbol:
      return "symbol";
    case napi_function:
      return "function";
    case napi_bigint:
      return "bigint";
    default:
      break;
  }
  Napi::Value constructor = value.As<Napi::Object>().Get("constructor");
  if (constructor.IsFunction()) {
    Napi::Value name = constructor.As<Napi::Object>().Get("name");
    if (name.IsString() && !name.As<Napi::String>().Utf8Value().empty()) {
      return name.As<Napi::String>().Utf8Value();
    }
  }
  return "object";
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string& what, const std::string& name,
                            const Napi::Value& value) {
  throw Napi::TypeError::New(env, "Expected " + what + " for " + name + " but received " + Describe(value));
}

[[noreturn]] void ThrowRange(Napi::Env env, const std::string& what, const std::string& name,
                             const std::string& received) {
  throw Napi::RangeError::New(env, "Expected " + what + " for " + name + " but received " + received);
}

// An integer in [min, max]; a non-number is a TypeError, a number outside the range a RangeError.
int64_t IntegerField(const Napi::Object& args, const char* name, int64_t min, int64_t max) {
  Napi::Env env = args.Env();
  Napi::Value value = args.Get(name);
  if (!value.IsNumber()) {
    ThrowType(env, "an integer", name, value);
  }
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number) {
    ThrowType(env, "an integer", name, value);
  }
  if (number < static_cast<double>(min) || number > static_cast<double>(max)) {
    ThrowRange(env, "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]", name,
               value.ToString().Utf8Value());
  }
  return static_cast<int64_t>(number);
}

struct ArrayView {
  void* data;
  size_t length;      // elements
  size_t byteLength;  // bytes
};

// The dimensions an array's length must equal the product of, named for error messages only (so a call
// that succeeds builds no strings).
struct Shape {
  const char* outerName;
  int64_t outer;
  const char* innerName;  // nullptr for a one-dimensional shape
  int64_t inner;

  size_t Length() const { return static_cast<size_t>(innerName == nullptr ? outer : outer * inner); }
  std::string Describe() const {
    std::string text = std::string(outerName) + " " + std::to_string(outer);
    if (innerName != nullptr) text += std::string(" x ") + innerName + " " + std::to_string(inner);
    return text;
  }
};

ArrayView TypedArrayField(const Napi::Object& args, const char* name, napi_typedarray_type type,
                          const char* typeName, const Shape& shape) {
  Napi::Env env = args.Env();
  Napi::Value value = args.Get(name);
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) {
    ThrowType(env, typeName, name, value);
  }
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  const size_t length = array.ElementLength();
  if (length != shape.Length()) {
    ThrowRange(env,
               std::string(typeName) + " of length " + std::to_string(shape.Length()) + " (" +
                   shape.Describe() + ")",
               name, "length " + std::to_string(length));
  }
  // The data pointer from napi_get_typedarray_info already includes the byte offset, and unlike
  // Napi::ArrayBuffer it also works for views of a SharedArrayBuffer.
  void* data = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, array, nullptr, nullptr, &data, nullptr, nullptr),
                       ArrayView{});
  return ArrayView{data, length, array.ByteLength()};
}

bool Overlaps(const ArrayView& a, const ArrayView& b) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a.data);
  const uintptr_t b0 = reinterpret_cast<uintptr_t>(b.data);
  return a0 < b0 + b.byteLength && b0 < a0 + a.byteLength;
}

// fullyConnectedS8({ batch, inChannels, outChannels, input, inputZeroPoint, weights, bias, multipliers,
//                    shifts, outputZeroPoint, outputMin, outputMax, output }): undefined
// Synchronous: one call is microseconds to milliseconds, less than an AsyncWorker's thread hop.
Napi::Value FullyConnectedS8(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsObject() || info[0].IsTypedArray() || info[0].IsArray()) {
    ThrowType(env, "an object", "args", info.Length() == 0 ? env.Undefined() : info[0]);
  }
  const Napi::Object args = info[0].As<Napi::Object>();

  const int64_t batch = IntegerField(args, "batch", 1, kMaxDimension);
  const int64_t inChannels = IntegerField(args, "inChannels", 1, QS8_FC_MAX_INPUT_CHANNELS);
  const int64_t outChannels = IntegerField(args, "outChannels", 1, kMaxDimension);
  const int64_t inputZeroPoint = IntegerField(args, "inputZeroPoint", INT8_MIN, INT8_MAX);
  const int64_t outputZeroPoint = IntegerField(args, "outputZeroPoint", INT8_MIN, INT8_MAX);
  const int64_t outputMin = IntegerField(args, "outputMin", INT8_MIN, INT8_MAX);
  const int64_t outputMax = IntegerField(args, "outputMax", INT8_MIN, INT8_MAX);
  if (outputMin > outputMax) {
    ThrowRange(env, "outputMax >= outputMin (" + std::to_string(outputMin) + ")", "outputMax",
               std::to_string(outputMax));
  }

  const Shape rowsIn{"batch", batch, "inChannels", inChannels};
  const Shape outIn{"outChannels", outChannels, "inChannels", inChannels};
  const Shape outs{"outChannels", outChannels, nullptr, 0};
  const Shape rowsOut{"batch", batch, "outChannels", outChannels};
  const ArrayView input = TypedArrayField(args, "input", napi_int8_array, "Int8Array", rowsIn);
  const ArrayView weights = TypedArrayField(args, "weights", napi_int8_array, "Int8Array", outIn);
  const ArrayView bias = TypedArrayField(args, "bias", napi_int32_array, "Int32Array", outs);
  const ArrayView multipliers = TypedArrayField(args, "multipliers", napi_int32_array, "Int32Array", outs);
  const ArrayView shifts = TypedArrayField(args, "shifts", napi_int32_array, "Int32Array", outs);
  const ArrayView output = TypedArrayField(args, "output", napi_int8_array, "Int8Array", rowsOut);

  const int32_t* shiftValues = static_cast<const int32_t*>(shifts.data);
  for (size_t o = 0; o < shifts.length; o++) {
    if (shiftValues[o] < QS8_REQUANT_MIN_SHIFT || shiftValues[o] > QS8_REQUANT_MAX_SHIFT) {
      ThrowRange(env,
                 "an integer in [" + std::to_string(QS8_REQUANT_MIN_SHIFT) + ", " +
                     std::to_string(QS8_REQUANT_MAX_SHIFT) + "]",
                 "shifts[" + std::to_string(o) + "]", std::to_string(shiftValues[o]));
    }
  }

  const struct {
    const char* name;
    const ArrayView& view;
  } inputs[] = {{"input", input},
                {"weights", weights},
                {"bias", bias},
                {"multipliers", multipliers},
                {"shifts", shifts}};
  for (const auto& other : inputs) {
    if (Overlaps(output, other.view)) {
      throw Napi::RangeError::New(env, std::string("Expected output not to share memory with ") + other.name +
                                           " but received overlapping buffers");
    }
  }

  qs8_fc_minmax_gemmlowp_ukernel__scalar(
      static_cast<size_t>(batch), static_cast<size_t>(inChannels), static_cast<size_t>(outChannels),
      static_cast<const int8_t*>(input.data), static_cast<int32_t>(inputZeroPoint),
      static_cast<const int8_t*>(weights.data), static_cast<const int32_t*>(bias.data),
      static_cast<const int32_t*>(multipliers.data), shiftValues, static_cast<int32_t>(outputZeroPoint),
      static_cast<int32_t>(outputMin), static_cast<int32_t>(outputMax), static_cast<int8_t*>(output.data));
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("fullyConnectedS8", Napi::Function::New(env, FullyConnectedS8, "fullyConnectedS8"));
  // CPU features, threads and the fp32 / int8 operators (binding_kernels.cc).
  whittle::RegisterKernels(env, exports);
  // The compressed-format layers (binding_formats.cc).
  whittle::RegisterFormatKernels(env, exports);
  // The fp32 training kernels (binding_train.cc).
  whittle::RegisterTrainKernels(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(whittle_native, Init)
