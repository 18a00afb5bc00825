// Native execution plans (issue 13): the steps of a model that run on native layers, executed by ONE call
// from JavaScript over a static arena. A plan is built once, at model load, from layer objects (Conv2d,
// FormatLayer, Operator) and, per step, the place of each operand in one of the plan's buffers (the arena
// from the memory planner, or a buffer of its own such as a fixed-point layer's words). Every place is
// checked against its buffer and against the layer's own operand sizes when the plan is built, so a bad plan
// is refused with a RangeError and a run never reads or writes out of bounds; a run re-checks only that the
// buffers are still the ones checked (not detached or resized since).
//
// The step interface. Every native layer object implements PlanStep: its operand sizes and a run on raw
// pointers that runs no JavaScript. How to add a kernel to plans:
//   - a layer with state (packed weights): derive its ObjectWrap class from PlanStep too, implement
//     StepInputs, StepOutputs and RunStep (have its JS run() call the same code), and call
//     TagPlanStep<Layer>(env, info.This()) at the end of its constructor (Conv2d, FormatLayer do);
//   - a stateless operator: write one OperatorReader (checks its JS arguments, returns a BoundOperator)
//     and register it with RegisterOperator: that gives both its JS function (exports[name]) and
//     `new Operator(name, args)` for plans, from the same checks (pooling, clamp, softmax, ... do).
#ifndef WHITTLE_BINDING_PLAN_H_
#define WHITTLE_BINDING_PLAN_H_

#include <napi.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "binding_args.h"
#include "kernel_abi.h"
#include "threadpool.h"

namespace whittle {

// One operand as a layer reads or writes it: its size in bytes and the alignment its elements need.
struct StepOperand {
  size_t bytes;
  size_t alignment;
};

// A step as a plan runs it: a plain function and the state it reads, resolved once when the plan is built
// (no virtual call or type dispatch per step). Returns null, or a message when it cannot run.
using StepFn = const char* (*)(void* state, const void* const* inputs, void* const* outputs,
                               whittle_threadpool* pool);
struct StepCall {
  StepFn run;
  void* state;
};

class PlanStep {
 public:
  virtual ~PlanStep() = default;
  virtual std::vector<StepOperand> StepInputs() const = 0;
  virtual std::vector<StepOperand> StepOutputs() const = 0;
  // Runs the layer on one pointer per operand (each checked against the sizes above, outputs disjoint from
  // inputs) on `pool` (NULL = the calling thread). Returns null, or a message when it cannot run (a disposed
  // layer, out of memory). Must not run JavaScript.
  virtual const char* RunStep(const void* const* inputs, void* const* outputs, whittle_threadpool* pool) = 0;
  // RunStep as a plain function, asked once per plan step when a plan is built. A layer whose run is one C
  // call overrides it to call that directly; the default goes through RunStep.
  virtual StepCall Call() { return {&RunVirtual, this}; }

 private:
  static const char* RunVirtual(void* self, const void* const* inputs, void* const* outputs,
                                whittle_threadpool* pool) {
    return static_cast<PlanStep*>(self)->RunStep(inputs, outputs, pool);
  }
};

// Marks `object` (an instance of Layer, which derives from PlanStep) as a step a plan may take. A plan
// accepts only objects so tagged, so no other object is ever unwrapped as a layer.
using StepUnwrap = PlanStep* (*)(const Napi::Object& object);
const napi_type_tag* StepKindTag(StepUnwrap unwrap);
template <typename Layer>
PlanStep* UnwrapStepAs(const Napi::Object& object) {
  return Napi::ObjectWrap<Layer>::Unwrap(object);
}
template <typename Layer>
void TagPlanStep(Napi::Env env, const Napi::Object& object) {
  static const napi_type_tag* tag = StepKindTag(&UnwrapStepAs<Layer>);
  NAPI_THROW_IF_FAILED_VOID(env, napi_type_tag_object(env, object, tag));
}

// A bound operator's run as a StepFn: the operator's function object (a lambda holding its parameters and
// its chosen kernel) called directly, inlined here.
template <typename Run>
WHITTLE_HOT const char* RunBound(void* state, const void* const* inputs, void* const* outputs,
                                 whittle_threadpool* pool) {
  (*static_cast<const Run*>(state))(inputs, outputs, pool);
  return nullptr;
}

// A stateless operator with its arguments checked: its operands (the views it was given: their types and
// lengths are the operand sizes) and its computation on raw pointers, parameters bound: `call` runs `state`,
// a function object void(const void* const* inputs, void* const* outputs, whittle_threadpool* pool).
struct BoundOperator {
  template <typename Run>
  BoundOperator(std::vector<args::View> in, std::vector<args::View> out, Run run)
      : inputs(std::move(in)), outputs(std::move(out)), state(std::make_shared<const Run>(std::move(run))) {
    call = {&RunBound<Run>, const_cast<void*>(state.get())};
  }
  std::vector<args::View> inputs;
  std::vector<args::View> outputs;
  std::shared_ptr<const void> state;
  StepCall call;
};
// Reads and checks one call's arguments (the operator's JS argument object), throwing a TypeError or
// RangeError as the operator's function does, and re-reads every view last (ExpectUnchanged).
using OperatorReader = BoundOperator (*)(const Napi::Object& args);

// exports[name] = a function running the operator on its arguments, and `name` known to `new Operator`.
void RegisterOperator(Napi::Env env, Napi::Object exports, const char* name, OperatorReader reader);

// Adds the Plan and Operator classes to exports (after every RegisterOperator).
void RegisterPlan(Napi::Env env, Napi::Object exports);

}  // namespace whittle

#endif  // WHITTLE_BINDING_PLAN_H_
