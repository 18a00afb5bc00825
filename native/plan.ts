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
  | 'slice'
  | 'fixedPointQuantize'
  | 'fixedPointDequantize';

/** A camera frame's way into a plan and its scores' way out (ExecutionPlan.frameRunner). */
export interface PlanFrame {
  /** Where the frame is written: the plan's input tensor, of the tables' element type. */
  input: PlanPlace;
  /** Per channel, channel after channel, 256 values of the input's element type: pixel byte -> the input
   * tensor's value (normalized, and quantized as the model's input is). */
  tables: Float32Array | Int8Array | Uint8Array;
  /** Bytes per pixel of a frame ([height][width][channels]), 1 to 4. */
  channels: number;
  /** The input is NCHW (channel planes); else it keeps the frame's interleaving. */
  planar: boolean;
  /** The scores: f32, or quantized (int8 when signed, else uint8) and dequantized into `scores` as
   * scale * (q - zeroPoint), in double rounded to f32. */
  output: PlanPlace;
  quantized?: { signed: boolean; scale: number; zeroPoint: number; scores: Float32Array };
}

interface NativePlan {
  run(first?: number, last?: number): void;
  runner(first?: number, last?: number): () => void;
  frameRunner(
    first: number | undefined,
    last: number | undefined,
    frame: PlanFrame,
  ): (frame: Uint8Array) => number;
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

  /** runner(first, last) with a camera frame's way in and out in the same native call: the function
   * (frame: Uint8Array) => the index of the first highest score. It writes the frame into the input through
   * the tables, runs the steps, and reads the scores (dequantized into `quantized.scores` when quantized).
   * Throws a TypeError or RangeError naming the field of `frame` it refuses. */
  frameRunner(
    first: number | undefined,
    last: number | undefined,
    frame: PlanFrame,
  ): (frame: Uint8Array) => number {
    return this.#native.frameRunner(first, last, frame);
  }
}

/** output = input, byte for byte (same type and length, no shared memory): a reshape in a plan. */
export function copy<T extends Int8Array | Uint8Array | Float32Array>(args: { input: T; output: T }): void {
  (loadNativeBinding() as unknown as { copy(args: object): void }).copy(args);
}
