// The Node-API surface of the fp32 and int8 operators and of the library's infrastructure. Like
// binding.cc, it turns JavaScript arguments into checked plain values; every bad argument throws a
// TypeError (wrong type) or RangeError (wrong value, length, shape or aliasing) that names it, in one
// format:  Expected <what> for <name> but received <value>
// Shapes are checked (whittle_conv2d_shape_problem and friends bound every dimension and element count)
// before any length is computed, so no size arithmetic can overflow.
#include "binding_kernels.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "binding_args.h"
#include "binding_plan.h"

extern "C" {
#include "cpu/cpu-features.h"
#include "f32_ops.h"
#include "qs8_ops.h"
}

namespace whittle {
namespace {

// The pool the kernels run on, and the last multi-thread pool, kept while 1 thread is set so that switching
// back (a benchmark alternating 1 and 2 threads, a model that runs some layers single-threaded) finds its
// workers started and warm instead of creating threads on every switch. Parked workers sleep on the pool's
// condition variable; they cost a stack, not CPU time. Both guarded by pool_mutex.
std::shared_mutex pool_mutex;
whittle_threadpool* shared_pool = nullptr;  // the pool leases hand out; NULL = 1 thread
whittle_threadpool* kept_pool = nullptr;    // the last multi-thread pool (== shared_pool when active)
size_t pool_threads = 1;

// Argument decoding shared with the other bindings (binding_args.h).
using namespace whittle::args;  // NOLINT(build/namespaces)

// A finite number > 0.
float PositiveFloat(const Napi::Object& args, const char* name) {
  Napi::Value value = args.Get(name);
  if (!value.IsNumber()) ThrowType(args.Env(), "a positive number", name, value);
  const double number = value.As<Napi::Number>().DoubleValue();
  const float as_float = static_cast<float>(number);
  if (!(number > 0) || !std::isfinite(as_float) || as_float == 0.0f) {
    ThrowRange(args.Env(), "a finite number > 0", name, value.ToString().Utf8Value());
  }
  return as_float;
}

// An int8-family tensor: "int8" (Int8Array) or "uint8" (Uint8Array) activations.
bool IsUnsigned(const View& view) { return view.type == napi_uint8_array; }

whittle_isa ActiveIsa() { return whittle_isa_selected(); }

// ---------------------------------------------------------------------------------------------------------
// Infrastructure

Napi::Value CpuFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const whittle_cpu_features* f = whittle_cpu_detect();
  Napi::Object result = Napi::Object::New(env);
  Napi::Object flags = Napi::Object::New(env);
  flags.Set("avx2", f->avx2);
  flags.Set("avx512f", f->avx512f);
  flags.Set("avx512bw", f->avx512bw);
  flags.Set("avx512vl", f->avx512vl);
  flags.Set("avx512vnni", f->avx512vnni);
  flags.Set("avx512vpopcntdq", f->avx512vpopcntdq);
  flags.Set("avxvnni", f->avxvnni);
  flags.Set("neon", f->neon);
  flags.Set("neondot", f->neondot);
  result.Set("features", flags);
  Napi::Array supported = Napi::Array::New(env);
  uint32_t count = 0;
  for (int i = 0; i < WHITTLE_ISA_COUNT; i++) {
    if (whittle_isa_supported(static_cast<whittle_isa>(i)))
      supported.Set(count++, whittle_isa_name(static_cast<whittle_isa>(i)));
  }
  result.Set("supported", supported);
  result.Set("best", whittle_isa_name(whittle_isa_best()));
  result.Set("selected", whittle_isa_name(ActiveIsa()));
  return result;
}

Napi::Value ActiveIsaName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), whittle_isa_name(ActiveIsa()));
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value value = info.Length() > 0 ? info[0] : env.Undefined();
  if (!value.IsNumber()) ThrowType(env, "an integer", "threads", value);
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number) ThrowType(env, "an integer", "threads", value);
  if (number < 1 || number > WHITTLE_MAX_THREADS) {
    ThrowRange(env, "an integer in [1, " + std::to_string(WHITTLE_MAX_THREADS) + "]", "threads",
               value.ToString().Utf8Value());
  }
  const size_t threads = static_cast<size_t>(number);
  std::unique_lock<std::shared_mutex> lock(pool_mutex);
  if (threads > 1 && whittle_threadpool_threads(kept_pool) != threads) {
    whittle_threadpool* created = whittle_threadpool_create(threads);
    if (created == nullptr) {
      throw Napi::Error::New(env, "Cannot start " + std::to_string(threads) +
                                      " threads (the system refused to create a thread); try fewer");
    }
    whittle_threadpool_destroy(kept_pool);
    kept_pool = created;
  }
  shared_pool = threads > 1 ? kept_pool : nullptr;
  pool_threads = threads;
  return env.Undefined();
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  std::shared_lock<std::shared_mutex> lock(pool_mutex);
  return Napi::Number::New(info.Env(), static_cast<double>(pool_threads));
}

// The quantization of an int8/uint8 add (qs8_add_params) from the fields of add() (aZeroPoint, aMultiplier,
// ...), the clamp after the add read by the caller: the add operator's and a conv's residual add.
qs8_add_params ReadAddParams(const Napi::Object& args, bool u, int32_t output_min, int32_t output_max) {
  const int64_t lo = u ? 0 : INT8_MIN, hi = u ? UINT8_MAX : INT8_MAX;
  qs8_add_params p{};
  p.unsigned_activations = u;
  p.a_zero_point = static_cast<int32_t>(Integer(args, "aZeroPoint", lo, hi));
  p.a_multiplier = static_cast<int32_t>(Integer(args, "aMultiplier", 0, INT32_MAX));
  p.a_shift = static_cast<int32_t>(Integer(args, "aShift", QS8_REQUANT_MIN_SHIFT, 0));
  p.b_zero_point = static_cast<int32_t>(Integer(args, "bZeroPoint", lo, hi));
  p.b_multiplier = static_cast<int32_t>(Integer(args, "bMultiplier", 0, INT32_MAX));
  p.b_shift = static_cast<int32_t>(Integer(args, "bShift", QS8_REQUANT_MIN_SHIFT, 0));
  p.output_zero_point = static_cast<int32_t>(Integer(args, "outputZeroPoint", lo, hi));
  p.output_multiplier = static_cast<int32_t>(Integer(args, "outputMultiplier", 0, INT32_MAX));
  p.output_shift =
      static_cast<int32_t>(Integer(args, "outputShift", QS8_REQUANT_MIN_SHIFT, QS8_REQUANT_MAX_SHIFT));
  p.output_min = output_min;
  p.output_max = output_max;
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// conv2d and fully-connected: a class, because packing the weights is done once (at model load).
// With `residual` in its arguments, the layer adds a second input (the addend, the output's shape) in its
// output stage: run(input, output, addend), and as a plan step inputs [input, addend]. fp32:
// residual { outputMin?, outputMax? } is the clamp after the add (the layer's own outputMin / outputMax clamp
// the conv before it); int8: residual holds add()'s quantization fields, `a` being the conv's output (so
// aZeroPoint must be the layer's outputZeroPoint), and its outputMin / outputMax.

class Conv2d : public Napi::ObjectWrap<Conv2d>, public PlanStep {
 public:
  static Napi::Function Define(Napi::Env env) { return DefinePackedLayer<Conv2d>(env, "Conv2d"); }

  // new Conv2d(format: 'f32' | 'int8', layer: 'conv2d' | 'fullyConnected', args)
  explicit Conv2d(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Conv2d>(info) {
    Napi::Env env = info.Env();
    const std::string format =
        info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    const std::string layer =
        info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    if (format != "f32" && format != "int8")
      ThrowType(env, "'f32' or 'int8'", "format", info.Length() > 0 ? info[0] : env.Undefined());
    if (layer != "conv2d" && layer != "fullyConnected") {
      ThrowType(env, "'conv2d' or 'fullyConnected'", "layer", info.Length() > 1 ? info[1] : env.Undefined());
    }
    const Napi::Object args = ArgsObject(info, 2, "args");
    fully_connected_ = layer == "fullyConnected";
    int8_ = format == "int8";
    shape_ = ReadConvShape(args, fully_connected_);
    const whittle_conv2d_shape& s = shape_;
    const size_t oc = s.output_channels;
    const size_t weight_count = oc * s.kernel_height * s.kernel_width * (s.input_channels / s.groups);
    const std::string weight_shape =
        fully_connected_ ? "outChannels x inChannels"
                         : "outputChannels x kernelHeight x kernelWidth x inputChannels / groups";
    input_length_ = s.batch * s.input_height * s.input_width * s.input_channels;
    output_length_ = s.batch * whittle_conv2d_output_height(&s) * whittle_conv2d_output_width(&s) * oc;
    const whittle_isa isa = ActiveIsa();
    // Scalars first, arrays last, then one re-check: no JavaScript runs between it and the copies.
    if (!int8_) {
      min_ = Float(args, "outputMin", -INFINITY);
      max_ = Float(args, "outputMax", INFINITY);
      if (!(min_ <= max_)) {
        ThrowRange(env, "outputMax >= outputMin (" + std::to_string(min_) + ")", "outputMax",
                   std::to_string(max_));
      }
      Napi::Object residual;
      if (Residual(args, &residual)) {
        add_min_ = Float(residual, "outputMin", -INFINITY);
        add_max_ = Float(residual, "outputMax", INFINITY);
        if (!(add_min_ <= add_max_)) {
          ThrowRange(env, "residual.outputMax >= residual.outputMin (" + std::to_string(add_min_) + ")",
                     "residual.outputMax", std::to_string(add_max_));
        }
      }
      const View weights = Field(args, "weights", {napi_float32_array}, "a Float32Array");
      ExpectLength(env, weights, weight_count, weight_shape);
      bool has_bias = false;
      const View bias = OptionalField(args, "bias", napi_float32_array, &has_bias);
      if (has_bias) ExpectLength(env, bias, oc, "outputChannels");
      ExpectUnchanged(env, {&weights, &bias});
      try {
        weights_f32_.assign(static_cast<const float*>(weights.data),
                            static_cast<const float*>(weights.data) + weight_count);
        if (has_bias) {
          bias_f32_.assign(static_cast<const float*>(bias.data), static_cast<const float*>(bias.data) + oc);
        }
      } catch (const std::bad_alloc&) {
        throw Napi::Error::New(env, "Out of memory copying the convolution weights");
      }
      f32_ = f32_conv2d_create(&s, weights_f32_.data(), bias_f32_.empty() ? nullptr : bias_f32_.data(), min_,
                               max_, isa);
      if (f32_ == nullptr) throw Napi::Error::New(env, "Out of memory packing the convolution weights");
    } else {
      const Napi::Value activations = args.Get("activations");
      const std::string kind = activations.IsString() ? activations.As<Napi::String>().Utf8Value() : "";
      if (kind != "int8" && kind != "uint8") ThrowType(env, "'int8' or 'uint8'", "activations", activations);
      q_.unsigned_activations = kind == "uint8";
      const int64_t lo = q_.unsigned_activations ? 0 : INT8_MIN,
                    hi = q_.unsigned_activations ? UINT8_MAX : INT8_MAX;
      q_.input_zero_point = static_cast<int32_t>(Integer(args, "inputZeroPoint", lo, hi));
      q_.output_zero_point = static_cast<int32_t>(Integer(args, "outputZeroPoint", lo, hi));
      q_.output_min = static_cast<int32_t>(Integer(args, "outputMin", lo, hi, true, lo));
      q_.output_max = static_cast<int32_t>(Integer(args, "outputMax", lo, hi, true, hi));
      if (q_.output_min > q_.output_max) {
        ThrowRange(env, "outputMax >= outputMin (" + std::to_string(q_.output_min) + ")", "outputMax",
                   std::to_string(q_.output_max));
      }
      Napi::Object residual;
      if (Residual(args, &residual)) {
        const int32_t add_min = static_cast<int32_t>(Integer(residual, "outputMin", lo, hi, true, lo));
        const int32_t add_max = static_cast<int32_t>(Integer(residual, "outputMax", lo, hi, true, hi));
        if (add_min > add_max) {
          ThrowRange(env, "residual.outputMax >= residual.outputMin (" + std::to_string(add_min) + ")",
                     "residual.outputMax", std::to_string(add_max));
        }
        add_ = ReadAddParams(residual, q_.unsigned_activations, add_min, add_max);
        if (add_.a_zero_point != q_.output_zero_point) {
          ThrowRange(env, "the layer's outputZeroPoint (" + std::to_string(q_.output_zero_point) + ")",
                     "residual.aZeroPoint", std::to_string(add_.a_zero_point));
        }
      }
      const View weights = Field(args, "weights", {napi_int8_array}, "an Int8Array");
      ExpectLength(env, weights, weight_count, weight_shape);
      const View multipliers = Field(args, "multipliers", {napi_int32_array}, "an Int32Array");
      ExpectLength(env, multipliers, oc, "outputChannels");
      const View shifts = Field(args, "shifts", {napi_int32_array}, "an Int32Array");
      ExpectLength(env, shifts, oc, "outputChannels");
      bool has_bias = false;
      const View bias = OptionalField(args, "bias", napi_int32_array, &has_bias);
      if (has_bias) ExpectLength(env, bias, oc, "outputChannels");
      ExpectUnchanged(env, {&weights, &multipliers, &shifts, &bias});
      const int32_t* shift_values = static_cast<const int32_t*>(shifts.data);
      for (size_t o = 0; o < oc; o++) {
        if (shift_values[o] < QS8_REQUANT_MIN_SHIFT || shift_values[o] > QS8_REQUANT_MAX_SHIFT) {
          ThrowRange(env,
                     "an integer in [" + std::to_string(QS8_REQUANT_MIN_SHIFT) + ", " +
                         std::to_string(QS8_REQUANT_MAX_SHIFT) + "]",
                     "shifts[" + std::to_string(o) + "]", std::to_string(shift_values[o]));
        }
      }
      try {
        weights_i8_.assign(static_cast<const int8_t*>(weights.data),
                           static_cast<const int8_t*>(weights.data) + weight_count);
        multipliers_.assign(static_cast<const int32_t*>(multipliers.data),
                            static_cast<const int32_t*>(multipliers.data) + oc);
        shifts_.assign(shift_values, shift_values + oc);
        if (has_bias) {
          bias_i32_.assign(static_cast<const int32_t*>(bias.data),
                           static_cast<const int32_t*>(bias.data) + oc);
        }
      } catch (const std::bad_alloc&) {
        throw Napi::Error::New(env, "Out of memory copying the convolution weights");
      }
      qs8_ = qs8_conv2d_create(&s, weights_i8_.data(), bias_i32_.empty() ? nullptr : bias_i32_.data(),
                               multipliers_.data(), shifts_.data(), &q_, isa);
      if (qs8_ == nullptr) throw Napi::Error::New(env, "Out of memory packing the convolution weights");
    }
    TagPlanStep<Conv2d>(env, info.This().As<Napi::Object>());
  }

  ~Conv2d() override { Release(); }

  // The plan step (binding_plan.h): one input and one output of the layer's element type.
  size_t ElementBytes() const { return int8_ ? 1 : sizeof(float); }
  std::vector<StepOperand> StepInputs() const override {
    if (residual_)
      return {{input_length_ * ElementBytes(), ElementBytes()},
              {output_length_ * ElementBytes(), ElementBytes()}};
    return {{input_length_ * ElementBytes(), ElementBytes()}};
  }
  std::vector<StepOperand> StepOutputs() const override {
    return {{output_length_ * ElementBytes(), ElementBytes()}};
  }
  const char* RunStep(const void* const* inputs, void* const* outputs, whittle_threadpool* pool) override {
    if (f32_ == nullptr && qs8_ == nullptr) return "this Conv2d was disposed";
    const void* addend = residual_ ? inputs[1] : nullptr;
    const bool ok = int8_ ? qs8_conv2d_run_add(qs8_, inputs[0], addend, &add_, outputs[0], pool)
                          : f32_conv2d_run_add(f32_, static_cast<const float*>(inputs[0]),
                                               static_cast<const float*>(addend), add_min_, add_max_,
                                               static_cast<float*>(outputs[0]), pool);
    return ok ? nullptr : "out of memory allocating the convolution's per-thread scratch";
  }
  StepCall Call() override { return {&RunCall, this}; }

 private:
  friend Napi::Function DefinePackedLayer<Conv2d>(Napi::Env env, const char* name,
                                                  std::initializer_list<PropertyDescriptor> extra);

  // RunStep as a plan's plain call: the plan loop calls it directly.
  WHITTLE_HOT static const char* RunCall(void* self, const void* const* inputs, void* const* outputs,
                                         whittle_threadpool* pool) {
    return static_cast<Conv2d*>(self)->Conv2d::RunStep(inputs, outputs, pool);
  }

  void Release() {
    f32_conv2d_destroy(f32_);
    qs8_conv2d_destroy(qs8_);
    f32_ = nullptr;
    qs8_ = nullptr;
  }

  napi_typedarray_type TensorType() const {
    return !int8_ ? napi_float32_array : (q_.unsigned_activations ? napi_uint8_array : napi_int8_array);
  }

  // `residual` of the layer's arguments, when present (an object): the layer takes an addend.
  bool Residual(const Napi::Object& args, Napi::Object* residual) {
    const Napi::Value value = args.Get("residual");
    if (value.IsUndefined()) return false;
    if (!value.IsObject()) ThrowType(args.Env(), "an object", "residual", value);
    if (fully_connected_) ThrowType(args.Env(), "no residual (a conv2d layer takes one)", "residual", value);
    *residual = value.As<Napi::Object>();
    residual_ = true;
    return true;
  }

  // The addend of run(input, output, addend): required by a residual layer, refused by any other.
  View Addend(const Napi::CallbackInfo& info, const View& output) {
    Napi::Env env = info.Env();
    const Napi::Value value = info.Length() > 2 ? info[2] : env.Undefined();
    if (!residual_) {
      if (!value.IsUndefined()) ThrowType(env, "no addend (the layer has no residual add)", "addend", value);
      return View{};
    }
    const napi_typedarray_type type = TensorType();
    const View addend = Array(env, value, "addend", {type}, Article(type));
    ExpectLength(env, addend, output_length_, "batch x outputHeight x outputWidth x outputChannels");
    ExpectNoOverlap(env, output, {&addend});
    return addend;
  }

  // Checks run(input, output) and returns the two views.
  std::pair<View, View> Operands(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (f32_ == nullptr && qs8_ == nullptr) throw Napi::Error::New(env, "This Conv2d was disposed");
    const napi_typedarray_type type = TensorType();
    const std::string what = Article(type);
    const View input = Array(env, info.Length() > 0 ? info[0] : env.Undefined(), "input", {type}, what);
    const View output = Array(env, info.Length() > 1 ? info[1] : env.Undefined(), "output", {type}, what);
    ExpectLength(env, input, input_length_, "batch x inputHeight x inputWidth x inputChannels");
    ExpectLength(env, output, output_length_, "batch x outputHeight x outputWidth x outputChannels");
    ExpectNoOverlap(env, output, {&input});
    return {input, output};
  }

  Napi::Value Run(const Napi::CallbackInfo& info) {
    const void* in[2] = {nullptr, nullptr};
    void* out = nullptr;
    if (residual_ || info.Length() > 2 ||
        !QuickRunOperands(info, TensorType(), input_length_, output_length_, &in[0], &out)) {
      const auto [input, output] = Operands(info);
      const View addend = Addend(info, output);
      in[0] = input.data;
      in[1] = addend.data;
      out = output.data;
    }
    ThreadPoolLease lease;
    if (RunStep(in, &out, lease.pool()) != nullptr)
      throw Napi::Error::New(info.Env(), "Out of memory allocating the convolution's per-thread scratch");
    return info.Env().Undefined();
  }

  // The plain C reference on the same arguments: for tests that compare the JS-visible results.
  Napi::Value RunReference(const Napi::CallbackInfo& info) {
    const auto [input, output] = Operands(info);
    const View addend = Addend(info, output);
    const whittle_conv2d_shape& s = shape_;
    if (int8_) {
      const int32_t* bias = bias_i32_.empty() ? nullptr : bias_i32_.data();
      if (fully_connected_) {
        qs8_fully_connected__reference(s.batch, s.input_channels, s.output_channels, input.data,
                                       weights_i8_.data(), bias, multipliers_.data(), shifts_.data(), &q_,
                                       output.data);
      } else {
        qs8_conv2d__reference(&s, input.data, weights_i8_.data(), bias, multipliers_.data(), shifts_.data(),
                              &q_, output.data);
      }
    } else {
      const float* bias = bias_f32_.empty() ? nullptr : bias_f32_.data();
      if (fully_connected_) {
        f32_fully_connected__reference(s.batch, s.input_channels, s.output_channels,
                                       static_cast<const float*>(input.data), weights_f32_.data(), bias, min_,
                                       max_, static_cast<float*>(output.data));
      } else {
        f32_conv2d__reference(&s, static_cast<const float*>(input.data), weights_f32_.data(), bias, min_,
                              max_, static_cast<float*>(output.data));
      }
    }
    if (residual_ && int8_) {
      qs8_add__reference(output_length_, output.data, addend.data, output.data, &add_);
    } else if (residual_) {
      float* out = static_cast<float*>(output.data);
      f32_add__reference(output_length_, out, static_cast<const float*>(addend.data), out, add_min_,
                         add_max_);
    }
    return info.Env().Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  Napi::Value Kernel(const Napi::CallbackInfo& info) {
    if (f32_ == nullptr && qs8_ == nullptr) return info.Env().Null();
    return Napi::String::New(info.Env(), int8_ ? qs8_conv2d_kernel_name(qs8_) : f32_conv2d_kernel_name(f32_));
  }
  Napi::Value InputLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(input_length_));
  }
  Napi::Value OutputLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(output_length_));
  }
  Napi::Value OutputHeight(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(whittle_conv2d_output_height(&shape_)));
  }
  Napi::Value OutputWidth(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(whittle_conv2d_output_width(&shape_)));
  }

  bool fully_connected_ = false;
  bool int8_ = false;
  whittle_conv2d_shape shape_{};
  size_t input_length_ = 0, output_length_ = 0;
  // Copies of the arguments, kept for runReference.
  std::vector<float> weights_f32_, bias_f32_;
  std::vector<int8_t> weights_i8_;
  std::vector<int32_t> bias_i32_, multipliers_, shifts_;
  float min_ = -INFINITY, max_ = INFINITY;
  qs8_activation_quantization q_{};
  // The residual add (a second input): fp32's clamp after it, int8's quantized add.
  bool residual_ = false;
  float add_min_ = -INFINITY, add_max_ = INFINITY;
  qs8_add_params add_{};
  f32_conv2d_op* f32_ = nullptr;
  qs8_conv2d_op* qs8_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------
// Stateless operators. The tensor type chooses the format: Float32Array = fp32, Int8Array = int8,
// Uint8Array = uint8. `reference: true` runs the plain C reference instead (for tests).

const std::initializer_list<napi_typedarray_type> kTensorTypes = {napi_float32_array, napi_int8_array,
                                                                  napi_uint8_array};
const char* kTensorWhat = "a Float32Array, Int8Array or Uint8Array";

// The operands of the one-input operators: an input and an output tensor of the same element type.
struct InputOutput {
  View input, output;
};
InputOutput ReadInputOutput(const Napi::Object& args) {
  // Braced initialisation reads the fields in order: input first.
  InputOutput views{Field(args, "input", kTensorTypes, kTensorWhat),
                    Field(args, "output", kTensorTypes, kTensorWhat)};
  ExpectSameType(args.Env(), views.output, views.input);
  return views;
}

// A tensor of `elements` values (a product of dimensions computed in double, so that it cannot wrap) must
// fit WHITTLE_MAX_ELEMENTS; `product` spells that product in the message, `name` is the argument blamed.
void ExpectElementsFit(Napi::Env env, double elements, const std::string& product, const std::string& name,
                       const std::string& received) {
  if (elements > static_cast<double>(WHITTLE_MAX_ELEMENTS))
    ThrowRange(env, product + " <= " + std::to_string(WHITTLE_MAX_ELEMENTS), name, received);
}

// The dimensions `names` (at least one) of an operator, whose product must fit WHITTLE_MAX_ELEMENTS (the
// message spells the product, "rows x pixels x channels", and blames the first).
template <size_t N>
std::array<size_t, N> TensorDimensions(const Napi::Object& args, const std::array<const char*, N>& names) {
  std::array<size_t, N> dims{};
  double elements = 1;
  std::string product;
  for (size_t i = 0; i < N; i++) {
    dims[i] = Dimension(args, names[i]);
    elements *= static_cast<double>(dims[i]);
    product += (i == 0 ? "" : " x ") + std::string(names[i]);
  }
  ExpectElementsFit(args.Env(), elements, product, names[0], "a larger tensor");
  return dims;
}

// Clamp bounds: numbers for fp32 (default +-infinity), integers in the dtype's range for int8/uint8.
struct Bounds {
  float min_f, max_f;
  int32_t min_q, max_q;
};

Bounds ReadBounds(const Napi::Object& args, const View& like, const char* min_name, const char* max_name) {
  Napi::Env env = args.Env();
  Bounds b{-INFINITY, INFINITY, 0, 0};
  if (like.type == napi_float32_array) {
    b.min_f = Float(args, min_name, -INFINITY);
    b.max_f = Float(args, max_name, INFINITY);
    if (!(b.min_f <= b.max_f))
      ThrowRange(env, std::string(max_name) + " >= " + min_name, max_name, std::to_string(b.max_f));
  } else {
    const int64_t lo = IsUnsigned(like) ? 0 : INT8_MIN, hi = IsUnsigned(like) ? UINT8_MAX : INT8_MAX;
    b.min_q = static_cast<int32_t>(Integer(args, min_name, lo, hi, true, lo));
    b.max_q = static_cast<int32_t>(Integer(args, max_name, lo, hi, true, hi));
    if (b.min_q > b.max_q)
      ThrowRange(env, std::string(max_name) + " >= " + min_name, max_name, std::to_string(b.max_q));
  }
  return b;
}

// The rest of a clamped one-input operator's arguments (pooling, global average pooling, clamp), read after
// its lengths: the output must not alias the input, then the output bounds and the reference flag. Last, the
// two arrays are re-read (reading those fields may run getters that detach them).
struct ClampedCall {
  Bounds bounds;
  bool reference;
};
ClampedCall ReadClampedCall(const Napi::Object& args, const View& input, const View& output,
                            const char* min_name, const char* max_name) {
  Napi::Env env = args.Env();
  ExpectNoOverlap(env, output, {&input});
  // Braced initialisation reads the fields in order: the bounds first.
  const ClampedCall call{ReadBounds(args, input, min_name, max_name), Boolean(args, "reference")};
  ExpectUnchanged(env, {&input, &output});
  return call;
}

whittle_pool2d_shape ReadPoolShape(const Napi::Object& args) {
  whittle_pool2d_shape s{};
  ReadInputImage(args, &s);
  s.channels = Dimension(args, "channels");
  s.window_height = Dimension(args, "windowHeight");
  s.window_width = Dimension(args, "windowWidth");
  s.stride_height = Dimension(args, "strideHeight", true, static_cast<int64_t>(s.window_height));
  s.stride_width = Dimension(args, "strideWidth", true, static_cast<int64_t>(s.window_width));
  ReadPadding(args, &s);
  s.count_padding = Boolean(args, "countIncludePad");
  const char* problem = whittle_pool2d_shape_problem(&s);
  if (problem != nullptr) ThrowShapeProblem(args.Env(), "pooling", problem, false);
  return s;
}

// Each stateless operator is one OperatorReader (binding_plan.h): it checks the call's arguments and binds
// the computation to them (a lambda, run by BoundOperator's plain call), its kernel list chosen once here.
// RegisterKernels makes from each both its JS function and its plan Operator.

BoundOperator Pool(const Napi::Object& args, bool average) {
  Napi::Env env = args.Env();
  whittle_pool2d_shape s = ReadPoolShape(args);
  const InputOutput views = ReadInputOutput(args);
  if (views.input.type != napi_float32_array) {
    // The raw value padded positions count as (count_padding): the input's zero point, in the type's range.
    const int64_t lo = IsUnsigned(views.input) ? 0 : INT8_MIN,
                  hi = IsUnsigned(views.input) ? UINT8_MAX : INT8_MAX;
    s.padding_value = static_cast<int32_t>(Integer(args, "paddingValue", lo, hi, true, 0));
  }
  ExpectLength(env, views.input, s.batch * s.input_height * s.input_width * s.channels,
               "batch x inputHeight x inputWidth x channels");
  ExpectLength(env, views.output,
               s.batch * whittle_pool2d_output_height(&s) * whittle_pool2d_output_width(&s) * s.channels,
               "batch x outputHeight x outputWidth x channels");
  const ClampedCall call = ReadClampedCall(args, views.input, views.output, "outputMin", "outputMax");
  const Bounds b = call.bounds;
  const bool reference = call.reference, f32 = views.input.type == napi_float32_array,
             u = IsUnsigned(views.input);
  const f32_simple_ukernels* f = f32_simple_ukernels_select(ActiveIsa());
  const qs8_simple_ukernels* q = qs8_simple_ukernels_select(ActiveIsa());
  const auto run = [s, b, reference, f32, u, f, q, average](const void* const* inputs, void* const* outputs,
                                                            whittle_threadpool*) {
    if (f32) {
      const float* in = static_cast<const float*>(inputs[0]);
      float* out = static_cast<float*>(outputs[0]);
      if (reference) {
        average ? f32_avgpool__reference(&s, in, out, b.min_f, b.max_f)
                : f32_maxpool__reference(&s, in, out, b.min_f, b.max_f);
      } else {
        (average ? f->avgpool : f->maxpool)(&s, in, out, b.min_f, b.max_f);
      }
    } else if (reference) {
      average ? qs8_avgpool__reference(&s, inputs[0], outputs[0], u, b.min_q, b.max_q)
              : qs8_maxpool__reference(&s, inputs[0], outputs[0], u, b.min_q, b.max_q);
    } else {
      (average ? q->avgpool : q->maxpool)(&s, inputs[0], outputs[0], u, b.min_q, b.max_q);
    }
  };
  return {{views.input}, {views.output}, run};
}

BoundOperator MaxPool2d(const Napi::Object& args) { return Pool(args, false); }
BoundOperator AvgPool2d(const Napi::Object& args) { return Pool(args, true); }

size_t ElementCount(Napi::Env env, const View& view) {
  if (view.length < 1 || view.length > WHITTLE_MAX_ELEMENTS) {
    ThrowRange(env, "a length in [1, " + std::to_string(WHITTLE_MAX_ELEMENTS) + "]", view.name,
               "length " + std::to_string(view.length));
  }
  if (view.data == nullptr)
    ThrowRange(env, "an array with an attached buffer", view.name, "a detached buffer");
  return view.length;
}

BoundOperator GlobalAvgPool(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const auto [batch, pixels, channels] = TensorDimensions<3>(args, {"batch", "pixels", "channels"});
  if (pixels > 65536) ThrowRange(env, "an integer in [1, 65536]", "pixels", std::to_string(pixels));
  const InputOutput views = ReadInputOutput(args);
  ExpectLength(env, views.input, batch * pixels * channels, "batch x pixels x channels");
  ExpectLength(env, views.output, batch * channels, "batch x channels");
  const ClampedCall call = ReadClampedCall(args, views.input, views.output, "outputMin", "outputMax");
  const Bounds b = call.bounds;
  const bool reference = call.reference, f32 = views.input.type == napi_float32_array,
             u = IsUnsigned(views.input);
  const whittle_isa isa = ActiveIsa();
  // int8 with `multiplier`: from the input's quantization to the output's, requantized in the kernel.
  const bool requant = !f32 && !args.Get("multiplier").IsUndefined();
  qs8_global_avgpool_params p{};
  if (requant) {
    const int64_t lo = u ? 0 : INT8_MIN, hi = u ? UINT8_MAX : INT8_MAX;
    p.unsigned_activations = u;
    p.input_zero_point = static_cast<int32_t>(Integer(args, "inputZeroPoint", lo, hi));
    p.output_zero_point = static_cast<int32_t>(Integer(args, "outputZeroPoint", lo, hi));
    p.multiplier = static_cast<int32_t>(Integer(args, "multiplier", 0, INT32_MAX));
    p.shift = static_cast<int32_t>(Integer(args, "shift", QS8_REQUANT_MIN_SHIFT, QS8_REQUANT_MAX_SHIFT));
    p.output_min = b.min_q;
    p.output_max = b.max_q;
    ExpectUnchanged(env, {&views.input, &views.output});
  }
  const auto run = [batch, pixels, channels, b, reference, f32, u, isa, requant, p](
                       const void* const* inputs, void* const* outputs, whittle_threadpool*) {
    if (f32) {
      const float* in = static_cast<const float*>(inputs[0]);
      float* out = static_cast<float*>(outputs[0]);
      reference ? f32_global_avgpool__reference(batch, pixels, channels, in, out, b.min_f, b.max_f)
                : f32_global_avgpool(batch, pixels, channels, in, out, b.min_f, b.max_f, isa);
    } else if (requant) {
      reference ? qs8_global_avgpool_requant__reference(batch, pixels, channels, inputs[0], outputs[0], &p)
                : qs8_global_avgpool_requant(batch, pixels, channels, inputs[0], outputs[0], &p, isa);
    } else {
      reference
          ? qs8_global_avgpool__reference(batch, pixels, channels, inputs[0], outputs[0], u, b.min_q, b.max_q)
          : qs8_global_avgpool(batch, pixels, channels, inputs[0], outputs[0], u, b.min_q, b.max_q, isa);
    }
  };
  return {{views.input}, {views.output}, run};
}

// The quantization of quantizeLinear / dequantizeLinear: `scales` (Float64Array) and `zeroPoints`
// (Int32Array) of one length, the channel count (1 = per tensor); `inner`, the elements per channel run
// (default 1: channels last), must divide the element count `n` with the channels.
qs8_quantization_layout ReadQuantizationLayout(const Napi::Object& args, const View& values, size_t n,
                                               const View& scales, const View& zero_points) {
  Napi::Env env = args.Env();
  const size_t channels = scales.length;
  if (channels < 1) ThrowRange(env, "at least one scale", "scales", "length 0");
  ExpectLength(env, zero_points, channels, "scales.length");
  const size_t inner = channels == 1 ? n : Dimension(args, "inner", true, 1);
  if (n % (channels * inner) != 0) {
    ThrowRange(env, "a divisor of " + std::to_string(n) + " / " + std::to_string(channels) + " channels",
               "inner", std::to_string(inner));
  }
  const bool u = IsUnsigned(values);
  const int32_t* zp = static_cast<const int32_t*>(zero_points.data);
  const int32_t lo = u ? 0 : INT8_MIN, hi = u ? UINT8_MAX : INT8_MAX;
  for (size_t c = 0; c < channels; c++) {
    if (zp[c] < lo || zp[c] > hi) {
      ThrowRange(env, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
                 "zeroPoints[" + std::to_string(c) + "]", std::to_string(zp[c]));
    }
  }
  return qs8_quantization_layout{
      n / (channels * inner), channels, inner, static_cast<const double*>(scales.data), zp, u};
}

// quantizeLinear({ input: Float32Array, output: Int8Array | Uint8Array, scales, zeroPoints, inner? }) and
// dequantizeLinear({ input: Int8Array | Uint8Array, output: Float32Array, ... }): ONNX QuantizeLinear and
// DequantizeLinear in double precision, as the runtime's reference ops.
BoundOperator QuantizeOrDequantize(const Napi::Object& args, bool quantize) {
  Napi::Env env = args.Env();
  const std::initializer_list<napi_typedarray_type> bytes = {napi_int8_array, napi_uint8_array};
  const View input = quantize ? Field(args, "input", napi_float32_array)
                              : Field(args, "input", bytes, "an Int8Array or Uint8Array");
  const View output = quantize ? Field(args, "output", bytes, "an Int8Array or Uint8Array")
                               : Field(args, "output", napi_float32_array);
  const View scales = Field(args, "scales", napi_float64_array);
  const View zero_points = Field(args, "zeroPoints", napi_int32_array);
  const size_t n = ElementCount(env, input);
  ExpectLength(env, output, n, "input.length");
  ExpectNoOverlap(env, output, {&input, &scales, &zero_points});
  const qs8_quantization_layout layout =
      ReadQuantizationLayout(args, quantize ? output : input, n, scales, zero_points);
  const bool reference = Boolean(args, "reference");
  ExpectUnchanged(env, {&input, &output, &scales, &zero_points});
  // The run may come later (a plan): it keeps its own copies of the scales and zero points.
  const std::vector<double> scale_values(layout.scales, layout.scales + layout.channels);
  const std::vector<int32_t> zero_values(layout.zero_points, layout.zero_points + layout.channels);
  const qs8_simple_ukernels* q = qs8_simple_ukernels_select(ActiveIsa());
  const auto run = [layout, scale_values, zero_values, quantize, reference, q](
                       const void* const* inputs, void* const* outputs, whittle_threadpool*) {
    qs8_quantization_layout l = layout;
    l.scales = scale_values.data();
    l.zero_points = zero_values.data();
    if (quantize) {
      const float* in = static_cast<const float*>(inputs[0]);
      reference ? qs8_quantize__reference(&l, in, outputs[0]) : q->quantize(&l, in, outputs[0]);
    } else {
      float* out = static_cast<float*>(outputs[0]);
      reference ? qs8_dequantize__reference(&l, inputs[0], out) : q->dequantize(&l, inputs[0], out);
    }
  };
  return {{input}, {output}, run};
}

BoundOperator QuantizeLinear(const Napi::Object& args) { return QuantizeOrDequantize(args, true); }
BoundOperator DequantizeLinear(const Napi::Object& args) { return QuantizeOrDequantize(args, false); }

// add({ a, b, output, outputMin?, outputMax? }) for fp32; int8/uint8 also need every input's quantization.
BoundOperator Add(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const View a = Field(args, "a", kTensorTypes, kTensorWhat);
  const View b = Field(args, "b", kTensorTypes, kTensorWhat);
  const View output = Field(args, "output", kTensorTypes, kTensorWhat);
  ExpectSameType(env, b, a);
  ExpectSameType(env, output, a);
  const size_t n = ElementCount(env, a);
  ExpectLength(env, b, n, "a.length");
  ExpectLength(env, output, n, "a.length");
  ExpectNoOverlap(env, output, {&a, &b});
  const Bounds bounds = ReadBounds(args, a, "outputMin", "outputMax");
  const bool reference = Boolean(args, "reference");
  const whittle_isa isa = ActiveIsa();
  if (a.type == napi_float32_array) {
    ExpectUnchanged(env, {&a, &b, &output});
    const auto run = [n, bounds, reference, isa](const void* const* inputs, void* const* outputs,
                                                 whittle_threadpool*) {
      const float* pa = static_cast<const float*>(inputs[0]);
      const float* pb = static_cast<const float*>(inputs[1]);
      float* out = static_cast<float*>(outputs[0]);
      reference ? f32_add__reference(n, pa, pb, out, bounds.min_f, bounds.max_f)
                : f32_add(n, pa, pb, out, bounds.min_f, bounds.max_f, isa);
    };
    return {{a, b}, {output}, run};
  }
  const qs8_add_params p = ReadAddParams(args, IsUnsigned(a), bounds.min_q, bounds.max_q);
  ExpectUnchanged(env, {&a, &b, &output});
  const auto run = [n, p, reference, isa](const void* const* inputs, void* const* outputs,
                                          whittle_threadpool*) {
    reference ? qs8_add__reference(n, inputs[0], inputs[1], outputs[0], &p)
              : qs8_add(n, inputs[0], inputs[1], outputs[0], &p, isa);
  };
  return {{a, b}, {output}, run};
}

// clamp({ input, output, min?, max? }): ReLU is min 0 (fp32) or the zero point (int8); ReLU6 adds max.
BoundOperator Clamp(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const InputOutput views = ReadInputOutput(args);
  const size_t n = ElementCount(env, views.input);
  ExpectLength(env, views.output, n, "input.length");
  const ClampedCall call = ReadClampedCall(args, views.input, views.output, "min", "max");
  const Bounds b = call.bounds;
  const bool reference = call.reference, f32 = views.input.type == napi_float32_array,
             u = IsUnsigned(views.input);
  const f32_simple_ukernels* f = f32_simple_ukernels_select(ActiveIsa());
  const qs8_simple_ukernels* q = qs8_simple_ukernels_select(ActiveIsa());
  const auto run = [n, b, reference, f32, u, f, q](const void* const* inputs, void* const* outputs,
                                                   whittle_threadpool*) {
    if (f32) {
      const float* in = static_cast<const float*>(inputs[0]);
      float* out = static_cast<float*>(outputs[0]);
      reference ? f32_clamp__reference(n, in, out, b.min_f, b.max_f)
                : f->vclamp(n, in, out, b.min_f, b.max_f);
    } else {
      reference ? qs8_clamp__reference(n, inputs[0], outputs[0], u, b.min_q, b.max_q)
                : q->vclamp(n, inputs[0], outputs[0], u, b.min_q, b.max_q);
    }
  };
  return {{views.input}, {views.output}, run};
}

// softmax({ rows, channels, input, output }) over the last axis; int8/uint8 also need inputScale,
// inputZeroPoint, outputScale and outputZeroPoint.
BoundOperator Softmax(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const size_t rows = Dimension(args, "rows"), channels = Dimension(args, "channels");
  ExpectElementsFit(env, static_cast<double>(rows) * static_cast<double>(channels), "rows x channels", "rows",
                    std::to_string(rows));
  const InputOutput views = ReadInputOutput(args);
  ExpectLength(env, views.input, rows * channels, "rows x channels");
  ExpectLength(env, views.output, rows * channels, "rows x channels");
  ExpectNoOverlap(env, views.output, {&views.input});
  const bool reference = Boolean(args, "reference");
  if (views.input.type == napi_float32_array) {
    ExpectUnchanged(env, {&views.input, &views.output});
    const f32_simple_ukernels* f = f32_simple_ukernels_select(ActiveIsa());
    const auto run = [rows, channels, reference, f](const void* const* inputs, void* const* outputs,
                                                    whittle_threadpool*) {
      const float* in = static_cast<const float*>(inputs[0]);
      float* out = static_cast<float*>(outputs[0]);
      reference ? f32_softmax__reference(rows, channels, in, out) : f->softmax(rows, channels, in, out);
    };
    return {{views.input}, {views.output}, run};
  }
  const bool u = IsUnsigned(views.input);
  const int64_t lo = u ? 0 : INT8_MIN, hi = u ? UINT8_MAX : INT8_MAX;
  const float input_scale = PositiveFloat(args, "inputScale");
  const int32_t input_zero_point = static_cast<int32_t>(Integer(args, "inputZeroPoint", lo, hi));
  const float output_scale = PositiveFloat(args, "outputScale");
  const int32_t output_zero_point = static_cast<int32_t>(Integer(args, "outputZeroPoint", lo, hi));
  ExpectUnchanged(env, {&views.input, &views.output});
  const auto run = [=](const void* const* inputs, void* const* outputs, whittle_threadpool*) {
    (reference ? qs8_softmax__reference : qs8_softmax)(rows, channels, inputs[0], input_scale,
                                                       input_zero_point, output_scale, output_zero_point, u,
                                                       outputs[0]);
  };
  return {{views.input}, {views.output}, run};
}

// The fp32 element-wise activations: sigmoid({ input, output }); hardSigmoid and hardSwish({ input, output,
// alpha, beta }): clamp(alpha * x + beta, 0, 1), times x for hardSwish; gelu({ input, output, tanh }):
// x * Phi(x), Phi the normal CDF (tanh: its tanh approximation).
enum class Activation { kSigmoid, kHardSigmoid, kHardSwish, kGelu };

BoundOperator ActivationF32(const Napi::Object& args, Activation kind) {
  Napi::Env env = args.Env();
  const View input = Field(args, "input", napi_float32_array);
  const View output = Field(args, "output", napi_float32_array);
  const size_t n = ElementCount(env, input);
  ExpectLength(env, output, n, "input.length");
  ExpectNoOverlap(env, output, {&input});
  const bool hard = kind == Activation::kHardSigmoid || kind == Activation::kHardSwish;
  const float alpha = hard ? FiniteFloat(args, "alpha") : 0.0f;
  const float beta = hard ? FiniteFloat(args, "beta") : 0.0f;
  const bool tanh_form = kind == Activation::kGelu && Boolean(args, "tanh");
  const bool reference = Boolean(args, "reference");
  ExpectUnchanged(env, {&input, &output});
  const whittle_isa isa = ActiveIsa();
  const auto run = [n, kind, alpha, beta, tanh_form, reference, isa](
                       const void* const* inputs, void* const* outputs, whittle_threadpool*) {
    const float* in = static_cast<const float*>(inputs[0]);
    float* out = static_cast<float*>(outputs[0]);
    if (kind == Activation::kSigmoid) {
      reference ? f32_sigmoid__reference(n, in, out) : f32_sigmoid(n, in, out, isa);
    } else if (kind == Activation::kGelu) {
      reference ? f32_gelu__reference(n, in, out, tanh_form) : f32_gelu(n, in, out, tanh_form, isa);
    } else {
      const bool swish = kind == Activation::kHardSwish;
      reference ? f32_hard_sigmoid__reference(n, in, out, alpha, beta, swish)
                : f32_hard_sigmoid(n, in, out, alpha, beta, swish, isa);
    }
  };
  return {{input}, {output}, run};
}

BoundOperator Sigmoid(const Napi::Object& args) { return ActivationF32(args, Activation::kSigmoid); }
BoundOperator HardSigmoid(const Napi::Object& args) { return ActivationF32(args, Activation::kHardSigmoid); }
BoundOperator HardSwish(const Napi::Object& args) { return ActivationF32(args, Activation::kHardSwish); }
BoundOperator Gelu(const Napi::Object& args) { return ActivationF32(args, Activation::kGelu); }

// layerNorm({ rows, channels, input, scale, bias?, epsilon, output }): each row of [rows][channels]
// normalized over its channels, times scale plus bias (both `channels` long; copied here, they are weights).
BoundOperator LayerNorm(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const size_t rows = Dimension(args, "rows"), channels = Dimension(args, "channels");
  ExpectElementsFit(env, static_cast<double>(rows) * static_cast<double>(channels), "rows x channels", "rows",
                    std::to_string(rows));
  const View input = Field(args, "input", napi_float32_array);
  const View output = Field(args, "output", napi_float32_array);
  ExpectLength(env, input, rows * channels, "rows x channels");
  ExpectLength(env, output, rows * channels, "rows x channels");
  ExpectNoOverlap(env, output, {&input});
  const Float32Values scale_values = Float32Field(args, "scale", channels);
  const Float32Values bias_values = Float32Field(args, "bias", channels, true);
  std::vector<float> scale(scale_values.data, scale_values.data + channels);
  std::vector<float> bias;
  if (bias_values.data != nullptr) bias.assign(bias_values.data, bias_values.data + channels);
  // In double: the reference adds the attribute's own double value.
  const Napi::Value epsilon_value = args.Get("epsilon");
  if (!epsilon_value.IsNumber() || !(epsilon_value.As<Napi::Number>().DoubleValue() >= 0.0) ||
      !std::isfinite(epsilon_value.As<Napi::Number>().DoubleValue()))
    ThrowType(env, "a finite number >= 0", "epsilon", epsilon_value);
  const double epsilon = epsilon_value.As<Napi::Number>().DoubleValue();
  const bool reference = Boolean(args, "reference");
  ExpectUnchanged(env, {&input, &output});
  const whittle_isa isa = ActiveIsa();
  const auto run = [rows, channels, scale = std::move(scale), bias = std::move(bias), epsilon, reference,
                    isa](const void* const* inputs, void* const* outputs, whittle_threadpool*) {
    const float* in = static_cast<const float*>(inputs[0]);
    float* out = static_cast<float*>(outputs[0]);
    const float* b = bias.empty() ? nullptr : bias.data();
    reference ? f32_layer_norm__reference(rows, channels, in, scale.data(), b, epsilon, out)
              : f32_layer_norm(rows, channels, in, scale.data(), b, epsilon, out, isa);
  };
  return {{input}, {output}, run};
}

// mulChannels({ rows, pixels, channels, a, b, output }): output[r][p][c] = a[r][p][c] * b[r][c] (the SE
// block's N x H x W x C times N x 1 x 1 x C; rows = pixels = 1 multiplies two tensors of one shape). fp32;
// int8 / uint8 also need aZeroPoint, bZeroPoint, outputZeroPoint, multiplier, shift (TFLite's quantized mul,
// qs8_mul_params) and take outputMin / outputMax.
BoundOperator MulChannels(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const auto [rows, pixels, channels] = TensorDimensions<3>(args, {"rows", "pixels", "channels"});
  const View a = Field(args, "a", kTensorTypes, kTensorWhat);
  const View b = Field(args, "b", kTensorTypes, kTensorWhat);
  const View output = Field(args, "output", kTensorTypes, kTensorWhat);
  ExpectSameType(env, b, a);
  ExpectSameType(env, output, a);
  ExpectLength(env, a, rows * pixels * channels, "rows x pixels x channels");
  ExpectLength(env, b, rows * channels, "rows x channels");
  ExpectLength(env, output, rows * pixels * channels, "rows x pixels x channels");
  ExpectNoOverlap(env, output, {&a, &b});
  const bool f32 = a.type == napi_float32_array, u = IsUnsigned(a);
  qs8_mul_params p{};
  if (!f32) {
    const Bounds bounds = ReadBounds(args, a, "outputMin", "outputMax");
    const int64_t lo = u ? 0 : INT8_MIN, hi = u ? UINT8_MAX : INT8_MAX;
    p.unsigned_activations = u;
    p.a_zero_point = static_cast<int32_t>(Integer(args, "aZeroPoint", lo, hi));
    p.b_zero_point = static_cast<int32_t>(Integer(args, "bZeroPoint", lo, hi));
    p.output_zero_point = static_cast<int32_t>(Integer(args, "outputZeroPoint", lo, hi));
    p.multiplier = static_cast<int32_t>(Integer(args, "multiplier", 0, INT32_MAX));
    p.shift = static_cast<int32_t>(Integer(args, "shift", QS8_REQUANT_MIN_SHIFT, QS8_REQUANT_MAX_SHIFT));
    p.output_min = bounds.min_q;
    p.output_max = bounds.max_q;
  }
  const bool reference = Boolean(args, "reference");
  ExpectUnchanged(env, {&a, &b, &output});
  const whittle_isa isa = ActiveIsa();
  const auto run = [rows, pixels, channels, f32, p, reference, isa](
                       const void* const* inputs, void* const* outputs, whittle_threadpool*) {
    if (!f32) {
      reference ? qs8_mul_channels__reference(rows, pixels, channels, inputs[0], inputs[1], outputs[0], &p)
                : qs8_mul_channels(rows, pixels, channels, inputs[0], inputs[1], outputs[0], &p, isa);
      return;
    }
    const float* pa = static_cast<const float*>(inputs[0]);
    const float* pb = static_cast<const float*>(inputs[1]);
    float* out = static_cast<float*>(outputs[0]);
    reference ? f32_mul_channels__reference(rows, pixels, channels, pa, pb, out)
              : f32_mul_channels(rows, pixels, channels, pa, pb, out, isa);
  };
  return {{a, b}, {output}, run};
}

// lookup({ input, output, table }): output[i] = table[input[i] & 0xff], int8 or uint8 (all three of one
// type, table of 256 entries): an int8 activation (sigmoid, hard_sigmoid, hard_swish) through the table the
// runtime builds at load from the input's and output's quantization. The table is copied here.
BoundOperator Lookup(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const std::initializer_list<napi_typedarray_type> bytes = {napi_int8_array, napi_uint8_array};
  const View input = Field(args, "input", bytes, "an Int8Array or Uint8Array");
  const View output = Field(args, "output", bytes, "an Int8Array or Uint8Array");
  const View table = Field(args, "table", bytes, "an Int8Array or Uint8Array");
  ExpectSameType(env, output, input);
  ExpectSameType(env, table, input);
  const size_t n = ElementCount(env, input);
  ExpectLength(env, output, n, "input.length");
  ExpectLength(env, table, 256, "256");
  ExpectNoOverlap(env, output, {&input});
  const bool reference = Boolean(args, "reference");
  ExpectUnchanged(env, {&input, &output, &table});
  std::array<uint8_t, 256> entries{};
  std::memcpy(entries.data(), table.data, entries.size());
  const whittle_isa isa = ActiveIsa();
  const auto run = [n, entries, reference, isa](const void* const* inputs, void* const* outputs,
                                                whittle_threadpool*) {
    const uint8_t* in = static_cast<const uint8_t*>(inputs[0]);
    uint8_t* out = static_cast<uint8_t*>(outputs[0]);
    reference ? qs8_lut__reference(n, in, out, entries.data()) : qs8_lut(n, in, out, entries.data(), isa);
  };
  return {{input}, {output}, run};
}

size_t ElementSize(napi_typedarray_type type) { return type == napi_float32_array ? 4 : 1; }

// concat({ rows, channels: number[], inputs: TypedArray[], output }) along the last axis.
BoundOperator Concat(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const size_t rows = Dimension(args, "rows");
  const Napi::Value channels_value = args.Get("channels");
  const Napi::Value inputs_value = args.Get("inputs");
  if (!channels_value.IsArray()) ThrowType(env, "an array of integers", "channels", channels_value);
  if (!inputs_value.IsArray()) ThrowType(env, "an array of typed arrays", "inputs", inputs_value);
  const Napi::Array channels_array = channels_value.As<Napi::Array>();
  const Napi::Array inputs_array = inputs_value.As<Napi::Array>();
  const uint32_t count = inputs_array.Length();
  if (count < 1 || count > 1024)
    ThrowRange(env, "between 1 and 1024 inputs", "inputs", std::to_string(count) + " inputs");
  if (channels_array.Length() != count) {
    ThrowRange(env, "one entry per input (" + std::to_string(count) + ")", "channels",
               std::to_string(channels_array.Length()) + " entries");
  }
  const View output = Field(args, "output", kTensorTypes, kTensorWhat);
  std::vector<View> inputs;
  std::vector<size_t> channels;
  double total = 0;
  for (uint32_t i = 0; i < count; i++) {
    const std::string index = "[" + std::to_string(i) + "]";
    const Napi::Value c = channels_array.Get(i);
    if (!c.IsNumber()) ThrowType(env, "an integer", "channels" + index, c);
    const double number = c.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(number) || std::trunc(number) != number)
      ThrowType(env, "an integer", "channels" + index, c);
    if (number < 1 || number > static_cast<double>(WHITTLE_MAX_DIMENSION)) {
      ThrowRange(env, "an integer in [1, " + std::to_string(WHITTLE_MAX_DIMENSION) + "]", "channels" + index,
                 c.ToString().Utf8Value());
    }
    channels.push_back(static_cast<size_t>(number));
    total += number;
    ExpectElementsFit(env, static_cast<double>(rows) * total, "rows x sum(channels)", "channels",
                      "a larger total");
    inputs.push_back(Array(env, inputs_array.Get(i), "inputs" + index, kTensorTypes, kTensorWhat));
  }
  for (uint32_t i = 0; i < count; i++) {
    ExpectSameType(env, inputs[i], output);
    ExpectLength(env, inputs[i], rows * channels[i], "rows x channels[" + std::to_string(i) + "]");
    ExpectNoOverlap(env, output, {&inputs[i]});
  }
  ExpectLength(env, output, rows * static_cast<size_t>(total), "rows x sum(channels)");
  // Reading the arrays' elements may have run getters: every view is re-read before the copy.
  for (const View& input : inputs) ExpectUnchanged(env, {&input});
  ExpectUnchanged(env, {&output});
  const size_t element = ElementSize(output.type);
  const auto run = [rows, channels, element](const void* const* in, void* const* out, whittle_threadpool*) {
    whittle_concat_channels(rows, channels.size(), channels.data(), in, element, out[0]);
  };
  return {inputs, {output}, run};
}

// slice({ rows, inputRow, offset, input, output }): output[r] = input[r][offset, offset + outputRow), where
// outputRow = output.length / rows (a Slice or a Split's part along one axis, the other axes folded into rows
// and the row lengths).
BoundOperator Slice(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const auto [rows, input_row] = TensorDimensions<2>(args, {"rows", "inputRow"});
  const size_t offset = static_cast<size_t>(Integer(args, "offset", 0, static_cast<int64_t>(input_row) - 1));
  const InputOutput views = ReadInputOutput(args);
  ExpectLength(env, views.input, rows * input_row, "rows x inputRow");
  const size_t n = ElementCount(env, views.output);
  const size_t output_row = n / rows;
  if (output_row * rows != n || output_row > input_row - offset) {
    ThrowRange(env,
               "rows x a row length in [1, inputRow - offset] (" + std::to_string(input_row - offset) + ")",
               "output.length", std::to_string(n));
  }
  ExpectNoOverlap(env, views.output, {&views.input});
  ExpectUnchanged(env, {&views.input, &views.output});
  const size_t element = ElementSize(views.input.type);
  const auto run = [rows, input_row, offset, output_row, element](const void* const* in, void* const* out,
                                                                  whittle_threadpool*) {
    whittle_slice_rows(rows, input_row, offset, output_row, in[0], element, out[0]);
  };
  return {{views.input}, {views.output}, run};
}

// channelShuffle({ rows, groups, groupChannels, input, output })
BoundOperator ChannelShuffle(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const auto [rows, groups, group_channels] = TensorDimensions<3>(args, {"rows", "groups", "groupChannels"});
  const InputOutput views = ReadInputOutput(args);
  ExpectLength(env, views.input, rows * groups * group_channels, "rows x groups x groupChannels");
  ExpectLength(env, views.output, rows * groups * group_channels, "rows x groups x groupChannels");
  ExpectNoOverlap(env, views.output, {&views.input});
  ExpectUnchanged(env, {&views.input, &views.output});
  const size_t element = ElementSize(views.input.type);
  const auto run = [rows, groups, group_channels, element](const void* const* in, void* const* out,
                                                           whittle_threadpool*) {
    whittle_channel_shuffle(rows, groups, group_channels, in[0], element, out[0]);
  };
  return {{views.input}, {views.output}, run};
}

// resize({ batch, inputHeight, inputWidth, channels, rows, columns, rowWeights?, columnWeights?, input,
// output, reference? }): the 2-D resize of whittle_resize_shape (f32_ops.h). rows (a Uint32Array, 2 entries
// per output row: top and bottom input row) and columns (likewise per output column) set the output's size;
// rowWeights and columnWeights (Float64Arrays in [0, 1], one per output row / column: the bottom row's and
// the right column's weight) make it bilinear, their absence nearest (which reads the first entry of each
// pair). The taps are copied.
BoundOperator Resize(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const auto [batch, input_height, input_width, channels] =
      TensorDimensions<4>(args, {"batch", "inputHeight", "inputWidth", "channels"});
  const View rows = Field(args, "rows", napi_uint32_array);
  const View columns = Field(args, "columns", napi_uint32_array);
  bool bilinear = false, has_column_weights = false;
  const View row_weights = OptionalField(args, "rowWeights", napi_float64_array, &bilinear);
  const View column_weights = OptionalField(args, "columnWeights", napi_float64_array, &has_column_weights);
  if (bilinear != has_column_weights) {
    ThrowType(env, bilinear ? "a Float64Array (rowWeights is given)" : "undefined (rowWeights is not given)",
              "columnWeights", args.Get("columnWeights"));
  }
  const InputOutput views = ReadInputOutput(args);
  const auto taps = [env](const View& view, size_t size, const char* axis) {
    if (view.length == 0 || view.length % 2 != 0 || view.length / 2 > WHITTLE_MAX_DIMENSION) {
      ThrowRange(env,
                 std::string("2 entries per output ") + axis + " (1 to " +
                     std::to_string(WHITTLE_MAX_DIMENSION) + " of them)",
                 view.name, "length " + std::to_string(view.length));
    }
    ExpectLength(env, view, view.length, "2 x output size");
    const uint32_t* data = static_cast<const uint32_t*>(view.data);
    for (size_t i = 0; i < view.length; i++) {
      if (data[i] >= size) {
        ThrowRange(env, "input indices below " + std::to_string(size), view.name,
                   std::to_string(data[i]) + " at " + std::to_string(i));
      }
    }
    return std::vector<uint32_t>(data, data + view.length);
  };
  std::vector<uint32_t> row_taps = taps(rows, input_height, "row");
  std::vector<uint32_t> column_taps = taps(columns, input_width, "column");
  const size_t output_height = row_taps.size() / 2, output_width = column_taps.size() / 2;
  const double output_elements = static_cast<double>(batch) * static_cast<double>(output_height) *
                                 static_cast<double>(output_width) * static_cast<double>(channels);
  ExpectElementsFit(env, output_elements, "batch x outputHeight x outputWidth x channels", "output",
                    "a larger tensor");
  ExpectLength(env, views.input, batch * input_height * input_width * channels,
               "batch x inputHeight x inputWidth x channels");
  ExpectLength(env, views.output, batch * output_height * output_width * channels,
               "batch x rows.length / 2 x columns.length / 2 x channels");
  const auto weights = [env](const View& view, size_t length, const std::string& shape) {
    if (view.value.IsEmpty()) return std::vector<double>();
    ExpectLength(env, view, length, shape);
    const double* data = static_cast<const double*>(view.data);
    for (size_t i = 0; i < length; i++) {
      if (!(data[i] >= 0 && data[i] <= 1)) {
        ThrowRange(env, "weights in [0, 1]", view.name, std::to_string(data[i]) + " at " + std::to_string(i));
      }
    }
    return std::vector<double>(data, data + length);
  };
  std::vector<double> row_weight_values = weights(row_weights, output_height, "rows.length / 2");
  std::vector<double> column_weight_values = weights(column_weights, output_width, "columns.length / 2");
  ExpectNoOverlap(env, views.output, {&views.input});
  const bool reference = Boolean(args, "reference");
  ExpectUnchanged(env, {&rows, &columns, &row_weights, &column_weights, &views.input, &views.output});
  const size_t element = ElementSize(views.input.type);
  const bool f32 = views.input.type == napi_float32_array, u = IsUnsigned(views.input);
  const whittle_isa isa = ActiveIsa();
  const auto run = [=, b = batch, ih = input_height, iw = input_width, c = channels](
                       const void* const* in, void* const* out, whittle_threadpool*) {
    const whittle_resize_shape shape{b,
                                     ih,
                                     iw,
                                     output_height,
                                     output_width,
                                     c,
                                     row_taps.data(),
                                     bilinear ? row_weight_values.data() : nullptr,
                                     column_taps.data(),
                                     bilinear ? column_weight_values.data() : nullptr};
    if (!bilinear) {
      whittle_resize_nearest(&shape, in[0], element, out[0]);
    } else if (f32) {
      const float* x = static_cast<const float*>(in[0]);
      float* y = static_cast<float*>(out[0]);
      reference ? f32_resize_bilinear__reference(&shape, x, y) : f32_resize_bilinear(&shape, x, y, isa);
    } else {
      reference ? qs8_resize_bilinear__reference(&shape, in[0], out[0], u)
                : qs8_resize_bilinear(&shape, in[0], out[0], u, isa);
    }
  };
  return {{views.input}, {views.output}, run};
}

// copy({ input, output }): the bytes of input into output (same type and length). A reshape or flatten in a
// plan: the runtime's tensors are contiguous, so a new shape is the same bytes in another arena place.
BoundOperator Copy(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const InputOutput views = ReadInputOutput(args);
  const size_t n = ElementCount(env, views.input);
  ExpectLength(env, views.output, n, "input.length");
  ExpectNoOverlap(env, views.output, {&views.input});
  ExpectUnchanged(env, {&views.input, &views.output});
  const size_t bytes = views.input.bytes;
  const auto run = [bytes](const void* const* in, void* const* out, whittle_threadpool*) {
    std::memcpy(out[0], in[0], bytes);
  };
  return {{views.input}, {views.output}, run};
}

}  // namespace

WHITTLE_HOT ThreadPoolLease::ThreadPoolLease() : lock_(pool_mutex), pool_(shared_pool) {}

void RegisterKernels(Napi::Env env, Napi::Object exports) {
  const char* error = whittle_isa_selection_error();
  if (error != nullptr) throw Napi::Error::New(env, std::string("Cannot select the kernel path: ") + error);
  exports.Set("cpuFeatures", Napi::Function::New(env, CpuFeatures, "cpuFeatures"));
  exports.Set("activeIsa", Napi::Function::New(env, ActiveIsaName, "activeIsa"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads, "getThreads"));
  exports.Set("Conv2d", Conv2d::Define(env));
  RegisterOperator(env, exports, "maxPool2d", MaxPool2d);
  RegisterOperator(env, exports, "avgPool2d", AvgPool2d);
  RegisterOperator(env, exports, "globalAvgPool", GlobalAvgPool);
  RegisterOperator(env, exports, "quantizeLinear", QuantizeLinear);
  RegisterOperator(env, exports, "dequantizeLinear", DequantizeLinear);
  RegisterOperator(env, exports, "add", Add);
  RegisterOperator(env, exports, "clamp", Clamp);
  RegisterOperator(env, exports, "softmax", Softmax);
  RegisterOperator(env, exports, "concat", Concat);
  RegisterOperator(env, exports, "channelShuffle", ChannelShuffle);
  RegisterOperator(env, exports, "copy", Copy);
  RegisterOperator(env, exports, "sigmoid", Sigmoid);
  RegisterOperator(env, exports, "hardSigmoid", HardSigmoid);
  RegisterOperator(env, exports, "hardSwish", HardSwish);
  RegisterOperator(env, exports, "gelu", Gelu);
  RegisterOperator(env, exports, "layerNorm", LayerNorm);
  RegisterOperator(env, exports, "mulChannels", MulChannels);
  RegisterOperator(env, exports, "lookup", Lookup);
  RegisterOperator(env, exports, "slice", Slice);
  RegisterOperator(env, exports, "resize", Resize);
}

}  // namespace whittle
