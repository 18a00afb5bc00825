// One layer call under conversion, seen by the layer handlers of layers.ts: its config read with checks
// (int, pair, axis, samePadding, channelsLast), its input tensors, its weights, an emit named after the
// layer, the fused activation, and the batch norm folded into it.
import type { ManifestNode } from '../../agent/package/manifest.js';
import { foldBatchNorm } from '../../agent/runtime/compile/fold-batchnorm.js';
import type { GraphBuilder } from '../package/graph-builder.js';
import type { PackageBuild } from './import.js';
import { TfjsImportError } from './import-error.js';
import { type GraphNode, refKey } from './topology.js';
import type { NamedWeight } from './weights.js';

/** Values of a layer's `activation` the runtime has ops for. */
export const SUPPORTED_TFJS_ACTIVATIONS = ['linear', 'relu', 'relu6', 'sigmoid', 'softmax'] as const;

/** Builds one graph node (one call of one layer) and returns its output tensor. */
export class LayerBuild {
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

  inputs(): number[] {
    if (this.node.inputs.length < 2)
      throw this.fail(`expected at least two inputs but it has ${this.node.inputs.length}`);
    return this.node.inputs.map((ref) => this.build.values.get(refKey(ref))!);
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

  bias(channels: number): Float32Array | null {
    if (this.config.use_bias === false) return null;
    const bias = this.weight('bias', 1);
    if (bias.shape[0] !== channels)
      throw this.fail(`bias has ${bias.shape[0]} values for ${channels} output channels`);
    return bias.data;
  }
}
