// Native execution plans and stateless operators as plan steps (binding_plan.h explains both).
//
// new Plan(buffers: ArrayBufferView[], steps: { layer, inputs: Place[], outputs: Place[] }[])
//   Place = { buffer: index into buffers, offset: bytes from the view's start, bytes }
// plan.run(first = 0, last = steps.length): steps [first, last) in order, in one call, on one lease of the
// thread pool held for the whole call (one wake-up of its workers, not one per step).
// plan.runner(first = 0, last = steps.length): a function of no arguments doing run(first, last), the range
// checked once: a frame loop's call then reads no arguments and unwraps nothing (each is a cold code path
// when frames come 33 ms apart).
// plan.frameRunner(first, last, frame): run(first, last) with a camera frame's way in and out in the same
// call, as a function (frame: Uint8Array) => class index: the frame written into the plan's input through
// per-channel tables, the steps run, the scores read (dequantized when quantized) and their argmax taken
// (FrameSpec below). The agent's frame loop then makes one Node-API call per frame.
// new Operator(name, args): a stateless operator (maxPool2d, clamp, ...) with the arguments its function
// takes; the arrays in args give the operand types and lengths, the plan gives the places.
// new FrameSource(fd, frameBytes): the agent's native frame loop (frame_source.h) reading camera frames from
// a pipe on its own thread and running them through an attached frame runner (FrameSource below).
#include "binding_plan.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "binding_kernels.h"
#include "frame_source.h"

namespace whittle {
namespace {

using namespace whittle::args;  // NOLINT(build/namespaces)

// Tags of the layer classes a plan accepts, one per class (TagPlanStep). Fixed storage: a tag's address is
// handed to Node-API and must stay put. The upper half is this library's; the lower half numbers the class.
constexpr size_t kMaxStepKinds = 16;
std::mutex kinds_mutex;
size_t kind_count = 0;
napi_type_tag kind_tags[kMaxStepKinds];
StepUnwrap kind_unwraps[kMaxStepKinds];

// The layer behind a tagged object, or null when `value` is not one.
PlanStep* UnwrapStep(Napi::Env env, const Napi::Value& value) {
  if (!value.IsObject()) return nullptr;
  std::lock_guard<std::mutex> lock(kinds_mutex);
  for (size_t k = 0; k < kind_count; k++) {
    bool tagged = false;
    if (napi_check_object_type_tag(env, value, &kind_tags[k], &tagged) == napi_ok && tagged)
      return kind_unwraps[k](value.As<Napi::Object>());
  }
  return nullptr;
}

std::map<std::string, OperatorReader>& Readers() {
  static std::map<std::string, OperatorReader> readers;
  return readers;
}
std::mutex readers_mutex;

size_t Alignment(const View& view) { return ElementBytes(view.type); }

std::vector<StepOperand> OperandsOf(const std::vector<View>& views) {
  std::vector<StepOperand> operands;
  for (const View& view : views) operands.push_back({view.bytes, Alignment(view)});
  return operands;
}

// A stateless operator bound to its parameters, as a plan step.
class Operator : public Napi::ObjectWrap<Operator>, public PlanStep {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Operator", {InstanceAccessor<&Operator::Name>("name")});
  }

  // new Operator(name, args)
  explicit Operator(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Operator>(info) {
    Napi::Env env = info.Env();
    const Napi::Value name = info.Length() > 0 ? info[0] : env.Undefined();
    OperatorReader reader = nullptr;
    if (name.IsString()) {
      std::lock_guard<std::mutex> lock(readers_mutex);
      const auto found = Readers().find(name.As<Napi::String>().Utf8Value());
      if (found != Readers().end()) reader = found->second;
    }
    if (reader == nullptr) {
      std::lock_guard<std::mutex> lock(readers_mutex);
      std::string known;
      for (const auto& [key, value] : Readers()) known += (known.empty() ? "'" : ", '") + key + "'";
      ThrowType(env, "one of " + known, "name", name);
    }
    name_ = name.As<Napi::String>().Utf8Value();
    BoundOperator bound = reader(ArgsObject(info, 1, "args"));
    inputs_ = OperandsOf(bound.inputs);
    outputs_ = OperandsOf(bound.outputs);
    state_ = std::move(bound.state);
    call_ = bound.call;
    TagPlanStep<Operator>(env, info.This().As<Napi::Object>());
  }

  std::vector<StepOperand> StepInputs() const override { return inputs_; }
  std::vector<StepOperand> StepOutputs() const override { return outputs_; }
  const char* RunStep(const void* const* inputs, void* const* outputs, whittle_threadpool* pool) override {
    return call_.run(call_.state, inputs, outputs, pool);
  }
  StepCall Call() override { return call_; }

 private:
  Napi::Value Name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }

  std::string name_;
  std::vector<StepOperand> inputs_, outputs_;
  std::shared_ptr<const void> state_;  // what call_.state points to
  StepCall call_;
};

// A buffer of the plan: the view it was given (a typed array, or a DataView), and its bytes as checked when
// the plan was built.
struct PlanBuffer {
  Napi::Reference<Napi::Value> view;
  bool typed_array;
  uint8_t* data;
  size_t bytes;
};

// Where one operand lives: the buffer and the byte range in it.
struct Place {
  size_t buffer, offset, bytes;
};

struct Step {
  PlanStep* layer;
  Napi::ObjectReference keep;  // the layer object stays alive as long as the plan
  std::vector<Place> inputs, outputs;
  std::vector<const void*> input_pointers;
  std::vector<void*> output_pointers;
  StepCall call;  // layer->Call(), asked once
};

// Whether the views still have the data pointers and byte lengths checked when they were taken: one
// Node-API call per view, its kind known. Returns the index of the first that changed, or buffers.size().
WHITTLE_HOT size_t ChangedBuffer(napi_env env, const std::vector<PlanBuffer>& buffers) {
  for (size_t b = 0; b < buffers.size(); b++) {
    const PlanBuffer& buffer = buffers[b];
    void* data = nullptr;
    size_t bytes = 0;
    if (buffer.typed_array) {
      napi_typedarray_type type;
      size_t length = 0;
      if (napi_get_typedarray_info(env, buffer.view.Value(), &type, &length, &data, nullptr, nullptr) ==
          napi_ok)
        bytes = length * ElementBytes(type);
    } else {
      napi_value array_buffer;
      size_t offset;
      if (napi_get_dataview_info(env, buffer.view.Value(), &bytes, &data, &array_buffer, &offset) != napi_ok)
        bytes = 0;
    }
    if (data != buffer.data || bytes != buffer.bytes) return b;
  }
  return buffers.size();
}

// A camera frame's way into a plan and its scores' way out (plan.frameRunner's `frame` argument):
//   { input: Place, tables, channels, planar, output: Place, quantized?: { signed, scale, zeroPoint, scores }
//   }
// - input: where the frame goes (the plan's input tensor), of the tables' element type;
// - tables: 256 values per channel, channel after channel (Float32Array, Int8Array or Uint8Array): pixel byte
//   -> the input tensor's value (normalized, quantized as the model's input is);
// - channels: the frame's pixels are `channels` bytes each ([height][width][channels]); planar: the input
//   is NCHW (channel planes), else it keeps the frame's interleaving;
// - output: the scores, f32; or, with quantized { signed, scale, zeroPoint, scores }, int8 (signed) or uint8
//   values dequantized as scale * (q - zeroPoint), in double rounded to f32, into `scores` (a Float32Array
//   as long as the output).
// The class index is the first highest score.
struct FrameSpec {
  uint8_t* input;
  size_t element_bytes, pixels, channels;
  bool planar;
  std::vector<float> tables_f32;     // 256 * channels values (element_bytes 4)
  std::vector<uint8_t> tables_byte;  // or int8 / uint8 values (element_bytes 1)
  const void* output;
  size_t classes;
  bool quantized, is_signed;
  double scale;
  int32_t zero_point;
  std::vector<PlanBuffer> scores;  // quantized: the Float32Array the scores go to, checked per call
};

// Writes a frame (pixels * channels bytes) into the plan's input through the tables.
template <typename T>
WHITTLE_HOT void WriteFrame(const FrameSpec& spec, const T* tables, const uint8_t* frame) {
  T* out = reinterpret_cast<T*>(spec.input);
  const size_t pixels = spec.pixels, channels = spec.channels;
  if (channels == 1) {
    for (size_t i = 0; i < pixels; i++) out[i] = tables[frame[i]];
    return;
  }
  for (size_t c = 0; c < channels; c++) {
    const T* t = tables + 256 * c;
    for (size_t i = 0; i < pixels; i++)
      out[spec.planar ? c * pixels + i : i * channels + c] = t[frame[i * channels + c]];
  }
}

// The scores as f32 (dequantized into spec.scores first when quantized) and the index of the first highest.
template <typename Q>
WHITTLE_HOT float* Dequantize(const FrameSpec& spec) {
  const Q* q = static_cast<const Q*>(spec.output);
  float* scores = reinterpret_cast<float*>(spec.scores[0].data);
  for (size_t i = 0; i < spec.classes; i++)
    scores[i] = static_cast<float>(spec.scale * static_cast<double>(q[i] - spec.zero_point));
  return scores;
}
WHITTLE_HOT uint32_t ReadScores(const FrameSpec& spec, float* confidence = nullptr) {
  const float* scores = !spec.quantized  ? static_cast<const float*>(spec.output)
                        : spec.is_signed ? Dequantize<int8_t>(spec)
                                         : Dequantize<uint8_t>(spec);
  uint32_t best = 0;
  for (uint32_t i = 1; i < spec.classes; i++)
    if (scores[i] > scores[best]) best = i;
  if (confidence != nullptr) *confidence = scores[best];
  return best;
}

// The data pointer and byte length of a typed array or DataView, without running JavaScript.
// `index` names it in messages as buffers[index] (the name is built only to throw: a run allocates nothing).
std::pair<uint8_t*, size_t> ViewBytes(Napi::Env env, const Napi::Value& value, size_t index) {
  void* data = nullptr;
  size_t bytes = 0;
  if (value.IsTypedArray()) {
    napi_typedarray_type type;
    size_t length = 0;
    TypedArrayInfo(env, value, &type, &length, &data);
    bytes = length * ElementBytes(type);
  } else if (value.IsDataView()) {
    napi_value buffer;
    size_t offset;
    NAPI_THROW_IF_FAILED(env, napi_get_dataview_info(env, value, &bytes, &data, &buffer, &offset),
                         std::make_pair(nullptr, 0));
  } else {
    ThrowType(env, "a typed array or DataView", "buffers[" + std::to_string(index) + "]", value);
  }
  return {static_cast<uint8_t*>(data), data == nullptr ? 0 : bytes};
}

// An integer field of a place, named by its full path in messages (steps[2].inputs[0].offset).
size_t PlaceField(const Napi::Object& place, const char* key, const std::string& path, size_t max) {
  const Napi::Value value = place.Get(key);
  const std::string name = path + "." + key;
  if (!value.IsNumber()) ThrowType(place.Env(), "an integer", name, value);
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number)
    ThrowType(place.Env(), "an integer", name, value);
  if (number < 0 || number > static_cast<double>(max)) {
    ThrowRange(place.Env(), "an integer in [0, " + std::to_string(max) + "]", name,
               value.ToString().Utf8Value());
  }
  return static_cast<size_t>(number);
}

class Plan : public Napi::ObjectWrap<Plan> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "Plan",
        {InstanceMethod<&Plan::Run>("run"), InstanceMethod<&Plan::Runner>("runner"),
         InstanceMethod<&Plan::FrameRunner>("frameRunner"), InstanceAccessor<&Plan::Steps>("steps")});
  }

  explicit Plan(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Plan>(info) {
    Napi::Env env = info.Env();
    const Napi::Value buffers_value = info.Length() > 0 ? info[0] : env.Undefined();
    const Napi::Value steps_value = info.Length() > 1 ? info[1] : env.Undefined();
    if (!buffers_value.IsArray()) ThrowType(env, "an array of typed arrays", "buffers", buffers_value);
    if (!steps_value.IsArray()) ThrowType(env, "an array of steps", "steps", steps_value);
    const Napi::Array buffers = buffers_value.As<Napi::Array>();
    const Napi::Array steps = steps_value.As<Napi::Array>();
    if (buffers.Length() > 4096)
      ThrowRange(env, "at most 4096 buffers", "buffers", std::to_string(buffers.Length()) + " buffers");
    if (steps.Length() > 65536)
      ThrowRange(env, "at most 65536 steps", "steps", std::to_string(steps.Length()) + " steps");
    // Layers and places first (reading them may run getters), the buffers' bytes last: no JavaScript runs
    // between that read and the checks against it.
    std::vector<Napi::Value> views;
    for (uint32_t b = 0; b < buffers.Length(); b++) views.push_back(buffers.Get(b));
    for (uint32_t i = 0; i < steps.Length(); i++) {
      const std::string path = "steps[" + std::to_string(i) + "]";
      const Napi::Value step_value = steps.Get(i);
      if (!step_value.IsObject()) ThrowType(env, "a step object", path, step_value);
      const Napi::Object step_object = step_value.As<Napi::Object>();
      const Napi::Value layer_value = step_object.Get("layer");
      PlanStep* layer = UnwrapStep(env, layer_value);
      if (layer == nullptr)
        ThrowType(env, "a native layer (PackedLayer, FormatLayer or Operator)", path + ".layer", layer_value);
      Step step{layer, Napi::Persistent(layer_value.As<Napi::Object>()), {}, {}, {}, {}, layer->Call()};
      step.inputs = ReadPlaces(step_object, "inputs", path, layer->StepInputs(), buffers.Length());
      step.outputs = ReadPlaces(step_object, "outputs", path, layer->StepOutputs(), buffers.Length());
      steps_.push_back(std::move(step));
    }
    for (uint32_t b = 0; b < views.size(); b++) {
      const auto [data, bytes] = ViewBytes(env, views[b], b);
      buffers_.push_back({Napi::Persistent(views[b]), views[b].IsTypedArray(), data, bytes});
    }
    for (size_t i = 0; i < steps_.size(); i++) CheckPlaces(env, i);
    // What a run reads, in two blocks: the steps' calls, and all their operand pointers, so that a frame's
    // loop touches a few contiguous cache lines rather than the Step and two heap blocks per step.
    for (const Step& step : steps_) {
      operands_.insert(operands_.end(), step.input_pointers.begin(), step.input_pointers.end());
      operands_.insert(operands_.end(), step.output_pointers.begin(), step.output_pointers.end());
    }
    const void* const* at = operands_.data();
    for (const Step& step : steps_) {
      const void* const* outputs = at + step.input_pointers.size();
      run_.push_back({step.call, at, const_cast<void* const*>(outputs)});
      at = outputs + step.output_pointers.size();
    }
  }

 private:
  std::vector<Place> ReadPlaces(const Napi::Object& step, const char* key, const std::string& path,
                                const std::vector<StepOperand>& operands, size_t buffer_count) {
    Napi::Env env = step.Env();
    const std::string name = path + "." + key;
    const Napi::Value value = step.Get(key);
    if (!value.IsArray()) ThrowType(env, "an array of places", name, value);
    const Napi::Array array = value.As<Napi::Array>();
    if (array.Length() != operands.size()) {
      ThrowRange(env, std::to_string(operands.size()) + " places (the layer's operands)", name,
                 std::to_string(array.Length()) + " places");
    }
    std::vector<Place> places;
    for (uint32_t k = 0; k < array.Length(); k++) {
      const std::string place_path = name + "[" + std::to_string(k) + "]";
      const Napi::Value place_value = array.Get(k);
      if (!place_value.IsObject())
        ThrowType(env, "a place { buffer, offset, bytes }", place_path, place_value);
      const Napi::Object place = place_value.As<Napi::Object>();
      if (buffer_count == 0)
        ThrowRange(env, "a buffer index, but the plan has no buffers", place_path, "a place");
      Place p{PlaceField(place, "buffer", place_path, buffer_count - 1),
              PlaceField(place, "offset", place_path, SIZE_MAX / 4),
              PlaceField(place, "bytes", place_path, SIZE_MAX / 4)};
      if (p.bytes != operands[k].bytes) {
        ThrowRange(env, std::to_string(operands[k].bytes) + " bytes (the layer's operand)",
                   place_path + ".bytes", std::to_string(p.bytes));
      }
      places.push_back(p);
    }
    return places;
  }

  // The memory of place p (named `name` in messages): inside its buffer, aligned to `alignment` bytes.
  uint8_t* Resolve(Napi::Env env, const Place& p, size_t alignment, const std::string& name) {
    const PlanBuffer& buffer = buffers_[p.buffer];
    if (p.offset > buffer.bytes || p.bytes > buffer.bytes - p.offset) {
      ThrowRange(env,
                 "a range inside buffers[" + std::to_string(p.buffer) + "] (" + std::to_string(buffer.bytes) +
                     " bytes)",
                 name, "offset " + std::to_string(p.offset) + " + " + std::to_string(p.bytes) + " bytes");
    }
    uint8_t* pointer = buffer.data == nullptr ? nullptr : buffer.data + p.offset;
    if (reinterpret_cast<uintptr_t>(pointer) % alignment != 0) {
      ThrowRange(env, "an offset aligned to " + std::to_string(alignment) + " bytes", name + ".offset",
                 std::to_string(p.offset));
    }
    if (pointer == nullptr && p.bytes != 0)
      ThrowRange(env, "an attached buffer", name, "a detached buffers[" + std::to_string(p.buffer) + "]");
    return pointer;
  }

  // Every place of step i inside its buffer and aligned for its elements; outputs disjoint from the step's
  // inputs and from each other. Resolves the step's pointers.
  void CheckPlaces(Napi::Env env, size_t i) {
    Step& step = steps_[i];
    const std::string path = "steps[" + std::to_string(i) + "]";
    const std::vector<StepOperand> in = step.layer->StepInputs(), out = step.layer->StepOutputs();
    const auto resolve = [&](const Place& p, const StepOperand& operand, const std::string& name) {
      return Resolve(env, p, operand.alignment, name);
    };
    for (size_t k = 0; k < step.inputs.size(); k++)
      step.input_pointers.push_back(
          resolve(step.inputs[k], in[k], path + ".inputs[" + std::to_string(k) + "]"));
    for (size_t k = 0; k < step.outputs.size(); k++)
      step.output_pointers.push_back(
          resolve(step.outputs[k], out[k], path + ".outputs[" + std::to_string(k) + "]"));
    const auto overlaps = [](const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
      const uintptr_t a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
      return a_bytes != 0 && b_bytes != 0 && a0 < b0 + b_bytes && b0 < a0 + a_bytes;
    };
    for (size_t k = 0; k < step.outputs.size(); k++) {
      const std::string name = path + ".outputs[" + std::to_string(k) + "]";
      for (size_t j = 0; j < step.inputs.size(); j++) {
        if (overlaps(step.output_pointers[k], step.outputs[k].bytes, step.input_pointers[j],
                     step.inputs[j].bytes)) {
          ThrowRange(env, "a range that shares no memory with " + path + ".inputs[" + std::to_string(j) + "]",
                     name, "overlapping ranges");
        }
      }
      for (size_t j = 0; j < k; j++) {
        if (overlaps(step.output_pointers[k], step.outputs[k].bytes, step.output_pointers[j],
                     step.outputs[j].bytes)) {
          ThrowRange(env,
                     "a range that shares no memory with " + path + ".outputs[" + std::to_string(j) + "]",
                     name, "overlapping ranges");
        }
      }
    }
  }

  // run(first = 0, last = steps): one call for the steps [first, last).
  Napi::Value Run(const Napi::CallbackInfo& info) {
    const auto [first, last] = Range(info);
    return RunSteps(info.Env(), first, last);
  }

  // runner(first = 0, last = steps): run(first, last) as a function of no arguments; it keeps the plan alive.
  Napi::Value Runner(const Napi::CallbackInfo& info) {
    const auto [first, last] = Range(info);
    const auto keep =
        std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    Plan* plan = this;
    return Napi::Function::New(
        info.Env(),
        [plan, keep, first = first, last = last](const Napi::CallbackInfo& call) {
          return plan->RunSteps(call.Env(), first, last);
        },
        "run");
  }

  // The range [first, last) of arguments 0 and 1 (each 0 and steps when undefined).
  std::pair<size_t, size_t> Range(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const size_t count = steps_.size();
    size_t first = 0, last = count;
    if (info.Length() > 0 && !info[0].IsUndefined()) first = StepIndex(info[0], "first", count);
    if (info.Length() > 1 && !info[1].IsUndefined()) last = StepIndex(info[1], "last", count);
    if (first > last)
      ThrowRange(env, "last >= first (" + std::to_string(first) + ")", "last", std::to_string(last));
    return {first, last};
  }

  Napi::Value RunSteps(Napi::Env env, size_t first, size_t last) {
    if (loops_.load(std::memory_order_relaxed) != 0) ThrowInLoop(env);
    // The buffers must still be the memory checked at build (a transfer detaches, a resize moves them).
    const size_t changed = ChangedBuffer(env, buffers_);
    if (changed != buffers_.size()) ThrowChanged(env, "buffers[" + std::to_string(changed) + "]");
    size_t failed = 0;
    const char* error = RunRange(first, last, &failed);
    if (error != nullptr) ThrowStepError(env, failed, error);
    return env.Undefined();
  }

  [[noreturn]] static void ThrowChanged(Napi::Env env, const std::string& name) {
    ThrowRange(env, "the plan's buffers to stay as they were when it was built", name,
               "a buffer detached or resized since");
  }
  [[noreturn]] static void ThrowInLoop(Napi::Env env) {
    throw Napi::Error::New(
        env,
        "the plan runs in a native frame loop (FrameSource): its buffers belong to the loop's "
        "thread until it is detached or stopped");
  }
  [[noreturn]] static void ThrowStepError(Napi::Env env, size_t step, const char* error) {
    throw Napi::Error::New(env, "Plan step " + std::to_string(step) + " cannot run: " + error);
  }

  // Steps [first, last) in order on one lease of the pool: null, or the first step's error (its index in
  // *failed). Runs no JavaScript.
  WHITTLE_HOT const char* RunRange(size_t first, size_t last, size_t* failed) {
    ThreadPoolLease lease;
    whittle_threadpool* pool = lease.pool();
    whittle_threadpool_hold(pool);
    const char* error = nullptr;
    for (size_t i = first; i < last; i++) {
      const RunStep& step = run_[i];
      error = step.call.run(step.call.state, step.inputs, step.outputs, pool);
      if (error != nullptr) {
        *failed = i;
        break;
      }
    }
    whittle_threadpool_release(pool);
    return error;
  }

  // frameRunner(first, last, frame): the function (frame: Uint8Array) => class index (FrameSpec); it keeps
  // the plan alive.
  Napi::Value FrameRunner(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto [first, last] = Range(info);
    const Napi::Object frame = ArgsObject(info, 2, "frame");
    auto runner = std::make_unique<FrameCall>();
    runner->plan = this;
    runner->first = first;
    runner->last = last;
    FrameSpec& spec = runner->spec;
    spec.channels = Dimension(frame, "channels");
    if (spec.channels > 4)
      ThrowRange(env, "an integer in [1, 4]", "frame.channels", std::to_string(spec.channels));
    const Napi::Value planar = frame.Get("planar");
    if (!planar.IsBoolean()) ThrowType(env, "a boolean", "frame.planar", planar);
    spec.planar = planar.As<Napi::Boolean>().Value();
    const Place input = ReadPlace(frame, "input", "frame");
    const Place output = ReadPlace(frame, "output", "frame");
    const Napi::Value quantized_value = frame.Get("quantized");
    spec.quantized = !quantized_value.IsUndefined();
    View scores{};
    if (spec.quantized) {
      if (!quantized_value.IsObject())
        ThrowType(env, "an object or undefined", "frame.quantized", quantized_value);
      const Napi::Object quantized = quantized_value.As<Napi::Object>();
      const Napi::Value is_signed = quantized.Get("signed");
      if (!is_signed.IsBoolean()) ThrowType(env, "a boolean", "frame.quantized.signed", is_signed);
      spec.is_signed = is_signed.As<Napi::Boolean>().Value();
      const Napi::Value scale = quantized.Get("scale");
      if (!scale.IsNumber() || !(scale.As<Napi::Number>().DoubleValue() > 0) ||
          !std::isfinite(scale.As<Napi::Number>().DoubleValue()))
        ThrowType(env, "a positive finite number", "frame.quantized.scale", scale);
      spec.scale = scale.As<Napi::Number>().DoubleValue();
      spec.zero_point = static_cast<int32_t>(Integer(quantized, "zeroPoint", spec.is_signed ? INT8_MIN : 0,
                                                     spec.is_signed ? INT8_MAX : UINT8_MAX));
      scores = Field(quantized, "scores", napi_float32_array);
    }
    const View tables = Field(frame, "tables", {napi_float32_array, napi_int8_array, napi_uint8_array},
                              "a Float32Array, Int8Array or Uint8Array");
    // No JavaScript runs from here on: the views and places are checked against what they are now.
    ExpectUnchanged(env, {&tables, &scores});
    ExpectLength(env, tables, 256 * spec.channels, "256 x frame.channels");
    spec.element_bytes = ElementBytes(tables.type);
    if (input.bytes % (spec.element_bytes * spec.channels) != 0 || input.bytes == 0) {
      ThrowRange(env,
                 "a whole number of pixels of " + std::to_string(spec.channels) + " " + Article(tables.type) +
                     " values",
                 "frame.input.bytes", std::to_string(input.bytes));
    }
    spec.pixels = input.bytes / (spec.element_bytes * spec.channels);
    spec.input = Resolve(env, input, spec.element_bytes, "frame.input");
    const size_t score_bytes = spec.quantized ? 1 : sizeof(float);
    if (output.bytes % score_bytes != 0 || output.bytes == 0) {
      ThrowRange(env, "a whole number of " + std::string(spec.quantized ? "int8 scores" : "f32 scores"),
                 "frame.output.bytes", std::to_string(output.bytes));
    }
    spec.classes = output.bytes / score_bytes;
    if (spec.classes > UINT32_MAX)
      ThrowRange(env, "at most 2^32 - 1 scores", "frame.output.bytes", std::to_string(output.bytes));
    spec.output = Resolve(env, output, score_bytes, "frame.output");
    if (spec.quantized) {
      ExpectLength(env, scores, spec.classes, "frame.output's scores");
      for (const PlanBuffer& buffer : buffers_) {
        const View plan_buffer{buffer.data,      buffer.bytes,    buffer.bytes,
                               napi_uint8_array, "a plan buffer", Napi::Value()};
        if (Overlaps(scores, plan_buffer))
          ThrowRange(env, "an array sharing no memory with the plan's buffers", "frame.quantized.scores",
                     "overlapping memory");
      }
      spec.scores.push_back(
          {Napi::Persistent(scores.value), true, static_cast<uint8_t*>(scores.data), scores.bytes});
    }
    if (spec.element_bytes == 4) {
      const float* values = static_cast<const float*>(tables.data);
      spec.tables_f32.assign(values, values + tables.length);
    } else {
      const uint8_t* values = static_cast<const uint8_t*>(tables.data);
      spec.tables_byte.assign(values, values + tables.length);
    }
    runner->keep = Napi::Persistent(info.This().As<Napi::Object>());
    napi_value function;
    NAPI_THROW_IF_FAILED(
        env, napi_create_function(env, "runFrame", NAPI_AUTO_LENGTH, &RunFrame, runner.get(), &function),
        env.Undefined());
    // Wrapped and tagged, so that a FrameSource can take the function and run its frames on its own thread.
    NAPI_THROW_IF_FAILED(env, napi_wrap(env, function, runner.get(), &DeleteFrameCall, nullptr, nullptr),
                         env.Undefined());
    runner.release();
    NAPI_THROW_IF_FAILED(env, napi_type_tag_object(env, function, &kFrameCallTag), env.Undefined());
    return Napi::Value(env, function);
  }

 public:
  // A frame runner's state: the plan (kept alive), its range and the frame's way in and out.
  struct FrameCall {
    Plan* plan;
    Napi::ObjectReference keep;
    size_t first, last;
    FrameSpec spec;
    char error[256];  // a step's message when the frame loop runs it (LoopFrame)
  };
  static constexpr napi_type_tag kFrameCallTag = {0x77686974746c6566ULL /* "whittlef" */, 1};
  static void DeleteFrameCall(napi_env, void* data, void*) { delete static_cast<FrameCall*>(data); }

  // The frame runner behind `value` (a function plan.frameRunner returned), or null.
  static FrameCall* UnwrapFrameCall(Napi::Env env, const Napi::Value& value) {
    bool tagged = false;
    if (!value.IsFunction() || napi_check_object_type_tag(env, value, &kFrameCallTag, &tagged) != napi_ok ||
        !tagged)
      return nullptr;
    void* data = nullptr;
    if (napi_unwrap(env, value, &data) != napi_ok) return nullptr;
    return static_cast<FrameCall*>(data);
  }

  // A frame runner's call as the frame loop makes it (whittle_frame_fn), on the loop's thread: the frame
  // written, the steps run, the scores read; no Node-API (the buffers were checked when it was attached).
  WHITTLE_HOT static const char* LoopFrame(void* context, const uint8_t* frame, uint32_t* class_index,
                                           float* confidence) {
    FrameCall& call = *static_cast<FrameCall*>(context);
    size_t failed = 0;
    const char* error = RunFrameSteps(call, frame, &failed);
    if (error != nullptr) {
      std::snprintf(call.error, sizeof(call.error), "Plan step %zu cannot run: %s", failed, error);
      return call.error;
    }
    *class_index = ReadScores(call.spec, confidence);
    return nullptr;
  }

  // A frame's write into the plan's input and the run of the runner's steps: null, or the failing step's
  // message (its index in *failed). Runs no JavaScript.
  WHITTLE_HOT static const char* RunFrameSteps(FrameCall& call, const uint8_t* frame, size_t* failed) {
    const FrameSpec& spec = call.spec;
    if (spec.element_bytes == 4)
      WriteFrame(spec, spec.tables_f32.data(), frame);
    else
      WriteFrame(spec, spec.tables_byte.data(), frame);
    return call.plan->RunRange(call.first, call.last, failed);
  }

  // Whether the plan's buffers (and the runner's scores array) are still the memory checked at build; the
  // frame loop checks it when a runner is attached (its thread cannot ask Node-API).
  static bool BuffersUnchanged(Napi::Env env, const FrameCall& call) {
    return ChangedBuffer(env, call.plan->buffers_) == call.plan->buffers_.size() &&
           ChangedBuffer(env, call.spec.scores) == call.spec.scores.size();
  }

  // Frame loops the plan is attached to (FrameSource): while not 0, run() and its frame runners refuse.
  std::atomic<int> loops_{0};

 private:
  // A frame runner's call: plain Node-API, so that its code sits with the plan's (WHITTLE_HOT) and a frame
  // builds no CallbackInfo; a bad call throws through ThrowFrameError.
  WHITTLE_HOT static napi_value RunFrame(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value arg = nullptr;
    void* data = nullptr;
    if (napi_get_cb_info(env, info, &argc, &arg, nullptr, &data) != napi_ok) return nullptr;
    FrameCall& call = *static_cast<FrameCall*>(data);
    const FrameSpec& spec = call.spec;
    if (call.plan->loops_.load(std::memory_order_relaxed) != 0)
      return ThrowFrameError(env, call, arg, "loop");
    napi_typedarray_type type = napi_int8_array;
    size_t length = 0;
    void* frame = nullptr;
    if (argc < 1 || napi_get_typedarray_info(env, arg, &type, &length, &frame, nullptr, nullptr) != napi_ok ||
        type != napi_uint8_array || length != spec.pixels * spec.channels || frame == nullptr)
      return ThrowFrameError(env, call, arg, nullptr);
    const size_t changed = ChangedBuffer(env, call.plan->buffers_);
    if (changed != call.plan->buffers_.size() || ChangedBuffer(env, spec.scores) != spec.scores.size())
      return ThrowFrameError(env, call, arg, "buffers");
    const uintptr_t f0 = reinterpret_cast<uintptr_t>(frame), i0 = reinterpret_cast<uintptr_t>(spec.input);
    if (f0 < i0 + spec.pixels * spec.channels * spec.element_bytes && i0 < f0 + length)
      return ThrowFrameError(env, call, arg, "overlap");
    size_t failed = 0;
    const char* error = RunFrameSteps(call, static_cast<const uint8_t*>(frame), &failed);
    if (error != nullptr) return ThrowFrameError(env, call, arg, error, failed);
    napi_value result = nullptr;
    napi_create_uint32(env, ReadScores(spec), &result);
    return result;
  }

  // Throws the frame runner's error as a JavaScript exception (`what`: null for a bad frame, "buffers",
  // "overlap", or a step's message) and returns null.
  __attribute__((cold, noinline)) static napi_value ThrowFrameError(napi_env raw, FrameCall& call,
                                                                    napi_value arg, const char* what,
                                                                    size_t failed = 0) {
    Napi::Env env(raw);
    try {
      const FrameSpec& spec = call.spec;
      const Napi::Value frame = arg == nullptr ? env.Undefined() : Napi::Value(env, arg);
      const std::string bytes = std::to_string(spec.pixels * spec.channels);
      if (what == nullptr) {
        const View view = Array(env, frame, "frame", {napi_uint8_array}, "a Uint8Array");
        ExpectLength(env, view, spec.pixels * spec.channels, "pixels x channels");
      } else if (std::string(what) == "buffers") {
        const size_t changed = ChangedBuffer(env, call.plan->buffers_);
        ThrowChanged(env, changed != call.plan->buffers_.size() ? "buffers[" + std::to_string(changed) + "]"
                                                                : "frame.quantized.scores");
      } else if (std::string(what) == "loop") {
        ThrowInLoop(env);
      } else if (std::string(what) == "overlap") {
        ThrowRange(env, "a frame sharing no memory with the plan's input", "frame", "overlapping memory");
      } else {
        ThrowStepError(env, failed, what);
      }
      throw Napi::Error::New(env, "frame runner: unexpected state");  // unreachable: every branch throws
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    }
    return nullptr;
  }

  // A place { buffer, offset, bytes } at frame[key] (named path.key in messages).
  Place ReadPlace(const Napi::Object& object, const char* key, const std::string& path) {
    Napi::Env env = object.Env();
    const std::string name = path + "." + key;
    const Napi::Value value = object.Get(key);
    if (!value.IsObject()) ThrowType(env, "a place { buffer, offset, bytes }", name, value);
    const Napi::Object place = value.As<Napi::Object>();
    if (buffers_.empty()) ThrowRange(env, "a buffer index, but the plan has no buffers", name, "a place");
    return Place{PlaceField(place, "buffer", name, buffers_.size() - 1),
                 PlaceField(place, "offset", name, SIZE_MAX / 4),
                 PlaceField(place, "bytes", name, SIZE_MAX / 4)};
  }

  size_t StepIndex(const Napi::Value& value, const char* name, size_t count) {
    Napi::Env env = value.Env();
    if (!value.IsNumber()) ThrowType(env, "an integer", name, value);
    const double number = value.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(number) || std::trunc(number) != number) ThrowType(env, "an integer", name, value);
    if (number < 0 || number > static_cast<double>(count)) {
      ThrowRange(env, "an integer in [0, " + std::to_string(count) + "]", name, value.ToString().Utf8Value());
    }
    return static_cast<size_t>(number);
  }

  Napi::Value Steps(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(steps_.size()));
  }

  std::vector<PlanBuffer> buffers_;
  std::vector<Step> steps_;
  // What the run loop reads: per step, its call and its operand pointers (in operands_, step after step).
  struct RunStep {
    StepCall call;
    const void* const* inputs;
    void* const* outputs;
  };
  std::vector<RunStep> run_;
  std::vector<const void*> operands_;
};

// new FrameSource(fd, frameBytes, capacity = 1024): the native frame loop (frame_source.h) reading frames of
// frameBytes from the pipe fd (the source owns it from then on) on a thread of its own.
//   attach(runner | null, generation): runs each frame through `runner` (a function plan.frameRunner
//   returned,
//     whose frames are frameBytes) from now on; on return the runner it replaces is not running. A plan runs
//     in one loop at a time; while attached, its run(), runner() and frame runners refuse (its buffers belong
//     to the loop's thread). The plan's buffers are checked once here: they must not be detached or resized
//     while attached (the loop's thread cannot check them).
//   drain(out: Float64Array): moves the oldest results into out, 5 numbers each (generation, frame index,
//     latency ms, class index, confidence); returns how many.
//   last(frame: Uint8Array, record: Float64Array): the last frame run and its 5 numbers; false before any.
//   warmAhead(leadMs): warm-up runs of the last frame leadMs before each next frame is due (frame_source.h
//     whittle_frame_source_warm_ahead); 0 turns them off.
//   status: { received, dropped, lost, warmups, ended: string | null }.
//   stop(): detaches, stops and joins the thread and closes fd; idempotent. Every call after it but status
//     and stop throws.
class FrameSource : public Napi::ObjectWrap<FrameSource> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "FrameSource",
        {InstanceMethod<&FrameSource::Attach>("attach"), InstanceMethod<&FrameSource::Drain>("drain"),
         InstanceMethod<&FrameSource::Last>("last"), InstanceMethod<&FrameSource::Stop>("stop"),
         InstanceMethod<&FrameSource::WarmAhead>("warmAhead"),
         InstanceAccessor<&FrameSource::Status>("status")});
  }

  explicit FrameSource(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FrameSource>(info) {
    Napi::Env env = info.Env();
    const int64_t fd = WholeNumber(info, 0, "fd", 0, INT32_MAX);
    frame_bytes_ = static_cast<size_t>(WholeNumber(info, 1, "frameBytes", 1, INT32_MAX));
    const size_t capacity = info.Length() > 2 && !info[2].IsUndefined()
                                ? static_cast<size_t>(WholeNumber(info, 2, "capacity", 1, 1 << 20))
                                : 1024;
    records_.resize(capacity);
    const char* error = nullptr;
    source_ = whittle_frame_source_start(static_cast<int>(fd), frame_bytes_, capacity, &error);
    if (source_ == nullptr) throw Napi::Error::New(env, std::string("FrameSource: ") + error);
  }

  ~FrameSource() override {
    // Dropped without stop(): the thread still must not outlive the object. The attached plan stays marked
    // as looping (its objects may already be finalized): stop() is the way to hand a plan back.
    whittle_frame_source_stop(source_);
  }

 private:
  int64_t WholeNumber(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t min,
                      int64_t max) {
    const Napi::Value value = info.Length() > index ? info[index] : info.Env().Undefined();
    if (!value.IsNumber()) ThrowType(info.Env(), "an integer", name, value);
    const double number = value.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(number) || std::trunc(number) != number)
      ThrowType(info.Env(), "an integer", name, value);
    if (number < static_cast<double>(min) || number > static_cast<double>(max))
      ThrowRange(info.Env(), "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]", name,
                 value.ToString().Utf8Value());
    return static_cast<int64_t>(number);
  }

  void ExpectRunning(Napi::Env env) {
    if (source_ == nullptr) throw Napi::Error::New(env, "FrameSource: stopped");
  }

  // Detaches the current runner (if any), handing its plan back.
  void Detach() {
    whittle_frame_source_attach(source_, nullptr, nullptr, 0);
    if (attached_ != nullptr) attached_->plan->loops_.fetch_sub(1);
    attached_ = nullptr;
    runner_.Reset();
  }

  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ExpectRunning(env);
    const Napi::Value runner = info.Length() > 0 ? info[0] : env.Undefined();
    const uint32_t generation = static_cast<uint32_t>(WholeNumber(info, 1, "generation", 0, UINT32_MAX));
    if (runner.IsNull()) {
      Detach();
      return env.Undefined();
    }
    Plan::FrameCall* call = Plan::UnwrapFrameCall(env, runner);
    if (call == nullptr) ThrowType(env, "a frame runner (plan.frameRunner) or null", "runner", runner);
    const size_t bytes = call->spec.pixels * call->spec.channels;
    if (bytes != frame_bytes_)
      ThrowRange(env, std::to_string(frame_bytes_) + "-byte frames (the source's)", "runner",
                 "a runner of " + std::to_string(bytes) + "-byte frames");
    if (call != attached_ && call->plan->loops_.load() != 0)
      ThrowRange(env, "a runner whose plan runs in no other frame loop", "runner",
                 "a plan already in a loop");
    if (!Plan::BuffersUnchanged(env, *call))
      ThrowRange(env, "the plan's buffers to stay as they were when it was built", "runner",
                 "a buffer detached or resized since");
    if (call != attached_) call->plan->loops_.fetch_add(1);
    Plan::FrameCall* previous = attached_ == call ? nullptr : attached_;
    whittle_frame_source_attach(source_, &Plan::LoopFrame, call, generation);
    if (previous != nullptr) previous->plan->loops_.fetch_sub(1);
    attached_ = call;
    runner_ = Napi::Persistent(runner);
    return env.Undefined();
  }

  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ExpectRunning(env);
    View out = Array(env, info.Length() > 0 ? info[0] : env.Undefined(), "out", {napi_float64_array},
                     "a Float64Array");
    const size_t n =
        whittle_frame_source_drain(source_, records_.data(), std::min(records_.size(), out.length / 5));
    double* values = static_cast<double*>(out.data);
    for (size_t i = 0; i < n; i++) Spread(records_[i], values + 5 * i);
    return Napi::Number::New(env, static_cast<double>(n));
  }

  static void Spread(const whittle_frame_record& r, double* out) {
    out[0] = r.generation;
    out[1] = static_cast<double>(r.index);
    out[2] = r.latency_ms;
    out[3] = r.class_index;
    out[4] = r.confidence;
  }

  Napi::Value Last(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ExpectRunning(env);
    const View frame = Array(env, info.Length() > 0 ? info[0] : env.Undefined(), "frame", {napi_uint8_array},
                             "a Uint8Array");
    const View record = Array(env, info.Length() > 1 ? info[1] : env.Undefined(), "record",
                              {napi_float64_array}, "a Float64Array");
    ExpectUnchanged(env, {&frame, &record});
    ExpectLength(env, frame, frame_bytes_, "frameBytes");
    ExpectLength(env, record, 5, "5");
    whittle_frame_record r{};
    if (!whittle_frame_source_last(source_, static_cast<uint8_t*>(frame.data), &r))
      return Napi::Boolean::New(env, false);
    Spread(r, static_cast<double*>(record.data));
    return Napi::Boolean::New(env, true);
  }

  // warmAhead(leadMs): warm-up runs leadMs before each frame is due (whittle_frame_source_warm_ahead); 0
  // turns them off.
  Napi::Value WarmAhead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ExpectRunning(env);
    const Napi::Value value = info.Length() > 0 ? info[0] : env.Undefined();
    if (!value.IsNumber()) ThrowType(env, "a number", "leadMs", value);
    const double lead = value.As<Napi::Number>().DoubleValue();
    if (!(lead >= 0 && lead <= 1000))
      ThrowRange(env, "a number of milliseconds in [0, 1000]", "leadMs", value.ToString().Utf8Value());
    whittle_frame_source_warm_ahead(source_, lead);
    return env.Undefined();
  }

  Napi::Value Status(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    whittle_frame_source_status s = stopped_;
    if (source_ != nullptr) whittle_frame_source_status_of(source_, &s);
    Napi::Object status = Napi::Object::New(env);
    status.Set("received", static_cast<double>(s.received));
    status.Set("dropped", static_cast<double>(s.dropped));
    status.Set("lost", static_cast<double>(s.lost));
    status.Set("warmups", static_cast<double>(s.warmups));
    status.Set("ended", s.ended ? Napi::Value(Napi::String::New(env, s.message)) : env.Null());
    return status;
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (source_ != nullptr) {
      Detach();
      whittle_frame_source_status_of(source_, &stopped_);
      whittle_frame_source_stop(source_);
      source_ = nullptr;
    }
    return info.Env().Undefined();
  }

  whittle_frame_source* source_ = nullptr;
  size_t frame_bytes_ = 0;
  std::vector<whittle_frame_record> records_;  // drain's scratch: no allocation per drain
  Plan::FrameCall* attached_ = nullptr;
  Napi::Reference<Napi::Value> runner_;    // keeps the attached runner (and its plan) alive
  whittle_frame_source_status stopped_{};  // the status at stop(), reported from then on
};

// createFramePipe(): [readFd, writeFd] of a new pipe, both close-on-exec (a child given writeFd as its stdout
// gets its own copy): the camera's ffmpeg writes frames into it and a FrameSource reads them.
Napi::Value CreateFramePipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    throw Napi::Error::New(info.Env(), std::string("createFramePipe: ") + std::strerror(errno));
  Napi::Array pair = Napi::Array::New(info.Env(), 2);
  pair.Set(0u, fds[0]);
  pair.Set(1u, fds[1]);
  return pair;
}

// A registered operator's JS function: reads and checks the call's arguments, runs on the calling thread.
Napi::Value CallOperator(const Napi::CallbackInfo& info) {
  const OperatorReader reader = reinterpret_cast<OperatorReader>(info.Data());
  const BoundOperator bound = reader(ArgsObject(info, 0, "args"));
  std::vector<const void*> inputs;
  std::vector<void*> outputs;
  for (const View& view : bound.inputs) inputs.push_back(view.data);
  for (const View& view : bound.outputs) outputs.push_back(view.data);
  bound.call.run(bound.call.state, inputs.data(), outputs.data(), nullptr);
  return info.Env().Undefined();
}

}  // namespace

const napi_type_tag* StepKindTag(StepUnwrap unwrap) {
  std::lock_guard<std::mutex> lock(kinds_mutex);
  if (kind_count == kMaxStepKinds) std::abort();  // a programming error: raise kMaxStepKinds
  kind_tags[kind_count] = {0x77686974746c6570ULL /* "whittlep" */, kind_count};
  kind_unwraps[kind_count] = unwrap;
  return &kind_tags[kind_count++];
}

void RegisterOperator(Napi::Env env, Napi::Object exports, const char* name, OperatorReader reader) {
  {
    std::lock_guard<std::mutex> lock(readers_mutex);
    Readers()[name] = reader;
  }
  exports.Set(name, Napi::Function::New(env, CallOperator, name, reinterpret_cast<void*>(reader)));
}

void RegisterPlan(Napi::Env env, Napi::Object exports) {
  exports.Set("Plan", Plan::Define(env));
  exports.Set("Operator", Operator::Define(env));
  exports.Set("FrameSource", FrameSource::Define(env));
  exports.Set("createFramePipe", Napi::Function::New(env, CreateFramePipe, "createFramePipe"));
}

}  // namespace whittle
