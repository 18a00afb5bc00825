// Filter (channel) pruning by L1 norm (Li et al. 2017) that really removes the filters: the output channels
// of a conv, its bias, the batch norm channels after it, the depthwise channels it feeds and the matching
// input channels of every consumer, giving a smaller dense tfjs model with the kept weights copied.
//
// The model's channels are traced through its graph. A conv's filters make a channel *space*; layers that
// keep channels one to one (batch norm, activations, pooling, dropout, padding, depthwise convs) pass the
// space on; a concatenation lays the spaces of its inputs end to end (SqueezeNet's fire: expand1x1 ‖
// expand3x3 map onto ranges of the next squeeze's input); a flatten repeats the channels for every spatial
// position (the dense layer after it loses the matching rows); an add makes its inputs' spaces one (both
// sides of a residual keep the same channels, ranked by their filters' summed L1). A space that reaches a
// layer whose channels are coupled in a way this does not follow (ShuffleNet's channel split and shuffle,
// a softmax over channels, the model's output, any other layer) is *fixed*: its filters stay, and the plan
// says why.
//
// The same plan applied with `zero` instead of removing keeps the architecture and zeroes what the removed
// channels carry (the filters, their bias, their batch norm scale and shift, their depthwise taps): a model
// whose outputs the pruned one must equal, the exactness test of the surgery.
import * as tf from '@tensorflow/tfjs';

import { methodsFor, PipelineError } from './pipeline.js';

/** One channel of a tensor: a space (a conv's filters, or fixed channels) and the index in it. */
interface Channel {
  space: number;
  index: number;
}

/** A tensor's channels; `flat`: a flattened feature map, each channel repeated at `flat` positions
 * (channels fastest, as tfjs flattens NHWC). */
interface Channels {
  channels: Channel[];
  flat?: number;
}

interface Space {
  size: number;
  /** The conv layers whose filters make it (more than one when an add joins them). */
  producers: string[];
  /** Why its channels cannot be removed. */
  fixed?: string;
}

/** One axis of one weight of a layer that follows a channel list. `producer`: the weight makes the channel
 * (zeroed by the masked plan); else it consumes it (only removed). */
interface WeightAxis {
  weight: number;
  axis: number;
  channels: readonly Channel[];
  producer: boolean;
}

/** A weight layer's MACs: factor × the kept count of each list. */
interface MacTerm {
  layer: string;
  factor: number;
  lists: (readonly Channel[])[];
}

/** How each conv's filters are pruned, per layer: channels before and after, MACs before and after. */
export interface FilterLayerPlan {
  layer: string;
  filters: number;
  kept: number;
  /** When its filters are not pruned although it was asked for: why. */
  fixed?: string;
}

export interface FilterPlan {
  /** Kept filter indices of each pruned conv. */
  keep: Map<string, number[]>;
  layers: FilterLayerPlan[];
  macs: number;
  baselineMacs: number;
  /** The global MAC reduction asked for and whether it was reached. */
  target?: { macReduction: number; reached: number; met: boolean };
}

/** Layers that keep channels one to one and hold no weights. */
const PASS_THROUGH = new Set([
  'Activation',
  'ReLU',
  'LeakyReLU',
  'ELU',
  'Dropout',
  'SpatialDropout2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'ZeroPadding2D',
  'Cropping2D',
  'UpSampling2D',
]);

/** Layers that may take a flattened tensor and keep its features one to one. */
const FLAT_PASS_THROUGH = new Set(['Activation', 'ReLU', 'LeakyReLU', 'ELU', 'Dropout']);

const product = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const shapeOf = (t: tf.SymbolicTensor): number[] => t.shape.map((d) => d ?? 1);

const asList = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

/** The model's channels traced through its graph: spaces, the weight axes of every layer, the MAC terms. */
class ChannelGraph {
  readonly spaces: Space[] = [];
  readonly parent: number[] = [];
  readonly axes = new Map<string, WeightAxis[]>();
  readonly terms: MacTerm[] = [];
  /** Each conv's own filter space (before joins). */
  readonly spaceOf = new Map<string, number>();
  readonly #tensors = new Map<number, Channels>();

  constructor(readonly model: tf.LayersModel) {
    for (const input of model.inputs) this.#set(input, this.#fixedChannels(input, 'the model input'));
    for (const layer of model.layers) {
      if (layer.getClassName() === 'InputLayer') continue;
      if (layer.inboundNodes.length > 1)
        throw new PipelineError(
          `filter-prune: layer ${layer.name} is called ${layer.inboundNodes.length} times (a shared layer); ` +
            'filter-prune takes models whose layers are each called once',
        );
      this.#visit(layer);
    }
    for (const output of model.outputs) this.#fix(this.#get(output), 'it is the model output');
  }

  find(space: number): number {
    while (this.parent[space] !== space) space = this.parent[space] = this.parent[this.parent[space]!]!;
    return space;
  }

  #newSpace(size: number, producer?: string, fixed?: string): Channel[] {
    const id = this.spaces.length;
    this.spaces.push({ size, producers: producer ? [producer] : [], ...(fixed ? { fixed } : {}) });
    this.parent.push(id);
    return Array.from({ length: size }, (_, index) => ({ space: id, index }));
  }

  #fixedChannels(t: tf.SymbolicTensor, why: string): Channels {
    const shape = shapeOf(t);
    return { channels: this.#newSpace(shape[shape.length - 1]!, undefined, why) };
  }

  #fix(c: Channels, why: string): void {
    for (const ch of c.channels) {
      const root = this.spaces[this.find(ch.space)]!;
      root.fixed ??= why;
    }
  }

  #union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    this.parent[rb] = ra;
    const sa = this.spaces[ra]!;
    const sb = this.spaces[rb]!;
    sa.producers.push(...sb.producers);
    if (sa.fixed === undefined && sb.fixed !== undefined) sa.fixed = sb.fixed;
  }

  #get(t: tf.SymbolicTensor): Channels {
    const c = this.#tensors.get(t.id);
    if (c === undefined) throw new RangeError(`filter-prune: tensor ${t.name} was not traced`);
    return c;
  }

  #set(t: tf.SymbolicTensor, c: Channels): void {
    this.#tensors.set(t.id, c);
  }

  #weightIndex(layer: tf.layers.Layer, suffix: RegExp): number {
    return layer.weights.findIndex((w) => suffix.test(w.originalName));
  }

  #addAxis(layer: string, axis: WeightAxis): void {
    if (axis.weight < 0) return;
    const list = this.axes.get(layer) ?? [];
    list.push(axis);
    this.axes.set(layer, list);
  }

  /** The channels as a dense layer sees them: a flattened map's channel list repeated per position. */
  static features(c: Channels): Channel[] {
    if (c.flat === undefined) return c.channels;
    const out: Channel[] = [];
    for (let p = 0; p < c.flat; p++) out.push(...c.channels);
    return out;
  }

  #visit(layer: tf.layers.Layer): void {
    const inputs = asList(layer.input).map((t) => this.#get(t));
    const output = layer.output as tf.SymbolicTensor;
    const outShape = shapeOf(output);
    const kind = layer.getClassName();
    const config = layer.getConfig();
    const fixed = (why: string): void => {
      for (const c of inputs) this.#fix(c, why);
      this.#set(output, this.#fixedChannels(output, why));
    };
    const single = inputs.length === 1 ? inputs[0]! : undefined;
    const channelsLast = config.dataFormat === undefined || config.dataFormat === 'channelsLast';
    if (single?.flat !== undefined && kind !== 'Dense' && !FLAT_PASS_THROUGH.has(kind)) {
      fixed(`its flattened channels feed ${layer.name} (${kind})`);
      return;
    }
    const zeroPreserving = (activation: unknown): boolean => activation !== 'softmax';
    if (kind === 'Conv2D' && single && channelsLast && outShape.length === 4) {
      const kernel = this.#weightIndex(layer, /(^|\/)kernel(_\d+)?$/);
      const bias = this.#weightIndex(layer, /(^|\/)bias(_\d+)?$/);
      const [kh, kw] = layer.weights[kernel]!.shape as number[];
      const own = this.#newSpace(outShape[3]!, layer.name);
      this.spaceOf.set(layer.name, own[0]!.space);
      this.#addAxis(layer.name, { weight: kernel, axis: 2, channels: single.channels, producer: false });
      this.#addAxis(layer.name, { weight: kernel, axis: 3, channels: own, producer: true });
      this.#addAxis(layer.name, { weight: bias, axis: 0, channels: own, producer: true });
      this.terms.push({
        layer: layer.name,
        factor: outShape[1]! * outShape[2]! * kh! * kw!,
        lists: [single.channels, own],
      });
      const out = { channels: own };
      if (!zeroPreserving(config.activation)) this.#fix(out, `${layer.name} has a softmax over its channels`);
      this.#set(output, out);
      return;
    }
    if (kind === 'DepthwiseConv2D' && single && channelsLast && outShape.length === 4) {
      const kernel = this.#weightIndex(layer, /(^|\/)depthwise_kernel(_\d+)?$/);
      const bias = this.#weightIndex(layer, /(^|\/)bias(_\d+)?$/);
      const [kh, kw, , multiplier] = layer.weights[kernel]!.shape as number[];
      const out = single.channels.flatMap((c) => new Array<Channel>(multiplier!).fill(c));
      this.#addAxis(layer.name, { weight: kernel, axis: 2, channels: single.channels, producer: true });
      this.#addAxis(layer.name, { weight: bias, axis: 0, channels: out, producer: true });
      this.terms.push({ layer: layer.name, factor: outShape[1]! * outShape[2]! * kh! * kw!, lists: [out] });
      this.#set(output, { channels: out });
      if (!zeroPreserving(config.activation)) this.#fix({ channels: out }, `${layer.name} has a softmax`);
      return;
    }
    if (kind === 'Dense' && single) {
      const kernel = this.#weightIndex(layer, /(^|\/)kernel(_\d+)?$/);
      const features = ChannelGraph.features(single);
      if (layer.weights[kernel]!.shape[0] !== features.length) {
        fixed(`${layer.name} (Dense) takes a tensor of another rank`);
        return;
      }
      this.#addAxis(layer.name, { weight: kernel, axis: 0, channels: features, producer: false });
      const units = this.#fixedChannels(output, `${layer.name}'s outputs are dense units, not filters`);
      this.terms.push({ layer: layer.name, factor: units.channels.length, lists: [features] });
      this.#set(output, units);
      return;
    }
    const axis = config.axis as number | number[] | undefined;
    if (
      kind === 'BatchNormalization' &&
      single &&
      (axis === -1 || axis === outShape.length - 1 || (Array.isArray(axis) && axis.length === 1))
    ) {
      for (const [name, producer] of [
        ['gamma', true],
        ['beta', true],
        ['moving_mean', false],
        ['moving_variance', false],
      ] as const)
        this.#addAxis(layer.name, {
          weight: this.#weightIndex(layer, new RegExp(`(^|/)${name}(_\\d+)?$`)),
          axis: 0,
          channels: single.channels,
          producer,
        });
      this.#set(output, single);
      return;
    }
    if (kind === 'Flatten' && single) {
      const inShape = shapeOf(asList(layer.input)[0]!);
      this.#set(
        output,
        inShape.length === 2 ? single : { channels: single.channels, flat: product(inShape.slice(1, -1)) },
      );
      return;
    }
    if (kind === 'Concatenate' && (axis === -1 || axis === outShape.length - 1)) {
      if (inputs.some((c) => c.flat !== undefined)) {
        fixed(`${layer.name} concatenates flattened tensors`);
        return;
      }
      this.#set(output, { channels: inputs.flatMap((c) => c.channels) });
      return;
    }
    if (kind === 'Add' && inputs.length > 1) {
      const first = inputs[0]!;
      const aligned = inputs.every(
        (c) =>
          c.flat === first.flat &&
          c.channels.length === first.channels.length &&
          c.channels.every((ch, i) => ch.index === first.channels[i]!.index),
      );
      if (!aligned) {
        fixed(`${layer.name} adds tensors whose channels do not line up`);
        return;
      }
      for (const c of inputs.slice(1))
        c.channels.forEach((ch, i) => this.#union(first.channels[i]!.space, ch.space));
      this.#set(output, first);
      return;
    }
    if (PASS_THROUGH.has(kind) && single && (kind !== 'Activation' || zeroPreserving(config.activation))) {
      this.#set(output, single);
      return;
    }
    fixed(`its channels feed ${layer.name} (${kind}), whose channels are coupled`);
  }
}

/** The L1 norm of each output filter of a conv kernel [kh, kw, in, out]. */
function filterNorms(kernel: Float32Array, filters: number): Float64Array {
  const norms = new Float64Array(filters);
  for (let i = 0; i < kernel.length; i++) norms[i % filters]! += Math.abs(kernel[i]!);
  return norms;
}

export interface FilterPruneRequest {
  /** The conv layers whose filters may go: each with its own fraction of filters to remove, or undefined
   * for the common one. */
  layers: ReadonlyMap<string, number | undefined>;
  /** The common fraction of filters removed from each layer. */
  fraction?: number;
  /** Instead of `fraction`: the smallest common fraction (in steps of 1 %) that removes at least this
   * fraction of the model's MACs. */
  macReduction?: number;
  /** Layers named explicitly: one whose filters cannot go is refused (else it is reported as fixed). */
  named?: ReadonlySet<string>;
}

/** Which filters to keep: from each layer the fraction of its filters of least L1 norm removed (a space
 * joined by an add ranks by its producers' summed norms and takes the largest fraction asked of them), at
 * least one filter kept. */
export function planFilterPruning(model: tf.LayersModel, request: FilterPruneRequest): FilterPlan {
  const graph = new ChannelGraph(model);
  const convs = [...graph.spaceOf.keys()];
  const rootOf = (layer: string): number => graph.find(graph.spaceOf.get(layer)!);
  for (const name of request.named ?? []) {
    if (!graph.spaceOf.has(name))
      throw new PipelineError(
        `filter-prune: layer ${name} is not a conv layer the filters of which can be traced; ` +
          `the layers filter-prune takes are ${convs.join(', ')}`,
      );
    const fixed = graph.spaces[rootOf(name)]!.fixed;
    if (fixed !== undefined)
      throw new PipelineError(
        `filter-prune: layer ${name} cannot lose filters: ${fixed}; ${methodsFor('Conv2D', 'filter-prune')}`,
      );
  }
  // Spaces to prune: those with a selected producer and nothing fixing them, their filters in increasing
  // order of L1 norm (summed over the producers).
  const roots = new Map<number, { size: number; own?: number; order: number[] }>();
  for (const layer of convs) {
    const root = rootOf(layer);
    const space = graph.spaces[root]!;
    if (!request.layers.has(layer) || space.fixed !== undefined) continue;
    const own = request.layers.get(layer);
    const entry = roots.get(root);
    if (entry !== undefined) {
      if (own !== undefined) entry.own = Math.max(entry.own ?? 0, own);
      continue;
    }
    const score = new Float64Array(space.size);
    for (const p of space.producers) {
      const kernel = model.getLayer(p).weights.find((w) => /(^|\/)kernel(_\d+)?$/.test(w.originalName))!;
      filterNorms(kernel.read().dataSync() as Float32Array, space.size).forEach((n, i) => (score[i]! += n));
    }
    const order = [...score.keys()].sort((a, b) => score[a]! - score[b]! || a - b);
    roots.set(root, { size: space.size, ...(own !== undefined ? { own } : {}), order });
  }
  const keep = new Map<number, Uint8Array>();
  const mark = (common: number): void => {
    for (const [root, { size, own, order }] of roots) {
      const mask = new Uint8Array(size).fill(1);
      const remove = Math.min(size - 1, Math.floor((own ?? common) * size));
      for (const i of order.slice(0, remove)) mask[i] = 0;
      keep.set(root, mask);
    }
  };
  const kept = (list: readonly Channel[]): number =>
    list.reduce((n, c) => n + (keep.get(graph.find(c.space))?.[c.index] === 0 ? 0 : 1), 0);
  const totalMacs = (): number =>
    graph.terms.reduce((sum, t) => sum + t.lists.reduce((m, l) => m * kept(l), t.factor), 0);
  const baselineMacs = totalMacs();
  let target: FilterPlan['target'];
  if (request.macReduction === undefined) mark(request.fraction ?? 0);
  else {
    let reached = 0;
    for (let step = 0; step < 100; step++) {
      mark(step / 100);
      reached = 1 - totalMacs() / baselineMacs;
      if (reached >= request.macReduction) break;
    }
    target = { macReduction: request.macReduction, reached, met: reached >= request.macReduction };
  }
  const plan: FilterPlan = {
    keep: new Map(),
    layers: [],
    macs: totalMacs(),
    baselineMacs,
    ...(target ? { target } : {}),
  };
  for (const layer of convs) {
    if (!request.layers.has(layer)) continue;
    const root = rootOf(layer);
    const mask = keep.get(root);
    const filters = graph.spaces[graph.spaceOf.get(layer)!]!.size;
    const indices = mask ? [...mask.keys()].filter((i) => mask[i] === 1) : [...Array(filters).keys()];
    if (mask) plan.keep.set(layer, indices);
    const fixed = graph.spaces[root]!.fixed;
    plan.layers.push({ layer, filters, kept: indices.length, ...(fixed !== undefined ? { fixed } : {}) });
  }
  return plan;
}

/** The positions of `channels` that stay under `keep` (indexed by the conv layer making each space). */
function keptPositions(
  graph: ChannelGraph,
  channels: readonly Channel[],
  keep: ReadonlyMap<number, Set<number>>,
): boolean[] {
  return channels.map((c) => {
    const kept = keep.get(graph.find(c.space));
    return kept === undefined || kept.has(c.index);
  });
}

/** `values` of `shape` with the positions of `axis` where `stay` is false removed (or zeroed). */
function alongAxis(
  values: Float32Array,
  shape: number[],
  axis: number,
  stay: readonly boolean[],
  zero: boolean,
): { values: Float32Array; shape: number[] } {
  const outer = product(shape.slice(0, axis));
  const n = shape[axis]!;
  const inner = product(shape.slice(axis + 1));
  if (zero) {
    const out = Float32Array.from(values);
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < n; i++) if (!stay[i]) out.fill(0, (o * n + i) * inner, (o * n + i + 1) * inner);
    return { values: out, shape };
  }
  const keptCount = stay.filter((s) => s).length;
  const out = new Float32Array(outer * keptCount * inner);
  let k = 0;
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < n; i++)
      if (stay[i]) {
        out.set(values.subarray((o * n + i) * inner, (o * n + i + 1) * inner), k);
        k += inner;
      }
  const next = [...shape];
  next[axis] = keptCount;
  return { values: out, shape: next };
}

/** The model with `plan` applied: the filters it drops removed, with everything they feed (`zero`: kept in
 * place and zeroed, the same architecture). A new model; `model` is unchanged. */
export async function applyFilterPlan(
  model: tf.LayersModel,
  plan: FilterPlan,
  zero = false,
): Promise<tf.LayersModel> {
  const graph = new ChannelGraph(model);
  const keep = new Map<number, Set<number>>();
  for (const [layer, indices] of plan.keep) keep.set(graph.find(graph.spaceOf.get(layer)!), new Set(indices));
  const specs: tf.io.WeightsManifestEntry[] = [];
  const data: Float32Array[] = [];
  for (const layer of model.layers) {
    const axes = graph.axes.get(layer.name) ?? [];
    layer.weights.forEach((w, i) => {
      let current: { values: Float32Array; shape: number[] } = {
        values: Float32Array.from(w.read().dataSync() as Float32Array),
        shape: [...w.shape] as number[],
      };
      for (const a of axes)
        if (a.weight === i && (!zero || a.producer))
          current = alongAxis(
            current.values,
            current.shape,
            a.axis,
            keptPositions(graph, a.channels, keep),
            zero,
          );
      specs.push({ name: w.originalName, shape: current.shape, dtype: 'float32' });
      data.push(current.values);
    });
  }
  const topology = model.toJSON(null, false) as { config: { layers: { config: Record<string, unknown> }[] } };
  if (!zero)
    for (const entry of topology.config.layers) {
      const indices = plan.keep.get(entry.config.name as string);
      if (indices !== undefined) entry.config.filters = indices.length;
    }
  const bytes = new Uint8Array(data.reduce((n, d) => n + d.byteLength, 0));
  let offset = 0;
  for (const d of data) {
    bytes.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), offset);
    offset += d.byteLength;
  }
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: topology as unknown as tf.io.ModelJSON['modelTopology'],
      weightSpecs: specs,
      weightData: bytes.buffer,
    }),
  );
}
