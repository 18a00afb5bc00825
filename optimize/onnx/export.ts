// Package -> ONNX model, so ONNX Runtime (or any ONNX tool) can run and cross-check a compressed model.
// fp32-valued formats (binary, ternary, codebook, sparse, fixed point, hashed) export their weights expanded
// to fp32 — ONNX has no such storage — and compute the same function; int8 layers export as QDQ
// (DequantizeLinear -> float op -> QuantizeLinear), which ONNX Runtime fuses into its integer kernels: the
// int8 layers' layout changes run on the integer tensors, outside that pattern, and `activations: 'u8'`
// writes the activations as uint8, the type ONNX Runtime's x86 fusion takes.
// NHWC convolution and pooling are wrapped in Transposes to ONNX's NCHW.
import { type DecodedTensor, toFloat32, toInt8 } from '../../agent/package/encodings.js';
import type { ManifestNode, TensorQuantization } from '../../agent/package/manifest.js';
import type { Package } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
import { hardSigmoidParams } from '../../agent/runtime/ops/elementwise.js';
import { sliceRanges, splitSizes } from '../../agent/runtime/ops/layout.js';
import { elements, type TensorSpec } from '../../agent/runtime/tensor.js';
import { WhittleError } from '../../native/whittle-error.js';
import {
  type AttributeProto,
  encodeModel,
  type NodeProto,
  type TensorProto,
  tensorValueInfo,
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

  /** Removes each pair of Transposes that undo each other (NCHW -> NHWC ... -> NCHW between two layers),
   * head-on or with only elementwise ops between them (a ReLU, a clip), which then run in the other
   * layout; each output on the way must feed only the next node and none may be a graph output. A reader
   * then sees the NCHW graph a framework would have written. */
  cancelTransposes(graphOutputs: ReadonlySet<string>): void {
    const elementwise = new Set(['Clip', 'Relu', 'LeakyRelu', 'Sigmoid', 'Identity']);
    const perm = (n: NodeProto | undefined): number[] | undefined =>
      n?.opType === 'Transpose' ? n.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number) : undefined;
    for (;;) {
      const producer = new Map<string, NodeProto>();
      const consumers = new Map<string, number>();
      for (const n of this.nodes) {
        for (const o of n.output ?? []) producer.set(o, n);
        for (const i of n.input ?? []) consumers.set(i, (consumers.get(i) ?? 0) + 1);
      }
      const private_ = (n: NodeProto): boolean =>
        consumers.get(n.output![0]!) === 1 && !graphOutputs.has(n.output![0]!);
      let found: { first: NodeProto; between: NodeProto[]; second: NodeProto } | undefined;
      for (const second of this.nodes) {
        const q = perm(second);
        if (q === undefined || graphOutputs.has(second.output![0]!)) continue;
        const between: NodeProto[] = [];
        let n = producer.get(second.input?.[0] ?? '');
        while (n && elementwise.has(n.opType ?? '') && private_(n)) {
          between.unshift(n);
          n = producer.get(n.input?.[0] ?? '');
        }
        const p = perm(n);
        if (p && p.length === q.length && q.every((axis, i) => p[axis] === i) && private_(n!)) {
          found = { first: n!, between, second };
          break;
        }
      }
      if (found === undefined) return;
      const { first, between, second } = found;
      const from = second.output![0]!;
      // The chain now starts from the first Transpose's input and ends where the second one's output was read.
      const to = between.length === 0 ? first.input![0]! : between[between.length - 1]!.output![0]!;
      if (between.length > 0) between[0]!.input = [first.input![0]!, ...between[0]!.input!.slice(1)];
      this.nodes.splice(this.nodes.indexOf(second), 1);
      this.nodes.splice(this.nodes.indexOf(first), 1);
      for (const n of this.nodes) n.input = n.input?.map((i) => (i === from ? to : i));
    }
  }
}

const ints = (name: string, values: number[]): AttributeProto => ({ name, type: 7, ints: values });
const int = (name: string, value: number): AttributeProto => ({ name, type: 2, i: value });
const float = (name: string, value: number): AttributeProto => ({ name, type: 1, f: value });

/** GELU as PyTorch's exporter writes it before opset 20 (the compile pass fuses it back, compile/fuse.ts):
 * x * 0.5 * (1 + erf(x / sqrt 2)), or with tanh(sqrt(2 / pi) (x + 0.044715 x^3)) for the erf. */
function geluOnnx(w: OnnxGraphWriter, x: string, node: ManifestNode): string {
  const c = (hint: string, v: number) => w.constant(hint, 'f32', [], [v]);
  const phi =
    node.attrs.approximate === 'tanh'
      ? w.op('Tanh', [
          w.op('Mul', [
            w.op('Add', [x, w.op('Mul', [w.op('Pow', [x, c('three', 3)]), c('cubic', 0.044715)])]),
            c('sqrt_2_over_pi', Math.sqrt(2 / Math.PI)),
          ]),
        ])
      : w.op('Erf', [w.op('Div', [x, c('sqrt2', Math.SQRT2)])]);
  return w.op('Mul', [w.op('Mul', [x, w.op('Add', [phi, c('one', 1)])]), c('half', 0.5)]);
}

function numberAttr(node: ManifestNode, key: string, fallback: number): number {
  const v = node.attrs[key];
  return typeof v === 'number' ? v : fallback;
}
function intsAttr(node: ManifestNode, key: string, fallback: number[]): number[] {
  const v = node.attrs[key];
  return Array.isArray(v) ? v : fallback;
}

export interface OnnxExportOptions {
  /** The batch size written into the graph's shapes (reshape targets, inputs, outputs); the package's
   * declared batch by default. */
  batch?: number;
  /** `u8` writes the int8 activations (not the weights) as uint8 with zero points moved up by 128: the same
   * function, in the type ONNX Runtime's x86 QDQ fusion wants (it runs int8-activation convolutions in
   * float). Default: as the package stores them. */
  activations?: 'as-stored' | 'u8';
}

/** The activation tensors written as uint8 with `activations: 'u8'`: i8, per-tensor, not constants. */
function uint8Activations(pkg: Package, specs: readonly TensorSpec[]): TensorSpec[] {
  return specs.map((spec, t) =>
    spec.dtype === 'i8' && pkg.constants[t] === undefined && spec.quant?.scale.length === 1
      ? {
          ...spec,
          dtype: 'u8',
          quant: { ...spec.quant, zeroPoint: spec.quant.zeroPoint.map((z) => z + 128) },
        }
      : spec,
  );
}

export function exportOnnx(pkg: Package, options: OnnxExportOptions = {}): Uint8Array {
  // The specs of the package's own tensors: its conv outputs stay tensors (no residual add fused at load).
  const model = Model.fromPackage(pkg, {
    referenceOnly: true,
    fuseResidual: false,
    ...(options.batch === undefined ? {} : { batch: options.batch }),
  });
  const { manifest } = pkg;
  const specs: readonly TensorSpec[] =
    options.activations === 'u8' ? uint8Activations(pkg, model.specs) : model.specs;
  /** What a quantized value of tensor t moved by (integer clip bounds are in the package's values). */
  const shift = (t: number): number => (specs[t]!.dtype === model.specs[t]!.dtype ? 0 : 128);
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

  // Constants as initializers (compressed ones expanded: int8 ones, sparse or bit planes, to their int8
  // values, the others to fp32).
  pkg.constants.forEach((decoded: DecodedTensor | undefined, i) => {
    if (!decoded) return;
    const spec = specs[i]!;
    const asStored = decoded.kind === 'raw' || spec.dtype === 'i8';
    const values =
      decoded.kind === 'raw'
        ? decoded.values
        : spec.dtype === 'i8'
          ? toInt8(decoded, elements(spec.shape))
          : toFloat32(decoded, elements(spec.shape));
    w.initializer(names[i]!, asStored ? spec.dtype : 'f32', spec.shape, values);
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
  /** DequantizeLinear of tensor t (or of `value`, t's values moved by a layout op that keeps its
   * quantization axis). */
  const dequantize = (t: number, hint: string, value = names[t]!): string => {
    const spec = specs[t]!;
    if (!spec.quant)
      throw new OnnxExportError(`tensor ${manifest.tensors[t]!.name} has no quantization to dequantize`);
    const [scale, zero] = quantParams(spec.quant, spec.dtype, hint);
    const axis = spec.quant.scale.length > 1 ? [int('axis', spec.quant.axis ?? 0)] : [];
    return w.op('DequantizeLinear', [value, scale, zero], axis, `${hint}_dq`);
  };
  /** QuantizeLinear of x with tensor t's quantization, into `target` (t itself by default). */
  const quantizeTo = (x: string, t: number, hint: string, target = names[t]!): void => {
    const spec = specs[t]!;
    const [scale, zero] = quantParams(spec.quant!, spec.dtype, hint);
    w.node(
      'QuantizeLinear',
      [x, scale, zero],
      [target],
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
  const flatten = (x: string): string => w.op('Flatten', [x], [int('axis', 1)]);
  /** Constant OHWI integer weights as a new OIHW initializer: a DequantizeLinear whose input is an
   * initializer is what ONNX Runtime's QDQ fusion looks for. */
  const oihwConstant = (t: number): string => {
    const decoded = pkg.constants[t];
    const spec = specs[t]!;
    if (decoded === undefined || (decoded.kind !== 'raw' && spec.dtype !== 'i8')) return oihw(names[t]!);
    const stored = decoded.kind === 'raw' ? decoded.values : toInt8(decoded, elements(spec.shape));
    const [o, h, wd, i] = spec.shape as [number, number, number, number];
    const values = new Array<number>(o * h * wd * i);
    for (let a = 0; a < o; a++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < wd; x++)
          for (let c = 0; c < i; c++)
            values[((a * i + c) * h + y) * wd + x] = stored[((a * h + y) * wd + x) * i + c]!;
    return w.constant(`${names[t]!}_oihw`, spec.dtype, [o, i, h, wd], values);
  };
  /** OHWI weights as OIHW for ONNX Conv. */
  const oihw = (x: string): string => w.op('Transpose', [x], [ints('perm', [0, 3, 1, 2])], 'weights_oihw');

  for (const node of manifest.nodes) {
    const [x = -1, b1 = -1, b2 = -1] = node.inputs;
    const out = node.outputs[0]!;
    const input = (i: number): string => (i < 0 ? '' : names[i]!);
    const fail = (why: string): never => {
      throw new OnnxExportError(`layer "${node.name}" (${node.op}, ${node.format}): ${why}`);
    };
    const min = numberAttr(node, 'min', -Infinity) + shift(out);
    const max = numberAttr(node, 'max', Infinity) + shift(out);
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
        // DequantizeLinear -> Conv / Gemm -> QuantizeLinear with nothing between them, the pattern ONNX Runtime
        // fuses into QLinearConv / QGemm: the layout changes (NHWC <-> NCHW, OHWI -> OIHW, flatten) run on
        // the integer tensors, outside the pattern.
        const conv = node.op === 'qconv2d';
        const xf = dequantize(x, `${node.name}_x`, conv ? toNchw(input(x)) : flatten(input(x)));
        const wf = dequantize(b1, `${node.name}_w`, conv ? oihwConstant(b1) : input(b1));
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
        const y = conv
          ? w.op(
              'Conv',
              [xf, wf, bias],
              [...convAttrs(node, specs[b1]!.shape.slice(1, 3)), int('group', numberAttr(node, 'groups', 1))],
            )
          : w.op('Gemm', [xf, wf, bias], [int('transB', 1)]);
        // The int8 clamp in real units; QuantizeLinear saturates to the int8 range itself.
        const toReal = (q: number): number => yq.scale[0]! * (q - yq.zeroPoint[0]!);
        const lo =
          min === -Infinity || min <= (specs[out]!.dtype === 'u8' ? 0 : -128) ? -Infinity : toReal(min);
        const hi =
          max === Infinity || max >= (specs[out]!.dtype === 'u8' ? 255 : 127) ? Infinity : toReal(max);
        if (!conv) {
          quantizeTo(clipFloat(y, lo, hi), out, node.name);
          break;
        }
        const yNchw = w.fresh(`${node.name}_nchw`);
        quantizeTo(clipFloat(y, lo, hi), out, node.name, yNchw);
        w.node('Transpose', [yNchw], [names[out]!], [ints('perm', [0, 2, 3, 1])]);
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
          quantizeTo(w.op('Transpose', [pooled], [ints('perm', [0, 2, 3, 1])]), out, node.name);
          break;
        }
        w.node(
          'Transpose',
          [w.op('GlobalAveragePool', [toNchw(input(x))])],
          [names[out]!],
          [ints('perm', [0, 2, 3, 1])],
        );
        break;
      case 'qadd':
      case 'qmul': {
        // QDQ around a float Add / Mul, clamped at the node's integer bounds in real units.
        const [a, b] = [dequantize(x, `${node.name}_a`), dequantize(b1, `${node.name}_b`)];
        const result = w.op(node.op === 'qadd' ? 'Add' : 'Mul', [a, b]);
        const yq = specs[out]!.quant!;
        const toReal = (q: number): number => yq.scale[0]! * (q - yq.zeroPoint[0]!);
        const [lo, hi] = specs[out]!.dtype === 'u8' ? [0, 255] : [-128, 127];
        const low = min === -Infinity || min <= lo ? -Infinity : toReal(min);
        const high = max === Infinity || max >= hi ? Infinity : toReal(max);
        quantizeTo(clipFloat(result, low, high), out, node.name);
        break;
      }
      case 'sigmoid':
      case 'hard_sigmoid':
      case 'hard_swish':
      case 'silu':
      case 'gelu': {
        // int8: QDQ around the float activation, from the input's quantization to the output's (the runtime's
        // lookup table computes the same function on the 256 input values).
        const int8 = specs[x]!.quant !== undefined && specs[x]!.dtype !== 'f32';
        const xf = int8 ? dequantize(x, `${node.name}_x`) : input(x);
        const { alpha, beta } = hardSigmoidParams(node);
        const gate = (v: string): string =>
          w.op('HardSigmoid', [v], [float('alpha', alpha), float('beta', beta)]);
        // Opset 13 has no HardSwish: x * HardSigmoid(x), the form PyTorch's exporter writes there.
        const y =
          node.op === 'gelu'
            ? geluOnnx(w, xf, node)
            : node.op === 'silu'
              ? w.op('Mul', [xf, w.op('Sigmoid', [xf])])
              : node.op === 'sigmoid'
                ? w.op('Sigmoid', [xf])
                : node.op === 'hard_sigmoid'
                  ? gate(xf)
                  : w.op('Mul', [xf, gate(xf)]);
        if (int8) quantizeTo(y, out, node.name);
        else w.node('Identity', [y], [names[out]!]);
        break;
      }
      case 'slice': {
        // On the tensor as stored (an int8 slice keeps its quantization).
        const { first, step, length } = sliceRanges(node, specs[x]!.shape);
        const axes = [...first.keys()];
        const ends = axes.map((a) => first[a]! + step[a]! * length[a]!);
        const i64 = (hint: string, values: number[]) => w.constant(hint, 'i64', [values.length], values);
        w.node(
          'Slice',
          [
            input(x),
            i64('starts', first),
            i64(
              'ends',
              ends.map((e) => (e < 0 ? -(2 ** 53) : e)),
            ),
            i64('axes', axes),
            i64('steps', step),
          ],
          [names[out]!],
        );
        break;
      }
      case 'split': {
        const { axis, sizes } = splitSizes(node, specs[x]!.shape, node.outputs.length);
        w.node(
          'Split',
          [input(x), w.constant('split', 'i64', [sizes.length], sizes)],
          node.outputs.map((t) => names[t]!),
          [int('axis', axis)],
        );
        break;
      }
      case 'add':
      case 'mul':
      case 'matmul':
        w.node({ add: 'Add', mul: 'Mul', matmul: 'MatMul' }[node.op], [input(x), input(b1)], [names[out]!]);
        break;
      case 'clip': {
        const dtype = specs[x]!.dtype;
        if (dtype !== 'i8' && dtype !== 'u8') {
          w.node('Identity', [clipFloat(input(x), min, max)], [names[out]!]);
          break;
        }
        // An int8 clip's bounds are integers on the quantized values (Clip takes int8 and uint8 from opset 12).
        const [lo, hi] = dtype === 'u8' ? [0, 255] : [-128, 127];
        const bound = (v: number, fallback: number, hint: string): string =>
          w.constant(hint, dtype, [], [Number.isFinite(v) ? Math.min(Math.max(v, lo), hi) : fallback]);
        w.node('Clip', [input(x), bound(min, lo, 'clip_min'), bound(max, hi, 'clip_max')], [names[out]!]);
        break;
      }
      case 'leaky_relu':
        w.node('LeakyRelu', [input(x)], [names[out]!], [float('alpha', numberAttr(node, 'alpha', 0.01))]);
        break;
      case 'identity':
        w.node('Identity', [input(x)], [names[out]!]);
        break;
      case 'softmax':
        if (numberAttr(node, 'coerce2d', 0) === 1) fail('opset<13 softmax (coerce2d) is not exported');
        w.node('Softmax', [input(x)], [names[out]!], [int('axis', numberAttr(node, 'axis', -1))]);
        break;
      case 'concat':
        w.node('Concat', node.inputs.map(input), [names[out]!], [int('axis', numberAttr(node, 'axis', 0))]);
        break;
      case 'reshape': {
        // A reshape that keeps dimension 0 (the batch) writes -1 there, so the model runs at any batch.
        const target = [...specs[out]!.shape];
        if (target[0] === specs[x]!.shape[0] && !target.includes(-1)) target[0] = -1;
        const shape = w.constant('shape', 'i64', [target.length], target);
        w.node('Reshape', [input(x), shape], [names[out]!]);
        break;
      }
      case 'channel_shuffle': {
        // The last axis as [groups][channels / groups], transposed: ShuffleNet's Reshape-Transpose-Reshape, with
        // -1 for the batch so the model runs at any batch.
        const shape = specs[x]!.shape;
        const groups = numberAttr(node, 'groups', 1);
        const channels = shape[shape.length - 1]!;
        const split = [-1, ...shape.slice(1, -1), groups, channels / groups];
        const perm = [...split.keys()];
        [perm[split.length - 2], perm[split.length - 1]] = [perm[split.length - 1]!, perm[split.length - 2]!];
        const grouped = w.op('Reshape', [input(x), w.constant('shape', 'i64', [split.length], split)]);
        const swapped = w.op('Transpose', [grouped], [ints('perm', perm)]);
        const back = [-1, ...shape.slice(1)];
        w.node('Reshape', [swapped, w.constant('shape', 'i64', [back.length], back)], [names[out]!]);
        break;
      }
      case 'transpose':
        w.node('Transpose', [input(x)], [names[out]!], [ints('perm', intsAttr(node, 'perm', []))]);
        break;
      case 'layer_norm': {
        // Opset 13 has no LayerNormalization: the mean and variance over the axes from `axis` on, as PyTorch's
        // exporter spells layer_norm there.
        const rank = specs[x]!.shape.length;
        const from = numberAttr(node, 'axis', -1);
        const axes = [...Array(rank).keys()].slice(from < 0 ? from + rank : from);
        const mean = (v: string): string => w.op('ReduceMean', [v], [ints('axes', axes), int('keepdims', 1)]);
        const centered = w.op('Sub', [input(x), mean(input(x))]);
        const variance = mean(w.op('Mul', [centered, centered]));
        const epsilon = w.constant('epsilon', 'f32', [], [numberAttr(node, 'epsilon', 1e-5)]);
        const normalized = w.op('Div', [centered, w.op('Sqrt', [w.op('Add', [variance, epsilon])])]);
        const scaled = w.op('Mul', [normalized, input(b1)]);
        w.node(b2 >= 0 ? 'Add' : 'Identity', b2 >= 0 ? [scaled, input(b2)] : [scaled], [names[out]!]);
        break;
      }
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
  const valueInfo = (name: string, spec: TensorSpec): ValueInfoProto =>
    tensorValueInfo(name, spec.shape, ELEM[spec.dtype]);
  const outputNames = new Set(outputs.map((o) => o.name));
  w.cancelTransposes(outputNames);
  const used = new Set(w.nodes.flatMap((n) => n.input ?? []));
  const graph = {
    name: manifest.model.id,
    node: w.nodes,
    // A constant written in another layout (int8 conv weights as OIHW) leaves its original unused.
    initializer: w.initializers.filter((t) => used.has(t.name!) || outputNames.has(t.name!)),
    input: manifest.inputs.map((i) => valueInfo(i.name, specs[i.tensor]!)),
    output: outputs.map((o) => valueInfo(o.name, specs[o.tensor]!)),
  };
  return encodeModel(graph, EXPORT_OPSET, 'whittle');
}
