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
  | 'gelu'
  | 'layerNorm'
  | 'mulChannels'
  | 'lookup'
  | 'slice'
  | 'resize'
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

/** FrameSource's status: frames read, frames read but not run (a newer one was waiting, or no runner was
 * attached), results overwritten before they were drained, warm-up runs (FrameSource.warmAhead), and why the
 * loop ended (null while it runs). */
export interface FrameSourceStatus {
  received: number;
  dropped: number;
  lost: number;
  warmups: number;
  ended: string | null;
}

interface NativeFrameSource {
  attach(runner: ((frame: Uint8Array) => number) | null, generation: number): void;
  drain(out: Float64Array): number;
  last(frame: Uint8Array, record: Float64Array): boolean;
  stop(): void;
  warmAhead(leadMs: number): void;
  readonly status: FrameSourceStatus;
}

interface PlanBinding {
  Plan: new (buffers: readonly ArrayBufferView[], steps: readonly PlanStep[]) => NativePlan;
  Operator: new (name: OperatorName, args: object) => StepLayer;
  FrameSource: new (fd: number, frameBytes: number, capacity?: number) => NativeFrameSource;
  createFramePipe(): [number, number];
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

/** One result of a FrameSource: the generation of the attach in force, the frame's number in the stream
 * (dropped frames count), its latency (frame bytes read -> scores ready, ms), class index and confidence (the
 * class's score). */
export interface FrameRecord {
  generation: number;
  index: number;
  latencyMs: number;
  classIndex: number;
  confidence: number;
}

/** Numbers per record in FrameSource's drain and last arrays. */
const RECORD_NUMBERS = 5;

/**
 * The native frame loop (native/src/frame_source.h): a thread of the addon reads frames of `frameBytes` from
 * the pipe `fd` (which it owns from then on), runs each through the attached frame runner, and keeps the
 * results until drained. No JavaScript runs per frame. While a runner is attached its plan belongs to the
 * loop's thread: the plan's run(), runner() and frame runners throw, and its buffers must not be detached.
 * Call stop() before dropping a source.
 */
export class FrameSource {
  readonly #native: NativeFrameSource;
  readonly #out: Float64Array;
  readonly #record = new Float64Array(RECORD_NUMBERS);

  /** capacity: results kept undrained (older ones are lost beyond it, counted in status.lost). */
  constructor(fd: number, frameBytes: number, capacity = 1024) {
    this.#native = new (planBinding().FrameSource)(fd, frameBytes, capacity);
    this.#out = new Float64Array(capacity * RECORD_NUMBERS);
  }

  /** Frames go through `runner` (an ExecutionPlan.frameRunner function of frameBytes frames) from now on, its
   * records tagged `generation`; null drops them. When it returns, the runner replaced is not running. */
  attach(runner: ((frame: Uint8Array) => number) | null, generation: number): void {
    this.#native.attach(runner, generation);
  }

  /** Warm-ups ahead of the frames: from now on the loop runs the last frame again through the attached runner
   * `leadMs` before the next frame is due (judged from the frames' arrival times), its result dropped, so that
   * the runner's code and data are in the caches when the frame comes; 0 turns them off (the default). A
   * frame that came while a warm-up ran is charged from the warm-up's start. Costs one more run per frame
   * (status.warmups counts them). Throws a RangeError for a lead outside [0, 1000] ms. */
  warmAhead(leadMs: number): void {
    this.#native.warmAhead(leadMs);
  }

  /** Calls `each` on every result not drained yet, oldest first. */
  drain(each: (record: FrameRecord) => void): void {
    const out = this.#out;
    for (;;) {
      const n = this.#native.drain(out);
      for (let i = 0; i < n; i++) each(recordAt(out, i * RECORD_NUMBERS));
      if (n < out.length / RECORD_NUMBERS) return;
    }
  }

  /** The last frame run (copied into `frame`, of frameBytes) and its record; undefined before any. */
  last(frame: Uint8Array): FrameRecord | undefined {
    return this.#native.last(frame, this.#record) ? recordAt(this.#record, 0) : undefined;
  }

  get status(): FrameSourceStatus {
    return this.#native.status;
  }

  /** Detaches, stops the thread and closes the pipe; idempotent. */
  stop(): void {
    this.#native.stop();
  }
}

function recordAt(values: Float64Array, at: number): FrameRecord {
  return {
    generation: values[at]!,
    index: values[at + 1]!,
    latencyMs: values[at + 2]!,
    classIndex: values[at + 3]!,
    confidence: values[at + 4]!,
  };
}

/** A new pipe for a FrameSource: [readFd, writeFd], both close-on-exec (a child spawned with writeFd as a
 * stdio entry gets its own copy; close writeFd here once it is spawned, so the source sees the end). */
export function createFramePipe(): [number, number] {
  return planBinding().createFramePipe();
}
