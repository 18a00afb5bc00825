// Argument decoding shared by the Node-API bindings of the kernel library: every value that crosses
// from JavaScript is checked here, and a bad one throws a TypeError (wrong kind) or a RangeError (out of
// range) in one format: "Expected <what> for <name> but received <value>".
#ifndef WHITTLE_BINDING_ARGS_H_
#define WHITTLE_BINDING_ARGS_H_

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "f32_ops.h"  // WHITTLE_MAX_DIMENSION
}

namespace whittle {
namespace args {

inline std::string Describe(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined:
      return "undefined";
    case napi_null:
      return "null";
    case napi_boolean:
      return std::string("boolean ") + (value.As<Napi::Boolean>().Value() ? "true" : "false");
    case napi_number:
      return "number " + value.ToString().Utf8Value();
    case napi_string:
      return "string \"" + value.As<Napi::String>().Utf8Value() + "\"";
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
    if (name.IsString() && !name.As<Napi::String>().Utf8Value().empty())
      return name.As<Napi::String>().Utf8Value();
  }
  return "object";
}

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& what, const std::string& name,
                                   const Napi::Value& value) {
  throw Napi::TypeError::New(env, "Expected " + what + " for " + name + " but received " + Describe(value));
}

[[noreturn]] inline void ThrowRange(Napi::Env env, const std::string& what, const std::string& name,
                                    const std::string& received) {
  throw Napi::RangeError::New(env, "Expected " + what + " for " + name + " but received " + received);
}

// `what` names the expected object in the message ("an object", "one object of named arguments").
inline Napi::Object ArgsObject(const Napi::CallbackInfo& info, size_t index, const char* name,
                               const char* what = "an object") {
  if (info.Length() <= index || !info[index].IsObject() || info[index].IsTypedArray() ||
      info[index].IsArray() || info[index].IsFunction()) {
    ThrowType(info.Env(), what, name, info.Length() <= index ? info.Env().Undefined() : info[index]);
  }
  return info[index].As<Napi::Object>();
}

// An integer in [min, max]. Absent (undefined) takes `fallback` when has_fallback, else is a TypeError.
inline int64_t Integer(const Napi::Object& args, const char* name, int64_t min, int64_t max,
                       bool has_fallback = false, int64_t fallback = 0) {
  Napi::Env env = args.Env();
  Napi::Value value = args.Get(name);
  if (value.IsUndefined() && has_fallback) return fallback;
  if (!value.IsNumber()) ThrowType(env, "an integer", name, value);
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number) ThrowType(env, "an integer", name, value);
  if (number < static_cast<double>(min) || number > static_cast<double>(max)) {
    ThrowRange(env, "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]", name,
               value.ToString().Utf8Value());
  }
  return static_cast<int64_t>(number);
}

inline size_t Dimension(const Napi::Object& args, const char* name, bool has_fallback = false,
                        int64_t fallback = 1, int64_t min = 1) {
  return static_cast<size_t>(
      Integer(args, name, min, static_cast<int64_t>(WHITTLE_MAX_DIMENSION), has_fallback, fallback));
}

// A number that is not NaN (infinities allowed: they are the open ends of a clamp).
inline float Float(const Napi::Object& args, const char* name, float fallback) {
  Napi::Value value = args.Get(name);
  if (value.IsUndefined()) return fallback;
  if (!value.IsNumber() || std::isnan(value.As<Napi::Number>().DoubleValue())) {
    ThrowType(args.Env(), "a number (not NaN)", name, value);
  }
  return static_cast<float>(value.As<Napi::Number>().DoubleValue());
}

// A boolean that must be present.
inline bool RequiredBoolean(const Napi::Object& args, const char* name) {
  Napi::Value value = args.Get(name);
  if (!value.IsBoolean()) ThrowType(args.Env(), "a boolean", name, value);
  return value.As<Napi::Boolean>().Value();
}

// A finite number that must be present.
inline float FiniteFloat(const Napi::Object& args, const char* name) {
  Napi::Value value = args.Get(name);
  if (!value.IsNumber() || !std::isfinite(value.As<Napi::Number>().DoubleValue())) {
    ThrowType(args.Env(), "a finite number", name, value);
  }
  return static_cast<float>(value.As<Napi::Number>().DoubleValue());
}

// The data of a Float32Array argument; data is null for an optional argument left out.
struct Float32Values {
  float* data = nullptr;
  size_t length = 0;
};

// The number of values of the Float32Array `name` (TypeError when it is not one): for the arguments whose
// length sets the length of the others.
inline size_t Float32Length(const Napi::Object& args, const char* name) {
  Napi::Value value = args.Get(name);
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowType(args.Env(), "a Float32Array", name, value);
  }
  return value.As<Napi::Float32Array>().ElementLength();
}

// A Float32Array of exactly `length` values; an optional one may be undefined or null (data stays null).
inline Float32Values Float32Field(const Napi::Object& args, const char* name, size_t length,
                                  bool optional = false) {
  Napi::Env env = args.Env();
  Napi::Value value = args.Get(name);
  if (optional && (value.IsUndefined() || value.IsNull())) return {};
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowType(env, optional ? "a Float32Array, null or undefined" : "a Float32Array", name, value);
  }
  Napi::Float32Array array = value.As<Napi::Float32Array>();
  if (array.ElementLength() != length) {
    ThrowRange(env, "a Float32Array of " + std::to_string(length) + " values", name,
               std::to_string(array.ElementLength()) + " values");
  }
  return {array.Data(), length};
}

// Outputs are written while inputs are read: they must not share memory.
inline void ExpectNoSharedMemory(Napi::Env env, const char* output_name, const Float32Values& output,
                                 const std::vector<std::pair<const char*, Float32Values>>& inputs) {
  if (output.data == nullptr) return;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(output.data);
  const uintptr_t end = begin + output.length * sizeof(float);
  for (const auto& [name, input] : inputs) {
    if (input.data == nullptr) continue;
    const uintptr_t in_begin = reinterpret_cast<uintptr_t>(input.data);
    const uintptr_t in_end = in_begin + input.length * sizeof(float);
    if (begin < in_end && in_begin < end) {
      throw Napi::RangeError::New(
          env, std::string("Expected ") + output_name + " to share no memory with " + name + " but it does");
    }
  }
}

}  // namespace args
}  // namespace whittle

#endif  // WHITTLE_BINDING_ARGS_H_
