// Builds a package's graph IR while a model is converted: tensors and nodes in the manifest's shape, shape
// inference with the runtime's own op definitions as each node is added, constant folding (a node whose
// inputs are all constants is evaluated at once by the runtime's executors), NCHW <-> NHWC layout twins so
// consecutive NHWC ops skip the round trip, and at the end dead-code elimination and renumbering.
import { type EncodedTensor, encodeInt8Planes, encodeRaw } from '../../agent/package/encodings.js';
import type {
  Manifest,
  ManifestNode,
  ManifestTensor,
  NumberFormat,
  TensorQuantization,
} from '../../agent/package/manifest.js';
import { NCHW_TO_NHWC, NHWC_TO_NCHW } from '../../agent/runtime/compile/index.js';
import { GraphError } from '../../agent/runtime/graph-error.js';
import { OPS } from '../../agent/runtime/ops/index.js';
import { allocate, elements, type TensorData, type TensorSpec } from '../../agent/runtime/tensor.js';
import type { PackageContent } from './writer.js';

export { NCHW_TO_NHWC, NHWC_TO_NCHW } from '../../agent/runtime/compile/index.js';

export interface ModelMetadata {
  id: string;
  version: string;
  name?: string;
  labels?: string[];
}

export class GraphBuilder {
  readonly tensors: ManifestTensor[] = [];
  readonly nodes: ManifestNode[] = [];
  readonly data = new Map<number, TensorData>();
  /** int64 constants (shapes, axes) kept as numbers; they never become runtime tensors. */
  readonly ints = new Map<number, number[]>();
  /** NHWC twin of an NCHW tensor (and back), so consecutive NHWC ops skip the round trip. */
  readonly nhwcOf = new Map<number, number>();
  readonly nchwOf = new Map<number, number>();
  #counter = 0;

  spec(t: number): TensorSpec {
    const m = this.tensors[t]!;
    return { dtype: m.dtype, shape: m.shape, ...(m.quant ? { quant: m.quant } : {}) };
  }

  addTensor(name: string, spec: TensorSpec): number {
    this.tensors.push({
      name: this.unique(name),
      dtype: spec.dtype,
      shape: [...spec.shape],
      ...(spec.quant ? { quant: spec.quant } : {}),
    });
    return this.tensors.length - 1;
  }

  unique(name: string): string {
    return this.tensors.some((t) => t.name === name) ? `${name}#${++this.#counter}` : name;
  }

  constant(
    name: string,
    dtype: TensorSpec['dtype'],
    shape: number[],
    values: ArrayLike<number>,
    quant?: TensorQuantization,
  ): number {
    const t = this.addTensor(name, { dtype, shape, ...(quant ? { quant } : {}) });
    const data = allocate(dtype, elements(shape));
    for (let i = 0; i < data.length; i++) data[i] = values[i]!;
    this.data.set(t, data);
    return t;
  }

  /** Adds a node (or evaluates it now when every input is constant); returns the output tensors. */
  emit(
    name: string,
    op: string,
    format: NumberFormat,
    inputs: number[],
    attrs: ManifestNode['attrs'],
    declared: Partial<TensorSpec>[] = [{}],
  ): number[] {
    const definition = OPS[op]!;
    const node: ManifestNode = { name: this.uniqueNode(name), op, format, inputs, outputs: [], attrs };
    const inputSpecs = inputs.map((i) => (i < 0 ? undefined : this.spec(i)));
    const placeholders = declared.map((d) => ({
      dtype: d.dtype ?? 'f32',
      shape: [],
      ...(d.quant ? { quant: d.quant } : {}),
    }));
    const outputs = definition.infer(node, inputSpecs, placeholders).map((spec, k) => ({
      ...spec,
      ...(declared[k]?.quant ? { quant: declared[k].quant } : {}),
    }));
    node.outputs = outputs.map((spec, k) =>
      this.addTensor(k === 0 ? `${node.name}.out` : `${node.name}.out${k}`, spec),
    );
    if (inputs.every((i) => i < 0 || this.data.has(i))) {
      const executor = definition.executors[format];
      if (executor === undefined) throw new GraphError(`no ${format} executor for ${op}`, node.name);
      const outputData = outputs.map((spec) => allocate(spec.dtype, elements(spec.shape)));
      const constants = inputs.map((i) => (i < 0 ? undefined : this.data.get(i)));
      executor({ node, format, inputs: inputSpecs, outputs, constants }).run(constants, outputData);
      node.outputs.forEach((t, k) => this.data.set(t, outputData[k]!));
    } else {
      this.nodes.push(node);
    }
    return node.outputs;
  }

  #nodeNames = new Set<string>();
  uniqueNode(name: string): string {
    let candidate = name;
    while (this.#nodeNames.has(candidate)) candidate = `${name}#${++this.#counter}`;
    this.#nodeNames.add(candidate);
    return candidate;
  }

  toNhwc(t: number, name: string): number {
    return this.#transposed(t, `${name}/to_nhwc`, NCHW_TO_NHWC, this.nhwcOf, this.nchwOf);
  }

  toNchw(t: number, name: string): number {
    return this.#transposed(t, `${name}/to_nchw`, NHWC_TO_NCHW, this.nchwOf, this.nhwcOf);
  }

  /** t in the other layout, transposed once: `to` maps a tensor to its transposed twin and `back` the twin
   * to it, so a later transpose back is the original tensor and not a new node. */
  #transposed(
    t: number,
    node: string,
    perm: number[],
    to: Map<number, number>,
    back: Map<number, number>,
  ): number {
    const known = to.get(t);
    if (known !== undefined) return known;
    const [out] = this.emit(node, 'transpose', this.formatOf(t), [t], { perm });
    to.set(t, out!);
    back.set(out!, t);
    return out!;
  }

  formatOf(t: number): NumberFormat {
    return this.tensors[t]!.dtype === 'f32' ? 'f32' : 'int8';
  }

  /** `t` viewed with quantization `quant`: set in place on inputs/constants without one, else an identity. */
  withQuant(t: number, quant: TensorQuantization, name: string): number {
    const tensor = this.tensors[t]!;
    if (tensor.quant !== undefined && JSON.stringify(tensor.quant) === JSON.stringify(quant)) return t;
    const producedByNode = this.nodes.some((n) => n.outputs.includes(t));
    if (tensor.quant === undefined && !producedByNode) {
      tensor.quant = quant;
      return t;
    }
    const [out] = this.emit(`${name}/requant_view`, 'identity', 'int8', [t], {}, [
      { dtype: tensor.dtype, quant },
    ]);
    this.tensors[out!]!.quant = quant;
    return out!;
  }

  /** The nodes that feed tensors `live`, in order; `live` gains every tensor they read or write. */
  liveNodes(live: Set<number> | readonly number[]): ManifestNode[] {
    const reached = live instanceof Set ? live : new Set(live);
    const kept: ManifestNode[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i]!;
      if (!node.outputs.some((o) => reached.has(o))) continue;
      kept.unshift(node);
      for (const input of node.inputs) if (input >= 0) reached.add(input);
      for (const output of node.outputs) reached.add(output);
    }
    return kept;
  }

  /** The package content: nodes that feed an output, the tensors they use, constants encoded raw (an int8
   * constant whose rows are binary or ternary planes, trained binary / ternary weights quantized, as those
   * planes: encodeInt8Planes). */
  finish(inputs: Manifest['inputs'], outputs: Manifest['outputs'], meta: ModelMetadata): PackageContent {
    const live = new Set<number>([...outputs.map((o) => o.tensor), ...inputs.map((i) => i.tensor)]);
    const kept = this.liveNodes(live);
    const order = [...live].sort((p, q) => p - q);
    const renumber = new Map(order.map((t, i) => [t, i]));
    const constants = new Map<number, EncodedTensor>();
    order.forEach((t, i) => {
      const data = this.data.get(t);
      if (!data) return;
      const planes = data instanceof Int8Array ? encodeInt8Planes(data, this.tensors[t]!.shape) : undefined;
      constants.set(i, planes ?? encodeRaw(data));
    });
    const manifest: Manifest = {
      format: 'whittle-package',
      version: 1,
      model: { id: meta.id, version: meta.version, ...(meta.name ? { name: meta.name } : {}) },
      target: { deviceClass: 'any', cpuFamily: 'any' },
      ...(meta.labels ? { labels: meta.labels } : {}),
      inputs: inputs.map((i) => ({ ...i, tensor: renumber.get(i.tensor)! })),
      outputs: outputs.map((o) => ({ ...o, tensor: renumber.get(o.tensor)! })),
      tensors: order.map((t) => this.tensors[t]!),
      nodes: kept.map((n) => ({
        ...n,
        inputs: n.inputs.map((i) => (i < 0 ? -1 : renumber.get(i)!)),
        outputs: n.outputs.map((o) => renumber.get(o)!),
      })),
    };
    return { manifest, constants };
  }
}
