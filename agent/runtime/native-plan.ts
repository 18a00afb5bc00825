// A model's execution: its steps (one executor per node, with the arena views it reads and writes) grouped
// into runs of consecutive native steps, each run executed by ONE call into the addon (native/plan.ts), and
// the TypeScript executors between them called as before. Built once, at load:
//   - every native executor says which addon calls its run() makes (Executor.plan); those calls become
//     steps of one ExecutionPlan whose buffer 0 is the model's arena (the static one from the memory
//     planner: nothing is allocated per run) and whose other buffers are arrays the executors own (a
//     fixed-point layer's words, constants a concat reads);
//   - the addon checks every operand place against its buffer and the layer's sizes when the plan is built;
//   - a step whose calls cannot be bound (plan() throws) keeps its node-by-node run() and is reported in
//     `refused`, with the reason; it only splits the plan, it never computes differently.
// A run is then: plan.run(0, a), a TypeScript op, plan.run(a, b), ... (`segments`), and the thread pool's
// workers are woken once per plan.run rather than once per layer.
import { ExecutionPlan, type PlanFrame, type PlanPlace, type PlanStep } from '../../native/plan.js';
import type { Executor, NativeStepCall } from './executor.js';
import { GraphError } from './graph-error.js';
import type { TensorData } from './tensor.js';

/** One node as the model runs it: its executor and the views it reads and writes. */
export interface ModelStep {
  name: string;
  executor: Executor;
  inputs: readonly (TensorData | undefined)[];
  outputs: readonly TensorData[];
}

export interface ExecutionSummary {
  /** Addon calls of the plan (a node may make several: a fixed-point layer quantizes, runs, dequantizes). */
  nativeSteps: number;
  /** Calls into the addon's plan per model run. */
  nativeCalls: number;
  /** Nodes run by TypeScript executors, between the plan's calls. */
  typescriptNodes: string[];
  /** Native nodes that could not be bound as plan steps (they run node by node), and why. */
  refused: { node: string; reason: string }[];
}

export interface Execution {
  /** Runs steps [from, to) (default: all of them) in order. */
  run(from?: number, to?: number): void;
  /** A function that runs steps [from, to) as run(from, to) does, with its calls looked up once: for a caller
   * that runs the same range at every frame (the agent), a run is then its calls and nothing else. */
  runner(from?: number, to?: number): () => void;
  /** Steps [from, end) with a camera frame's way in and out, as one native call (ExecutionPlan.frameRunner);
   * undefined when those steps are not one call of the native plan, or a view is not in its arena. */
  frameRunner?(from: number, frame: FrameIO): ((frame: Uint8Array) => number) | undefined;
  summary: ExecutionSummary;
}

/** PlanFrame with the model's views in place of plan places. */
export type FrameIO = Omit<PlanFrame, 'input' | 'output'> & { input: TensorData; output: TensorData };

/** One function making `calls` in order (the call itself when there is one). */
export function inOrder(calls: readonly (() => void)[]): () => void {
  if (calls.length === 1) return calls[0]!;
  return () => {
    for (const call of calls) call();
  };
}

/** Node by node from JavaScript: every executor's run() (the path the plan is tested against). */
export function nodeByNode(steps: readonly ModelStep[]): Execution {
  const run = (from = 0, to = steps.length): void => {
    for (let i = from; i < to; i++) steps[i]!.executor.run(steps[i]!.inputs, steps[i]!.outputs);
  };
  return {
    run,
    runner:
      (from = 0, to = steps.length) =>
      () =>
        run(from, to),
    summary: {
      nativeSteps: 0,
      nativeCalls: 0,
      typescriptNodes: [...new Set(steps.map((s) => s.name))],
      refused: [],
    },
  };
}

export function planExecution(arena: ArrayBuffer, steps: readonly ModelStep[]): Execution {
  const buffers: ArrayBufferView[] = [new Uint8Array(arena)];
  const owned = new Map<ArrayBufferView, number>();
  const place = (array: ArrayBufferView): PlanPlace => {
    if (array.buffer === arena) return { buffer: 0, offset: array.byteOffset, bytes: array.byteLength };
    let index = owned.get(array);
    if (index === undefined) {
      index = buffers.length;
      buffers.push(array);
      owned.set(array, index);
    }
    return { buffer: index, offset: 0, bytes: array.byteLength };
  };
  const planSteps: PlanStep[] = [];
  const summary: ExecutionSummary = { nativeSteps: 0, nativeCalls: 0, typescriptNodes: [], refused: [] };
  // What a run does, in order: a range of plan steps or a TypeScript step.
  const segments: ({ first: number; last: number } | ModelStep)[] = [];
  // Where a run from node i starts: its segment and, in a native segment, its plan steps [planStep, planEnd).
  const starts: { segment: number; planStep: number | undefined; planEnd: number }[] = [];
  for (const step of steps) {
    let calls: NativeStepCall[] | undefined;
    if (step.executor.plan !== undefined) {
      try {
        calls = step.executor.plan(step.inputs, step.outputs);
      } catch (err) {
        // A node chunked over the batch (model.ts) has a step per chunk: it is reported once.
        if (!summary.refused.some((r) => r.node === step.name))
          summary.refused.push({ node: step.name, reason: (err as Error).message });
      }
    }
    if (calls === undefined) {
      starts.push({ segment: segments.length, planStep: undefined, planEnd: 0 });
      segments.push(step);
      if (!summary.typescriptNodes.includes(step.name)) summary.typescriptNodes.push(step.name);
      continue;
    }
    const first = planSteps.length;
    for (const call of calls) {
      planSteps.push({ layer: call.layer, inputs: call.inputs.map(place), outputs: call.outputs.map(place) });
    }
    const previous = segments[segments.length - 1];
    if (previous !== undefined && 'last' in previous && previous.last === first) {
      previous.last = planSteps.length;
    } else {
      segments.push({ first, last: planSteps.length });
    }
    starts.push({ segment: segments.length - 1, planStep: first, planEnd: planSteps.length });
  }
  let plan: ExecutionPlan;
  try {
    plan = new ExecutionPlan(buffers, planSteps);
  } catch (err) {
    // Every place comes from the memory plan and the executors' own arrays: a refusal is a runtime bug.
    throw new GraphError(`the native execution plan was refused: ${(err as Error).message}`);
  }
  summary.nativeSteps = planSteps.length;
  const thunks = segments.map((segment): (() => void) => {
    if ('last' in segment) {
      summary.nativeCalls++;
      return plan.runner(segment.first, segment.last);
    }
    const { executor, inputs, outputs } = segment;
    return () => executor.run(inputs, outputs);
  });
  // The calls that run steps [from, to): consecutive steps of one native segment are one plan call.
  const callsOf = (from: number, to: number): (() => void)[] => {
    if (from === 0 && to === steps.length) return thunks;
    const calls: (() => void)[] = [];
    for (let i = from; i < to;) {
      const start = starts[i]!;
      if (start.planStep === undefined) {
        calls.push(thunks[start.segment]!);
        i++;
        continue;
      }
      let j = i + 1;
      while (j < to && starts[j]!.segment === start.segment) j++;
      calls.push(plan.runner(start.planStep, starts[j - 1]!.planEnd));
      i = j;
    }
    return calls;
  };
  return {
    run: (from = 0, to = steps.length) => {
      for (const call of callsOf(from, to)) call();
    },
    runner: (from = 0, to = steps.length) => inOrder(callsOf(from, to)),
    frameRunner: (from, frame) => {
      const start = starts[from];
      if (start?.planStep === undefined || starts.some((s, i) => i >= from && s.segment !== start.segment))
        return undefined;
      if (frame.input.buffer !== arena || frame.output.buffer !== arena) return undefined;
      return plan.frameRunner(start.planStep, planSteps.length, {
        ...frame,
        input: place(frame.input),
        output: place(frame.output),
      });
    },
    summary,
  };
}
