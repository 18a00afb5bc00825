// Argument decoding shared by the Node-API bindings of the kernel library: every value that crosses
// from JavaScript is checked here, and a bad one throws a TypeError (wrong kind) or a RangeError (out of
// range) in one format: "Expected <what> for <name> but received <value>".
#ifndef WHITTLE_BINDING_ARGS_H_
#define WHITTLE_BINDING_ARGS_H_

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "conv2d_geometry.h"  // WHITTLE_MAX_DIMENSION
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

inline bool Boolean(const Napi::Object& args, const char* name) {
  Napi::Value value = args.Get(name);
  if (value.IsUndefined()) return false;
  if (!value.IsBoolean()) ThrowType(args.Env(), "a boolean", name, value);
  return value.As<Napi::Boolean>().Value();
}

// A typed array argument. `value` is kept so the view can be re-read just before the kernel runs: reading
// later arguments may run JavaScript (getters) that detaches or transfers an earlier array's buffer. An
// absent optional array has an empty `value`.
struct View {
  void* data;
  size_t length;
  size_t bytes;
  napi_typedarray_type type;
  std::string name;
  Napi::Value value;
};

// The typed array's element type, length and data pointer, without running any JavaScript. Works for arrays
// on a SharedArrayBuffer too; a detached buffer gives length 0 and a null pointer.
inline void TypedArrayInfo(Napi::Env env, const Napi::Value& value, napi_typedarray_type* type,
                           size_t* length, void** data) {
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, type, length, data, &buffer, &offset) != napi_ok) {
    throw Napi::TypeError::New(env, "Expected a typed array");
  }
}

inline size_t ElementBytes(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      return 8;
    default:
      return 4;
  }
}

inline const char* TypeName(napi_typedarray_type type) {
  switch (type) {
    case napi_float32_array:
      return "Float32Array";
    case napi_float64_array:
      return "Float64Array";
    case napi_int8_array:
      return "Int8Array";
    case napi_uint8_array:
      return "Uint8Array";
    case napi_int16_array:
      return "Int16Array";
    case napi_int32_array:
      return "Int32Array";
    case napi_uint32_array:
      return "Uint32Array";
    case napi_bigint64_array:
      return "BigInt64Array";
    case napi_biguint64_array:
      return "BigUint64Array";
    default:
      return "typed array";
  }
}

// "an Int8Array", "a Float32Array": how a message names one accepted type.
inline std::string Article(napi_typedarray_type type) {
  const std::string name = TypeName(type);
  return (name[0] == 'I' || name[0] == 'U' ? "an " : "a ") + name;
}

// A typed array of one of `types` (what = how the message names them).
inline View Array(Napi::Env env, const Napi::Value& value, const std::string& name,
                  std::initializer_list<napi_typedarray_type> types, const std::string& what) {
  if (!value.IsTypedArray()) ThrowType(env, what, name, value);
  const napi_typedarray_type type = value.As<Napi::TypedArray>().TypedArrayType();
  bool allowed = false;
  for (napi_typedarray_type t : types) allowed = allowed || t == type;
  if (!allowed) ThrowType(env, what, name, value);
  size_t length = 0;
  void* data = nullptr;
  napi_typedarray_type info_type;
  TypedArrayInfo(env, value, &info_type, &length, &data);
  return View{length == 0 ? nullptr : data, length, length * ElementBytes(type), type, name, value};
}

inline View Field(const Napi::Object& args, const char* name,
                  std::initializer_list<napi_typedarray_type> types, const std::string& what) {
  return Array(args.Env(), args.Get(name), name, types, what);
}

// One accepted type, named by its article ("an Int8Array").
inline View Field(const Napi::Object& args, const char* name, napi_typedarray_type type) {
  return Field(args, name, {type}, Article(type));
}

// An optional array (undefined or null = absent): has == false and no data.
inline View OptionalField(const Napi::Object& args, const char* name, napi_typedarray_type type, bool* has) {
  const Napi::Value value = args.Get(name);
  *has = !value.IsUndefined() && !value.IsNull();
  if (!*has) return View{nullptr, 0, 0, type, name, Napi::Value()};
  return Array(args.Env(), value, name, {type}, Article(type) + ", null or undefined");
}

// The length must be `expected`; the buffer must be attached unless `expected` is 0 and empty_allowed (an
// empty CSR).
inline void ExpectLength(Napi::Env env, const View& view, size_t expected, const std::string& shape,
                         bool empty_allowed = false) {
  if (view.length != expected) {
    ThrowRange(
        env, std::string(TypeName(view.type)) + " of length " + std::to_string(expected) + " (" + shape + ")",
        view.name, "length " + std::to_string(view.length));
  }
  if (view.data == nullptr && !(empty_allowed && expected == 0))
    ThrowRange(env, "an array with an attached buffer", view.name, "a detached buffer");
}

// Re-reads every view (no JavaScript runs here) and refuses the call if a getter changed one after it was
// checked. Call it after the last argument is read and immediately before the kernel.
inline void ExpectUnchanged(Napi::Env env, std::initializer_list<const View*> views) {
  for (const View* view : views) {
    if (view == nullptr || view->value.IsEmpty()) continue;
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    TypedArrayInfo(env, view->value, &type, &length, &data);
    if (length != view->length || (length != 0 && data != view->data)) {
      ThrowRange(env, "an array that stays attached while the call reads its arguments", view->name,
                 "an array whose buffer changed (a getter detached or transferred it)");
    }
  }
}

inline void ExpectSameType(Napi::Env env, const View& view, const View& like) {
  if (view.type != like.type) {
    throw Napi::TypeError::New(env, "Expected " + std::string(TypeName(like.type)) + " for " + view.name +
                                        " (like " + like.name + ") but received " + TypeName(view.type));
  }
}

inline bool Overlaps(const View& a, const View& b) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a.data), b0 = reinterpret_cast<uintptr_t>(b.data);
  return a0 < b0 + b.bytes && b0 < a0 + a.bytes;
}

inline void ExpectNoOverlap(Napi::Env env, const View& output, std::initializer_list<const View*> inputs) {
  for (const View* input : inputs) {
    if (input != nullptr && Overlaps(output, *input)) {
      throw Napi::RangeError::New(env, "Expected " + output.name + " not to share memory with " +
                                           input->name + " but received overlapping buffers");
    }
  }
}

// The common case of a packed layer's run(input, output), checked with one napi_get_typedarray_info per
// array and no string built, so that a small layer's call costs little more than its kernel: two arrays of
// `type` (the output of `output_type` when given), of exactly the expected lengths, attached, and not sharing
// memory. False when any of that does not
// hold (nothing is thrown): the caller then runs its full checks, which name the argument and the problem.
inline bool QuickRunOperands(const Napi::CallbackInfo& info, napi_typedarray_type type, size_t input_length,
                             size_t output_length, const void** input, void** output,
                             napi_typedarray_type output_type = napi_typedarray_type(-1)) {
  if (info.Length() < 2) return false;
  const size_t lengths[2] = {input_length, output_length};
  const napi_typedarray_type types[2] = {type, output_type == napi_typedarray_type(-1) ? type : output_type};
  void* data[2];
  for (size_t i = 0; i < 2; i++) {
    napi_typedarray_type actual;
    size_t length = 0;
    if (napi_get_typedarray_info(info.Env(), info[i], &actual, &length, &data[i], nullptr, nullptr) !=
            napi_ok ||
        actual != types[i] || length != lengths[i] || data[i] == nullptr) {
      return false;
    }
  }
  const uintptr_t in = reinterpret_cast<uintptr_t>(data[0]), out = reinterpret_cast<uintptr_t>(data[1]);
  if (in < out + output_length * ElementBytes(types[1]) && out < in + input_length * ElementBytes(types[0]))
    return false;
  *input = data[0];
  *output = data[1];
  return true;
}

// The C shape checks name fields in C (input_channels) and may add a reason in parentheses; the message
// names the JavaScript field (inputChannels, or inChannels for a fully-connected layer).
[[noreturn]] inline void ThrowShapeProblem(Napi::Env env, const char* kind, const std::string& problem,
                                           bool fully_connected) {
  const size_t space = problem.find(' ');
  const std::string field = problem.substr(0, space);
  std::string reason = space == std::string::npos
                           ? "a value outside [1, " + std::to_string(WHITTLE_MAX_DIMENSION) + "]"
                           : problem.substr(space + 1);
  if (reason.size() >= 2 && reason.front() == '(' && reason.back() == ')')
    reason = reason.substr(1, reason.size() - 2);
  std::string name;
  if (fully_connected && field == "input_channels") {
    name = "inChannels";
  } else if (fully_connected && field == "output_channels") {
    name = "outChannels";
  } else {
    bool upper = false;
    for (char c : field) {
      if (c == '_') {
        upper = true;
      } else {
        name += upper ? static_cast<char>(c - 'a' + 'A') : c;
        upper = false;
      }
    }
  }
  ThrowRange(env, std::string("a consistent ") + kind + " shape", name, reason);
}

// batch x inputHeight x inputWidth of a windowed operator's NHWC input (a conv2d or pooling shape).
template <typename WindowShape>
void ReadInputImage(const Napi::Object& args, WindowShape* s) {
  s->batch = Dimension(args, "batch");
  s->input_height = Dimension(args, "inputHeight");
  s->input_width = Dimension(args, "inputWidth");
}

// The four paddings of a window (a whittle_conv2d_shape or whittle_pool2d_shape): 0 when absent.
template <typename WindowShape>
void ReadPadding(const Napi::Object& args, WindowShape* s) {
  s->padding_top = Dimension(args, "paddingTop", true, 0, 0);
  s->padding_left = Dimension(args, "paddingLeft", true, 0, 0);
  s->padding_bottom = Dimension(args, "paddingBottom", true, 0, 0);
  s->padding_right = Dimension(args, "paddingRight", true, 0, 0);
}

// A conv2d (or fully-connected: a 1x1 conv over [batch][1][1][inChannels]) layer's shape, checked by
// whittle_conv2d_shape_problem (which bounds every dimension and element count, so no size computed from it
// can overflow). Without `dilation` (the compressed formats have none) the dilation fields are not read and
// are 1.
inline whittle_conv2d_shape ReadConvShape(const Napi::Object& args, bool fully_connected,
                                          bool dilation = true) {
  whittle_conv2d_shape s{};
  if (fully_connected) {
    s.batch = Dimension(args, "batch");
    s.input_channels = Dimension(args, "inChannels");
    s.output_channels = Dimension(args, "outChannels");
    s.input_height = s.input_width = s.kernel_height = s.kernel_width = 1;
    s.stride_height = s.stride_width = s.dilation_height = s.dilation_width = s.groups = 1;
  } else {
    ReadInputImage(args, &s);
    s.input_channels = Dimension(args, "inputChannels");
    s.output_channels = Dimension(args, "outputChannels");
    s.kernel_height = Dimension(args, "kernelHeight");
    s.kernel_width = Dimension(args, "kernelWidth");
    s.stride_height = Dimension(args, "strideHeight", true);
    s.stride_width = Dimension(args, "strideWidth", true);
    s.dilation_height = dilation ? Dimension(args, "dilationHeight", true) : 1;
    s.dilation_width = dilation ? Dimension(args, "dilationWidth", true) : 1;
    ReadPadding(args, &s);
    s.groups = Dimension(args, "groups", true);
  }
  const char* problem = whittle_conv2d_shape_problem(&s);
  if (problem != nullptr) ThrowShapeProblem(args.Env(), "convolution", problem, fully_connected);
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// Float32Array arguments of the training kernels (binding_train.cc): an exact length, no aliasing, and the
// messages "Expected a Float32Array of N values for <name>" / "Expected <out> to share no memory with <in>".

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
