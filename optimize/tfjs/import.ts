// TensorFlow.js Layers models (model.json + weight files) -> package content, for Sequential and functional
// topologies (optimize/tfjs/topology.ts turns both into one checked layer graph). tfjs layers are NHWC like
// the runtime, so no layout transposes are needed: Conv2D kernels [kh][kw][cin][cout] become OHWI, Dense
// kernels [in][out] become [out][in], depthwise kernels [kh][kw][cin][mult] a grouped conv. A batch norm
// that directly follows a Conv2D/DepthwiseConv2D/Dense (with no activation in between) whose output nothing
// else reads is folded into its weights; any other batch norm stays a batch_norm node (a scale and shift).
// Unsupported layers are listed together before anything is built; every shape or config mismatch is a
// TfjsImportError naming the layer.
import { readFileSync } from 'node:fs';

import { z } from 'zod';

import { GraphError } from '../../agent/runtime/graph-error.js';
import { GraphBuilder } from '../package/graph-builder.js';
import type { PackageContent } from '../package/writer.js';
import { TfjsImportError } from './import-error.js';
import { LayerBuild, SUPPORTED_TFJS_ACTIVATIONS } from './layer-build.js';
import { TFJS_LAYERS } from './layers.js';
import { type GraphNode, layerGraph, refKey, type TfjsLayer, TopologySchema } from './topology.js';
import { type NamedWeight, readWeights } from './weights.js';

export { TfjsImportError } from './import-error.js';
export { SUPPORTED_TFJS_ACTIVATIONS } from './layer-build.js';
export { SUPPORTED_TFJS_LAYERS } from './layers.js';

const ModelJsonSchema = z.object({
  // tensorflowjs_converter wraps a Keras model's topology in model_config (next to training_config).
  modelTopology: z.union([
    z
      .object({ model_config: TopologySchema })
      .passthrough()
      .transform((wrapper) => wrapper.model_config),
    TopologySchema,
  ]),
  weightsManifest: z.array(
    z.object({
      paths: z.array(z.string()),
      weights: z.array(
        z
          .object({
            name: z.string(),
            shape: z.array(z.number().int().min(0)),
            dtype: z.string(),
            quantization: z
              .object({ dtype: z.string(), scale: z.number().optional(), min: z.number().optional() })
              .passthrough()
              .optional(),
          })
          .passthrough(),
      ),
    }),
  ),
});

export interface TfjsImportOptions {
  modelId?: string;
  labels?: string[];
  /** Batch size of the package's inputs (their first dimension is null in model.json); 1 by default. */
  batch?: number;
  /** Pass XNOR-Net's binary activations (optimize/compress/xnor.ts) through: the caller stores every
   * layer that reads one as xnor, which binarizes its input itself (optimize/compress/encode.ts). Without
   * it a model with binary activations is refused, since its package would compute on real values. */
  xnorInputs?: boolean;
}

/** Why a layer cannot be imported (its class, or class and activation), or null when it can. */
function unsupportedReason(layer: TfjsLayer): string | null {
  if (!Object.hasOwn(TFJS_LAYERS, layer.class_name)) return layer.class_name;
  const activation = layer.config.activation;
  if (
    activation !== undefined &&
    activation !== null &&
    !(SUPPORTED_TFJS_ACTIVATIONS as readonly unknown[]).includes(activation)
  )
    return `${layer.class_name} with activation ${JSON.stringify(activation)}`;
  return null;
}

export function importTfjsLayers(path: string, options: TfjsImportOptions = {}): PackageContent {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TfjsImportError(`${path} is not a readable JSON model: ${(error as Error).message}`);
  }
  const parsed = ModelJsonSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TfjsImportError(
      `${path} is not a TensorFlow.js Layers model.json: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''}`,
    );
  }
  const graph = prefixErrors(path, () => layerGraph(parsed.data.modelTopology, unsupportedReason));
  const binary = graph.nodes.find((n) => n.layer.class_name === 'WhittleBinaryActivation');
  if (binary !== undefined && options.xnorInputs !== true)
    throw new TfjsImportError(
      `${path}: layer ${binary.name} is an XNOR-Net binary activation, which only \`whittle compress\`'s ` +
        'xnor step packages (the xnor layers that read it binarize their inputs)',
    );
  const weights = prefixErrors(path, () => readWeights(path, parsed.data.weightsManifest));
  return prefixErrors(path, () => new PackageBuild(weights, options.batch ?? 1).run(graph, path, options));
}

function prefixErrors<T>(path: string, f: () => T): T {
  try {
    return f();
  } catch (error) {
    if (error instanceof TfjsImportError) throw new TfjsImportError(`${path}: ${error.message}`);
    throw error;
  }
}

const FOLDS_BATCH_NORM = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);

/** One conversion: the builder, the tensor of each layer output so far, and the batch norms to fold. */
export class PackageBuild {
  readonly b = new GraphBuilder();
  /** refKey(layer output) -> builder tensor. */
  readonly values = new Map<string, number>();
  /** refKey(conv/dense output) -> the batch norm that alone reads it, to be folded into its weights. */
  readonly foldable = new Map<string, GraphNode>();
  /** Tensor -> its channels shuffled in two groups, from which WhittleChannelSplit picks either half. */
  readonly pairedHalves = new Map<number, number>();

  constructor(
    readonly weights: Map<string, NamedWeight>,
    readonly batch: number,
  ) {}

  run(graph: ReturnType<typeof layerGraph>, path: string, options: TfjsImportOptions): PackageContent {
    const readers = new Map<string, number>();
    const count = (key: string): void => void readers.set(key, (readers.get(key) ?? 0) + 1);
    for (const node of graph.nodes) for (const ref of node.inputs) count(refKey(ref));
    for (const ref of graph.outputs) count(refKey(ref));
    const producers = new Map(graph.nodes.map((n) => [refKey({ layer: n.name, node: n.call }), n]));
    for (const node of graph.nodes) {
      if (node.layer.class_name !== 'BatchNormalization' || node.inputs.length !== 1) continue;
      const source = refKey(node.inputs[0]!);
      const producer = producers.get(source)!;
      if (
        FOLDS_BATCH_NORM.has(producer.layer.class_name) &&
        (producer.layer.config.activation ?? 'linear') === 'linear' &&
        readers.get(source) === 1
      )
        this.foldable.set(source, node);
    }
    const inputKeys = new Set(graph.inputs.map(refKey));
    for (const node of graph.nodes) {
      const key = refKey({ layer: node.name, node: node.call });
      if (node.layer.class_name === 'InputLayer' && !inputKeys.has(key))
        throw new TfjsImportError(`InputLayer ${node.label} is not one of the model's input_layers`);
      // A folded batch norm's output is its conv's output, set when the conv was built.
      if (this.values.has(key)) continue;
      try {
        this.values.set(key, TFJS_LAYERS[node.layer.class_name]!(new LayerBuild(this, node)));
      } catch (error) {
        // Shape inference of the runtime's ops (GraphError) and the folding arithmetic (RangeError) do not
        // know tfjs layer names: say which layer they were building.
        if (error instanceof GraphError || error instanceof RangeError)
          throw new TfjsImportError(`layer ${node.label} (${node.layer.class_name}): ${error.message}`);
        throw error;
      }
    }
    const endpoint = (ref: (typeof graph.inputs)[number], fallback: string): string =>
      graph.sequential ? fallback : ref.node === 0 ? ref.layer : `${ref.layer}@${ref.node}`;
    const inputs = graph.inputs.map((ref) => {
      const tensor = this.values.get(refKey(ref))!;
      const rank = this.b.tensors[tensor]!.shape.length;
      return {
        name: endpoint(ref, 'input'),
        tensor,
        layout: rank === 4 ? ('NHWC' as const) : rank === 2 ? ('NC' as const) : ('other' as const),
      };
    });
    const outputs = graph.outputs.map((ref) => ({
      name: endpoint(ref, 'output'),
      tensor: this.values.get(refKey(ref))!,
    }));
    return this.b.finish(inputs, outputs, {
      id: options.modelId ?? 'tfjs-model',
      version: '1',
      name: path,
      ...(options.labels ? { labels: options.labels } : {}),
    });
  }
}
