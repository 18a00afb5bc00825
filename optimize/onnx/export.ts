// Package -> ONNX model, so ONNX Runtime (or any ONNX tool) can run and cross-check a compressed model.
// fp32-valued formats (binary, ternary, codebook, sparse, fixed point, hashed) export their weights expanded
// to fp32 — ONNX has no such storage — and compute the same function; int8 layers export as QDQ
// (DequantizeLinear -> float op -> QuantizeLinear), which ONNX Runtime fuses into its integer kernels.
// NHWC convolution and pooling are wrapped in Transposes to ONNX's NCHW.
import { type DecodedTensor, toFloat32 } from '../../agent/package/encodings.js';
import type { ManifestNode, TensorQuantization } from '../../agent/package/manifest.js';
import type { Package } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
import { elements, type TensorSpec } from '../../agent/runtime/tensor.js';
import { WhittleError } from '../../native/whittle-error.js';
import {
  type AttributeProto,
  type NodeProto,
  onnx,
  type TensorProto,
  type ValueInfoProto,
} from './onnx-proto.js';

export const EXPORT_OPSET = 13;

/** A node the exporter cannot express in ONNX; names the layer. */
export class OnnxExportError extends WhittleError {
  override readonly name = 'OnnxExportError';
  readonly code = 'cannot-export-onnx';
}

const ELEM = { f32: 1, u8: 2, i8: 3, i32: 6, bool: 9, i64: 7 } as const;

class OnnxGraphWriter {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  #count = 0;

  fresh(hint: string): string {
    return `${hint}__${++this.#count}`;
  }

  node(
    op: string,
    inputs: string[],
    outputs: string[],
    attributes: AttributeProto[] = [],
    name?: string,
  ): void {
    this.nodes.push({
      opType: op,
      input: inputs,
      output: outputs,
      attribute: attributes,
      name: name ?? this.fresh(op),
    });
  }

  /** Adds a node with one fresh output and returns that output's name. */
  op(op: string, inputs: string[], attributes: AttributeProto[] = [], hint = op): string {
    const out = this.fresh(hint);
    this.node(op, inputs, [out], attributes);
    return out;
  }

  initializer(name: string, dtype: keyof typeof ELEM, dims: number[], values: ArrayLike<number>): string {
    let raw: Uint8Array;
    switch (dtype) {
      case 'f32':
        raw = new Uint8Array(Float32Array.from(values).buffer);
        break;
      case 'i32':
        raw = new Uint8Array(Int32Array.from(values).buffer);
        break;
      case 'i64':
        raw = new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer);
        break;
      case 'i8':
        raw = new Uint8Array(Int8Array.from(values).buffer);
        break;
      default:
        raw = Uint8Array.from(values);
    }
    this.initializers.push({ name, dims, dataType: ELEM[dtype], rawData: raw });
    return name;
  }

  constant(hint: string, dtype: keyof typeof ELEM, dims: number[], values: ArrayLike<number>): string {
    return this.initializer(this.fresh(hint), dtype, dims, values);
  }
}

const ints = (name: string, values: number[]): AttributeProto => ({ name, type: 7, ints: values });
const int = (name: string, value: number): AttributeProto => ({ name, type: 2, i: value });
const float = (name: string, value: number): AttributeProto => ({ name, type: 1, f: value });

function numberAttr(node: ManifestNode, key: string, fallback: number): number {
  const v = node.attrs[key];
  return typeof v === 'number' ? v : fallback;
}
function intsAttr(node: ManifestNode, key: string, fallback: number[]): number[] {
  const v = node.attrs[key];
  return Array.isArray(v) ? v : fallback;
}

export function exportOnnx(pkg: Package): Uint8Array {
  const model = Model.fromPackage(pkg, { referenceOnly: true });
  const { manifest } = pkg;
  const specs: readonly TensorSpec[] = model.specs;
  const w = new OnnxGraphWriter();
  const names = manifest.tensors.map((t, i) => `${t.name.replace(/[^A-Za-z0-9_./-]/g, '_')}__t${i}`);
  manifest.inputs.forEach((input) => (names[input.tensor] = input.name));
  manifest.outputs.forEach((output) => {
    if (
      pkg.constants[output.tensor] === undefined &&
      !manifest.inputs.some((i) => i.tensor === output.tensor)
    ) {
      names[output.tensor] = output.name;
    }
  });

  // Constants as initializers (compressed ones expanded to their fp32 values).
  pkg.constants.forEach((decoded: DecodedTensor | undefined, i) => {
    if (!decoded) return;
    const spec = specs[i]!;
    const values = decoded.kind === 'raw' ? decoded.values : toFloat32(decoded, elements(spec.shape));
    w.initializer(names[i]!, decoded.kind === 'raw' ? spec.dtype : 'f32', spec.shape, values);
  });

  const quantParams = (q: TensorQuantization, dtype: string, hint: string): [string, string] => [
    w.constant(`${hint}_scale`, 'f32', q.scale.length === 1 ? [] : [q.scale.length], q.scale),
    w.constant(
      `${hint}_zero_point`,
      dtype === 'u8' ? 'u8' : dtype === 'i32' ? 'i32' : 'i8',
      q.zeroPoint.length === 1 ? [] : [q.zeroPoint.length],
      q.zeroPoint,
    ),
  ];
  const dequantize = (t: number, hint: string): string => {
    const spec = specs[t]!;
    if (!spec.quant)
      throw new OnnxExportError(`tensor ${manifest.tensors[t]!.name} has no quantization to dequantize`);
    const [scale, zero] = quantParams(spec.quant, spec.dtype, hint);
    const axis = spec.quant.scale.length > 1 ? [int('axis', spec.quant.axis ?? 0)] : [];
    return w.op('DequantizeLinear', [names[t]!, scale, zero], axis, `${hint}_dq`);
  };
  const quantizeTo = (x: string, t: number, hint: string): void => {
    const spec = specs[t]!;
    const [scale, zero] = quantParams(spec.quant!, spec.dtype, hint);
    w.node(
      'QuantizeLinear',
      [x, scale, zero],
      [names[t]!],
      spec.quant!.scale.length > 1 ? [int('axis', spec.quant!.axis ?? 0)] : [],
    );
  };
  const clipFloat = (x: string, min: number, max: number): string => {
    if (min === -Infinity && max === Infinity) return x;
    if (min === 0 && max === Infinity) return w.op('Relu', [x]);
    const lo = min === -Infinity ? '' : w.constant('clip_min', 'f32', [], [min]);
    const hi = max === Infinity ? '' : w.constant('clip_max', 'f32', [], [max]);
    return w.op('Clip', [x, lo, hi]);
  };
  const toNchw = (x: string): string => w.op('Transpose', [x], [ints('perm', [0, 3, 1, 2])], 'to_nchw');
  const toNhwc = (x: string): string => w.op('Transpose', [x], [ints('perm', [0, 2, 3, 1])], 'to_nhwc');
  const convAttrs = (node: ManifestNode, kernel: number[]): AttributeProto[] => [
    ints('kernel_shape', kernel),
    ints('strides', intsAttr(node, 'strides', [1, 1])),
    ints('dilations', intsAttr(node, 'dilations', [1, 1])),
    ints('pads', intsAttr(node, 'pads', [0, 0, 0, 0])),
  ];
  /** XNOR-Net's binarized activations: x < 0 -> -1, else +1. */
  const binarized = (x: string): string =>
    w.op('Where', [
      w.op('Less', [x, w.constant('zero', 'f32', [], [0])]),
      w.constant('minus_one', 'f32', [], [-1]),
      w.constant('one', 'f32', [], [1]),
    ]);
  /** OHWI weights as OIHW for ONNX Conv. */
  const oihw = (x: string): string => w.op('Transpose', [x], [ints('perm', [0, 3, 1, 2])], 'weights_oihw');

  for (const node of manifest.nodes) {
    const [x = -1, b1 = -1, b2 = -1] = node.inputs;
    const out = node.outputs[0]!;
    const input = (i: number): string => (i < 0 ? '' : names[i]!);
    const fail = (why: string): never => {
      throw new OnnxExportError(`layer "${node.name}" (${node.op}, ${node.format}): ${why}`);
    };
    const min = numberAttr(node, 'min', -Infinity);
    const max = numberAttr(node, 'max', Infinity);
    switch (node.op) {
      case 'conv2d': {
        const weights = specs[b1]!;
        // xnor: padding stays 0 inside Conv.
        const xs = node.format === 'xnor' ? binarized(input(x)) : input(x);
        const conv = w.op(
          'Conv',
          [toNchw(xs), oihw(input(b1)), input(b2)],
          [...convAttrs(node, weights.shape.slice(1, 3)), int('group', numberAttr(node, 'groups', 1))],
        );
        w.node('Transpose', [clipFloat(conv, min, max)], [names[out]!], [ints('perm', [0, 2, 3, 1])]);
        break;
      }
      case 'fully_connected': {
        const flat = w.op('Flatten', [input(x)], [int('axis', 1)]);
        const xs = node.format === 'xnor' ? binarized(flat) : flat;
        const gemm = w.op('Gemm', [xs, input(b1), input(b2)], [int('transB', 1)]);
        w.node('Identity', [clipFloat(gemm, min, max)], [names[out]!]);
        break;
      }
      case 'qfully_connected':
      case 'qconv2d': {
        const xq = specs[x]!.quant!;
        const wq = specs[b1]!.quant!;
        const yq = specs[out]!.quant!;
        const xf = dequantize(x, `${node.name}_x`);
        const wf = dequantize(b1, `${node.name}_w`);
        let bias = '';
        if (b2 >= 0) {
          const scales = wq.scale.map((s) => xq.scale[0]! * s);
          const scale = w.constant(
            `${node.name}_bias_scale`,
            'f32',
            scales.length === 1 ? [] : [scales.length],
            scales,
          );
          const zero = w.constant(
            `${node.name}_bias_zero`,
            'i32',
            scales.length === 1 ? [] : [scales.length],
            scales.map(() => 0),
          );
          bias = w.op(
            'DequantizeLinear',
            [input(b2), scale, zero],
            scales.length > 1 ? [int('axis', 0)] : [],
            `${node.name}_bias_dq`,
          );
        }
        if (node.attrs.rounding === 'onnx') {
          // ONNX rounding is what QuantizeLinear does; gemmlowp (default) differs only at exact ties.
        }
        let y: string;
        if (node.op === 'qconv2d') {
          const conv = w.op(
            'Conv',
            [toNchw(xf), oihw(wf), bias],
            [...convAttrs(node, specs[b1]!.shape.slice(1, 3)), int('group', numberAttr(node, 'groups', 1))],
          );
          y = toNhwc(conv);
        } else {
          y = w.op('Gemm', [w.op('Flatten', [xf], [int('axis', 1)]), wf, bias], [int('transB', 1)]);
        }
        // The int8 clamp in real units; QuantizeLinear saturates to the int8 range itself.
        const toReal = (q: number): number => yq.scale[0]! * (q - yq.zeroPoint[0]!);
        const lo =
          min === -Infinity || min <= (specs[out]!.dtype === 'u8' ? 0 : -128) ? -Infinity : toReal(min);
        const hi =
          max === Infinity || max >= (specs[out]!.dtype === 'u8' ? 255 : 127) ? Infinity : toReal(max);
        quantizeTo(clipFloat(y, lo, hi), out, node.name);
        break;
      }
      case 'quantize_linear':
        quantizeTo(input(x), out, node.name);
        break;
      case 'dequantize_linear':
        w.node('Identity', [dequantize(x, node.name)], [names[out]!]);
        break;
      case 'max_pool':
      case 'avg_pool': {
        if (node.op === 'avg_pool' && specs[x]!.dtype !== 'f32')
          fail('int8 average pooling has no ONNX operator');
        const attrs = convAttrs(node, intsAttr(node, 'kernel', [1, 1])).filter(
          (a) => node.op === 'max_pool' || a.name !== 'dilations',
        );
        attrs.push(int('ceil_mode', numberAttr(node, 'ceil_mode', 0)));
        if (node.op === 'avg_pool')
          attrs.push(int('count_include_pad', numberAttr(node, 'count_include_pad', 0)));
        const pooled = w.op(node.op === 'max_pool' ? 'MaxPool' : 'AveragePool', [toNchw(input(x))], attrs);
        w.node('Transpose', [pooled], [names[out]!], [ints('perm', [0, 2, 3, 1])]);
        break;
      }
      case 'global_avgpool':
        if (specs[x]!.dtype !== 'f32') {
          // int8: QDQ around the float pool, from the input's quantization to the output's.
          const pooled = w.op('GlobalAveragePool', [toNchw(dequantize(x, `${node.name}_x`))]);
          quantizeTo(toNhwc(pooled), out, node.name);
          break;
        }
        w.node(
          'Transpose',
          [w.op('GlobalAveragePool', [toNchw(input(x))])],
          [names[out]!],
          [ints('perm', [0, 2, 3, 1])],
        );
        break;
      case 'qadd': {
        // QDQ around a float Add, clamped at the node's integer bounds in real units.
        const sum = w.op('Add', [dequantize(x, `${node.name}_a`), dequantize(b1, `${node.name}_b`)]);
        const yq = specs[out]!.quant!;
        const toReal = (q: number): number => yq.scale[0]! * (q - yq.zeroPoint[0]!);
        const [lo, hi] = specs[out]!.dtype === 'u8' ? [0, 255] : [-128, 127];
        const low = min === -Infinity || min <= lo ? -Infinity : toReal(min);
        const high = max === Infinity || max >= hi ? Infinity : toReal(max);
        quantizeTo(clipFloat(sum, low, high), out, node.name);
        break;
      }
      case 'add':
      case 'mul':
      case 'matmul':
        w.node({ add: 'Add', mul: 'Mul', matmul: 'MatMul' }[node.op], [input(x), input(b1)], [names[out]!]);
        break;
      case 'clip':
        w.node('Identity', [clipFloat(input(x), min, max)], [names[out]!]);
        break;
      case 'leaky_relu':
        w.node('LeakyRelu', [input(x)], [names[out]!], [float('alpha', numberAttr(node, 'alpha', 0.01))]);
        break;
      case 'sigmoid':
      case 'identity':
        w.node(node.op === 'sigmoid' ? 'Sigmoid' : 'Identity', [input(x)], [names[out]!]);
        break;
      case 'softmax':
        if (numberAttr(node, 'coerce2d', 0) === 1) fail('opset<13 softmax (coerce2d) is not exported');
        w.node('Softmax', [input(x)], [names[out]!], [int('axis', numberAttr(node, 'axis', -1))]);
        break;
      case 'concat':
        w.node('Concat', node.inputs.map(input), [names[out]!], [int('axis', numberAttr(node, 'axis', 0))]);
        break;
      case 'reshape': {
        const shape = w.constant('shape', 'i64', [specs[out]!.shape.length], specs[out]!.shape);
        w.node('Reshape', [input(x), shape], [names[out]!]);
        break;
      }
      case 'channel_shuffle': {
        // The last axis as [groups][channels / groups], transposed: ShuffleNet's Reshape-Transpose-Reshape.
        const shape = specs[x]!.shape;
        const groups = numberAttr(node, 'groups', 1);
        const split = [...shape.slice(0, -1), groups, shape[shape.length - 1]! / groups];
        const perm = [...split.keys()];
        [perm[split.length - 2], perm[split.length - 1]] = [perm[split.length - 1]!, perm[split.length - 2]!];
        const grouped = w.op('Reshape', [input(x), w.constant('shape', 'i64', [split.length], split)]);
        const swapped = w.op('Transpose', [grouped], [ints('perm', perm)]);
        w.node('Reshape', [swapped, w.constant('shape', 'i64', [shape.length], shape)], [names[out]!]);
        break;
      }
      case 'transpose':
        w.node('Transpose', [input(x)], [names[out]!], [ints('perm', intsAttr(node, 'perm', []))]);
        break;
      case 'batch_norm':
        if (numberAttr(node, 'axis', 1) !== 1) fail('batch norm on an axis other than 1 is not exported');
        w.node(
          'BatchNormalization',
          node.inputs.map(input),
          [names[out]!],
          [float('epsilon', numberAttr(node, 'epsilon', 1e-5))],
        );
        break;
      default:
        fail('no ONNX export for this op yet');
    }
  }
  // Graph outputs that are constants or inputs need a producing node.
  const outputs = manifest.outputs.map((o) => {
    if (names[o.tensor] === o.name) return o;
    w.node('Identity', [names[o.tensor]!], [o.name]);
    return o;
  });
  const valueInfo = (name: string, spec: TensorSpec): ValueInfoProto => ({
    name,
    type: {
      tensorType: { elemType: ELEM[spec.dtype], shape: { dim: spec.shape.map((d) => ({ dimValue: d })) } },
    },
  });
  const proto = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'whittle',
    opsetImport: [{ domain: '', version: EXPORT_OPSET }],
    graph: {
      name: manifest.model.id,
      node: w.nodes,
      initializer: w.initializers,
      input: manifest.inputs.map((i) => valueInfo(i.name, specs[i.tensor]!)),
      output: outputs.map((o) => valueInfo(o.name, specs[o.tensor]!)),
    },
  });
  return onnx.ModelProto.encode(proto).finish();
}
