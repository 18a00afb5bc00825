// The small runtime graphs a latency table times: one per grid point (latency-table.ts), built here in the
// runtime's own IR (a manifest and its decoded constants, as the package reader hands them to the runtime),
// so that the table measures each layer as a deployed package runs it — through the compile pass (a conv
// followed by a ReLU clip is fused into one kernel call) and the native execution plan.
//
// Weights are random (timing does not depend on their values, except the sparse formats' density, fixed
// here at SPARSITY) and go through the package's own encoders and decoder, so a compressed format's layer is
// loaded from exactly the parts a package stores.
import { createHash } from 'node:crypto';

import {
  type DecodedTensor,
  decodeTensor,
  type DType,
  type EncodedTensor,
  encodeRaw,
  encodeWeights,
  type WeightEncodingOptions,
} from '../package/encodings.js';
import {
  type AttributeValue,
  type Manifest,
  type ManifestNode,
  type ManifestTensor,
  type NumberFormat,
  requiredFormatMinor,
  type TensorQuantization,
} from '../package/manifest.js';
import type { Package } from '../package/reader.js';

/** Fraction of weights pruned in the sparse and sparse-codebook layers of the grid. */
export const SPARSITY = 0.9;

import { latencyKey, type LatencyPoint } from './latency-table-schema.js';
import { SPACE_SHAPES } from './search-space-layers.js';

export { LATENCY_OPS, latencyKey, type LatencyOp, type LatencyPoint } from './latency-table-schema.js';

const ACT_QUANT: TensorQuantization = { scale: [0.05], zeroPoint: [0] };

/** A graph under construction: tensors, nodes and the decoded constants, in the package's index space. */
class GraphBuilder {
  readonly tensors: ManifestTensor[] = [];
  readonly nodes: ManifestNode[] = [];
  readonly constants: (DecodedTensor | undefined)[] = [];

  activation(name: string, dtype: DType, shape: number[], quant?: TensorQuantization): number {
    this.tensors.push({ name, dtype, shape, ...(quant ? { quant } : {}) });
    this.constants.push(undefined);
    return this.tensors.length - 1;
  }

  constant(
    name: string,
    dtype: DType,
    shape: number[],
    encoded: EncodedTensor,
    quant?: TensorQuantization,
  ): number {
    const layout = { dtype, shape };
    this.tensors.push({ name, dtype, shape, encoding: encoded.encoding, ...(quant ? { quant } : {}) });
    this.constants.push(decodeTensor(encoded.bytes, 0, layout, encoded.encoding, {}));
    return this.tensors.length - 1;
  }

  node(
    name: string,
    op: string,
    format: NumberFormat,
    inputs: number[],
    outputs: number[],
    attrs: Record<string, AttributeValue> = {},
  ): void {
    this.nodes.push({ name, op, format, inputs, outputs, attrs });
  }

  /** The graph as the package reader would hand it to the runtime (unsigned, in memory). */
  package(id: string, inputs: number[], output: number): Package {
    const manifest: Manifest = {
      format: 'whittle-package',
      version: 1,
      model: { id: id.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200), version: '1' },
      target: { deviceClass: 'any', cpuFamily: 'any' },
      inputs: inputs.map((tensor, i) => ({
        name: `input${i}`,
        tensor,
        layout: this.tensors[tensor]!.shape.length === 4 ? 'NHWC' : 'other',
      })),
      outputs: [{ name: 'output', tensor: output }],
      tensors: this.tensors,
      nodes: this.nodes,
    };
    return {
      header: { major: 1, minor: requiredFormatMinor(manifest), contentSize: 0, sectionCount: 0 },
      sections: [],
      manifest,
      constants: this.constants,
      sha256: '',
      signerKeyId: '',
      signature: 'unchecked',
      fileBytes: 0,
    };
  }
}

const randomWeights = (n: number, scale: number): Float32Array =>
  Float32Array.from({ length: n }, () => (Math.random() * 2 - 1) * scale);

/** The activation fractional lengths of the fixed-point layers of the grid. */
const FIXED_POINT_ATTRS: Partial<Record<NumberFormat, Record<string, AttributeValue>>> = {
  fixed16: { input_fl: 8, output_fl: 8 },
  fixed8: { input_fl: 5, output_fl: 4 },
};

/** The weight tensor of a conv2d ([O][KH][KW][I/groups]) or fully_connected ([O][K]) layer in `format`, and
 * the node attributes the format needs (fixed point's activation fractional lengths). */
function weightTensor(
  g: GraphBuilder,
  format: NumberFormat,
  shape: number[],
  sparsity = SPARSITY,
): { index: number; attrs: Record<string, AttributeValue> } {
  const n = shape.reduce((a, b) => a * b, 1);
  const w = randomWeights(n, 0.1);
  const pruned = (): Float32Array => w.map((v) => (Math.random() < sparsity ? 0 : v));
  const centroids = Float32Array.from({ length: 16 }, (_, i) => ((i - 7.5) / 7.5) * 0.1);
  if (format === 'int8') {
    const rows = shape[0]!;
    const quant = {
      scale: new Array<number>(rows).fill(0.01),
      zeroPoint: new Array<number>(rows).fill(0),
      axis: 0,
    };
    const q = Int8Array.from(w, (v) => Math.round(v * 100));
    return { index: g.constant('w', 'i8', shape, encodeWeights(format, q, shape), quant), attrs: {} };
  }
  // Each option is read only by the formats that need it (encodeWeights).
  const options: WeightEncodingOptions = {
    fracBits: format === 'fixed16' ? 12 : 7,
    centroids,
    indices: Uint8Array.from({ length: n }, () => Math.floor(Math.random() * 16)),
    hashed: { buckets: Math.max(1, Math.floor(n / 8)), seed: 1 },
  };
  const values =
    format === 'sparse'
      ? pruned()
      : format === 'sparse-codebook'
        ? pruned().map((v) => (v === 0 ? 0 : centroids[Math.floor(Math.random() * 16)]!))
        : w;
  const index = g.constant('w', 'f32', shape, encodeWeights(format, values, shape, options));
  return { index, attrs: FIXED_POINT_ATTRS[format] ?? {} };
}

/** The layer's bias: i32 for int8 layers, f32 otherwise. */
function biasTensor(g: GraphBuilder, format: NumberFormat, channels: number): number {
  if (format === 'int8') return g.constant('b', 'i32', [channels], encodeRaw(new Int32Array(channels)));
  return g.constant('b', 'f32', [channels], encodeRaw(randomWeights(channels, 0.1)));
}

/** The activation dtype and quantization of a layer in `format` (int8 runs on i8 activations). */
function act(format: NumberFormat): [DType, TensorQuantization | undefined] {
  return format === 'int8' ? ['i8', ACT_QUANT] : ['f32', undefined];
}

const outSide = (size: number, kernel: number, stride: number): number =>
  Math.floor((size + 2 * Math.floor(kernel / 2) - kernel) / stride) + 1;

/** An activation of a graph under construction: its tensor and NHWC shape. */
interface Activation {
  tensor: number;
  shape: number[];
}

/** A conv2d layer on `x` in `format` (int8: a qconv2d with its ReLU; the others: a conv2d and a ReLU clip,
 * which the compile pass fuses for f32-activation formats), "same" padding. */
function convLayer(
  g: GraphBuilder,
  x: Activation,
  format: NumberFormat,
  o: { name: string; outC: number; kernel: number; stride: number; groups: number; sparsity?: number },
): Activation {
  const [dtype, quant] = act(format);
  const [, size, , inC] = x.shape as [number, number, number, number];
  const side = outSide(size, o.kernel, o.stride);
  const shape = [1, side, side, o.outC];
  const w = weightTensor(g, format, [o.outC, o.kernel, o.kernel, inC / o.groups], o.sparsity);
  const b = biasTensor(g, format, o.outC);
  const y = g.activation(`${o.name}.y`, dtype, shape, quant);
  const p = Math.floor(o.kernel / 2);
  const attrs = { strides: [o.stride, o.stride], dilations: [1, 1], pads: [p, p, p, p], groups: o.groups };
  if (format === 'int8') {
    g.node(o.name, 'qconv2d', format, [x.tensor, w.index, b], [y], { ...attrs, min: 0 });
    return { tensor: y, shape };
  }
  g.node(o.name, 'conv2d', format, [x.tensor, w.index, b], [y], { ...attrs, ...w.attrs });
  const r = g.activation(`${o.name}.relu`, dtype, shape);
  g.node(o.name === 'layer' ? 'relu' : `${o.name}_relu`, 'clip', 'f32', [y], [r], { min: 0 });
  return { tensor: r, shape };
}

/** The fraction of a layer's weights its kernel reads: nonzeros over elements for the sparse formats, 1 for the
 * dense ones (their time does not depend on the values). */
export function weightDensity(weights: DecodedTensor | undefined, elements: number): number {
  if (weights === undefined || elements === 0) return 1;
  if (weights.kind === 'sparse') return weights.values.length / elements;
  if (weights.kind === 'sparse-codebook') return weights.positions.length / elements;
  return 1;
}

/** Deterministic choices drawn from a seed (a SHA-256 chain of it): a network point's structure is the same
 * wherever its graph is built, on the device that times it and in the predictor that prices it. */
class Choices {
  #bytes: Buffer;
  #at = 0;

  constructor(seed: number) {
    this.#bytes = createHash('sha256').update(`whittle latency network ${seed}`).digest();
  }

  pick<T>(choices: readonly T[]): T {
    if (this.#at + 2 > this.#bytes.length) {
      this.#bytes = createHash('sha256').update(this.#bytes).digest();
      this.#at = 0;
    }
    const v = this.#bytes.readUInt16LE(this.#at);
    this.#at += 2;
    return choices[v % choices.length]!;
  }
}

/** The formats a network's conv layers take (sparse: a pruned fp32 layer, NETWORK_SPARSITIES pruned). */
const NETWORK_FORMATS: readonly NumberFormat[] = ['f32', 'int8', 'ternary', 'binary', 'sparse'];
const NETWORK_SPARSITIES = SPACE_SHAPES.prunes;

/** A small whole network of the kind the NAS search space (optimize/nas/space.ts) builds at 28x28x1: a 3x3
 * stem (stride 1 or 2), three stages that halve the resolution, each of plain convs, depthwise-separable blocks, fire
 * modules (max pool, squeeze, two expands, concat) or ShuffleNet units (two branches, concat, channel
 * shuffle), global average pooling, a classifier and softmax; each stage in one format (int8 stages run on
 * int8 activations, with quantize / dequantize edges where the format changes). Its structure is drawn from
 * `seed` (Choices), its weights are random. */
function networkGraph(g: GraphBuilder, seed: number, key: string): Package {
  const c = new Choices(seed);
  let n = 0;
  const name = (what: string): string => `n${n++}_${what}`;
  const input = g.activation('x', 'f32', [1, 28, 28, 1]);
  let x: Activation = { tensor: input, shape: [1, 28, 28, 1] };
  let int8 = false;
  /** x in the activation type of `format` (a quantize or dequantize edge where it changes). */
  const domain = (format: NumberFormat): void => {
    if ((format === 'int8') === int8) return;
    int8 = format === 'int8';
    const [dtype, quant] = act(format);
    const y = g.activation(name('edge'), dtype, x.shape, quant);
    g.node(name('edge'), int8 ? 'quantize_linear' : 'dequantize_linear', 'int8', [x.tensor], [y]);
    x = { tensor: y, shape: x.shape };
  };
  const format = (): { format: NumberFormat; sparsity?: number } => {
    const f = c.pick(NETWORK_FORMATS);
    return f === 'sparse' ? { format: f, sparsity: c.pick(NETWORK_SPARSITIES) } : { format: f };
  };
  const conv = (
    from: Activation,
    f: { format: NumberFormat; sparsity?: number },
    outC: number,
    kernel: number,
    stride = 1,
    groups = 1,
  ): Activation =>
    convLayer(g, from, f.format, { name: name('conv'), outC, kernel, stride, groups, sparsity: f.sparsity });
  /** Depthwise layers have no ternary / binary / sparse kernel: fp32 unless int8. */
  const dw = (from: Activation, f: { format: NumberFormat }, kernel: number, stride: number): Activation =>
    conv(
      from,
      { format: f.format === 'int8' ? 'int8' : 'f32' },
      from.shape[3]!,
      kernel,
      stride,
      from.shape[3],
    );
  const elementwise = (op: string, inputs: Activation[], shape: number[], attrs = {}): Activation => {
    const [dtype, quant] = act(int8 ? 'int8' : 'f32');
    const y = g.activation(name(op), dtype, shape, quant);
    g.node(
      name(op),
      op,
      int8 ? 'int8' : 'f32',
      inputs.map((a) => a.tensor),
      [y],
      attrs,
    );
    return { tensor: y, shape };
  };
  const stem = format();
  domain(stem.format);
  x = conv(x, stem, c.pick(SPACE_SHAPES.stemWidths), 3, c.pick(SPACE_SHAPES.stemStrides));
  for (const choices of SPACE_SHAPES.stageWidths) {
    const width = c.pick(choices);
    const depth = c.pick(SPACE_SHAPES.depths);
    const kernel = c.pick(SPACE_SHAPES.kernels);
    const block = c.pick(['conv', 'dwsep', 'fire', 'shuffle'] as const);
    const f = format();
    domain(f.format);
    for (let j = 0; j < depth; j++) {
      const stride = j === 0 ? 2 : 1;
      if (block === 'conv') x = conv(x, f, width, kernel, stride);
      else if (block === 'dwsep') x = conv(dw(x, f, kernel, stride), f, width, 1);
      else if (block === 'fire') {
        if (j === 0) {
          const [, size, , ch] = x.shape as [number, number, number, number];
          const side = Math.floor(size / 2);
          x = elementwise('max_pool', [x], [1, side, side, ch], {
            kernel: [2, 2],
            strides: [2, 2],
            pads: [0, 0, 0, 0],
          });
        }
        const squeeze = conv(x, f, width / 4, 1);
        const a = conv(squeeze, f, width / 2, 1);
        const b = conv(squeeze, f, width / 2, kernel);
        x = elementwise('concat', [a, b], [...a.shape.slice(0, 3), width], { axis: 3 });
      } else {
        const half = width / 2;
        let left = x;
        let right = x;
        if (stride === 1) {
          // The unit's channel split: the halves paired up by a shuffle, each picked by a grouped 1x1 conv.
          const paired = elementwise('channel_shuffle', [x], x.shape, { groups: 2 });
          const pick = { format: f.format === 'int8' ? f.format : 'f32' } as const;
          left = conv(paired, pick, half, 1, 1, half);
          right = conv(paired, pick, half, 1, 1, half);
        } else left = conv(dw(x, f, kernel, stride), f, half, 1);
        right = conv(dw(conv(right, f, half, 1), f, kernel, stride), f, half, 1);
        const joined = elementwise('concat', [left, right], [...left.shape.slice(0, 3), width], { axis: 3 });
        x = elementwise('channel_shuffle', [joined], joined.shape, { groups: 2 });
      }
    }
  }
  x = elementwise('global_avgpool', [x], [1, 1, 1, x.shape[3]!]);
  x = elementwise('reshape', [x], [1, x.shape[3]!], { shape: [1, x.shape[3]!] });
  const head = format();
  domain(head.format);
  const [dtype, quant] = act(head.format);
  const w = weightTensor(g, head.format, [10, x.shape[1]!], head.sparsity);
  const b = biasTensor(g, head.format, 10);
  const logits = g.activation(name('fc'), dtype, [1, 10], quant);
  g.node(
    name('fc'),
    head.format === 'int8' ? 'qfully_connected' : 'fully_connected',
    head.format,
    [x.tensor, w.index, b],
    [logits],
    w.attrs,
  );
  x = { tensor: logits, shape: [1, 10] };
  domain('f32');
  const scores = g.activation(name('softmax'), 'f32', [1, 10]);
  g.node(name('softmax'), 'softmax', 'f32', [x.tensor], [scores], { axis: -1 });
  return g.package(key, [input], scores);
}

/** The graph that times `point`: its layer alone, its input the graph's input, its output the graph's output.
 * conv2d and fully_connected layers are followed by a ReLU clip, which the compile pass fuses (f32-activation
 * formats) — the form a network's layers run in. */
export function latencyGraph(point: LatencyPoint): Package {
  const g = new GraphBuilder();
  const key = latencyKey(point);
  const { format } = point;
  const [dtype, quant] = act(format);
  const need = (v: number | undefined, what: string): number => {
    if (v === undefined) throw new RangeError(`grid point ${key} has no ${what}`);
    return v;
  };
  switch (point.op) {
    case 'conv2d': {
      const size = need(point.size, 'size');
      const inC = need(point.inC, 'inC');
      const depthwise = point.depthwise === true;
      const x = g.activation('x', dtype, [1, size, size, inC], quant);
      const y = convLayer(g, { tensor: x, shape: [1, size, size, inC] }, format, {
        name: 'layer',
        outC: depthwise ? inC : need(point.outC, 'outC'),
        kernel: need(point.kernel, 'kernel'),
        stride: point.stride ?? 1,
        groups: depthwise ? inC : (point.groups ?? 1),
        sparsity: point.sparsity,
      });
      return g.package(key, [x], y.tensor);
    }
    case 'fully_connected': {
      const inC = need(point.inC, 'inC');
      const outC = need(point.outC, 'outC');
      const x = g.activation('x', dtype, [1, inC], quant);
      const w = weightTensor(g, format, [outC, inC], point.sparsity);
      const b = biasTensor(g, format, outC);
      const y = g.activation('y', dtype, [1, outC], quant);
      if (format === 'int8') {
        g.node('layer', 'qfully_connected', format, [x, w.index, b], [y], { min: 0 });
        return g.package(key, [x], y);
      }
      g.node('layer', 'fully_connected', format, [x, w.index, b], [y], w.attrs);
      const r = g.activation('relu', dtype, [1, outC]);
      g.node('relu', 'clip', 'f32', [y], [r], { min: 0 });
      return g.package(key, [x], r);
    }
    case 'max_pool':
    case 'avg_pool': {
      const size = need(point.size, 'size');
      const c = need(point.inC, 'inC');
      const k = point.kernel ?? 2;
      const stride = point.stride ?? 2;
      const o = Math.floor((size - k) / stride) + 1;
      const x = g.activation('x', dtype, [1, size, size, c], quant);
      const y = g.activation('y', dtype, [1, o, o, c], quant);
      g.node('layer', point.op, format, [x], [y], {
        kernel: [k, k],
        strides: [stride, stride],
        pads: [0, 0, 0, 0],
      });
      return g.package(key, [x], y);
    }
    case 'global_avgpool': {
      const size = need(point.size, 'size');
      const c = need(point.inC, 'inC');
      const x = g.activation('x', dtype, [1, size, size, c], quant);
      const y = g.activation('y', dtype, [1, 1, 1, c], quant);
      g.node('layer', 'global_avgpool', format, [x], [y]);
      return g.package(key, [x], y);
    }
    case 'clip':
    case 'reshape': {
      const n = need(point.elements, 'elements');
      const x = g.activation('x', dtype, [1, n], quant);
      const y = g.activation('y', dtype, point.op === 'clip' ? [1, n] : [1, n / 16, 16], quant);
      if (point.op === 'clip')
        g.node('layer', 'clip', format, [x], [y], format === 'int8' ? { min: 0 } : { min: 0, max: 6 });
      else g.node('layer', 'reshape', format, [x], [y], { shape: [1, n / 16, 16] });
      return g.package(key, [x], y);
    }
    case 'add':
    case 'concat':
    case 'channel_shuffle': {
      const n = need(point.elements, 'elements');
      const c = 16;
      const shape = [1, n / c, 1, c];
      const a = g.activation('a', dtype, shape, quant);
      if (point.op === 'channel_shuffle') {
        const y = g.activation('y', dtype, shape, quant);
        g.node('layer', 'channel_shuffle', format, [a], [y], { groups: 2 });
        return g.package(key, [a], y);
      }
      const b = g.activation('b', dtype, shape, quant);
      if (point.op === 'add') {
        const y = g.activation('y', dtype, shape, quant);
        g.node('layer', format === 'int8' ? 'qadd' : 'add', format, [a, b], [y]);
        return g.package(key, [a, b], y);
      }
      const y = g.activation('y', dtype, [1, n / c, 1, 2 * c], quant);
      g.node('layer', 'concat', format, [a, b], [y], { axis: 3 });
      return g.package(key, [a, b], y);
    }
    case 'quantize': {
      const n = need(point.elements, 'elements');
      const x = g.activation('x', 'f32', [1, n]);
      const y = g.activation('y', 'i8', [1, n], ACT_QUANT);
      g.node('layer', 'quantize_linear', 'int8', [x], [y]);
      return g.package(key, [x], y);
    }
    case 'dequantize': {
      const n = need(point.elements, 'elements');
      const x = g.activation('x', 'i8', [1, n], ACT_QUANT);
      const y = g.activation('y', 'f32', [1, n]);
      g.node('layer', 'dequantize_linear', 'int8', [x], [y]);
      return g.package(key, [x], y);
    }
    case 'softmax': {
      const n = need(point.elements, 'elements');
      const x = g.activation('x', 'f32', [1, n]);
      const y = g.activation('y', 'f32', [1, n]);
      g.node('layer', 'softmax', 'f32', [x], [y], { axis: -1 });
      return g.package(key, [x], y);
    }
    case 'call': {
      const x = g.activation('x', 'f32', [1, 1]);
      const y = g.activation('y', 'f32', [1, 1]);
      g.node('layer', 'clip', 'f32', [x], [y], { min: 0 });
      return g.package(key, [x], y);
    }
    case 'network':
      return networkGraph(g, need(point.seed, 'seed'), key);
    case 'ts_step': {
      const x = g.activation('x', 'f32', [1, 1]);
      const y = g.activation('y', 'f32', [1, 1]);
      g.node('layer', 'sub', 'f32', [x, x], [y]);
      return g.package(key, [x], y);
    }
  }
}
