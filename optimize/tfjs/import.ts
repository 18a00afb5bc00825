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

import type { ManifestNode } from '../../agent/package/manifest.js';
import { foldBatchNorm } from '../../agent/runtime/compile/fold-batchnorm.js';
import { GraphError } from '../../agent/runtime/graph-error.js';
import { elements } from '../../agent/runtime/tensor.js';
import { GraphBuilder } from '../package/graph-builder.js';
import type { PackageContent } from '../package/writer.js';
import { TfjsImportError } from './import-error.js';
import { type GraphNode, layerGraph, refKey, type TfjsLayer, TopologySchema } from './topology.js';
import { type NamedWeight, readWeights } from './weights.js';

export { TfjsImportError } from './import-error.js';

export const SUPPORTED_TFJS_LAYERS = [
  'InputLayer',
  'Dense',
  'Conv2D',
  'DepthwiseConv2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'Flatten',
  'Dropout',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'BatchNormalization',
  'Softmax',
  'Add',
  'Multiply',
  'Concatenate',
  'Reshape',
  'Permute',
  // The ShuffleNet unit's channel split and shuffle (optimize/zoo/shufflenet.ts).
  'WhittleChannelShuffle',
  'WhittleChannelSplit',
] as const;

/** Values of a layer's `activation` the runtime has ops for. */
export const SUPPORTED_TFJS_ACTIVATIONS = ['linear', 'relu', 'relu6', 'sigmoid', 'softmax'] as const;

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
}

/** Why a layer cannot be imported (its class, or class and activation), or null when it can. */
function unsupportedReason(layer: TfjsLayer): string | null {
  if (!(SUPPORTED_TFJS_LAYERS as readonly string[]).includes(layer.class_name)) return layer.class_name;
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

/** TensorFlow's SAME padding: the total is split with the extra pixel at the end. */
function tfPads(
  input: number,
  kernel: number,
  stride: number,
  dilation: number,
  same: boolean,
): [number, number] {
  if (!same) return [0, 0];
  const out = Math.ceil(input / stride);
  const total = Math.max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - input);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

const FOLDS_BATCH_NORM = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);

/** One conversion: the builder, the tensor of each layer output so far, and the batch norms to fold. */
class PackageBuild {
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
        this.values.set(key, new LayerBuild(this, node).output());
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

/** Builds one graph node (one call of one layer) and returns its output tensor. */
class LayerBuild {
  readonly b: GraphBuilder;
  readonly config: Record<string, unknown>;
  readonly kind: string;
  readonly label: string;

  constructor(
    readonly build: PackageBuild,
    readonly node: GraphNode,
  ) {
    this.b = build.b;
    this.config = node.layer.config;
    this.kind = node.layer.class_name;
    this.label = node.label;
  }

  fail(message: string): TfjsImportError {
    return new TfjsImportError(`layer ${this.label} (${this.kind}): ${message}`);
  }

  shape(t: number): number[] {
    return this.b.tensors[t]!.shape;
  }

  /** The single input tensor (of rank `rank` when given). */
  input(rank?: number): number {
    if (this.node.inputs.length !== 1)
      throw this.fail(`expected one input but it has ${this.node.inputs.length}`);
    const t = this.build.values.get(refKey(this.node.inputs[0]!))!;
    if (rank !== undefined && this.shape(t).length !== rank)
      throw this.fail(`expected a rank-${rank} input but received [${this.shape(t).join(', ')}]`);
    return t;
  }

  weight(name: string, rank: number): NamedWeight {
    const w = this.build.weights.get(`${this.node.name}/${name}`);
    if (!w) throw this.fail(`weight ${this.node.name}/${name} is missing from the weight files`);
    if (w.shape.length !== rank)
      throw this.fail(`weight ${name} has shape [${w.shape.join(', ')}], expected rank ${rank}`);
    return w;
  }

  int(key: string, fallback: number): number {
    const value = this.config[key] ?? fallback;
    if (!Number.isInteger(value))
      throw this.fail(`expected an integer ${key} but received ${JSON.stringify(value)}`);
    return value as number;
  }

  /** kernel_size, strides, pool_size, dilation_rate: one number or [rows, cols]. */
  pair(key: string, fallback: [number, number]): [number, number] {
    const value = this.config[key] ?? fallback;
    const pair = typeof value === 'number' ? [value, value] : value;
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((v) => Number.isInteger(v) && v >= 1))
      throw this.fail(`expected ${key} to be two positive integers but received ${JSON.stringify(value)}`);
    return pair as [number, number];
  }

  samePadding(): boolean {
    const padding = this.config.padding ?? 'valid';
    if (padding !== 'same' && padding !== 'valid')
      throw this.fail(`padding ${JSON.stringify(padding)} is not supported (same and valid are)`);
    return padding === 'same';
  }

  channelsLast(): void {
    const format = this.config.data_format ?? 'channels_last';
    if (format !== 'channels_last') throw this.fail(`data_format ${JSON.stringify(format)} is not supported`);
  }

  /** `axis` of the config (default -1) as a non-negative axis of a rank-`rank` tensor. */
  axis(rank: number): number {
    const axis = this.int('axis', -1);
    if (axis < -rank || axis >= rank) throw this.fail(`axis ${axis} is out of range for rank ${rank}`);
    return axis < 0 ? axis + rank : axis;
  }

  emit(op: string, inputs: number[], attrs: ManifestNode['attrs'], suffix = ''): number {
    return this.b.emit(`${this.label}${suffix}`, op, 'f32', inputs, attrs)[0]!;
  }

  activation(t: number, kind: unknown = this.config.activation): number {
    switch (kind ?? 'linear') {
      case 'linear':
        return t;
      case 'relu':
        return this.emit('clip', [t], { min: 0 }, '/relu');
      case 'relu6':
        return this.emit('clip', [t], { min: 0, max: 6 }, '/relu6');
      case 'sigmoid':
        return this.emit('sigmoid', [t], {}, '/sigmoid');
      case 'softmax':
        return this.emit('softmax', [t], { axis: -1 }, '/softmax');
      default:
        throw this.fail(`activation ${JSON.stringify(kind)} is not supported`);
    }
  }

  output(): number {
    switch (this.kind) {
      case 'InputLayer':
        return this.inputLayer();
      case 'Dropout':
        return this.input();
      case 'Dense':
        return this.dense();
      case 'Conv2D':
      case 'DepthwiseConv2D':
        return this.conv();
      case 'MaxPooling2D':
      case 'AveragePooling2D':
        return this.pool();
      case 'GlobalAveragePooling2D': {
        this.channelsLast();
        const pooled = this.emit('global_avgpool', [this.input(4)], {});
        return this.config.keepdims === true
          ? pooled
          : this.emit('reshape', [pooled], { shape: [0, -1] }, '/squeeze');
      }
      case 'Flatten': {
        const x = this.input();
        return this.emit('reshape', [x], { shape: [0, elements(this.shape(x).slice(1))] });
      }
      case 'Activation':
        return this.activation(this.input());
      case 'ReLU':
        return this.relu();
      case 'LeakyReLU': {
        // tfjs writes alpha (default 0.3), Keras 3 negative_slope.
        const alpha = Number(this.config.alpha ?? this.config.negative_slope ?? 0.3);
        return this.emit('leaky_relu', [this.input()], { alpha });
      }
      case 'Softmax': {
        const x = this.input();
        return this.emit('softmax', [x], { axis: this.axis(this.shape(x).length) });
      }
      case 'BatchNormalization':
        return this.batchNorm();
      case 'Add':
      case 'Multiply':
        return this.merge(this.kind === 'Add' ? 'add' : 'mul');
      case 'Concatenate': {
        const inputs = this.inputs();
        return this.emit('concat', inputs, { axis: this.axis(this.shape(inputs[0]!).length) });
      }
      case 'Reshape':
        return this.reshape();
      case 'Permute':
        return this.permute();
      case 'WhittleChannelShuffle':
        return this.emit('channel_shuffle', [this.input()], { groups: this.int('groups', 1) });
      case 'WhittleChannelSplit':
        return this.channelSplit();
      default:
        // layerGraph refused unsupported classes before anything was built.
        throw this.fail('this layer type is not supported');
    }
  }

  inputs(): number[] {
    if (this.node.inputs.length < 2)
      throw this.fail(`expected at least two inputs but it has ${this.node.inputs.length}`);
    return this.node.inputs.map((ref) => this.build.values.get(refKey(ref))!);
  }

  inputLayer(): number {
    const raw = this.config.batch_input_shape ?? this.config.batchInputShape ?? this.config.batch_shape;
    if (!Array.isArray(raw) || raw.length < 2)
      throw this.fail(`expected a batch_input_shape but received ${JSON.stringify(raw)}`);
    const dtype = this.config.dtype;
    if (typeof dtype === 'string' && dtype !== 'float32')
      throw this.fail(`input dtype ${dtype} is not supported (float32 is)`);
    const shape = raw.map((d, i) => (d === null && i === 0 ? this.build.batch : d) as unknown);
    if (!shape.every((d) => Number.isInteger(d) && (d as number) >= 1))
      throw this.fail(`input shape [${raw.map(String).join(', ')}] has unknown dimensions`);
    return this.b.addTensor(this.node.name, { dtype: 'f32', shape: shape as number[] });
  }

  /** The batch norm that alone reads this layer's output, if it folds; its parameters, one per channel. */
  foldedBatchNorm(
    outputRank: number,
    channels: number,
  ): {
    bn: GraphNode;
    fold: (w: Float32Array, bias: Float32Array | null) => { w: Float32Array; bias: Float32Array | null };
  } | null {
    const key = refKey({ layer: this.node.name, node: this.node.call });
    const bn = this.build.foldable.get(key);
    if (bn === undefined) return null;
    const bnLayer = new LayerBuild(this.build, bn);
    // Only a batch norm over the channel (last) axis is a per-output-channel rescale of the weights.
    if (bnLayer.axis(outputRank) !== outputRank - 1) return null;
    const params = bnLayer.batchNormParams(channels);
    return {
      bn,
      fold: (w, bias) => {
        const folded = foldBatchNorm(w, bias, channels, params);
        return { w: folded.weights, bias: folded.bias };
      },
    };
  }

  /** gamma, beta, moving mean and variance (absent gamma/beta when scale/center are false). */
  batchNormParams(channels: number): {
    gamma: Float32Array;
    beta: Float32Array;
    mean: Float32Array;
    variance: Float32Array;
    epsilon: number;
  } {
    const param = (key: string, present: boolean, fill: number): Float32Array => {
      if (!present) return new Float32Array(channels).fill(fill);
      const w = this.weight(key, 1);
      if (w.shape[0] !== channels)
        throw this.fail(`${key} has ${w.shape[0]} values but its input has ${channels} channels`);
      return w.data;
    };
    const epsilon = Number(this.config.epsilon ?? 0.001);
    if (!(epsilon > 0)) throw this.fail(`epsilon must be positive, got ${String(this.config.epsilon)}`);
    return {
      gamma: param('gamma', this.config.scale !== false, 1),
      beta: param('beta', this.config.center !== false, 0),
      mean: param('moving_mean', true, 0),
      variance: param('moving_variance', true, 1),
      epsilon,
    };
  }

  /** Marks the folded batch norm's output as this layer's. */
  foldedOutput(folded: { bn: GraphNode } | null, t: number): number {
    if (folded) this.build.values.set(refKey({ layer: folded.bn.name, node: folded.bn.call }), t);
    return t;
  }

  dense(): number {
    const x = this.input();
    const inShape = this.shape(x);
    if (inShape.length < 2)
      throw this.fail(`expected a rank >= 2 input but received [${inShape.join(', ')}]`);
    const kernel = this.weight('kernel', 2);
    const [inC, outC] = kernel.shape as [number, number];
    if (inC !== inShape[inShape.length - 1])
      throw this.fail(`kernel takes ${inC} inputs but the input has ${inShape[inShape.length - 1]} features`);
    if (this.config.units !== undefined && this.config.units !== outC)
      throw this.fail(`kernel has ${outC} outputs but units is ${JSON.stringify(this.config.units)}`);
    const transposed = new Float32Array(inC * outC);
    for (let r = 0; r < inC; r++)
      for (let c = 0; c < outC; c++) transposed[c * inC + r] = kernel.data[r * outC + c]!;
    const bias = this.bias(outC);
    const folded = this.foldedBatchNorm(inShape.length, outC);
    const { w, bias: b } = folded ? folded.fold(transposed, bias) : { w: transposed, bias };
    const weight = this.b.constant(`${this.label}.weight`, 'f32', [outC, inC], w);
    const biasTensor = b ? this.b.constant(`${this.label}.bias`, 'f32', [outC], b) : -1;
    // Keras applies Dense to the last axis of a higher-rank input: fold the other axes into the batch.
    const rows = inShape.length === 2 ? x : this.emit('reshape', [x], { shape: [-1, inC] }, '/rows');
    let y = this.emit('fully_connected', [rows, weight, biasTensor], {});
    if (inShape.length > 2)
      y = this.emit('reshape', [y], { shape: [-1, ...inShape.slice(1, -1), outC] }, '/unrows');
    return this.foldedOutput(folded, this.activation(y));
  }

  bias(channels: number): Float32Array | null {
    if (this.config.use_bias === false) return null;
    const bias = this.weight('bias', 1);
    if (bias.shape[0] !== channels)
      throw this.fail(`bias has ${bias.shape[0]} values for ${channels} output channels`);
    return bias.data;
  }

  conv(): number {
    this.channelsLast();
    const x = this.input(4);
    const [, inH, inW, cin] = this.shape(x) as [number, number, number, number];
    const depthwise = this.kind === 'DepthwiseConv2D';
    const kernel = this.weight(depthwise ? 'depthwise_kernel' : 'kernel', 4);
    const [kh, kw, kin, kout] = kernel.shape as [number, number, number, number];
    const [sizeH, sizeW] = this.pair('kernel_size', [kh, kw]);
    if (sizeH !== kh || sizeW !== kw)
      throw this.fail(`kernel_size is ${sizeH}x${sizeW} but the kernel weight is ${kh}x${kw}`);
    const groups = depthwise ? cin : this.int('groups', 1);
    if (kin * (depthwise ? 1 : groups) !== cin)
      throw this.fail(
        `the kernel takes ${kin * (depthwise ? 1 : groups)} input channels but the input has ${cin}`,
      );
    if (!depthwise && this.config.filters !== undefined && this.config.filters !== kout)
      throw this.fail(`the kernel has ${kout} filters but filters is ${JSON.stringify(this.config.filters)}`);
    if (!depthwise && kout % groups !== 0)
      throw this.fail(`${kout} filters do not split into ${groups} groups`);
    const outC = depthwise ? cin * kout : kout;
    // OHWI: conv [kh][kw][cin][cout] -> [cout][kh][kw][cin]; depthwise [kh][kw][cin][m] -> [cin*m][kh][kw][1].
    const ohwi = new Float32Array(kernel.data.length);
    for (let y = 0; y < kh; y++)
      for (let xx = 0; xx < kw; xx++)
        for (let c = 0; c < kin; c++)
          for (let o = 0; o < kout; o++) {
            const value = kernel.data[((y * kw + xx) * kin + c) * kout + o]!;
            if (depthwise) ohwi[((c * kout + o) * kh + y) * kw + xx] = value;
            else ohwi[((o * kh + y) * kw + xx) * kin + c] = value;
          }
    const bias = this.bias(outC);
    const folded = this.foldedBatchNorm(4, outC);
    const { w, bias: b } = folded ? folded.fold(ohwi, bias) : { w: ohwi, bias };
    const weight = this.b.constant(`${this.label}.weight`, 'f32', [outC, kh, kw, depthwise ? 1 : kin], w);
    const biasTensor = b ? this.b.constant(`${this.label}.bias`, 'f32', [outC], b) : -1;
    const strides = this.pair('strides', [1, 1]);
    const dilations = this.pair('dilation_rate', [1, 1]);
    const same = this.samePadding();
    const [top, bottom] = tfPads(inH, kh, strides[0], dilations[0], same);
    const [left, right] = tfPads(inW, kw, strides[1], dilations[1], same);
    const y = this.emit('conv2d', [x, weight, biasTensor], {
      strides,
      dilations,
      pads: [top, left, bottom, right],
      groups,
    });
    return this.foldedOutput(folded, this.activation(y));
  }

  pool(): number {
    this.channelsLast();
    const x = this.input(4);
    const [, inH, inW] = this.shape(x) as [number, number, number, number];
    const kernel = this.pair('pool_size', [2, 2]);
    // tfjs writes strides: null for "same as the pool size".
    const strides = this.config.strides === null ? kernel : this.pair('strides', kernel);
    const same = this.samePadding();
    const [top, bottom] = tfPads(inH, kernel[0], strides[0], 1, same);
    const [left, right] = tfPads(inW, kernel[1], strides[1], 1, same);
    // TensorFlow's average pooling divides by the pixels inside the image (count_include_pad 0, the default).
    return this.emit(this.kind === 'MaxPooling2D' ? 'max_pool' : 'avg_pool', [x], {
      kernel,
      strides,
      pads: [top, left, bottom, right],
    });
  }

  relu(): number {
    const x = this.input();
    const threshold = Number(this.config.threshold ?? 0);
    const slope = Number(this.config.negative_slope ?? 0);
    if (threshold !== 0) throw this.fail(`threshold ${threshold} is not supported (0 is)`);
    const max = this.config.max_value;
    if (max !== undefined && max !== null && typeof max !== 'number')
      throw this.fail(`expected a number max_value but received ${JSON.stringify(max)}`);
    if (slope !== 0) {
      const leaky = this.emit(
        'leaky_relu',
        [x],
        { alpha: slope },
        max === undefined || max === null ? '' : '/leaky',
      );
      return max === undefined || max === null ? leaky : this.emit('clip', [leaky], { max });
    }
    return this.emit('clip', [x], { min: 0, ...(typeof max === 'number' ? { max } : {}) });
  }

  batchNorm(): number {
    const x = this.input();
    const rank = this.shape(x).length;
    const axis = this.axis(rank);
    const params = this.batchNormParams(this.shape(x)[axis]!);
    const c = this.shape(x)[axis]!;
    const constant = (key: string, values: Float32Array): number =>
      this.b.constant(`${this.label}.${key}`, 'f32', [c], values);
    return this.emit(
      'batch_norm',
      [
        x,
        constant('gamma', params.gamma),
        constant('beta', params.beta),
        constant('moving_mean', params.mean),
        constant('moving_variance', params.variance),
      ],
      { epsilon: params.epsilon, axis },
    );
  }

  /** Add / Multiply of two or more inputs, left to right as Keras does. */
  merge(op: 'add' | 'mul'): number {
    const inputs = this.inputs();
    let y = inputs[0]!;
    for (let i = 1; i < inputs.length; i++)
      y = this.emit(op, [y, inputs[i]!], {}, i === inputs.length - 1 ? '' : `/${i}`);
    return y;
  }

  reshape(): number {
    const x = this.input();
    const target = this.config.target_shape ?? this.config.targetShape;
    if (!Array.isArray(target) || !target.every((d) => Number.isInteger(d) && (d === -1 || d >= 1)))
      throw this.fail(
        `expected a target_shape of positive integers (one may be -1) but received ${JSON.stringify(target)}`,
      );
    // 0 keeps the batch dimension of the input.
    return this.emit('reshape', [x], { shape: [0, ...(target as number[])] });
  }

  permute(): number {
    const x = this.input();
    const rank = this.shape(x).length;
    const dims = this.config.dims;
    // Keras counts dims from 1 (0 is the batch, which never moves).
    if (
      !Array.isArray(dims) ||
      dims.length !== rank - 1 ||
      [...(dims as number[])].sort((p, q) => p - q).some((d, i) => d !== i + 1)
    )
      throw this.fail(`dims ${JSON.stringify(dims)} is not a permutation of 1..${rank - 1}`);
    return this.emit('transpose', [x], { perm: [0, ...(dims as number[])] });
  }

  /**
   * One half of the channels. The runtime has no slice op, so the half is gathered with ops it has: a
   * channel shuffle with 2 groups puts channel k of each half side by side ([a0 b0 a1 b1 ...]), then a 1x1
   * convolution with one group per pair and weights (1, 0) or (0, 1) keeps a_k or b_k. 1 * v + 0 * w is v
   * exactly for finite values, and the cost is 2 MACs per output value. Both halves of one tensor share
   * the shuffle.
   */
  channelSplit(): number {
    const x = this.input(4);
    const channels = this.shape(x)[3]!;
    const part = this.int('part', 0);
    if (part !== 0 && part !== 1) throw this.fail(`part must be 0 or 1, got ${part}`);
    if (channels % 2 !== 0) throw this.fail(`cannot split ${channels} channels in two halves`);
    const half = channels / 2;
    let paired = this.build.pairedHalves.get(x);
    if (paired === undefined) {
      paired = this.emit('channel_shuffle', [x], { groups: 2 }, '/pair_halves');
      this.build.pairedHalves.set(x, paired);
    }
    const select = new Float32Array(2 * half);
    for (let k = 0; k < half; k++) select[2 * k + part] = 1;
    const weight = this.b.constant(`${this.label}.select`, 'f32', [half, 1, 1, 2], select);
    return this.emit('conv2d', [paired, weight, -1], {
      strides: [1, 1],
      dilations: [1, 1],
      pads: [0, 0, 0, 0],
      groups: half,
    });
  }
}
