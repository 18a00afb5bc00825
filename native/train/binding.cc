// The Node-API surface of the fp32 training kernels: every export takes one object of named arguments,
// checks each (type, integer range, array length, no output aliasing an input), then calls C. Errors are
// TypeError or RangeError in one format: Expected <what> for <name> but received <value>.
#include <napi.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "src/f32_train.h"

namespace {

// Largest size of any one dimension; products of checked dimensions stay far below 2^63.
constexpr int64_t kMaxDimension = INT64_C(1) << 24;

std::string Describe(const Napi::Value& value) {
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
    if (name.IsString() && !name.As<Napi::String>().Utf8Value().empty()) return name.As<Napi::String>();
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

Napi::Object ArgsObject(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsObject() || info[0].IsArray() || info[0].IsTypedArray()) {
    ThrowType(info.Env(), "one object of named arguments", "arguments",
              info.Length() == 0 ? info.Env().Undefined() : info[0]);
  }
  return info[0].As<Napi::Object>();
}

int64_t IntegerField(const Napi::Object& args, const char* name, int64_t min, int64_t max) {
  Napi::Env env = args.Env();
  Napi::Value value = args.Get(name);
  if (!value.IsNumber()) ThrowType(env, "an integer", name, value);
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number) ThrowType(env, "an integer", name, value);
  if (number < static_cast<double>(min) || number > static_cast<double>(max)) {
    ThrowRange(env, "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]", name,
               value.ToString().Utf8Value());
  }
  return static_cast<int64_t>(number);
}

bool BooleanField(const Napi::Object& args, const char* name) {
  Napi::Value value = args.Get(name);
  if (!value.IsBoolean()) ThrowType(args.Env(), "a boolean", name, value);
  return value.As<Napi::Boolean>().Value();
}

float FloatField(const Napi::Object& args, const char* name) {
  Napi::Value value = args.Get(name);
  if (!value.IsNumber()) ThrowType(args.Env(), "a finite number", name, value);
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number)) ThrowType(args.Env(), "a finite number", name, value);
  return static_cast<float>(number);
}

struct FloatArray {
  float* data = nullptr;
  size_t length = 0;
};

// A Float32Array of exactly `length` values; optional ones may be undefined or null (data stays null).
FloatArray Float32Field(const Napi::Object& args, const char* name, size_t length, bool optional = false) {
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
void CheckNoAlias(Napi::Env env, const char* output_name, const FloatArray& output,
                  const std::vector<std::pair<const char*, FloatArray>>& inputs) {
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

f32_activation ActivationField(const Napi::Object& args, const char* name) {
  Napi::Value value = args.Get(name);
  if (!value.IsString()) ThrowType(args.Env(), "'linear', 'relu' or 'relu6'", name, value);
  const std::string text = value.As<Napi::String>().Utf8Value();
  if (text == "linear") return F32_ACT_LINEAR;
  if (text == "relu") return F32_ACT_RELU;
  if (text == "relu6") return F32_ACT_RELU6;
  ThrowRange(args.Env(), "'linear', 'relu' or 'relu6'", name, "\"" + text + "\"");
}

enum class WindowKind { kConv, kDepthwise, kPool };

f32_window_shape WindowField(const Napi::Object& args, WindowKind kind) {
  f32_window_shape s;
  s.batch = static_cast<int32_t>(IntegerField(args, "batch", 1, kMaxDimension));
  s.in_h = static_cast<int32_t>(IntegerField(args, "inHeight", 1, kMaxDimension));
  s.in_w = static_cast<int32_t>(IntegerField(args, "inWidth", 1, kMaxDimension));
  s.in_c = static_cast<int32_t>(IntegerField(args, "inChannels", 1, kMaxDimension));
  s.out_h = static_cast<int32_t>(IntegerField(args, "outHeight", 1, kMaxDimension));
  s.out_w = static_cast<int32_t>(IntegerField(args, "outWidth", 1, kMaxDimension));
  s.out_c = static_cast<int32_t>(IntegerField(args, "outChannels", 1, kMaxDimension));
  s.filter_h = static_cast<int32_t>(IntegerField(args, "filterHeight", 1, 1024));
  s.filter_w = static_cast<int32_t>(IntegerField(args, "filterWidth", 1, 1024));
  s.stride_h = static_cast<int32_t>(IntegerField(args, "strideHeight", 1, 1024));
  s.stride_w = static_cast<int32_t>(IntegerField(args, "strideWidth", 1, 1024));
  s.dilation_h =
      kind == WindowKind::kPool ? 1 : static_cast<int32_t>(IntegerField(args, "dilationHeight", 1, 1024));
  s.dilation_w =
      kind == WindowKind::kPool ? 1 : static_cast<int32_t>(IntegerField(args, "dilationWidth", 1, 1024));
  s.pad_top = static_cast<int32_t>(IntegerField(args, "padTop", 0, 1024 * 1024));
  s.pad_left = static_cast<int32_t>(IntegerField(args, "padLeft", 0, 1024 * 1024));
  Napi::Env env = args.Env();
  if (kind == WindowKind::kPool && s.out_c != s.in_c) {
    ThrowRange(env, "outChannels equal to inChannels (" + std::to_string(s.in_c) + ")", "outChannels",
               std::to_string(s.out_c));
  }
  if (kind == WindowKind::kDepthwise && s.out_c % s.in_c != 0) {
    ThrowRange(env, "a multiple of inChannels (" + std::to_string(s.in_c) + ")", "outChannels",
               std::to_string(s.out_c));
  }
  // Elements per tensor must fit a typed array (< 2^32) so size_t arithmetic in C never wraps.
  const double in_size = double(s.batch) * s.in_h * s.in_w * s.in_c;
  const double out_size = double(s.batch) * s.out_h * s.out_w * s.out_c;
  const double col_size = double(s.out_h) * s.out_w * s.filter_h * s.filter_w * s.in_c;
  if (in_size > 4294967295.0 || out_size > 4294967295.0 || col_size > 4294967295.0) {
    throw Napi::RangeError::New(env, "Expected tensors of at most 2^32 - 1 values but the shape is larger");
  }
  return s;
}

size_t InSize(const f32_window_shape& s) { return size_t(s.batch) * s.in_h * s.in_w * s.in_c; }
size_t OutSize(const f32_window_shape& s) { return size_t(s.batch) * s.out_h * s.out_w * s.out_c; }
size_t ConvFilterSize(const f32_window_shape& s) {
  return size_t(s.filter_h) * s.filter_w * s.in_c * s.out_c;
}
size_t DepthwiseFilterSize(const f32_window_shape& s) { return size_t(s.filter_h) * s.filter_w * s.out_c; }

Napi::Value Conv2dForward(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const f32_window_shape s = WindowField(args, WindowKind::kConv);
  FloatArray x = Float32Field(args, "x", InSize(s));
  FloatArray filter = Float32Field(args, "filter", ConvFilterSize(s));
  FloatArray bias = Float32Field(args, "bias", size_t(s.out_c), true);
  const f32_activation act = ActivationField(args, "activation");
  FloatArray y = Float32Field(args, "y", OutSize(s));
  CheckNoAlias(info.Env(), "y", y, {{"x", x}, {"filter", filter}, {"bias", bias}});
  f32_conv2d_forward(&s, x.data, filter.data, bias.data, act, y.data);
  return info.Env().Undefined();
}

Napi::Value Conv2dBackpropInput(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const f32_window_shape s = WindowField(args, WindowKind::kConv);
  FloatArray dy = Float32Field(args, "dy", OutSize(s));
  FloatArray filter = Float32Field(args, "filter", ConvFilterSize(s));
  FloatArray dx = Float32Field(args, "dx", InSize(s));
  CheckNoAlias(info.Env(), "dx", dx, {{"dy", dy}, {"filter", filter}});
  f32_conv2d_backprop_input(&s, dy.data, filter.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value Conv2dBackpropFilter(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const f32_window_shape s = WindowField(args, WindowKind::kConv);
  FloatArray x = Float32Field(args, "x", InSize(s));
  FloatArray dy = Float32Field(args, "dy", OutSize(s));
  FloatArray dfilter = Float32Field(args, "dfilter", ConvFilterSize(s));
  CheckNoAlias(info.Env(), "dfilter", dfilter, {{"x", x}, {"dy", dy}});
  f32_conv2d_backprop_filter(&s, x.data, dy.data, dfilter.data);
  return info.Env().Undefined();
}

Napi::Value DepthwiseConv2dForward(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const f32_window_shape s = WindowField(args, WindowKind::kDepthwise);
  FloatArray x = Float32Field(args, "x", InSize(s));
  FloatArray filter = Float32Field(args, "filter", DepthwiseFilterSize(s));
  FloatArray bias = Float32Field(args, "bias", size_t(s.out_c), true);
  const f32_activation act = ActivationField(args, "activation");
  FloatArray y = Float32Field(args, "y", OutSize(s));
  CheckNoAlias(info.Env(), "y", y, {{"x", x}, {"filter", filter}, {"bias", bias}});
  f32_dwconv2d_forward(&s, x.data, filter.data, bias.data, act, y.data);
  return info.Env().Undefined();
}

Napi::Value DepthwiseConv2dBackpropInput(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const f32_window_shape s = WindowField(args, WindowKind::kDepthwise);
  FloatArray dy = Float32Field(args, "dy", OutSize(s));
  FloatArray filter = Float32Field(args, "filter", DepthwiseFilterSize(s));
  FloatArray dx = Float32Field(args, "dx", InSize(s));
  CheckNoAlias(info.Env(), "dx", dx, {{"dy", dy}, {"filter", filter}});
  f32_dwconv2d_backprop_input(&s, dy.data, filter.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value DepthwiseConv2dBackpropFilter(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const f32_window_shape s = WindowField(args, WindowKind::kDepthwise);
  FloatArray x = Float32Field(args, "x", InSize(s));
  FloatArray dy = Float32Field(args, "dy", OutSize(s));
  FloatArray dfilter = Float32Field(args, "dfilter", DepthwiseFilterSize(s));
  CheckNoAlias(info.Env(), "dfilter", dfilter, {{"x", x}, {"dy", dy}});
  f32_dwconv2d_backprop_filter(&s, x.data, dy.data, dfilter.data);
  return info.Env().Undefined();
}

Napi::Value PoolForward(const Napi::CallbackInfo& info, bool max) {
  Napi::Object args = ArgsObject(info);
  const f32_window_shape s = WindowField(args, WindowKind::kPool);
  FloatArray x = Float32Field(args, "x", InSize(s));
  FloatArray y = Float32Field(args, "y", OutSize(s));
  CheckNoAlias(info.Env(), "y", y, {{"x", x}});
  (max ? f32_maxpool_forward : f32_avgpool_forward)(&s, x.data, y.data);
  return info.Env().Undefined();
}

Napi::Value MaxPool(const Napi::CallbackInfo& info) { return PoolForward(info, true); }
Napi::Value AvgPool(const Napi::CallbackInfo& info) { return PoolForward(info, false); }

Napi::Value MaxPoolBackward(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const f32_window_shape s = WindowField(args, WindowKind::kPool);
  FloatArray x = Float32Field(args, "x", InSize(s));
  FloatArray dy = Float32Field(args, "dy", OutSize(s));
  FloatArray dx = Float32Field(args, "dx", InSize(s));
  CheckNoAlias(info.Env(), "dx", dx, {{"x", x}, {"dy", dy}});
  f32_maxpool_backward(&s, x.data, dy.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value AvgPoolBackward(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const f32_window_shape s = WindowField(args, WindowKind::kPool);
  FloatArray dy = Float32Field(args, "dy", OutSize(s));
  FloatArray dx = Float32Field(args, "dx", InSize(s));
  CheckNoAlias(info.Env(), "dx", dx, {{"dy", dy}});
  f32_avgpool_backward(&s, dy.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value BatchMatMul(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  Napi::Env env = info.Env();
  const size_t batch_a = size_t(IntegerField(args, "batchA", 1, kMaxDimension));
  const size_t batch_b = size_t(IntegerField(args, "batchB", 1, kMaxDimension));
  if (batch_a != batch_b && batch_a != 1 && batch_b != 1) {
    ThrowRange(env, "1 or batchA (" + std::to_string(batch_a) + ")", "batchB", std::to_string(batch_b));
  }
  const size_t m = size_t(IntegerField(args, "m", 1, kMaxDimension));
  const size_t n = size_t(IntegerField(args, "n", 1, kMaxDimension));
  const size_t k = size_t(IntegerField(args, "k", 1, kMaxDimension));
  const bool trans_a = BooleanField(args, "transposeA"), trans_b = BooleanField(args, "transposeB");
  const size_t batch = batch_a > batch_b ? batch_a : batch_b;
  if (double(batch_a) * m * k > 4294967295.0 || double(batch_b) * k * n > 4294967295.0 ||
      double(batch) * m * n > 4294967295.0) {
    throw Napi::RangeError::New(env, "Expected tensors of at most 2^32 - 1 values but the shape is larger");
  }
  FloatArray a = Float32Field(args, "a", batch_a * m * k);
  FloatArray b = Float32Field(args, "b", batch_b * k * n);
  FloatArray bias;
  Napi::Value bias_value = args.Get("bias");
  if (!bias_value.IsUndefined() && !bias_value.IsNull()) {
    if (!bias_value.IsTypedArray() ||
        bias_value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      ThrowType(env, "a Float32Array, null or undefined", "bias", bias_value);
    }
    const size_t length = bias_value.As<Napi::Float32Array>().ElementLength();
    bias = Float32Field(args, "bias", length == 1 ? 1 : n);
  }
  const f32_activation act = ActivationField(args, "activation");
  FloatArray c = Float32Field(args, "c", batch * m * n);
  CheckNoAlias(env, "c", c, {{"a", a}, {"b", b}, {"bias", bias}});
  f32_batch_matmul(batch_a, batch_b, m, n, k, trans_a, trans_b, a.data, b.data, bias.data, bias.length, act,
                   c.data);
  return env.Undefined();
}

Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const size_t count = size_t(IntegerField(args, "count", 1, INT64_C(1) << 32));
  const size_t channels = size_t(IntegerField(args, "channels", 1, kMaxDimension));
  if (double(count) * channels > 4294967295.0) {
    throw Napi::RangeError::New(info.Env(), "Expected count * channels of at most 2^32 - 1 values");
  }
  FloatArray x = Float32Field(args, "x", count * channels);
  FloatArray mean = Float32Field(args, "mean", channels);
  FloatArray variance = Float32Field(args, "variance", channels);
  FloatArray scale = Float32Field(args, "scale", channels, true);
  FloatArray offset = Float32Field(args, "offset", channels, true);
  const float epsilon = FloatField(args, "epsilon");
  FloatArray y = Float32Field(args, "y", count * channels);
  CheckNoAlias(info.Env(), "y", y,
               {{"x", x}, {"mean", mean}, {"variance", variance}, {"scale", scale}, {"offset", offset}});
  f32_batchnorm_forward(count, channels, x.data, mean.data, variance.data, scale.data, offset.data, epsilon,
                        y.data);
  return info.Env().Undefined();
}

Napi::Value BatchNormBackward(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const size_t count = size_t(IntegerField(args, "count", 1, INT64_C(1) << 32));
  const size_t channels = size_t(IntegerField(args, "channels", 1, kMaxDimension));
  if (double(count) * channels > 4294967295.0) {
    throw Napi::RangeError::New(info.Env(), "Expected count * channels of at most 2^32 - 1 values");
  }
  FloatArray x = Float32Field(args, "x", count * channels);
  FloatArray mean = Float32Field(args, "mean", channels);
  FloatArray variance = Float32Field(args, "variance", channels);
  FloatArray scale = Float32Field(args, "scale", channels, true);
  FloatArray dy = Float32Field(args, "dy", count * channels);
  const float epsilon = FloatField(args, "epsilon");
  FloatArray dx = Float32Field(args, "dx", count * channels);
  FloatArray dmean = Float32Field(args, "dmean", channels);
  FloatArray dvariance = Float32Field(args, "dvariance", channels);
  FloatArray dscale = Float32Field(args, "dscale", channels);
  FloatArray doffset = Float32Field(args, "doffset", channels);
  const std::vector<std::pair<const char*, FloatArray>> inputs = {
      {"x", x}, {"mean", mean}, {"variance", variance}, {"scale", scale}, {"dy", dy}};
  CheckNoAlias(info.Env(), "dx", dx, inputs);
  CheckNoAlias(info.Env(), "dmean", dmean, inputs);
  CheckNoAlias(info.Env(), "dvariance", dvariance, inputs);
  CheckNoAlias(info.Env(), "dscale", dscale, inputs);
  CheckNoAlias(info.Env(), "doffset", doffset, inputs);
  f32_batchnorm_backward(count, channels, x.data, mean.data, variance.data, scale.data, dy.data, epsilon,
                         dx.data, dmean.data, dvariance.data, dscale.data, doffset.data);
  return info.Env().Undefined();
}

Napi::Value BatchNormMoments(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const size_t count = size_t(IntegerField(args, "count", 1, INT64_C(1) << 32));
  const size_t channels = size_t(IntegerField(args, "channels", 1, kMaxDimension));
  if (double(count) * channels > 4294967295.0) {
    throw Napi::RangeError::New(info.Env(), "Expected count * channels of at most 2^32 - 1 values");
  }
  FloatArray x = Float32Field(args, "x", count * channels);
  FloatArray mean = Float32Field(args, "mean", channels);
  FloatArray variance = Float32Field(args, "variance", channels);
  CheckNoAlias(info.Env(), "mean", mean, {{"x", x}, {"variance", variance}});
  CheckNoAlias(info.Env(), "variance", variance, {{"x", x}});
  if (f32_batchnorm_moments(count, channels, x.data, mean.data, variance.data) != 0) {
    throw Napi::Error::New(info.Env(), "batchNormMoments: out of memory");
  }
  return info.Env().Undefined();
}

Napi::Value BatchNormTrainBackward(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const size_t count = size_t(IntegerField(args, "count", 1, INT64_C(1) << 32));
  const size_t channels = size_t(IntegerField(args, "channels", 1, kMaxDimension));
  if (double(count) * channels > 4294967295.0) {
    throw Napi::RangeError::New(info.Env(), "Expected count * channels of at most 2^32 - 1 values");
  }
  FloatArray x = Float32Field(args, "x", count * channels);
  FloatArray mean = Float32Field(args, "mean", channels);
  FloatArray variance = Float32Field(args, "variance", channels);
  FloatArray scale = Float32Field(args, "scale", channels, true);
  FloatArray dy = Float32Field(args, "dy", count * channels);
  const float epsilon = FloatField(args, "epsilon");
  FloatArray dx = Float32Field(args, "dx", count * channels);
  FloatArray dscale = Float32Field(args, "dscale", channels);
  FloatArray doffset = Float32Field(args, "doffset", channels);
  const std::vector<std::pair<const char*, FloatArray>> inputs = {
      {"x", x}, {"mean", mean}, {"variance", variance}, {"scale", scale}, {"dy", dy}};
  CheckNoAlias(info.Env(), "dx", dx, inputs);
  CheckNoAlias(info.Env(), "dscale", dscale, inputs);
  CheckNoAlias(info.Env(), "doffset", doffset, inputs);
  CheckNoAlias(info.Env(), "dscale", dscale, {{"doffset", doffset}, {"dx", dx}});
  CheckNoAlias(info.Env(), "doffset", doffset, {{"dx", dx}});
  if (f32_batchnorm_train_backward(count, channels, x.data, mean.data, variance.data, scale.data, dy.data,
                                   epsilon, dx.data, dscale.data, doffset.data) != 0) {
    throw Napi::Error::New(info.Env(), "batchNormTrainBackward: out of memory");
  }
  return info.Env().Undefined();
}

size_t SizeField(const Napi::Object& args, const char* name, int64_t min, int64_t max) {
  return static_cast<size_t>(IntegerField(args, name, min, max));
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  Napi::Env env = info.Env();
  const int64_t op = IntegerField(args, "op", F32_BINARY_ADD, F32_BINARY_SQUARED_DIFFERENCE);
  const size_t n = SizeField(args, "n", 0, INT64_C(4294967295));
  const size_t a_len = SizeField(args, "aLength", 1, INT64_C(4294967295));
  const size_t a_div = SizeField(args, "aDivisor", 1, INT64_C(4294967295));
  const size_t b_len = SizeField(args, "bLength", 1, INT64_C(4294967295));
  const size_t b_div = SizeField(args, "bDivisor", 1, INT64_C(4294967295));
  FloatArray a = Float32Field(args, "a", a_len);
  FloatArray b = Float32Field(args, "b", b_len);
  FloatArray y = Float32Field(args, "y", n);
  // Every index (i / div) % len is below len, so reads stay inside a and b for any n.
  CheckNoAlias(env, "y", y, {{"a", a}, {"b", b}});
  f32_binary(static_cast<f32_binary_op>(op), n, a.data, a_div, a_len, b.data, b_div, b_len, y.data);
  return env.Undefined();
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const int64_t op = IntegerField(args, "op", F32_UNARY_RELU, F32_UNARY_ABS);
  Napi::Value xv = args.Get("x");
  if (!xv.IsTypedArray() || xv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowType(info.Env(), "a Float32Array", "x", xv);
  }
  const size_t n = xv.As<Napi::Float32Array>().ElementLength();
  FloatArray x = Float32Field(args, "x", n);
  const float alpha = FloatField(args, "alpha");
  FloatArray y = Float32Field(args, "y", n);
  CheckNoAlias(info.Env(), "y", y, {{"x", x}});
  f32_unary(static_cast<f32_unary_op>(op), n, x.data, alpha, y.data);
  return info.Env().Undefined();
}

Napi::Value SumAxes(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const size_t outer = SizeField(args, "outer", 1, INT64_C(4294967295));
  const size_t mid = SizeField(args, "mid", 1, INT64_C(4294967295));
  const size_t inner = SizeField(args, "inner", 1, INT64_C(4294967295));
  if (double(outer) * mid * inner > 4294967295.0) {
    throw Napi::RangeError::New(info.Env(), "Expected outer * mid * inner of at most 2^32 - 1 values");
  }
  FloatArray x = Float32Field(args, "x", outer * mid * inner);
  FloatArray y = Float32Field(args, "y", outer * inner);
  CheckNoAlias(info.Env(), "y", y, {{"x", x}});
  f32_sum_axes(outer, mid, inner, x.data, y.data);
  return info.Env().Undefined();
}

Napi::Value UnaryGrad(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const int64_t op = IntegerField(args, "op", F32_UNARY_GRAD_RELU, F32_UNARY_GRAD_SQUARE);
  Napi::Value dyv = args.Get("dy");
  if (!dyv.IsTypedArray() || dyv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowType(info.Env(), "a Float32Array", "dy", dyv);
  }
  const size_t n = dyv.As<Napi::Float32Array>().ElementLength();
  FloatArray dy = Float32Field(args, "dy", n);
  FloatArray x = Float32Field(args, "x", n);
  FloatArray dx = Float32Field(args, "dx", n);
  CheckNoAlias(info.Env(), "dx", dx, {{"dy", dy}, {"x", x}});
  f32_unary_grad(static_cast<f32_unary_grad_op>(op), n, dy.data, x.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value CompareMask(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  Napi::Env env = info.Env();
  const int64_t op = IntegerField(args, "op", F32_COMPARE_GREATER, F32_COMPARE_LESS_EQUAL);
  const size_t n = SizeField(args, "n", 0, INT64_C(4294967295));
  const size_t a_len = SizeField(args, "aLength", 1, INT64_C(4294967295));
  const size_t a_div = SizeField(args, "aDivisor", 1, INT64_C(4294967295));
  const size_t b_len = SizeField(args, "bLength", 1, INT64_C(4294967295));
  const size_t b_div = SizeField(args, "bDivisor", 1, INT64_C(4294967295));
  FloatArray dy = Float32Field(args, "dy", n);
  FloatArray a = Float32Field(args, "a", a_len);
  FloatArray b = Float32Field(args, "b", b_len);
  FloatArray y = Float32Field(args, "y", n);
  // As in Binary: every index (i / div) % len is below len.
  CheckNoAlias(env, "y", y, {{"dy", dy}, {"a", a}, {"b", b}});
  f32_compare_mask(static_cast<f32_compare_op>(op), n, dy.data, a.data, a_div, a_len, b.data, b_div, b_len,
                   y.data);
  return env.Undefined();
}

Napi::Value MeanGrad(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  const size_t outer = SizeField(args, "outer", 1, INT64_C(4294967295));
  const size_t mid = SizeField(args, "mid", 1, INT64_C(4294967295));
  const size_t inner = SizeField(args, "inner", 1, INT64_C(4294967295));
  if (double(outer) * mid * inner > 4294967295.0) {
    throw Napi::RangeError::New(info.Env(), "Expected outer * mid * inner of at most 2^32 - 1 values");
  }
  FloatArray dy = Float32Field(args, "dy", outer * inner);
  FloatArray dx = Float32Field(args, "dx", outer * mid * inner);
  CheckNoAlias(info.Env(), "dx", dx, {{"dy", dy}});
  f32_mean_grad(outer, mid, inner, dy.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value Transpose(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  Napi::Env env = info.Env();
  Napi::Value shape_value = args.Get("shape"), perm_value = args.Get("perm");
  if (!shape_value.IsArray()) ThrowType(env, "an array of dimensions", "shape", shape_value);
  if (!perm_value.IsArray()) ThrowType(env, "an array of axes", "perm", perm_value);
  Napi::Array shape_array = shape_value.As<Napi::Array>(), perm_array = perm_value.As<Napi::Array>();
  const size_t rank = shape_array.Length();
  if (rank < 1 || rank > F32_MAX_RANK) {
    ThrowRange(env, "1 to " + std::to_string(F32_MAX_RANK) + " dimensions", "shape", std::to_string(rank));
  }
  if (perm_array.Length() != rank) {
    ThrowRange(env, std::to_string(rank) + " axes", "perm", std::to_string(perm_array.Length()));
  }
  size_t shape[F32_MAX_RANK], perm[F32_MAX_RANK];
  bool seen[F32_MAX_RANK] = {false};
  double count = 1;
  for (size_t d = 0; d < rank; d++) {
    Napi::Value dim = shape_array.Get(d), axis = perm_array.Get(d);
    if (!dim.IsNumber() || dim.As<Napi::Number>().DoubleValue() < 0 ||
        std::trunc(dim.As<Napi::Number>().DoubleValue()) != dim.As<Napi::Number>().DoubleValue()) {
      ThrowType(env, "a non-negative integer", "shape[" + std::to_string(d) + "]", dim);
    }
    if (!axis.IsNumber()) ThrowType(env, "an axis", "perm[" + std::to_string(d) + "]", axis);
    const double a = axis.As<Napi::Number>().DoubleValue();
    if (std::trunc(a) != a || a < 0 || a >= double(rank) || seen[size_t(a)]) {
      ThrowRange(env, "a permutation of 0.." + std::to_string(rank - 1), "perm", axis.ToString().Utf8Value());
    }
    seen[size_t(a)] = true;
    shape[d] = size_t(dim.As<Napi::Number>().DoubleValue());
    perm[d] = size_t(a);
    count *= double(shape[d]);
  }
  if (count > 4294967295.0) throw Napi::RangeError::New(env, "Expected at most 2^32 - 1 values in shape");
  FloatArray x = Float32Field(args, "x", size_t(count));
  FloatArray y = Float32Field(args, "y", size_t(count));
  CheckNoAlias(env, "y", y, {{"x", x}});
  f32_transpose(rank, shape, perm, x.data, y.data);
  return env.Undefined();
}

Napi::Value AdamUpdate(const Napi::CallbackInfo& info) {
  Napi::Object args = ArgsObject(info);
  Napi::Env env = info.Env();
  Napi::Value pv = args.Get("param");
  if (!pv.IsTypedArray() || pv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowType(env, "a Float32Array", "param", pv);
  }
  const size_t n = pv.As<Napi::Float32Array>().ElementLength();
  FloatArray param = Float32Field(args, "param", n);
  FloatArray grad = Float32Field(args, "grad", n);
  FloatArray m = Float32Field(args, "m", n);
  FloatArray v = Float32Field(args, "v", n);
  const float lr = FloatField(args, "learningRate"), beta1 = FloatField(args, "beta1");
  const float beta2 = FloatField(args, "beta2"), epsilon = FloatField(args, "epsilon");
  const float bias1 = FloatField(args, "bias1"), bias2 = FloatField(args, "bias2");
  if (!(bias1 > 0.0f)) ThrowRange(env, "a number > 0", "bias1", std::to_string(bias1));
  if (!(bias2 > 0.0f)) ThrowRange(env, "a number > 0", "bias2", std::to_string(bias2));
  CheckNoAlias(env, "param", param, {{"grad", grad}, {"m", m}, {"v", v}});
  CheckNoAlias(env, "m", m, {{"grad", grad}, {"v", v}});
  CheckNoAlias(env, "v", v, {{"grad", grad}});
  f32_adam_update(n, param.data, grad.data, m.data, v.data, lr, beta1, beta2, epsilon, bias1, bias2);
  return env.Undefined();
}

Napi::Value Isa(const Napi::CallbackInfo& info) {
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("current", f32_train_isa_name(f32_train_isa()));
  result.Set("best", f32_train_isa_name(f32_train_isa_best()));
  return result;
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) {
    ThrowType(env, "'scalar', 'avx2' or 'avx512'", "isa", info.Length() == 0 ? env.Undefined() : info[0]);
  }
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  f32_isa isa;
  if (name == "scalar") {
    isa = F32_ISA_SCALAR;
  } else if (name == "avx2") {
    isa = F32_ISA_AVX2;
  } else if (name == "avx512") {
    isa = F32_ISA_AVX512;
  } else {
    ThrowRange(env, "'scalar', 'avx2' or 'avx512'", "isa", "\"" + name + "\"");
  }
  if (f32_train_set_isa(isa) != 0) {
    ThrowRange(env,
               std::string("an ISA this CPU and build support (up to ") +
                   f32_train_isa_name(f32_train_isa_best()) + ")",
               "isa", "\"" + name + "\"");
  }
  return env.Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), f32_train_threads());
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) {
    ThrowType(env, "an integer", "threads", info.Length() == 0 ? env.Undefined() : info[0]);
  }
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(n) || std::trunc(n) != n || n < 1 || n > F32_MAX_THREADS) {
    ThrowRange(env, "an integer in [1, " + std::to_string(F32_MAX_THREADS) + "]", "threads",
               info[0].ToString().Utf8Value());
  }
  f32_train_set_threads(static_cast<int>(n));
  return env.Undefined();
}

// Training allocates every activation and gradient anew each step (tfjs's cpu backend keeps no buffer
// pool), tens of megabytes per step in arrays of 1-13 MB. glibc serves such sizes with mmap and returns
// them with munmap, so each array's pages fault in again on first write: on a VM that costs more than the
// kernels themselves (MobileNet at batch 64 spent about half of each step in page faults). Serving them
// from the heap and never trimming it keeps the pages mapped between steps; the process keeps its peak
// footprint, which is what a training process reaches every step anyway. Returns whether glibc took it.
Napi::Value RetainFreedMemory(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit; larger arrays still use mmap.
  const bool ok =
      mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 && mallopt(M_TRIM_THRESHOLD, INT32_MAX) == 1;
  return Napi::Boolean::New(info.Env(), ok);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("conv2dForward", Napi::Function::New(env, Conv2dForward));
  exports.Set("conv2dBackpropInput", Napi::Function::New(env, Conv2dBackpropInput));
  exports.Set("conv2dBackpropFilter", Napi::Function::New(env, Conv2dBackpropFilter));
  exports.Set("depthwiseConv2dForward", Napi::Function::New(env, DepthwiseConv2dForward));
  exports.Set("depthwiseConv2dBackpropInput", Napi::Function::New(env, DepthwiseConv2dBackpropInput));
  exports.Set("depthwiseConv2dBackpropFilter", Napi::Function::New(env, DepthwiseConv2dBackpropFilter));
  exports.Set("maxPool", Napi::Function::New(env, MaxPool));
  exports.Set("maxPoolBackward", Napi::Function::New(env, MaxPoolBackward));
  exports.Set("avgPool", Napi::Function::New(env, AvgPool));
  exports.Set("avgPoolBackward", Napi::Function::New(env, AvgPoolBackward));
  exports.Set("batchMatMul", Napi::Function::New(env, BatchMatMul));
  exports.Set("batchNorm", Napi::Function::New(env, BatchNorm));
  exports.Set("batchNormBackward", Napi::Function::New(env, BatchNormBackward));
  exports.Set("batchNormMoments", Napi::Function::New(env, BatchNormMoments));
  exports.Set("batchNormTrainBackward", Napi::Function::New(env, BatchNormTrainBackward));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("sumAxes", Napi::Function::New(env, SumAxes));
  exports.Set("unaryGrad", Napi::Function::New(env, UnaryGrad));
  exports.Set("compareMask", Napi::Function::New(env, CompareMask));
  exports.Set("meanGrad", Napi::Function::New(env, MeanGrad));
  exports.Set("transpose", Napi::Function::New(env, Transpose));
  exports.Set("adamUpdate", Napi::Function::New(env, AdamUpdate));
  exports.Set("retainFreedMemory", Napi::Function::New(env, RetainFreedMemory));
  exports.Set("isa", Napi::Function::New(env, Isa));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  return exports;
}

}  // namespace

NODE_API_MODULE(whittle_train, Init)
