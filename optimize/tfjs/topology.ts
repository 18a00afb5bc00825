// The layer graph of a TensorFlow.js Layers model.json, checked and in execution order. Both topologies
// become one graph: a Sequential model is a chain, a functional model ("Model" in tfjs, "Functional" in
// Keras) names each layer's inputs in `inbound_nodes`. A layer may be called more than once (a shared
// layer); each call is a node of the graph, and `layer@k` names the output of call k. Two inbound_nodes
// formats exist: the nested arrays tfjs and Keras 2 write, [[["conv1", 0, 0, {}], ...]], and the Keras 3
// dicts, [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["conv1", 0, 0]}}]}].
import { z } from 'zod';

import { TfjsImportError } from './import-error.js';

export const LayerSchema = z
  .object({
    class_name: z.string(),
    config: z.record(z.string(), z.unknown()),
    name: z.string().optional(),
    inbound_nodes: z.array(z.unknown()).optional(),
  })
  .passthrough();
export type TfjsLayer = z.infer<typeof LayerSchema>;

export const TopologySchema = z
  .object({
    class_name: z.string(),
    config: z.union([
      z
        .object({
          layers: z.array(LayerSchema),
          input_layers: z.array(z.unknown()).optional(),
          output_layers: z.array(z.unknown()).optional(),
        })
        .passthrough(),
      z.array(LayerSchema),
    ]),
  })
  .passthrough();

/** Output `tensor` of call `node` of `layer`. Only single-output layers are supported, so tensor is 0. */
export interface TensorRef {
  layer: string;
  node: number;
}

export interface GraphNode {
  /** The layer's name, with " (call k)" for the k-th call of a shared layer. */
  label: string;
  layer: TfjsLayer;
  name: string;
  call: number;
  inputs: TensorRef[];
}

export interface LayerGraph {
  /** Topologically sorted: every node after the nodes it reads. */
  nodes: GraphNode[];
  inputs: TensorRef[];
  outputs: TensorRef[];
  sequential: boolean;
}

export const refKey = (ref: TensorRef): string => `${ref.layer}@${ref.node}`;

export function layerName(layer: TfjsLayer, index: number): string {
  const name = layer.name ?? layer.config.name;
  return typeof name === 'string' ? name : `${layer.class_name}_${index}`;
}

/** Builds and checks the graph; `supported` is consulted first so every unknown layer is listed at once. */
export function layerGraph(
  topology: z.infer<typeof TopologySchema>,
  supported: (layer: TfjsLayer) => string | null,
): LayerGraph {
  const layers = Array.isArray(topology.config) ? topology.config : topology.config.layers;
  const problems = layers.flatMap((layer, i) => {
    const problem = supported(layer);
    return problem === null ? [] : [`${layerName(layer, i)} (${problem})`];
  });
  if (problems.length > 0)
    throw new TfjsImportError(
      `the model uses ${problems.length} unsupported layer(s): ${problems.join(', ')}`,
    );
  switch (topology.class_name) {
    case 'Sequential':
      return sequentialGraph(layers);
    case 'Model':
    case 'Functional':
      if (Array.isArray(topology.config))
        throw new TfjsImportError(`a ${topology.class_name} topology needs a config object with layers`);
      return functionalGraph(layers, topology.config.input_layers, topology.config.output_layers);
    default:
      throw new TfjsImportError(
        `topology class ${topology.class_name} is not supported (Sequential, Model and Functional are)`,
      );
  }
}

function sequentialGraph(layers: TfjsLayer[]): LayerGraph {
  const first = layers[0];
  if (first === undefined) throw new TfjsImportError('the Sequential model has no layers');
  const chain = [...layers];
  if (first.class_name !== 'InputLayer') {
    // tfjs does not serialize a Sequential model's input layer: the first layer carries its shape.
    const shape = first.config.batch_input_shape ?? first.config.batchInputShape;
    if (shape === undefined)
      throw new TfjsImportError(`layer ${layerName(first, 0)}: the first layer has no batch_input_shape`);
    chain.unshift({
      class_name: 'InputLayer',
      config: { name: 'input', batch_input_shape: shape, dtype: first.config.dtype ?? 'float32' },
    });
  }
  const nodes = chain.map((layer, i): GraphNode => ({
    label: layerName(layer, i),
    name: layerName(layer, i),
    layer,
    call: 0,
    inputs: i === 0 ? [] : [{ layer: layerName(chain[i - 1]!, i - 1), node: 0 }],
  }));
  uniqueNames(nodes.map((n) => n.name));
  return {
    nodes,
    inputs: [{ layer: nodes[0]!.name, node: 0 }],
    outputs: [{ layer: nodes[nodes.length - 1]!.name, node: 0 }],
    sequential: true,
  };
}

function uniqueNames(names: string[]): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) throw new TfjsImportError(`two layers are named ${name}`);
    seen.add(name);
  }
}

function functionalGraph(layers: TfjsLayer[], inputLayers: unknown, outputLayers: unknown): LayerGraph {
  const names = layers.map(layerName);
  uniqueNames(names);
  const byName = new Map(layers.map((layer, i) => [names[i]!, layer]));
  const nodes: GraphNode[] = [];
  layers.forEach((layer, i) => {
    const name = names[i]!;
    // An InputLayer's one node is created with it; its inbound_nodes list is empty.
    const calls = layer.class_name === 'InputLayer' ? [[]] : parseInbound(name, layer.inbound_nodes ?? []);
    if (calls.length === 0)
      throw new TfjsImportError(`layer ${name} (${layer.class_name}) has no inbound nodes: nothing feeds it`);
    calls.forEach((inputs, call) =>
      nodes.push({ label: call === 0 ? name : `${name} (call ${call})`, name, layer, call, inputs }),
    );
  });
  const callCount = new Map<string, number>();
  for (const node of nodes) callCount.set(node.name, (callCount.get(node.name) ?? 0) + 1);
  const check = (ref: TensorRef, user: string): void => {
    if (!byName.has(ref.layer))
      throw new TfjsImportError(`${user} reads ${ref.layer}, which is not a layer of this model`);
    if (ref.node >= callCount.get(ref.layer)!)
      throw new TfjsImportError(`${user} reads call ${ref.node} of ${ref.layer}, which has no such call`);
  };
  for (const node of nodes) for (const ref of node.inputs) check(ref, `layer ${node.label}`);
  const inputs = parseEndpoints('input_layers', inputLayers);
  const outputs = parseEndpoints('output_layers', outputLayers);
  for (const ref of inputs) {
    check(ref, 'input_layers');
    if (byName.get(ref.layer)!.class_name !== 'InputLayer')
      throw new TfjsImportError(`input_layers names ${ref.layer}, which is not an InputLayer`);
  }
  for (const ref of outputs) check(ref, 'output_layers');
  return { nodes: topologicalOrder(nodes), inputs, outputs, sequential: false };
}

/** Kahn's algorithm; what cannot be ordered lies on (or behind) a cycle, which Keras graphs never have. */
function topologicalOrder(nodes: GraphNode[]): GraphNode[] {
  const key = (n: GraphNode): string => refKey({ layer: n.name, node: n.call });
  const waiting = new Map(nodes.map((n) => [key(n), new Set(n.inputs.map(refKey))]));
  const readers = new Map<string, GraphNode[]>();
  for (const n of nodes)
    for (const ref of n.inputs) readers.set(refKey(ref), [...(readers.get(refKey(ref)) ?? []), n]);
  const ready = nodes.filter((n) => waiting.get(key(n))!.size === 0);
  const order: GraphNode[] = [];
  while (ready.length > 0) {
    const node = ready.shift()!;
    order.push(node);
    for (const reader of readers.get(key(node)) ?? []) {
      const pending = waiting.get(key(reader))!;
      pending.delete(key(node));
      if (pending.size === 0) ready.push(reader);
    }
  }
  if (order.length < nodes.length) {
    const stuck = nodes.filter((n) => !order.includes(n)).map((n) => n.label);
    throw new TfjsImportError(`the layer graph has a cycle through ${stuck.join(', ')}`);
  }
  return order;
}

/** One TensorRef list per call of the layer, from either inbound_nodes format. */
function parseInbound(layer: string, inbound: unknown[]): TensorRef[][] {
  return inbound.map((call, k) => {
    const refs: TensorRef[] = [];
    if (Array.isArray(call)) {
      for (const entry of call) refs.push(historyRef(entry, `layer ${layer}: inbound node ${k}`));
    } else if (typeof call === 'object' && call !== null && 'args' in call) {
      collectKerasTensors(call.args, refs, `layer ${layer}: inbound node ${k}`);
    } else {
      throw new TfjsImportError(
        `layer ${layer}: inbound node ${k} is neither a tfjs list nor a Keras 3 dict`,
      );
    }
    if (refs.length === 0) throw new TfjsImportError(`layer ${layer}: inbound node ${k} names no input`);
    return refs;
  });
}

/** Keras 3 nests its tensors in `args` (a list of lists for merge layers); their order is the input order. */
function collectKerasTensors(value: unknown, refs: TensorRef[], where: string): void {
  if (Array.isArray(value)) {
    for (const item of value) collectKerasTensors(item, refs, where);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  const record = value as { class_name?: unknown; config?: { keras_history?: unknown } };
  if (record.class_name === '__keras_tensor__') refs.push(historyRef(record.config?.keras_history, where));
}

/** ["layer", node, tensor, kwargs?] -> TensorRef. */
function historyRef(entry: unknown, where: string): TensorRef {
  if (
    !Array.isArray(entry) ||
    typeof entry[0] !== 'string' ||
    !Number.isInteger(entry[1]) ||
    !Number.isInteger(entry[2]) ||
    (entry[1] as number) < 0
  )
    throw new TfjsImportError(
      `${where}: expected ["layer", node, tensor] but received ${JSON.stringify(entry)}`,
    );
  if (entry[2] !== 0)
    throw new TfjsImportError(
      `${where}: reads output ${String(entry[2])} of ${entry[0]}; only single-output layers are supported`,
    );
  return { layer: entry[0], node: entry[1] as number };
}

/** input_layers / output_layers: a list of ["layer", node, tensor], or (Keras 3, one endpoint) one triple. */
function parseEndpoints(what: string, value: unknown): TensorRef[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new TfjsImportError(`the functional model has no ${what}`);
  const list = typeof value[0] === 'string' ? [value] : value;
  return list.map((entry) => historyRef(entry, what));
}
