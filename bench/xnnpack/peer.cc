// XNNPACK as a peer of `bench kernels` (bench/xnnpack-peer.ts is its TypeScript face): one XNNPACK operator
// per layer, created and set up once for batch 1 and one thread (no thread pool: it runs on the caller's
// thread), then run in a timed loop here in C so the figure is XNNPACK's own time per run.
//
// fp32: xnn_*_convolution2d_nhwc_f32 and xnn_*_fully_connected_nc_f32. int8: per-channel xnn_*_qc8
// convolution; the 2022 Debian header has no qc8 fully-connected operator, so fully-connected layers use the
// per-tensor qs8 one (the TypeScript side refuses per-channel scales for it). Quantized layers run with input
// and output scale 1 and the kernel scale equal to the requantization scale, so XNNPACK's output is
// round(acc * scale) like Whittle's (XNNPACK rounds in fp32, so the last bit may differ).
#include <napi.h>
#include <time.h>
#include <xnnpack.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

const char* StatusName(xnn_status status) {
  switch (status) {
    case xnn_status_success:
      return "success";
    case xnn_status_uninitialized:
      return "uninitialized";
    case xnn_status_invalid_parameter:
      return "invalid parameter";
    case xnn_status_invalid_state:
      return "invalid state";
    case xnn_status_unsupported_parameter:
      return "unsupported parameter";
    case xnn_status_unsupported_hardware:
      return "unsupported hardware";
    case xnn_status_out_of_memory:
      return "out of memory";
  }
  return "unknown status";
}

void Check(Napi::Env env, xnn_status status, const std::string& what) {
  if (status != xnn_status_success)
    throw Napi::Error::New(env, "XNNPACK " + what + " failed: " + StatusName(status));
}

double Number(const Napi::Object& config, const char* key) {
  Napi::Value value = config.Get(key);
  if (!value.IsNumber())
    throw Napi::TypeError::New(config.Env(), std::string("XNNPACK layer: ") + key + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

uint32_t Dimension(const Napi::Object& config, const char* key, uint32_t min) {
  double n = Number(config, key);
  if (!(n >= min && n <= 1 << 24 && n == static_cast<double>(static_cast<uint32_t>(n))))
    throw Napi::RangeError::New(
        config.Env(), std::string("XNNPACK layer: ") + key + " must be an integer >= " + std::to_string(min));
  return static_cast<uint32_t>(n);
}

int8_t ZeroPoint(const Napi::Object& config, const char* key) {
  double n = Number(config, key);
  if (!(n >= -128 && n <= 127 && n == static_cast<double>(static_cast<int>(n))))
    throw Napi::RangeError::New(config.Env(),
                                std::string("XNNPACK layer: ") + key + " must be in [-128, 127]");
  return static_cast<int8_t>(n);
}

// The typed array `key` of `config` with `length` elements of type T (or nullptr when it may be absent).
template <typename T>
const T* Array(const Napi::Object& config, const char* key, napi_typedarray_type type, size_t length,
               bool optional) {
  Napi::Value value = config.Get(key);
  if (optional && (value.IsNull() || value.IsUndefined())) return nullptr;
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(config.Env(),
                               std::string("XNNPACK layer: ") + key + " has the wrong array type");
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  if (array.ElementLength() != length)
    throw Napi::RangeError::New(config.Env(), std::string("XNNPACK layer: ") + key + " must hold " +
                                                  std::to_string(length) + " values, not " +
                                                  std::to_string(array.ElementLength()));
  return reinterpret_cast<const T*>(static_cast<const uint8_t*>(array.ArrayBuffer().Data()) +
                                    array.ByteOffset());
}

double NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

class XnnpackLayer : public Napi::ObjectWrap<XnnpackLayer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "XnnpackLayer",
        {InstanceMethod<&XnnpackLayer::Run>("run"), InstanceMethod<&XnnpackLayer::Time>("time"),
         InstanceMethod<&XnnpackLayer::Call>("call"), InstanceMethod<&XnnpackLayer::Dispose>("dispose"),
         InstanceAccessor<&XnnpackLayer::InputLength>("inputLength"),
         InstanceAccessor<&XnnpackLayer::OutputLength>("outputLength"),
         InstanceAccessor<&XnnpackLayer::OperatorName>("operator")});
  }

  // new XnnpackLayer(config): see XnnpackLayerConfig in bench/xnnpack-peer.ts.
  explicit XnnpackLayer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<XnnpackLayer>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsObject())
      throw Napi::TypeError::New(env, "XnnpackLayer(config): config must be an object");
    Check(env, xnn_initialize(nullptr), "initialization");
    Napi::Object config = info[0].As<Napi::Object>();
    std::string op = config.Get("op").ToString().Utf8Value();
    std::string precision = config.Get("precision").ToString().Utf8Value();
    if (op != "conv2d" && op != "fullyConnected")
      throw Napi::RangeError::New(env, "XNNPACK layer: op must be 'conv2d' or 'fullyConnected'");
    if (precision != "fp32" && precision != "int8")
      throw Napi::RangeError::New(env, "XNNPACK layer: precision must be 'fp32' or 'int8'");
    int8_ = precision == "int8";
    if (op == "conv2d")
      CreateConvolution(env, config);
    else
      CreateFullyConnected(env, config);
    input_.assign(input_length_ * ElementSize() + XNN_EXTRA_BYTES, 0);
    output_.assign(output_length_ * ElementSize(), 0);
    Setup(env);
  }

  ~XnnpackLayer() override { Release(); }

 private:
  size_t ElementSize() const { return int8_ ? 1 : 4; }

  void CreateConvolution(Napi::Env env, const Napi::Object& config) {
    height_ = Dimension(config, "inputHeight", 1);
    width_ = Dimension(config, "inputWidth", 1);
    uint32_t in_channels = Dimension(config, "inputChannels", 1);
    uint32_t out_channels = Dimension(config, "outputChannels", 1);
    uint32_t kh = Dimension(config, "kernelHeight", 1), kw = Dimension(config, "kernelWidth", 1);
    uint32_t sh = Dimension(config, "strideHeight", 1), sw = Dimension(config, "strideWidth", 1);
    uint32_t dh = Dimension(config, "dilationHeight", 1), dw = Dimension(config, "dilationWidth", 1);
    uint32_t top = Dimension(config, "paddingTop", 0), left = Dimension(config, "paddingLeft", 0);
    uint32_t bottom = Dimension(config, "paddingBottom", 0), right = Dimension(config, "paddingRight", 0);
    uint32_t groups = Dimension(config, "groups", 1);
    if (in_channels % groups != 0 || out_channels % groups != 0)
      throw Napi::RangeError::New(env, "XNNPACK layer: channels must be multiples of groups");
    uint64_t padded_h = uint64_t{height_} + top + bottom, padded_w = uint64_t{width_} + left + right;
    uint64_t effective_h = uint64_t{kh - 1} * dh + 1, effective_w = uint64_t{kw - 1} * dw + 1;
    if (padded_h < effective_h || padded_w < effective_w)
      throw Napi::RangeError::New(env, "XNNPACK layer: the kernel is larger than the padded input");
    size_t out_h = (padded_h - effective_h) / sh + 1, out_w = (padded_w - effective_w) / sw + 1;
    input_length_ = size_t{height_} * width_ * in_channels;
    output_length_ = out_h * out_w * out_channels;
    size_t weight_count = size_t{out_channels} * kh * kw * (in_channels / groups);
    const size_t group_in = in_channels / groups, group_out = out_channels / groups;
    if (!int8_) {
      operator_name_ = "convolution2d_nhwc_f32";
      Check(env,
            xnn_create_convolution2d_nhwc_f32(
                top, right, bottom, left, kh, kw, sh, sw, dh, dw, groups, group_in, group_out, in_channels,
                out_channels, Array<float>(config, "weights", napi_float32_array, weight_count, false),
                Array<float>(config, "bias", napi_float32_array, out_channels, true),
                static_cast<float>(Number(config, "outputMin")),
                static_cast<float>(Number(config, "outputMax")), 0, &op_),
            "create convolution2d_nhwc_f32");
    } else {
      operator_name_ = "convolution2d_nhwc_qc8";
      Check(env,
            xnn_create_convolution2d_nhwc_qc8(
                top, right, bottom, left, kh, kw, sh, sw, dh, dw, groups, group_in, group_out, in_channels,
                out_channels, ZeroPoint(config, "inputZeroPoint"), 1.0f,
                Array<float>(config, "kernelScales", napi_float32_array, out_channels, false),
                Array<int8_t>(config, "weights", napi_int8_array, weight_count, false),
                Array<int32_t>(config, "bias", napi_int32_array, out_channels, true),
                ZeroPoint(config, "outputZeroPoint"), 1.0f, ZeroPoint(config, "outputMin"),
                ZeroPoint(config, "outputMax"), 0, &op_),
            "create convolution2d_nhwc_qc8");
    }
    convolution_ = true;
  }

  void CreateFullyConnected(Napi::Env env, const Napi::Object& config) {
    uint32_t in_channels = Dimension(config, "inChannels", 1);
    uint32_t out_channels = Dimension(config, "outChannels", 1);
    input_length_ = in_channels;
    output_length_ = out_channels;
    size_t weight_count = size_t{in_channels} * out_channels;
    if (!int8_) {
      operator_name_ = "fully_connected_nc_f32";
      Check(env,
            xnn_create_fully_connected_nc_f32(
                in_channels, out_channels, in_channels, out_channels,
                Array<float>(config, "weights", napi_float32_array, weight_count, false),
                Array<float>(config, "bias", napi_float32_array, out_channels, true),
                static_cast<float>(Number(config, "outputMin")),
                static_cast<float>(Number(config, "outputMax")), 0, &op_),
            "create fully_connected_nc_f32");
    } else {
      operator_name_ = "fully_connected_nc_qs8";
      const float* scale = Array<float>(config, "kernelScales", napi_float32_array, 1, false);
      Check(env,
            xnn_create_fully_connected_nc_qs8(
                in_channels, out_channels, in_channels, out_channels, ZeroPoint(config, "inputZeroPoint"),
                1.0f, scale[0], Array<int8_t>(config, "weights", napi_int8_array, weight_count, false),
                Array<int32_t>(config, "bias", napi_int32_array, out_channels, true),
                ZeroPoint(config, "outputZeroPoint"), 1.0f, ZeroPoint(config, "outputMin"),
                ZeroPoint(config, "outputMax"), 0, &op_),
            "create fully_connected_nc_qs8");
    }
  }

  void Setup(Napi::Env env) {
    void* in = input_.data();
    void* out = output_.data();
    xnn_status status;
    if (convolution_)
      status = int8_
                   ? xnn_setup_convolution2d_nhwc_qc8(op_, 1, height_, width_, static_cast<const int8_t*>(in),
                                                      static_cast<int8_t*>(out), nullptr)
                   : xnn_setup_convolution2d_nhwc_f32(op_, 1, height_, width_, static_cast<const float*>(in),
                                                      static_cast<float*>(out), nullptr);
    else
      status = int8_ ? xnn_setup_fully_connected_nc_qs8(op_, 1, static_cast<const int8_t*>(in),
                                                        static_cast<int8_t*>(out), nullptr)
                     : xnn_setup_fully_connected_nc_f32(op_, 1, static_cast<const float*>(in),
                                                        static_cast<float*>(out), nullptr);
    Check(env, status, "setup " + operator_name_);
  }

  void Live(Napi::Env env) const {
    if (op_ == nullptr) throw Napi::Error::New(env, "XNNPACK layer: used after dispose()");
  }

  // The typed array argument `index`, of this layer's element type and `length` elements.
  uint8_t* Buffer(const Napi::CallbackInfo& info, size_t index, size_t length, const char* name) const {
    napi_typedarray_type type = int8_ ? napi_int8_array : napi_float32_array;
    if (info.Length() <= index || !info[index].IsTypedArray() ||
        info[index].As<Napi::TypedArray>().TypedArrayType() != type)
      throw Napi::TypeError::New(info.Env(), std::string("XNNPACK layer: ") + name + " must be " +
                                                 (int8_ ? "an Int8Array" : "a Float32Array"));
    Napi::TypedArray array = info[index].As<Napi::TypedArray>();
    if (array.ElementLength() != length)
      throw Napi::RangeError::New(info.Env(), std::string("XNNPACK layer: ") + name + " must hold " +
                                                  std::to_string(length) + " values, not " +
                                                  std::to_string(array.ElementLength()));
    return static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  }

  // run(input, output): one run on a copy of `input` (XNNPACK may read XNN_EXTRA_BYTES past its end).
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Live(info.Env());
    const uint8_t* in = Buffer(info, 0, input_length_, "input");
    uint8_t* out = Buffer(info, 1, output_length_, "output");
    std::memcpy(input_.data(), in, input_length_ * ElementSize());
    Check(info.Env(), xnn_run_operator(op_, nullptr), "run " + operator_name_);
    std::memcpy(out, output_.data(), output_length_ * ElementSize());
    return info.Env().Undefined();
  }

  // call(): one run on the last input, for timing from JavaScript with the cost of a Node-API call included
  // (what Whittle's figures include).
  Napi::Value Call(const Napi::CallbackInfo& info) {
    Live(info.Env());
    Check(info.Env(), xnn_run_operator(op_, nullptr), "run " + operator_name_);
    return info.Env().Undefined();
  }

  // time(reps): runs the operator `reps` times on the last input and returns microseconds per run.
  Napi::Value Time(const Napi::CallbackInfo& info) {
    Live(info.Env());
    if (info.Length() != 1 || !info[0].IsNumber())
      throw Napi::TypeError::New(info.Env(), "XNNPACK layer: time(reps) needs a number");
    double reps = info[0].As<Napi::Number>().DoubleValue();
    if (!(reps >= 1 && reps <= 1e9 && reps == static_cast<double>(static_cast<int64_t>(reps))))
      throw Napi::RangeError::New(info.Env(), "XNNPACK layer: reps must be an integer in [1, 1e9]");
    const int64_t n = static_cast<int64_t>(reps);
    double start = NowNs();
    for (int64_t i = 0; i < n; i++) {
      xnn_status status = xnn_run_operator(op_, nullptr);
      if (status != xnn_status_success) Check(info.Env(), status, "run " + operator_name_);
    }
    return Napi::Number::New(info.Env(), (NowNs() - start) / 1e3 / static_cast<double>(n));
  }

  void Release() {
    if (op_ != nullptr) xnn_delete_operator(op_);
    op_ = nullptr;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  Napi::Value InputLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(input_length_));
  }
  Napi::Value OutputLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(output_length_));
  }
  Napi::Value OperatorName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), operator_name_);
  }

  xnn_operator_t op_ = nullptr;
  bool int8_ = false;
  bool convolution_ = false;
  uint32_t height_ = 1, width_ = 1;
  size_t input_length_ = 0, output_length_ = 0;
  std::string operator_name_;
  std::vector<uint8_t> input_, output_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("XnnpackLayer", XnnpackLayer::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(whittle_xnnpack_peer, Init)
