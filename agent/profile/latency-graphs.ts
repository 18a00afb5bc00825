// The small runtime graphs a latency table times: one per grid point (latency-table.ts), built here in the
// runtime's own IR (a manifest and its decoded constants, as the package reader hands them to the runtime),
// so that the table measures each layer as a deployed package runs it — through the compile pass (a conv
// followed by a ReLU clip is fused into one kernel call) and the native execution plan.
//
// Weights are random (timing does not depend on their values, except the sparse formats' density, fixed
// here at SPARSITY) and go through the package's own encoders and decoder, so a compressed format's layer is
// loaded from exactly the parts a package stores.
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

/** The fraction of a layer's weights its kernel reads: nonzeros over elements for the sparse formats, 1 for the
 * dense ones (their time does not depend on the values). */
export function weightDensity(weights: DecodedTensor | undefined, elements: number): number {
  if (weights === undefined || elements === 0) return 1;
  if (weights.kind === 'sparse') return weights.values.length / elements;
  if (weights.kind === 'sparse-codebook') return weights.positions.length / elements;
  return 1;
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
      const k = need(point.kernel, 'kernel');
      const stride = point.stride ?? 1;
      const depthwise = point.depthwise === true;
      const outC = depthwise ? inC : need(point.outC, 'outC');
      const o = outSide(size, k, stride);
      const x = g.activation('x', dtype, [1, size, size, inC], quant);
      const w = weightTensor(g, format, [outC, k, k, depthwise ? 1 : inC], point.sparsity);
      const b = biasTensor(g, format, outC);
      const y = g.activation('y', dtype, [1, o, o, outC], quant);
      const p = Math.floor(k / 2);
      const attrs = {
        strides: [stride, stride],
        dilations: [1, 1],
        pads: [p, p, p, p],
        groups: depthwise ? inC : 1,
      };
      if (format === 'int8') {
        g.node('layer', 'qconv2d', format, [x, w.index, b], [y], { ...attrs, min: 0 });
        return g.package(key, [x], y);
      }
      g.node('layer', 'conv2d', format, [x, w.index, b], [y], { ...attrs, ...w.attrs });
      const r = g.activation('relu', dtype, [1, o, o, outC]);
      g.node('relu', 'clip', 'f32', [y], [r], { min: 0 });
      return g.package(key, [x], r);
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
    case 'ts_step': {
      const x = g.activation('x', 'f32', [1, 1]);
      const y = g.activation('y', 'f32', [1, 1]);
      g.node('layer', 'sub', 'f32', [x, x], [y]);
      return g.package(key, [x], y);
    }
  }
}
