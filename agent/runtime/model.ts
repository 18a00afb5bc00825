// A package ready to run: decoded constants, shapes inferred for the chosen batch size, one executor per
// node (op x number format), and a static memory plan with one arena. Loading refuses, before anything
// runs, a graph the runtime cannot execute (GraphError) or one over the memory budget (MemoryBudgetError).
import { getThreads, setThreads } from '../../native/index.js';
import { type DecodedTensor, toFloat32, toInt8 } from '../package/encodings.js';
import type { Manifest, ManifestNode, NumberFormat } from '../package/manifest.js';
import type { Package } from '../package/reader.js';
import { percentile } from '../telemetry/stats-window.js';
import { type BatchSegment, planBatchChunks } from './batch-chunks.js';
import { compilePackage, type CompileReport, emptyReport } from './compile/index.js';
import { GraphError, InputError, MemoryBudgetError } from './graph-error.js';
import { type Lifetime, type MemoryPlan, planMemory } from './memory-plan.js';
import { nativeAvailable } from './native-executors.js';
import {
  type Execution,
  type ExecutionSummary,
  type FrameIO,
  inOrder,
  type ModelStep,
  nodeByNode,
  planExecution,
} from './native-plan.js';
import { EXECUTORS, OPS } from './ops/index.js';
import { DTYPE_BYTES, elements, type TensorData, type TensorSpec, view } from './tensor.js';

export interface ModelOptions {
  /** Batch size: replaces dimension 0 of every graph input (default: as declared in the package). */
  batch?: number;
  /** Refuse the model when arena + weights exceed this many bytes. */
  memoryBudgetBytes?: number;
  /** Run every layer on the TypeScript reference operators, even where a native kernel exists. */
  referenceOnly?: boolean;
  /** Ternary and codebook layers expand their weights at load onto the dense fp32 / int8 kernels (default
   * true: several times faster, 4 bytes a weight in memory, counted in scratchBytes); false keeps the
   * formats' own kernels on the compressed weights. */
  expandWeights?: boolean;
  /** Run every node's executor from JavaScript, one by one, instead of the native execution plan
   * (native-plan.ts): the path the plan is tested against. */
  nodeByNode?: boolean;
  /** Threads the native conv2d / fully-connected kernels split output rows over (1..64). The kernel
   * library's pool is per process, so the last model loaded sets it. */
  threads?: number;
  /** Run the compile pass (agent/runtime/compile/) on the graph before planning it (default true); false runs
   * the package's graph node for node, the reference the compiled graph is tested against. */
  compile?: boolean;
  /** Fuse residual adds into the conv before them when compiling (default true); false keeps conv and add
   * apart (A/B runs; the compile report says so). */
  fuseResidual?: boolean;
  /** At a batch above 1, the per-image activation bytes times images a node's batch chunk may reach
   * (batch-chunks.ts; default BATCH_CHUNK_BYTES); 0 runs every node on the whole batch at once. */
  batchChunkBytes?: number;
}

/** Threads the agent runs packages on: the kernel library's pool as it starts (the agent never sets a
 * count), and so what a latency "measured on this machine's runtime" is timed at (evaluate-package.ts
 * compareLatency, plan/estimator.ts). A process that trains has set the pool to the trainer's count
 * (train/native-backend.ts), which would time the package on two threads and, on a shared machine, on one
 * or two by turns. */
export const AGENT_THREADS = 1;

/** Runs `fn` with the kernel library's pool at `threads` (1..64), then puts back the count it had (a
 * trainer's, say). Without the library there is no pool: `fn` just runs. */
export function withThreads<T>(threads: number, fn: () => T): T {
  checkThreads(threads);
  if (!nativeAvailable()) return fn();
  const saved = getThreads();
  setThreads(threads);
  try {
    return fn();
  } finally {
    setThreads(saved);
  }
}

function checkThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1 || threads > 64)
    throw new GraphError(`threads must be an integer in [1, 64], got ${threads}`);
}

/** A node's activations per batch chunk: a quarter of a core's L2 cache on the x86 the benchmark runs on (1 MB), half of a 512 KB one. */
export const BATCH_CHUNK_BYTES = 256 * 1024;

/** A node that runs on a TypeScript reference executor although the runtime prefers native kernels. */
export interface FallbackNode {
  node: string;
  op: string;
  format: NumberFormat;
  why: string;
}

export interface LayerInfo {
  name: string;
  op: string;
  format: NumberFormat;
  kernel: string;
  macs: number;
  /** Bytes of this node's constant inputs as stored in the package. */
  weightBytes: number;
  outputShapes: number[][];
}

/** One node's time within a run (Model.profile). */
export interface NodeProfile {
  name: string;
  op: string;
  kernel: string;
  /** Median milliseconds of the node over the profiled runs. */
  ms: number;
}

export interface TensorResult {
  name: string;
  dtype: TensorSpec['dtype'];
  shape: number[];
  data: TensorData;
}

/** Every node whose op or op x format this runtime lacks, reported together before anything runs. */
export function unsupportedNodes(nodes: readonly ManifestNode[]): string[] {
  return nodes.flatMap((node) => {
    const op = OPS[node.op];
    if (op === undefined) return [`${node.name} (op ${node.op})`];
    if (op.executors[node.format] === undefined)
      return [`${node.name} (op ${node.op} in format ${node.format})`];
    return [];
  });
}

function constantData(decoded: DecodedTensor, spec: TensorSpec): TensorData {
  if (decoded.kind === 'raw') return decoded.values;
  // Compressed weights: an int8 tensor (sparse, or bit planes) expanded to int8 for the int8 kernels; any other
  // expanded to fp32 for the reference executors (native kernels read `decoded` as is).
  if (spec.dtype === 'i8') return toInt8(decoded, elements(spec.shape));
  return toFloat32(decoded, elements(spec.shape));
}

/** Why `node` runs on its reference executor: no native kernel for its op x format, or one that refused it. */
function fallbackReason(node: ManifestNode): string {
  if (!nativeAvailable()) return 'the native kernel library is not loaded on this machine';
  if (!EXECUTORS.some((entry) => entry.op === node.op && entry.format === node.format && entry.native))
    return `no native kernel for ${node.op} in format ${node.format}`;
  return 'the native kernel does not take this node (its attributes, shapes or quantization)';
}

/** Every tensor's spec: the graph inputs at `batch` images (undefined: as declared), then shape inference in
 * graph order; at the declared batch, inferred shapes must match the manifest's. */
function inferSpecs(
  manifest: Manifest,
  declared: readonly TensorSpec[],
  batch: number | undefined,
  declaredBatch: number,
): TensorSpec[] {
  const specs = declared.map((s) => ({ ...s, shape: [...s.shape] }));
  // A batch size replaces dimension 0 of every graph input (all inputs are batched data).
  if (batch !== undefined) {
    for (const input of manifest.inputs) {
      const spec = specs[input.tensor]!;
      if (spec.shape.length > 0) spec.shape[0] = batch;
    }
  }
  for (const node of manifest.nodes) {
    const op = OPS[node.op]!;
    const inputs = node.inputs.map((i) => (i < 0 ? undefined : specs[i]));
    const outputs = op.infer(
      node,
      inputs,
      node.outputs.map((o) => declared[o]!),
    );
    if (outputs.length !== node.outputs.length) {
      throw new GraphError(
        `op ${node.op} produces ${outputs.length} output(s), the manifest lists ${node.outputs.length}`,
        node.name,
      );
    }
    node.outputs.forEach((o, k) => {
      const inferred = outputs[k]!;
      const expected = declared[o]!;
      if (inferred.dtype !== expected.dtype) {
        throw new GraphError(
          `output ${k} is ${inferred.dtype}, the manifest says ${expected.dtype}`,
          node.name,
        );
      }
      if (
        (batch ?? declaredBatch) === declaredBatch &&
        inferred.shape.join(',') !== expected.shape.join(',')
      ) {
        throw new GraphError(
          `output ${k} has shape [${inferred.shape.join(', ')}], the manifest says [${expected.shape.join(', ')}]`,
          node.name,
        );
      }
      specs[o] = { ...expected, shape: inferred.shape };
    });
  }
  return specs;
}

export class Model {
  /** The graph as planned: the package's, compiled. Tensor indices are the package manifest's. */
  readonly manifest: Manifest;
  /** What the compile pass did and could not do (empty when `compile: false`). */
  readonly compileReport: CompileReport;
  /** Nodes on reference executors, and why (empty when `referenceOnly` asked for them all). */
  readonly fallbacks: readonly FallbackNode[];
  readonly batch: number;
  readonly plan: MemoryPlan;
  readonly layers: readonly LayerInfo[];
  /** Bytes of all constants as the runtime expands them at load (what the memory budget counts). */
  readonly weightBytes: number;
  /** Of those, the bytes the runtime still holds after load: a compressed constant that only native layers
   * read, each with its own copy (scratchBytes), is dropped. */
  readonly heldWeightBytes: number;
  /** Bytes executors hold outside the arena (fixed-point layers' word buffers on the native kernels, hashed
   * layers' expanded weights, the dense weights binary-weight, ternary and codebook layers expand theirs into). */
  readonly scratchBytes: number;
  readonly specs: readonly TensorSpec[];
  readonly #arena: ArrayBuffer;
  readonly #views: (TensorData | undefined)[];
  /** Each node's executor with the views it reads and writes. Views are fixed at load (arena slices and
   * constants), so a run allocates nothing per node — a camera loop at 30 fps then leaves V8's young
   * generation small, which is most of the agent's RSS. */
  readonly #steps: ModelStep[];
  /** Per node, the indices of its steps in #steps: one, or one per batch chunk of its segment. */
  readonly #nodeSteps: number[][];
  /** Nodes [first, last) run `images` images at a time (batch-chunks.ts); one segment of all the batch when
   * nothing is chunked. */
  readonly batchSegments: readonly BatchSegment[];
  /** How a run executes the steps: the native plan's calls with the TypeScript steps between them. */
  readonly #execution: Execution;
  /** What the execution plan holds: native steps, calls per run, TypeScript nodes, refusals. */
  readonly execution: ExecutionSummary;

  private constructor(source: Package, options: ModelOptions) {
    const { manifest, constants: decoded, report } = Model.#compiled(source, options);
    const pkg: Package = { ...source, manifest, constants: decoded };
    this.manifest = manifest;
    this.compileReport = report;
    if (options.threads !== undefined) {
      checkThreads(options.threads);
      if (nativeAvailable()) setThreads(options.threads);
    }
    const missing = unsupportedNodes(manifest.nodes);
    if (missing.length > 0) {
      throw new GraphError(`this runtime cannot execute ${missing.length} node(s): ${missing.join(', ')}`);
    }
    const declared: TensorSpec[] = manifest.tensors.map((t) => ({
      dtype: t.dtype,
      shape: [...t.shape],
      ...(t.quant ? { quant: t.quant } : {}),
    }));
    const declaredBatch = declared[manifest.inputs[0]!.tensor]!.shape[0] ?? 1;
    const batch = options.batch ?? declaredBatch;
    if (options.batch !== undefined && (!Number.isInteger(batch) || batch < 1 || batch > 1 << 16)) {
      throw new GraphError(`batch must be an integer in [1, 65536], got ${batch}`);
    }
    this.batch = batch;
    const specs = inferSpecs(
      manifest,
      declared,
      options.batch === undefined ? undefined : batch,
      declaredBatch,
    );
    // Weights are checked against the budget before they are expanded, so a small package cannot make the
    // runtime allocate gigabytes.
    const expandedBytes = manifest.tensors.reduce(
      (sum, t, i) => sum + (pkg.constants[i] === undefined ? 0 : elements(t.shape) * DTYPE_BYTES[t.dtype]),
      0,
    );
    if (options.memoryBudgetBytes !== undefined && expandedBytes > options.memoryBudgetBytes) {
      throw new MemoryBudgetError(
        expandedBytes,
        options.memoryBudgetBytes,
        `weights alone take ${expandedBytes} bytes`,
      );
    }
    const constants: (TensorData | undefined)[] = manifest.tensors.map((t, i) => {
      const decoded = pkg.constants[i];
      return decoded === undefined ? undefined : constantData(decoded, declared[i]!);
    });
    this.weightBytes = constants.reduce((sum, c) => sum + (c?.byteLength ?? 0), 0);

    this.specs = specs;
    const layers: LayerInfo[] = [];

    // Batch chunks (batch-chunks.ts): which nodes run a few images at a time, and which tensors then hold
    // only a chunk. The output of a leading quantize_linear stays whole (quantizedInput writes it).
    const first = manifest.nodes[0];
    const whole = new Set([...manifest.inputs, ...manifest.outputs].map((t) => t.tensor));
    if (first?.op === 'quantize_linear') for (const o of first.outputs) whole.add(o);
    const chunks = planBatchChunks({
      nodes: manifest.nodes,
      batch,
      specs,
      specsAt: (images) => {
        try {
          return inferSpecs(manifest, declared, images, declaredBatch);
        } catch {
          return undefined;
        }
      },
      isActivation: (t) => constants[t] === undefined,
      wholeTensors: whole,
      perImage: (node) => OPS[node.op]!.perImage?.(node) === true,
      budgetBytes: options.batchChunkBytes ?? BATCH_CHUNK_BYTES,
    });
    this.batchSegments = chunks.segments;
    const segmentOf: BatchSegment[] = [];
    for (const segment of chunks.segments)
      for (let i = segment.first; i < segment.last; i++) segmentOf[i] = segment;
    const imagesOf = (t: number): number => chunks.tensorImages.get(t) ?? batch;
    // The spec a node's executor sees: at its chunk's batch.
    const chunkSpecs = new Map<number, readonly TensorSpec[]>();
    const specsFor = (images: number): readonly TensorSpec[] => {
      if (images === batch) return specs;
      let at = chunkSpecs.get(images);
      if (at === undefined)
        chunkSpecs.set(images, (at = inferSpecs(manifest, declared, images, declaredBatch)));
      return at;
    };

    // Lifetimes of every activation (non-constant tensor that is an input or an output of the graph/nodes).
    // A whole tensor written or read in a chunked segment lives through all of it: the segment's nodes run
    // once per chunk, so they interleave.
    const firstUse = new Map<number, number>();
    const lastUse = new Map<number, number>();
    for (const input of manifest.inputs) firstUse.set(input.tensor, -1);
    manifest.nodes.forEach((node, index) => {
      for (const i of node.inputs) if (i >= 0 && constants[i] === undefined) lastUse.set(i, index);
      for (const o of node.outputs) {
        firstUse.set(o, index);
        if (!lastUse.has(o)) lastUse.set(o, index);
      }
    });
    for (const output of manifest.outputs)
      if (constants[output.tensor] === undefined) lastUse.set(output.tensor, manifest.nodes.length);
    const lifetimes: Lifetime[] = [...firstUse.entries()].map(([tensor, start]) => {
      let end = lastUse.get(tensor) ?? start;
      let begin = start;
      if (imagesOf(tensor) === batch) {
        const from = segmentOf[begin];
        const to = segmentOf[end];
        if (from !== undefined && from.images !== batch) begin = from.first;
        if (to !== undefined && to.images !== batch) end = to.last - 1;
      }
      const spec = specs[tensor]!;
      return {
        tensor,
        first: begin,
        last: end,
        bytes: (elements(spec.shape) / batch) * imagesOf(tensor) * DTYPE_BYTES[spec.dtype],
      };
    });
    this.plan = planMemory(lifetimes);
    const needed = this.plan.arenaBytes + this.weightBytes;
    if (options.memoryBudgetBytes !== undefined && needed > options.memoryBudgetBytes) {
      throw new MemoryBudgetError(
        needed,
        options.memoryBudgetBytes,
        `arena ${this.plan.arenaBytes} bytes for activations at batch ${batch} + weights ${this.weightBytes} bytes`,
      );
    }
    this.#arena = new ArrayBuffer(this.plan.arenaBytes);
    this.#views = constants.slice();
    for (const planned of this.plan.tensors) {
      const spec = specs[planned.tensor]!;
      const length = (elements(spec.shape) / batch) * imagesOf(planned.tensor);
      this.#views[planned.tensor] = view(this.#arena, planned.offset, spec.dtype, length);
    }

    // One executor per node, prepared at its chunk's batch; a chunked segment's nodes get one step per chunk
    // (chunk-major), each on its images of the whole tensors and on the chunk-sized ones as they are.
    const executors = manifest.nodes.map((node, index) => {
      const op = OPS[node.op]!;
      const at = specsFor(segmentOf[index]!.images);
      const inputs = node.inputs.map((i) => (i < 0 ? undefined : at[i]));
      const outputs = node.outputs.map((o) => at[o]!);
      const executor = op.executors[node.format]!({
        node,
        format: node.format,
        inputs,
        outputs,
        constants: node.inputs.map((i) => (i < 0 ? undefined : constants[i])),
        decoded: node.inputs.map((i) => (i < 0 ? undefined : pkg.constants[i])),
        referenceOnly: options.referenceOnly === true,
        expandWeights: options.expandWeights !== false,
      });
      const storedBytes = node.inputs.reduce((sum, i) => {
        const section = i >= 0 ? manifest.tensors[i]!.section : undefined;
        if (section !== undefined) return sum + pkg.sections[section]!.length;
        // A constant the compile pass made (permuted or folded weights) is stored raw.
        const made = i >= source.manifest.tensors.length ? constants[i] : undefined;
        return sum + (made?.byteLength ?? 0);
      }, 0);
      const full = node.inputs.map((i) => (i < 0 ? undefined : specs[i]));
      const fullOutputs = node.outputs.map((o) => specs[o]!);
      layers.push({
        name: node.name,
        op: node.op,
        format: node.format,
        kernel: executor.kernel,
        macs: op.macs(node, full, fullOutputs),
        weightBytes: storedBytes,
        outputShapes: fullOutputs.map((o) => o.shape),
      });
      return executor;
    });
    this.layers = layers;
    // A compressed constant's fp32 expansion (constantData: what the reference executors read) is dropped
    // once every node that reads it runs on a native layer with its own copy of the weights
    // (Executor.ownsConstants), so expanded weights are held once, by the native layer (its scratchBytes).
    // The budget still counts it in weightBytes: it is held while the executors are prepared.
    const readers = new Map<number, number[]>();
    manifest.nodes.forEach((node, index) => {
      for (const i of node.inputs)
        if (i >= 0 && pkg.constants[i] !== undefined && pkg.constants[i].kind !== 'raw')
          readers.set(i, [...(readers.get(i) ?? []), index]);
    });
    const graphOutputs = new Set(manifest.outputs.map((o) => o.tensor));
    for (const [i, nodes] of readers) {
      if (graphOutputs.has(i) || !nodes.every((n) => executors[n]!.ownsConstants === true)) continue;
      constants[i] = undefined;
      this.#views[i] = undefined;
    }
    this.heldWeightBytes = constants.reduce((sum, c) => sum + (c?.byteLength ?? 0), 0);
    const slice = (t: number, chunk: number, images: number): TensorData | undefined => {
      const data = this.#views[t];
      if (data === undefined || constants[t] !== undefined || imagesOf(t) !== batch || images === batch)
        return data;
      const length = data.length / batch;
      return data.subarray(chunk * images * length, (chunk + 1) * images * length);
    };
    this.#steps = [];
    this.#nodeSteps = [];
    for (const segment of chunks.segments) {
      for (let chunk = 0; chunk < batch / segment.images; chunk++) {
        for (let index = segment.first; index < segment.last; index++) {
          const node = manifest.nodes[index]!;
          (this.#nodeSteps[index] ??= []).push(this.#steps.length);
          this.#steps.push({
            name: node.name,
            executor: executors[index]!,
            inputs: node.inputs.map((i) => (i < 0 ? undefined : slice(i, chunk, segment.images))),
            outputs: node.outputs.map((o) => slice(o, chunk, segment.images)!),
          });
        }
      }
    }
    this.#execution =
      options.nodeByNode === true ? nodeByNode(this.#steps) : planExecution(this.#arena, this.#steps);
    this.execution = this.#execution.summary;
    this.fallbacks =
      options.referenceOnly === true
        ? []
        : manifest.nodes.flatMap((node, i) =>
            layers[i]!.kernel.startsWith('reference:')
              ? [{ node: node.name, op: node.op, format: node.format, why: fallbackReason(node) }]
              : [],
          );
    this.scratchBytes = executors.reduce((sum, executor) => sum + (executor.scratchBytes ?? 0), 0);
    const total = needed + this.scratchBytes;
    if (options.memoryBudgetBytes !== undefined && total > options.memoryBudgetBytes) {
      throw new MemoryBudgetError(
        total,
        options.memoryBudgetBytes,
        `arena ${this.plan.arenaBytes} + weights ${this.weightBytes} + layer buffers (fixed-point word buffers, ` +
          `expanded weights) ${this.scratchBytes} bytes`,
      );
    }
  }

  /** The package's graph through the compile pass; a graph the pass cannot take (a malformed one, which the
   * runtime's own checks then name) is planned as stored, with the reason in the report. */
  static #compiled(pkg: Package, options: ModelOptions) {
    const asStored = { manifest: pkg.manifest, constants: [...pkg.constants], report: emptyReport() };
    if (options.compile === false || unsupportedNodes(pkg.manifest.nodes).length > 0) return asStored;
    try {
      return compilePackage(pkg.manifest, pkg.constants, options.fuseResidual !== false);
    } catch (error) {
      return { ...asStored, report: { ...asStored.report, skipped: (error as Error).message } };
    }
  }

  static fromPackage(pkg: Package, options: ModelOptions = {}): Model {
    return new Model(pkg, options);
  }

  get inputs(): { name: string; spec: TensorSpec }[] {
    return this.manifest.inputs.map((i) => ({ name: i.name, spec: this.specs[i.tensor]! }));
  }

  /** The arena view of input k (manifest order): a caller that writes its input here and calls
   * runInPlace() skips run()'s checks and copies (the agent's frame loop). */
  inputView(k: number): TensorData {
    const input = this.manifest.inputs[k];
    if (input === undefined) throw new InputError(`the model has no input ${k}`);
    return this.#views[input.tensor]!;
  }

  /** The view of output k (manifest order): what the last run wrote, overwritten by the next one. */
  outputView(k: number): TensorData {
    const output = this.manifest.outputs[k];
    if (output === undefined) throw new InputError(`the model has no output ${k}`);
    return this.#views[output.tensor]!;
  }

  /** When graph input k is read by one node only, a leading per-tensor quantize_linear (a float input the
   * first layer quantizes), that node's output: a caller that quantizes its input the same way (round half
   * to even, saturate) writes it into `view` and runs from node 1, skipping the float input and the node. */
  quantizedInput(k: number): { spec: TensorSpec; view: TensorData } | undefined {
    const input = this.manifest.inputs[k];
    const first = this.manifest.nodes[0];
    if (input === undefined || first === undefined || first.op !== 'quantize_linear') return undefined;
    if (first.inputs[0] !== input.tensor) return undefined;
    const readers = this.manifest.nodes.filter((n) => n.inputs.includes(input.tensor)).length;
    const isOutput = this.manifest.outputs.some((o) => o.tensor === input.tensor);
    const spec = this.specs[first.outputs[0]!]!;
    if (readers !== 1 || isOutput || spec.quant?.scale.length !== 1) return undefined;
    return { spec, view: this.#views[first.outputs[0]!]! };
  }

  /** Runs the graph on what the input views hold, from node `from` (default 0; 1 after writing
   * quantizedInput's view); the outputs are in the output views. */
  runInPlace(from = 0): void {
    for (const [first, end] of this.#inPlaceRanges(from)) this.#execution.run(first, end);
  }

  /** runInPlace(from) as a function with its calls looked up once (Execution.runner): the agent's frame loop
   * keeps it, so a frame runs the plan's calls and nothing else. */
  inPlaceRunner(from = 0): () => void {
    return inOrder(this.#inPlaceRanges(from).map(([first, end]) => this.#execution.runner(first, end)));
  }

  /** runInPlace(from) with a camera frame's way in and out in the same native call (Execution.frameRunner):
   * (frame) => the index of the first highest score. Undefined when the run from `from` is not one call of
   * the native plan (TypeScript nodes in it, a chunked batch, the node-by-node path). */
  frameRunner(from: number, frame: FrameIO): ((frame: Uint8Array) => number) | undefined {
    const ranges = this.#inPlaceRanges(from);
    if (ranges.length !== 1 || ranges[0]![1] !== undefined) return undefined;
    return this.#execution.frameRunner?.(ranges[0]![0], frame);
  }

  /** The ranges of steps [first, end) (end undefined: to the last step) that run the graph from node `from`. */
  #inPlaceRanges(from: number): [number, number | undefined][] {
    if (!Number.isInteger(from) || from < 0 || from > this.manifest.nodes.length)
      throw new InputError(`runInPlace from node ${from}: the model has ${this.manifest.nodes.length} nodes`);
    if (from === 0) return [[0, undefined]];
    const segment = this.batchSegments.find((s) => from >= s.first && from < s.last);
    if (segment === undefined) return []; // from === nodes.length: nothing left to run
    const steps = this.#nodeSteps;
    if (from > segment.first && segment.images !== this.batch) {
      // Inside a chunked segment: the rest of each chunk, then what follows the segment. Every tensor the
      // nodes from `from` on read from before it must be whole (a chunk-sized one holds the last chunk only).
      if (this.#chunkedCut(segment, from))
        throw new InputError(
          `runInPlace from node ${from}: it reads a tensor held one batch chunk at a time`,
        );
      const ranges: [number, number | undefined][] = steps[from]!.map((step, chunk) => [
        step,
        steps[segment.last - 1]![chunk]! + 1,
      ]);
      if (segment.last < steps.length) ranges.push([steps[segment.last]![0]!, undefined]);
      return ranges;
    }
    return [[steps[from]![0]!, undefined]];
  }

  /** Whether a node of `segment` from `from` on reads a chunk-sized tensor written before `from`. */
  #chunkedCut(segment: BatchSegment, from: number): boolean {
    const nodes = this.manifest.nodes;
    const before = new Set(nodes.slice(segment.first, from).flatMap((n) => n.outputs));
    return nodes
      .slice(from, segment.last)
      .some((n) =>
        n.inputs.some((t) => before.has(t) && this.#views[t]!.length !== elements(this.specs[t]!.shape)),
      );
  }

  /** Where a run's time goes: every step timed on its own, in the order a run takes them (so each finds the
   * caches as a run leaves them; a node chunked over the batch sums its chunks), over `runs` runs of what the
   * input views hold; medians per node. A step of the native plan is one plan call of its own here (one pool
   * wake-up each), so the sum exceeds a run's time by about a call's overhead per step. */
  profile(runs = 11): NodeProfile[] {
    if (!Number.isInteger(runs) || runs < 1)
      throw new InputError(`profile runs must be a positive integer, got ${runs}`);
    const times = this.layers.map((): number[] => []);
    const nodeOf: number[] = [];
    this.#nodeSteps.forEach((steps, node) => steps.forEach((step) => (nodeOf[step] = node)));
    for (let r = 0; r < runs; r++) {
      const run = this.layers.map(() => 0);
      for (let step = 0; step < nodeOf.length; step++) {
        const start = performance.now();
        this.#execution.run(step, step + 1);
        run[nodeOf[step]!]! += performance.now() - start;
      }
      run.forEach((ms, node) => times[node]!.push(ms));
    }
    return this.layers.map((layer, i) => {
      const ms = percentile(
        times[i]!.sort((a, b) => a - b),
        50,
      );
      return { name: layer.name, op: layer.op, kernel: layer.kernel, ms };
    });
  }

  /** Runs the graph on inputs given in manifest order (or by name); returns every graph output (copies). */
  run(inputs: readonly TensorData[] | Readonly<Record<string, TensorData>>): TensorResult[] {
    const list = Array.isArray(inputs)
      ? (inputs as readonly TensorData[])
      : this.manifest.inputs.map((i) => {
          const data = (inputs as Readonly<Record<string, TensorData>>)[i.name];
          if (data === undefined) throw new InputError(`missing input "${i.name}"`);
          return data;
        });
    if (list.length !== this.manifest.inputs.length) {
      throw new InputError(`expected ${this.manifest.inputs.length} input(s) but received ${list.length}`);
    }
    this.manifest.inputs.forEach((input, k) => {
      const target = this.#views[input.tensor]!;
      const data = list[k]!;
      const spec = this.specs[input.tensor]!;
      if (data.length !== target.length || data.constructor !== target.constructor) {
        throw new InputError(
          `input "${input.name}": expected ${target.length} ${spec.dtype} values (shape [${spec.shape.join(', ')}]) ` +
            `but received ${data.length} in a ${data.constructor.name}`,
        );
      }
      target.set(data);
    });
    this.#execution.run();
    return this.manifest.outputs.map((output) => {
      const spec = this.specs[output.tensor]!;
      return {
        name: output.name,
        dtype: spec.dtype,
        shape: [...spec.shape],
        data: this.#views[output.tensor]!.slice(),
      };
    });
  }
}
