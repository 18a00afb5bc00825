// Execution plans (native/src/binding_plan.h): the native steps of a model run by ONE call into the addon,
// over a static arena. A plan is built once from steps — a layer object (PackedLayer.step, or an operator
// from createOperator) and the place of each of its operands in one of the plan's buffers — and the addon
// checks every place against its buffer and against the layer's operand sizes when it is built: a bad plan
// is refused with a RangeError naming the step and operand, never run out of bounds. run(first, last) runs
// a range of steps in order, holding the thread pool's workers awake across them (one wake-up per call).
import { loadNativeBinding, type StepLayer } from './index.js';

/** Bytes [offset, offset + bytes) of plan buffer `buffer` (offset from the start of that view). */
export interface PlanPlace {
  buffer: number;
  offset: number;
  bytes: number;
}

/** One step: a layer and the places of its inputs and outputs, in the order the layer takes them. */
export interface PlanStep {
  layer: StepLayer;
  inputs: readonly PlanPlace[];
  outputs: readonly PlanPlace[];
}

/** The stateless operators a plan can run: each takes the arguments of its function in native/index.ts
 * (native/formats.ts for the fixed-point conversions; copy is { input, output } of one type and length),
 * whose arrays give the operand types and lengths. */
export type OperatorName =
  | 'maxPool2d'
  | 'avgPool2d'
  | 'globalAvgPool'
  | 'quantizeLinear'
  | 'dequantizeLinear'
  | 'add'
  | 'clamp'
  | 'softmax'
  | 'concat'
  | 'channelShuffle'
  | 'copy'
  | 'sigmoid'
  | 'hardSigmoid'
  | 'hardSwish'
  | 'mulChannels'
  | 'lookup'
  | 'slice'
  | 'fixedPointQuantize'
  | 'fixedPointDequantize';

interface NativePlan {
  run(first?: number, last?: number): void;
  runner(first?: number, last?: number): () => void;
  readonly steps: number;
}

interface PlanBinding {
  Plan: new (buffers: readonly ArrayBufferView[], steps: readonly PlanStep[]) => NativePlan;
  Operator: new (name: OperatorName, args: object) => StepLayer;
}

function planBinding(): PlanBinding {
  return loadNativeBinding() as unknown as PlanBinding;
}

/** A stateless operator bound to its parameters, as a plan step. Throws what its function would throw on
 * the same arguments. */
export function createOperator(name: OperatorName, args: object): StepLayer {
  return new (planBinding().Operator)(name, args);
}

export class ExecutionPlan {
  readonly #native: NativePlan;

  /** buffers: typed arrays (or DataViews) the places point into; the plan keeps them and its layers alive.
   * They must stay attached and unresized: run() refuses to touch a buffer that changed. */
  constructor(buffers: readonly ArrayBufferView[], steps: readonly PlanStep[]) {
    this.#native = new (planBinding().Plan)(buffers, steps);
  }

  get steps(): number {
    return this.#native.steps;
  }

  /** Runs steps [first, last) (default: all) in one call. */
  run(first?: number, last?: number): void {
    this.#native.run(first, last);
  }

  /** run(first, last) as a function of no arguments, the addon's own (its range checked once, here): what a
   * caller keeps when it runs the same range at every frame. */
  runner(first?: number, last?: number): () => void {
    return this.#native.runner(first, last);
  }
}

/** output = input, byte for byte (same type and length, no shared memory): a reshape in a plan. */
export function copy<T extends Int8Array | Uint8Array | Float32Array>(args: { input: T; output: T }): void {
  (loadNativeBinding() as unknown as { copy(args: object): void }).copy(args);
}
