// What an operator's executor is and what it is prepared from. An executor is prepared once per node and
// shape set (PrepareContext), then only reads inputs and writes outputs. Every (op, number format) pair has a
// TypeScript reference executor (ops/, over reference-ops/), the oracle; a native factory
// (native-executors.ts) may replace it node by node. The registry joining the two is ops/index.ts.
import type { StepLayer } from '../../native/index.js';
import type { DecodedTensor } from '../package/encodings.js';
import type { ManifestNode, NumberFormat } from '../package/manifest.js';
import type { TensorData, TensorSpec } from './tensor.js';

export interface Executor {
  /** Which implementation runs: `reference:<op>_<format>` or a native kernel name. */
  kernel: string;
  /** Bytes the executor holds outside the arena for the whole model's life (the word buffers of a fixed-point
   * layer, the weights a hashed layer expands at load, the dense weights a binary-weight, ternary or codebook
   * layer expanded its own into); counted against the memory budget with the arena and the weights. */
  scratchBytes?: number;
  /** The executor copied its constant inputs into a native layer of its own when prepared, and run() and
   * plan() do not read them: the runtime may drop its fp32 expansion of a compressed constant that only such
   * executors read (Model). */
  ownsConstants?: boolean;
  run(inputs: readonly (TensorData | undefined)[], outputs: readonly TensorData[]): void;
  /** The addon calls run() makes, as steps of an execution plan (native-plan.ts): given the views run()
   * would get, each call's layer and operand arrays (those views, or arrays the executor owns: word buffers,
   * constants) in the order the layer takes them. Absent: a TypeScript executor, which splits the plan. */
  plan?(inputs: readonly (TensorData | undefined)[], outputs: readonly TensorData[]): NativeStepCall[];
}

/** One addon call of an executor, as a plan step: its operands are arena views or arrays of its own. */
export interface NativeStepCall {
  layer: StepLayer;
  inputs: readonly ArrayBufferView[];
  outputs: readonly ArrayBufferView[];
}

export interface PrepareContext {
  node: ManifestNode;
  format: NumberFormat;
  inputs: readonly (TensorSpec | undefined)[];
  outputs: readonly TensorSpec[];
  /** Data of constant inputs (compressed weights already expanded to fp32 for reference executors). */
  constants: readonly (TensorData | undefined)[];
  /** The same constants as the package stores them (fixed-point layers read their int16 / int8 words here);
   * absent where constants were computed rather than read (constant folding while a model is imported). */
  decoded?: readonly (DecodedTensor | undefined)[];
  /** Use the reference executors even where a native kernel exists (tests compare the two). */
  referenceOnly?: boolean;
  /** Ternary and codebook layers: expand the weights onto the dense kernels (ModelOptions; default true). */
  expandWeights?: boolean;
}

/** Prepares a node's executor; a reference factory always gives one (or throws a GraphError). */
export type ExecutorFactory = (context: PrepareContext) => Executor;

/** Prepares a node's native executor, or gives undefined when its kernel cannot take the node (a weight that
 * is not a constant, ONNX rounding, dilated or ceil-mode pooling, ...): the reference executor runs instead. */
export type NativeFactory = (context: PrepareContext) => Executor | undefined;

export interface OpDefinition {
  /** Output dtypes and shapes from the inputs'; `declared` are the manifest's output tensors (for dtypes and
   * quantization that only the manifest knows). */
  infer(
    node: ManifestNode,
    inputs: readonly (TensorSpec | undefined)[],
    declared: readonly TensorSpec[],
  ): TensorSpec[];
  macs(
    node: ManifestNode,
    inputs: readonly (TensorSpec | undefined)[],
    outputs: readonly TensorSpec[],
  ): number;
  executors: Partial<Record<NumberFormat, ExecutorFactory>>;
  /** Whether `node` computes image b of every output (dimension 0 is the batch) from image b of its
   * activation inputs alone, so that it may run on a few images at a time (batch-chunks.ts, which also checks
   * the shapes by inference at the chunk's batch). Absent: never chunked. */
  perImage?: (node: ManifestNode) => boolean;
}

/** OpDefinition.perImage of an op that is per image whatever its attributes. */
export const perImage = (): boolean => true;

/** The same executor for fp32 and int8 tensors (ops that only move data, or compute in the input's dtype). */
export const f32AndInt8 = (factory: ExecutorFactory): OpDefinition['executors'] => ({
  f32: factory,
  int8: factory,
});
