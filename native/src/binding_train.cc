// The Node-API surface of the fp32 training kernels (f32_train_ops.h): every export takes one object of
// named arguments, checks each with binding_args.h (type, integer range, array length, no output aliasing an
// input), then calls C. Errors are TypeError or RangeError in the library's one format:
//   Expected <what> for <name> but received <value>
// The kernels run on the thread pool setThreads sets (binding_kernels.h), the one the inference operators
// use, and their SGEMM takes its microkernel from the ISA level every other family uses (WHITTLE_ISA).
#include "binding_train.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "binding_args.h"
#include "binding_kernels.h"

extern "C" {
#include "cpu/cpu-features.h"
#include "f32_train_ops.h"
}

namespace whittle {
namespace {

using namespace whittle::args;  // NOLINT(build/namespaces)

// Largest size of any one dimension (the library's, f32_ops.h); products of checked dimensions stay far
// below 2^63.
constexpr int64_t kMaxDimension = static_cast<int64_t>(WHITTLE_MAX_DIMENSION);

// The SGEMM path the training kernels use: the level WHITTLE_ISA selects, or a lower one setIsa forced
// (tests and benchmarks compare paths in one process). -1 = follow whittle_isa_selected().
std::atomic<int> forced_gemm_level{-1};

whittle_isa GemmLevel() {
  const int forced = forced_gemm_level.load(std::memory_order_relaxed);
  return forced < 0 ? whittle_isa_selected() : static_cast<whittle_isa>(forced);
}

// The training kernels share per-thread scratch (f32_train_scratch): one call at a time, even from several
// JavaScript threads.
std::mutex train_mutex;

// What one kernel call holds while it runs: the training lock, a lease on the shared pool, and the context
// built from them.
class TrainCall {
 public:
  TrainCall() : lock_(train_mutex), context_{lease_.pool(), f32_ppmm_ukernel_select(GemmLevel())} {}
  const f32_train_context* context() const { return &context_; }

 private:
  std::lock_guard<std::mutex> lock_;
  ThreadPoolLease lease_;
  f32_train_context context_;
};

Napi::Object NamedArgs(const Napi::CallbackInfo& info) {
  return ArgsObject(info, 0, "arguments", "one object of named arguments");
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
  s.batch = static_cast<int32_t>(Integer(args, "batch", 1, kMaxDimension));
  s.in_h = static_cast<int32_t>(Integer(args, "inputHeight", 1, kMaxDimension));
  s.in_w = static_cast<int32_t>(Integer(args, "inputWidth", 1, kMaxDimension));
  s.in_c = static_cast<int32_t>(Integer(args, "inputChannels", 1, kMaxDimension));
  s.out_h = static_cast<int32_t>(Integer(args, "outputHeight", 1, kMaxDimension));
  s.out_w = static_cast<int32_t>(Integer(args, "outputWidth", 1, kMaxDimension));
  s.out_c = static_cast<int32_t>(Integer(args, "outputChannels", 1, kMaxDimension));
  s.filter_h = static_cast<int32_t>(Integer(args, "kernelHeight", 1, 1024));
  s.filter_w = static_cast<int32_t>(Integer(args, "kernelWidth", 1, 1024));
  s.stride_h = static_cast<int32_t>(Integer(args, "strideHeight", 1, 1024));
  s.stride_w = static_cast<int32_t>(Integer(args, "strideWidth", 1, 1024));
  s.dilation_h =
      kind == WindowKind::kPool ? 1 : static_cast<int32_t>(Integer(args, "dilationHeight", 1, 1024));
  s.dilation_w =
      kind == WindowKind::kPool ? 1 : static_cast<int32_t>(Integer(args, "dilationWidth", 1, 1024));
  s.pad_top = static_cast<int32_t>(Integer(args, "paddingTop", 0, 1024 * 1024));
  s.pad_left = static_cast<int32_t>(Integer(args, "paddingLeft", 0, 1024 * 1024));
  Napi::Env env = args.Env();
  if (kind == WindowKind::kPool && s.out_c != s.in_c) {
    ThrowRange(env, "outputChannels equal to inputChannels (" + std::to_string(s.in_c) + ")",
               "outputChannels", std::to_string(s.out_c));
  }
  if (kind == WindowKind::kDepthwise && s.out_c % s.in_c != 0) {
    ThrowRange(env, "a multiple of inputChannels (" + std::to_string(s.in_c) + ")", "outputChannels",
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

// The filter's values: [fh][fw][in_c][out_c] for a conv, [fh][fw][in_c][multiplier] for a depthwise conv.
size_t FilterSize(const f32_window_shape& s, WindowKind kind) {
  return kind == WindowKind::kDepthwise ? DepthwiseFilterSize(s) : ConvFilterSize(s);
}

// conv2dForward and depthwiseConv2dForward: y = act(conv(x, filter) + bias).
Napi::Value ConvForward(const Napi::CallbackInfo& info, WindowKind kind) {
  Napi::Object args = NamedArgs(info);
  const f32_window_shape s = WindowField(args, kind);
  Float32Values x = Float32Field(args, "x", InSize(s));
  Float32Values filter = Float32Field(args, "filter", FilterSize(s, kind));
  Float32Values bias = Float32Field(args, "bias", size_t(s.out_c), true);
  const f32_activation act = ActivationField(args, "activation");
  Float32Values y = Float32Field(args, "y", OutSize(s));
  ExpectNoSharedMemory(info.Env(), "y", y, {{"x", x}, {"filter", filter}, {"bias", bias}});
  TrainCall call;
  (kind == WindowKind::kDepthwise ? f32_dwconv2d_forward : f32_conv2d_forward)(
      call.context(), &s, x.data, filter.data, bias.data, act, y.data);
  return info.Env().Undefined();
}

// conv2dBackpropInput and depthwiseConv2dBackpropInput: dx from dy and the filter.
Napi::Value ConvBackpropInput(const Napi::CallbackInfo& info, WindowKind kind) {
  Napi::Object args = NamedArgs(info);
  const f32_window_shape s = WindowField(args, kind);
  Float32Values dy = Float32Field(args, "dy", OutSize(s));
  Float32Values filter = Float32Field(args, "filter", FilterSize(s, kind));
  Float32Values dx = Float32Field(args, "dx", InSize(s));
  ExpectNoSharedMemory(info.Env(), "dx", dx, {{"dy", dy}, {"filter", filter}});
  TrainCall call;
  (kind == WindowKind::kDepthwise ? f32_dwconv2d_backprop_input : f32_conv2d_backprop_input)(
      call.context(), &s, dy.data, filter.data, dx.data);
  return info.Env().Undefined();
}

// conv2dBackpropFilter and depthwiseConv2dBackpropFilter: dfilter from x and dy.
Napi::Value ConvBackpropFilter(const Napi::CallbackInfo& info, WindowKind kind) {
  Napi::Object args = NamedArgs(info);
  const f32_window_shape s = WindowField(args, kind);
  Float32Values x = Float32Field(args, "x", InSize(s));
  Float32Values dy = Float32Field(args, "dy", OutSize(s));
  Float32Values dfilter = Float32Field(args, "dfilter", FilterSize(s, kind));
  ExpectNoSharedMemory(info.Env(), "dfilter", dfilter, {{"x", x}, {"dy", dy}});
  TrainCall call;
  (kind == WindowKind::kDepthwise ? f32_dwconv2d_backprop_filter : f32_conv2d_backprop_filter)(
      call.context(), &s, x.data, dy.data, dfilter.data);
  return info.Env().Undefined();
}

Napi::Value PoolForward(const Napi::CallbackInfo& info, bool max) {
  Napi::Object args = NamedArgs(info);
  const f32_window_shape s = WindowField(args, WindowKind::kPool);
  Float32Values x = Float32Field(args, "x", InSize(s));
  Float32Values y = Float32Field(args, "y", OutSize(s));
  ExpectNoSharedMemory(info.Env(), "y", y, {{"x", x}});
  TrainCall call;
  (max ? f32_maxpool_forward : f32_avgpool_forward)(call.context(), &s, x.data, y.data);
  return info.Env().Undefined();
}

Napi::Value MaxPoolBackward(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const f32_window_shape s = WindowField(args, WindowKind::kPool);
  Float32Values x = Float32Field(args, "x", InSize(s));
  Float32Values dy = Float32Field(args, "dy", OutSize(s));
  Float32Values dx = Float32Field(args, "dx", InSize(s));
  ExpectNoSharedMemory(info.Env(), "dx", dx, {{"x", x}, {"dy", dy}});
  TrainCall call;
  f32_maxpool_backward(call.context(), &s, x.data, dy.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value AvgPoolBackward(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const f32_window_shape s = WindowField(args, WindowKind::kPool);
  Float32Values dy = Float32Field(args, "dy", OutSize(s));
  Float32Values dx = Float32Field(args, "dx", InSize(s));
  ExpectNoSharedMemory(info.Env(), "dx", dx, {{"dy", dy}});
  TrainCall call;
  f32_avgpool_backward(call.context(), &s, dy.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value BatchMatMul(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  Napi::Env env = info.Env();
  const size_t batch_a = size_t(Integer(args, "batchA", 1, kMaxDimension));
  const size_t batch_b = size_t(Integer(args, "batchB", 1, kMaxDimension));
  if (batch_a != batch_b && batch_a != 1 && batch_b != 1) {
    ThrowRange(env, "1 or batchA (" + std::to_string(batch_a) + ")", "batchB", std::to_string(batch_b));
  }
  const size_t m = size_t(Integer(args, "m", 1, kMaxDimension));
  const size_t n = size_t(Integer(args, "n", 1, kMaxDimension));
  const size_t k = size_t(Integer(args, "k", 1, kMaxDimension));
  const bool trans_a = RequiredBoolean(args, "transposeA"), trans_b = RequiredBoolean(args, "transposeB");
  const size_t batch = batch_a > batch_b ? batch_a : batch_b;
  if (double(batch_a) * m * k > 4294967295.0 || double(batch_b) * k * n > 4294967295.0 ||
      double(batch) * m * n > 4294967295.0) {
    throw Napi::RangeError::New(env, "Expected tensors of at most 2^32 - 1 values but the shape is larger");
  }
  Float32Values a = Float32Field(args, "a", batch_a * m * k);
  Float32Values b = Float32Field(args, "b", batch_b * k * n);
  Float32Values bias;
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
  Float32Values c = Float32Field(args, "c", batch * m * n);
  ExpectNoSharedMemory(env, "c", c, {{"a", a}, {"b", b}, {"bias", bias}});
  TrainCall call;
  f32_batch_matmul(call.context(), batch_a, batch_b, m, n, k, trans_a, trans_b, a.data, b.data, bias.data,
                   bias.length, act, c.data);
  return env.Undefined();
}

// count and channels of a [count][channels] tensor whose values fit a typed array.
std::pair<size_t, size_t> RowsOfChannels(const Napi::Object& args) {
  const size_t count = size_t(Integer(args, "count", 1, INT64_C(1) << 32));
  const size_t channels = size_t(Integer(args, "channels", 1, kMaxDimension));
  if (double(count) * channels > 4294967295.0) {
    throw Napi::RangeError::New(args.Env(), "Expected count * channels of at most 2^32 - 1 values");
  }
  return {count, channels};
}

Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const auto [count, channels] = RowsOfChannels(args);
  Float32Values x = Float32Field(args, "x", count * channels);
  Float32Values mean = Float32Field(args, "mean", channels);
  Float32Values variance = Float32Field(args, "variance", channels);
  Float32Values scale = Float32Field(args, "scale", channels, true);
  Float32Values offset = Float32Field(args, "offset", channels, true);
  const float epsilon = FiniteFloat(args, "epsilon");
  Float32Values y = Float32Field(args, "y", count * channels);
  ExpectNoSharedMemory(
      info.Env(), "y", y,
      {{"x", x}, {"mean", mean}, {"variance", variance}, {"scale", scale}, {"offset", offset}});
  const std::lock_guard<std::mutex> lock(train_mutex);  // its scratch
  f32_batchnorm_forward(count, channels, x.data, mean.data, variance.data, scale.data, offset.data, epsilon,
                        y.data);
  return info.Env().Undefined();
}

// The inputs both batch-norm gradients read, and dx: x, mean, variance, scale (optional) and dy of a
// [count][channels] tensor, checked in that order.
struct BatchNormGradientArgs {
  size_t count, channels;
  Float32Values x, mean, variance, scale, dy;
  float epsilon;
  Float32Values dx;

  explicit BatchNormGradientArgs(const Napi::Object& args) {
    std::tie(count, channels) = RowsOfChannels(args);
    x = Float32Field(args, "x", count * channels);
    mean = Float32Field(args, "mean", channels);
    variance = Float32Field(args, "variance", channels);
    scale = Float32Field(args, "scale", channels, true);
    dy = Float32Field(args, "dy", count * channels);
    epsilon = FiniteFloat(args, "epsilon");
    dx = Float32Field(args, "dx", count * channels);
  }

  std::vector<std::pair<const char*, Float32Values>> Inputs() const {
    return {{"x", x}, {"mean", mean}, {"variance", variance}, {"scale", scale}, {"dy", dy}};
  }

  // Reads the gradient's [channels] outputs `names`, in order, then checks that neither dx nor any of them
  // shares memory with an input.
  template <size_t N>
  std::array<Float32Values, N> ChannelOutputs(const Napi::Object& args, const char* const (&names)[N]) const {
    std::array<Float32Values, N> outputs;
    for (size_t i = 0; i < N; i++) outputs[i] = Float32Field(args, names[i], channels);
    const auto inputs = Inputs();
    ExpectNoSharedMemory(args.Env(), "dx", dx, inputs);
    for (size_t i = 0; i < N; i++) ExpectNoSharedMemory(args.Env(), names[i], outputs[i], inputs);
    return outputs;
  }
};

Napi::Value BatchNormBackward(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const BatchNormGradientArgs g(args);
  const auto& [count, channels, x, mean, variance, scale, dy, epsilon, dx] = g;
  const auto [dmean, dvariance, dscale, doffset] =
      g.ChannelOutputs(args, {"dmean", "dvariance", "dscale", "doffset"});
  const std::lock_guard<std::mutex> lock(train_mutex);  // its scratch
  f32_batchnorm_backward(count, channels, x.data, mean.data, variance.data, scale.data, dy.data, epsilon,
                         dx.data, dmean.data, dvariance.data, dscale.data, doffset.data);
  return info.Env().Undefined();
}

Napi::Value BatchNormMoments(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const auto [count, channels] = RowsOfChannels(args);
  Float32Values x = Float32Field(args, "x", count * channels);
  Float32Values mean = Float32Field(args, "mean", channels);
  Float32Values variance = Float32Field(args, "variance", channels);
  ExpectNoSharedMemory(info.Env(), "mean", mean, {{"x", x}, {"variance", variance}});
  ExpectNoSharedMemory(info.Env(), "variance", variance, {{"x", x}});
  if (f32_batchnorm_moments(count, channels, x.data, mean.data, variance.data) != 0) {
    throw Napi::Error::New(info.Env(), "batchNormMoments: out of memory");
  }
  return info.Env().Undefined();
}

Napi::Value BatchNormTrainBackward(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const BatchNormGradientArgs g(args);
  const auto& [count, channels, x, mean, variance, scale, dy, epsilon, dx] = g;
  const auto [dscale, doffset] = g.ChannelOutputs(args, {"dscale", "doffset"});
  ExpectNoSharedMemory(info.Env(), "dscale", dscale, {{"doffset", doffset}, {"dx", dx}});
  ExpectNoSharedMemory(info.Env(), "doffset", doffset, {{"dx", dx}});
  if (f32_batchnorm_train_backward(count, channels, x.data, mean.data, variance.data, scale.data, dy.data,
                                   epsilon, dx.data, dscale.data, doffset.data) != 0) {
    throw Napi::Error::New(info.Env(), "batchNormTrainBackward: out of memory");
  }
  return info.Env().Undefined();
}

size_t SizeField(const Napi::Object& args, const char* name, int64_t min, int64_t max) {
  return static_cast<size_t>(Integer(args, name, min, max));
}

// SumAxes and MeanGrad view their tensor as [outer][mid][inner] and reduce (or spread) the mid axis.
std::tuple<size_t, size_t, size_t> ReducedAxes(const Napi::Object& args) {
  const size_t outer = SizeField(args, "outer", 1, INT64_C(4294967295));
  const size_t mid = SizeField(args, "mid", 1, INT64_C(4294967295));
  const size_t inner = SizeField(args, "inner", 1, INT64_C(4294967295));
  if (double(outer) * mid * inner > 4294967295.0) {
    throw Napi::RangeError::New(args.Env(), "Expected outer * mid * inner of at most 2^32 - 1 values");
  }
  return {outer, mid, inner};
}

// Binary and CompareMask read operand a at (i / aDivisor) % aLength for output index i < n, b likewise.
struct BroadcastShape {
  size_t n, a_len, a_div, b_len, b_div;

  explicit BroadcastShape(const Napi::Object& args)
      : n(SizeField(args, "n", 0, INT64_C(4294967295))),
        a_len(SizeField(args, "aLength", 1, INT64_C(4294967295))),
        a_div(SizeField(args, "aDivisor", 1, INT64_C(4294967295))),
        b_len(SizeField(args, "bLength", 1, INT64_C(4294967295))),
        b_div(SizeField(args, "bDivisor", 1, INT64_C(4294967295))) {}
};

Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  Napi::Env env = info.Env();
  const int64_t op = Integer(args, "op", F32_BINARY_ADD, F32_BINARY_SQUARED_DIFFERENCE);
  const BroadcastShape shape(args);
  const auto [n, a_len, a_div, b_len, b_div] = shape;
  Float32Values a = Float32Field(args, "a", a_len);
  Float32Values b = Float32Field(args, "b", b_len);
  Float32Values y = Float32Field(args, "y", n);
  // Every index (i / div) % len is below len, so reads stay inside a and b for any n.
  ExpectNoSharedMemory(env, "y", y, {{"a", a}, {"b", b}});
  f32_binary(static_cast<f32_binary_op>(op), n, a.data, a_div, a_len, b.data, b_div, b_len, y.data);
  return env.Undefined();
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const int64_t op = Integer(args, "op", F32_UNARY_RELU, F32_UNARY_ABS);
  const size_t n = Float32Length(args, "x");
  Float32Values x = Float32Field(args, "x", n);
  const float alpha = FiniteFloat(args, "alpha");
  Float32Values y = Float32Field(args, "y", n);
  ExpectNoSharedMemory(info.Env(), "y", y, {{"x", x}});
  f32_unary(static_cast<f32_unary_op>(op), n, x.data, alpha, y.data);
  return info.Env().Undefined();
}

Napi::Value SumAxes(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const auto [outer, mid, inner] = ReducedAxes(args);
  Float32Values x = Float32Field(args, "x", outer * mid * inner);
  Float32Values y = Float32Field(args, "y", outer * inner);
  ExpectNoSharedMemory(info.Env(), "y", y, {{"x", x}});
  f32_sum_axes(outer, mid, inner, x.data, y.data);
  return info.Env().Undefined();
}

Napi::Value UnaryGrad(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const int64_t op = Integer(args, "op", F32_UNARY_GRAD_RELU, F32_UNARY_GRAD_SQUARE);
  const size_t n = Float32Length(args, "dy");
  Float32Values dy = Float32Field(args, "dy", n);
  Float32Values x = Float32Field(args, "x", n);
  Float32Values dx = Float32Field(args, "dx", n);
  ExpectNoSharedMemory(info.Env(), "dx", dx, {{"dy", dy}, {"x", x}});
  // With dbias: the values are rows of dbias.length channels, and dbias gets dx summed over the rows.
  Napi::Value dbias_value = args.Get("dbias");
  if (!dbias_value.IsUndefined() && !dbias_value.IsNull()) {
    const size_t channels = Float32Length(args, "dbias");
    if (channels == 0 || n % channels != 0)
      ThrowRange(info.Env(), "a Float32Array of a length dividing dy's " + std::to_string(n), "dbias",
                 std::to_string(channels) + " values");
    Float32Values dbias = Float32Field(args, "dbias", channels);
    ExpectNoSharedMemory(info.Env(), "dbias", dbias, {{"dy", dy}, {"x", x}, {"dx", dx}});
    f32_unary_grad_bias(static_cast<f32_unary_grad_op>(op), n / channels, channels, dy.data, x.data, dx.data,
                        dbias.data);
    return info.Env().Undefined();
  }
  f32_unary_grad(static_cast<f32_unary_grad_op>(op), n, dy.data, x.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value CompareMask(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  Napi::Env env = info.Env();
  const int64_t op = Integer(args, "op", F32_COMPARE_GREATER, F32_COMPARE_LESS_EQUAL);
  const BroadcastShape shape(args);
  const auto [n, a_len, a_div, b_len, b_div] = shape;
  Float32Values dy = Float32Field(args, "dy", n);
  Float32Values a = Float32Field(args, "a", a_len);
  Float32Values b = Float32Field(args, "b", b_len);
  Float32Values y = Float32Field(args, "y", n);
  // As in Binary: every index (i / div) % len is below len.
  ExpectNoSharedMemory(env, "y", y, {{"dy", dy}, {"a", a}, {"b", b}});
  f32_compare_mask(static_cast<f32_compare_op>(op), n, dy.data, a.data, a_div, a_len, b.data, b_div, b_len,
                   y.data);
  return env.Undefined();
}

Napi::Value MeanGrad(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  const auto [outer, mid, inner] = ReducedAxes(args);
  Float32Values dy = Float32Field(args, "dy", outer * inner);
  Float32Values dx = Float32Field(args, "dx", outer * mid * inner);
  ExpectNoSharedMemory(info.Env(), "dx", dx, {{"dy", dy}});
  f32_mean_grad(outer, mid, inner, dy.data, dx.data);
  return info.Env().Undefined();
}

Napi::Value Transpose(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
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
  Float32Values x = Float32Field(args, "x", size_t(count));
  Float32Values y = Float32Field(args, "y", size_t(count));
  ExpectNoSharedMemory(env, "y", y, {{"x", x}});
  f32_transpose(rank, shape, perm, x.data, y.data);
  return env.Undefined();
}

Napi::Value AdamUpdate(const Napi::CallbackInfo& info) {
  Napi::Object args = NamedArgs(info);
  Napi::Env env = info.Env();
  const size_t n = Float32Length(args, "param");
  Float32Values param = Float32Field(args, "param", n);
  Float32Values grad = Float32Field(args, "grad", n);
  Float32Values m = Float32Field(args, "m", n);
  Float32Values v = Float32Field(args, "v", n);
  const float lr = FiniteFloat(args, "learningRate"), beta1 = FiniteFloat(args, "beta1");
  const float beta2 = FiniteFloat(args, "beta2"), epsilon = FiniteFloat(args, "epsilon");
  const float bias1 = FiniteFloat(args, "bias1"), bias2 = FiniteFloat(args, "bias2");
  if (!(bias1 > 0.0f)) ThrowRange(env, "a number > 0", "bias1", std::to_string(bias1));
  if (!(bias2 > 0.0f)) ThrowRange(env, "a number > 0", "bias2", std::to_string(bias2));
  ExpectNoSharedMemory(env, "param", param, {{"grad", grad}, {"m", m}, {"v", v}});
  ExpectNoSharedMemory(env, "m", m, {{"grad", grad}, {"v", v}});
  ExpectNoSharedMemory(env, "v", v, {{"grad", grad}});
  f32_adam_update(n, param.data, grad.data, m.data, v.data, lr, beta1, beta2, epsilon, bias1, bias2);
  return env.Undefined();
}

// The SGEMM path in use and the one WHITTLE_ISA (or the CPU's best) selects, by the ISA of their kernels.
Napi::Value Isa(const Napi::CallbackInfo& info) {
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("current", whittle_isa_name(f32_ppmm_ukernel_select(GemmLevel())->isa));
  result.Set("best", whittle_isa_name(f32_ppmm_ukernel_select(whittle_isa_selected())->isa));
  return result;
}

// Forces the SGEMM path to a level at or below the selected one (the kernel is the first of the list that
// level allows, as for every family).
Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string levels =
      "a kernel path this CPU runs, up to " + std::string(whittle_isa_name(whittle_isa_selected()));
  if (info.Length() != 1 || !info[0].IsString()) {
    ThrowType(env, levels, "isa", info.Length() == 0 ? env.Undefined() : info[0]);
  }
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  whittle_isa isa;
  if (!whittle_isa_parse(name.c_str(), &isa) || !whittle_isa_allows(whittle_isa_selected(), isa)) {
    ThrowRange(env, levels, "isa", "\"" + name + "\"");
  }
  std::lock_guard<std::mutex> lock(train_mutex);
  forced_gemm_level.store(static_cast<int>(isa), std::memory_order_relaxed);
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

}  // namespace

void RegisterTrainKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("conv2dForward",
              Napi::Function::New(
                  env, [](const Napi::CallbackInfo& i) { return ConvForward(i, WindowKind::kConv); },
                  "conv2dForward"));
  exports.Set("conv2dBackpropInput",
              Napi::Function::New(
                  env, [](const Napi::CallbackInfo& i) { return ConvBackpropInput(i, WindowKind::kConv); },
                  "conv2dBackpropInput"));
  exports.Set("conv2dBackpropFilter",
              Napi::Function::New(
                  env, [](const Napi::CallbackInfo& i) { return ConvBackpropFilter(i, WindowKind::kConv); },
                  "conv2dBackpropFilter"));
  exports.Set("depthwiseConv2dForward",
              Napi::Function::New(
                  env, [](const Napi::CallbackInfo& i) { return ConvForward(i, WindowKind::kDepthwise); },
                  "depthwiseConv2dForward"));
  exports.Set(
      "depthwiseConv2dBackpropInput",
      Napi::Function::New(
          env, [](const Napi::CallbackInfo& i) { return ConvBackpropInput(i, WindowKind::kDepthwise); },
          "depthwiseConv2dBackpropInput"));
  exports.Set(
      "depthwiseConv2dBackpropFilter",
      Napi::Function::New(
          env, [](const Napi::CallbackInfo& i) { return ConvBackpropFilter(i, WindowKind::kDepthwise); },
          "depthwiseConv2dBackpropFilter"));
  exports.Set("maxPool",
              Napi::Function::New(
                  env, [](const Napi::CallbackInfo& i) { return PoolForward(i, true); }, "maxPool"));
  exports.Set("avgPool",
              Napi::Function::New(
                  env, [](const Napi::CallbackInfo& i) { return PoolForward(i, false); }, "avgPool"));
  const struct {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  } functions[] = {
      {"maxPoolBackward", MaxPoolBackward},
      {"avgPoolBackward", AvgPoolBackward},
      {"batchMatMul", BatchMatMul},
      {"batchNorm", BatchNorm},
      {"batchNormBackward", BatchNormBackward},
      {"batchNormMoments", BatchNormMoments},
      {"batchNormTrainBackward", BatchNormTrainBackward},
      {"binary", Binary},
      {"unary", Unary},
      {"sumAxes", SumAxes},
      {"unaryGrad", UnaryGrad},
      {"compareMask", CompareMask},
      {"meanGrad", MeanGrad},
      {"transpose", Transpose},
      {"adamUpdate", AdamUpdate},
      {"retainFreedMemory", RetainFreedMemory},
      {"isa", Isa},
      {"setIsa", SetIsa},
  };
  for (const auto& f : functions) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

}  // namespace whittle
