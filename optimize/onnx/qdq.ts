// Quantized ONNX onto Whittle's int8 kernels: QDQ models (as ONNX Runtime's quantizer and Whittle's own
// exporter write them), and the operands, rounding and checks QOperator models share (QLinearConv in
// ops/conv.ts, QLinearMatMul in ops/matmul.ts, com.microsoft's QLinearAdd / QLinearGlobalAveragePool /
// QLinearConcat in ops/qoperator.ts).
//
// QDQ, decided before conversion (planQdq) and applied node by node (convertQdq, before a node's handler):
// - DequantizeLinear of a computed integer tensor, per tensor, records that its output is that tensor seen
//   through its quantization (ctx.dequantized); its float output is still emitted, and dropped with the other
//   dead nodes when only integer ops read it.
// - A Conv, Gemm, MatMul, Add, GlobalAveragePool or AveragePool whose data inputs are dequantized, whose
//   weights are DequantizeLinear of an int8/uint8 initializer and bias DequantizeLinear of an int32 one, and
//   whose output reaches one QuantizeLinear through Relu / Clip and layout ops alone (each output read once)
//   becomes one qconv2d / qfully_connected / qadd / global_avgpool / avg_pool with the QuantizeLinear's
//   quantization: exact, because QuantizeLinear is monotone and per tensor, so it commutes with the layout
//   ops, and a Relu / Clip becomes the integer clamp [Q(min), Q(max)].
// - Layout ops and MaxPool (and Concat with one quantization) of dequantized values run on the integer
//   tensor as well (they commute with DequantizeLinear), and a QuantizeLinear of a dequantized value with
//   the same quantization is that integer tensor.
// - Anything else (a QuantizeLinear to other parameters, a float bias, a Clip with computed bounds) keeps the
//   float op between the reference DequantizeLinear / QuantizeLinear: correct, and named by the compile
//   report's reference kernels.
// After conversion, shiftUint8 moves uint8 activations (ONNX Runtime's default) to int8: x - 128 with zero
// point - 128, the same values everywhere, which the int8 kernels take.
//
// Requantization: a layer whose weights are int8 with zero point 0 rounds as Whittle's int8 kernels do
// (gemmlowp's Q31 multiplier, the rounding of Whittle's own int8 packages and TFLite), so it runs natively;
// ONNX Runtime rescales in float32 and rounds half to even: the two differ by one step where the exact product
// lies within float32 rounding of a half. Other weights keep ONNX's rounding on the reference executors.
import type { ManifestNode, TensorQuantization } from '../../agent/package/manifest.js';
import { roundHalfEven } from '../../agent/runtime/number/rounding.js';
import { intRange, saturate } from '../../agent/runtime/number/saturation.js';
import type { TensorSpec } from '../../agent/runtime/tensor.js';
import { whittleError } from '../../native/whittle-error.js';
import type { GraphBuilder } from '../package/graph-builder.js';
import { type ImportContext, OnnxNode, type OnnxOpHandler } from './context.js';
import type { NodeProto } from './onnx-proto.js';
import { conv } from './ops/conv.js';
import { clipBounds } from './ops/elementwise.js';

/** A quantized model the int8 import cannot take as written: mismatched scales, a zero point outside its
 * type, weights that are not constants. Names the node. */
export class QdqImportError extends whittleError('QdqImportError', 'bad-quantized-onnx') {
  constructor(node: NodeProto, why: string) {
    super(`node "${node.name ?? ''}" (${node.opType ?? ''}): ${why}`);
  }
}

/** The integer operands of a quantized layer, and its output's dtype and quantization. */
export interface QuantizedOperands {
  x: number;
  w: number;
  /** int32 bias, or -1. */
  bias: number;
  y: { dtype: TensorSpec['dtype']; quant: TensorQuantization };
  /** rounding, and the integer clamp of fused activations. */
  attrs: ManifestNode['attrs'];
}

/** What follows a QDQ compute node up to its QuantizeLinear. */
export interface QdqTail {
  /** Relu / Clip nodes on the way, fused into the layer's integer clamp. */
  activations: NodeProto[];
  q: NodeProto;
}

const COMPUTE = ['Conv', 'Gemm', 'MatMul', 'Add', 'GlobalAveragePool', 'AveragePool'];
const ACTIVATIONS = ['Relu', 'Clip'];
/** Ops that move values without computing them: they commute with a per-tensor (de)quantization. */
const LAYOUT = ['Transpose', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'MaxPool'];

/** Finds each compute node whose output reaches one QuantizeLinear through activations and layout ops. */
export function planQdq(ctx: ImportContext, nodes: readonly NodeProto[], graphOutputs: Set<string>): void {
  const readers = new Map<string, NodeProto[]>();
  for (const n of nodes) {
    for (const i of n.input ?? []) {
      const list = readers.get(i);
      if (list === undefined) readers.set(i, [n]);
      else list.push(n);
    }
    for (const o of n.output ?? []) ctx.producers.set(o, n);
  }
  for (const node of nodes) {
    if (!COMPUTE.includes(node.opType ?? '') || (node.domain ?? '') !== '') continue;
    const activations: NodeProto[] = [];
    let value = node.output?.[0] ?? '';
    for (;;) {
      const next = readers.get(value);
      if (value === '' || graphOutputs.has(value) || next?.length !== 1) break;
      const reader = next[0]!;
      if (reader.input?.[0] !== value) break;
      if (reader.opType === 'QuantizeLinear') {
        ctx.qdqTails.set(node, { activations, q: reader });
        break;
      }
      if (ACTIVATIONS.includes(reader.opType ?? '')) activations.push(reader);
      else if (!LAYOUT.includes(reader.opType ?? '')) break;
      value = reader.output?.[0] ?? '';
    }
  }
}

/** Whether tensor t has dtype and quantization `q`. */
export function sameQuant(
  b: GraphBuilder,
  t: number,
  q: { dtype: string; quant?: TensorQuantization },
): boolean {
  const p = b.tensors[t]!;
  return p.dtype === q.dtype && JSON.stringify(p.quant) === JSON.stringify(q.quant);
}

/** A QuantizeLinear / DequantizeLinear node's per-tensor output (or input) quantization and integer dtype;
 * undefined when per channel. */
function qdqParams(
  ctx: ImportContext,
  proto: NodeProto,
): { dtype: TensorSpec['dtype']; quant: TensorQuantization } | undefined {
  const q = new OnnxNode(ctx, proto, 0);
  const zp = q.optional(2);
  const quant = q.quant(1, 2, undefined);
  if (quant.scale.length !== 1) return undefined;
  const dtype = zp < 0 ? 'u8' : ctx.b.tensors[zp]!.dtype;
  checkZeroPoints(proto, dtype, quant);
  return { dtype, quant };
}

/** Zero points must be integers of the quantized type. */
export function checkZeroPoints(proto: NodeProto, dtype: string, quant: TensorQuantization): void {
  const [lo, hi] = intRange(dtype);
  const bad = quant.zeroPoint.find((z) => !Number.isInteger(z) || z < lo || z > hi);
  if (bad !== undefined)
    throw new QdqImportError(proto, `zero point ${bad} is outside the ${dtype} range [${lo}, ${hi}]`);
}

/** Weights (or bias) that are DequantizeLinear of an initializer: the integer tensor with its quantization. */
function dequantizedConstant(n: OnnxNode, index: number, what: string): number | undefined {
  const { ctx } = n;
  const name = n.proto.input?.[index] ?? '';
  const dq = ctx.producers.get(name);
  if (dq?.opType !== 'DequantizeLinear') return undefined;
  const raw = ctx.values.get(dq.input?.[0] ?? '');
  if (raw === undefined || !ctx.b.data.has(raw))
    throw new QdqImportError(
      n.proto,
      `the ${what} are DequantizeLinear "${dq.name ?? ''}" of a computed tensor; quantized ${what} must be an initializer`,
    );
  const d = new OnnxNode(ctx, dq, 0);
  const rank = ctx.b.tensors[raw]!.shape.length;
  const axis = d.int('axis', 1);
  const quant = d.quant(1, 2, axis < 0 ? axis + rank : axis);
  checkZeroPoints(dq, ctx.b.tensors[raw]!.dtype, quant);
  return ctx.b.withQuant(raw, quant, n.name);
}

/** The rounding of a layer with these weights: the native kernels' where they take it (see the header). */
function rounding(b: GraphBuilder, w: number): 'gemmlowp' | 'onnx' {
  const spec = b.tensors[w]!;
  return spec.dtype === 'i8' && spec.quant?.zeroPoint.every((z) => z === 0) ? 'gemmlowp' : 'onnx';
}

/** QLinearConv / QLinearMatMul's operands: x (0-2), w (3-5, per channel along `weightAxis`), y (6-7) and
 * the bias at `biasIndex` (-1: none). */
export function qlinearOperands(
  n: OnnxNode,
  x: number,
  w: number,
  biasIndex: number,
  weightAxis: number | undefined,
): QuantizedOperands {
  const { b } = n;
  const xq = n.quant(1, 2, undefined);
  const wq = n.quant(4, 5, weightAxis);
  const yq = n.quant(6, 7, undefined);
  const yDtype = b.tensors[n.input(7, 'y_zero_point')]!.dtype;
  checkZeroPoints(n.proto, b.tensors[x]!.dtype, xq);
  checkZeroPoints(n.proto, b.tensors[w]!.dtype, wq);
  checkZeroPoints(n.proto, yDtype, yq);
  const wt = b.withQuant(w, wq, n.name);
  return {
    x: b.withQuant(x, xq, n.name),
    w: wt,
    bias: biasIndex < 0 ? -1 : n.optional(biasIndex),
    y: { dtype: yDtype, quant: yq },
    attrs: { rounding: rounding(b, wt) },
  };
}

/** The integer clamp of fused activations, in the output's quantization. */
function clampOf(
  n: OnnxNode,
  activations: readonly NodeProto[],
  y: { dtype: string; quant: TensorQuantization },
) {
  const [lo, hi] = intRange(y.dtype);
  const quantize = (v: number): number =>
    saturate(roundHalfEven(v / y.quant.scale[0]!) + y.quant.zeroPoint[0]!, lo, hi);
  let min = lo;
  let max = hi;
  for (const proto of activations) {
    const bounds = clipBounds(new OnnxNode(n.ctx, proto, 0));
    if (bounds.min !== undefined) min = Math.max(min, quantize(bounds.min));
    if (bounds.max !== undefined) max = Math.min(max, quantize(bounds.max));
  }
  return { ...(min > lo ? { min } : {}), ...(max < hi ? { max: Math.max(min, max) } : {}) };
}

/** The bias of a QDQ Conv / Gemm: DequantizeLinear of an int32 initializer at scale x_scale * w_scale and
 * zero point 0 (the only bias an integer accumulator takes exactly); -1 without one; undefined for a bias in
 * another form (a float bias keeps the reference path). */
function qdqBias(n: OnnxNode, index: number, x: number, w: number): number | undefined {
  if (n.optional(index) < 0) return -1;
  const bias = dequantizedConstant(n, index, 'bias');
  if (bias === undefined) return undefined;
  const { b } = n;
  const spec = b.tensors[bias]!;
  if (spec.dtype !== 'i32') return undefined;
  const xs = b.tensors[x]!.quant!.scale[0]!;
  const ws = b.tensors[w]!.quant!.scale;
  const bq = spec.quant!;
  if (bq.zeroPoint.some((z) => z !== 0)) throw new QdqImportError(n.proto, 'the int32 bias has a zero point');
  const channels = Math.max(ws.length, bq.scale.length);
  for (let o = 0; o < channels; o++) {
    const expected = xs * ws[ws.length === 1 ? 0 : o]!;
    const scale = bq.scale[bq.scale.length === 1 ? 0 : o]!;
    // Exporters compute the product in float32 or float64 and store it as float32.
    if (Math.abs(scale - expected) > 2 ** -20 * expected)
      throw new QdqImportError(
        n.proto,
        `bias scale ${scale} of channel ${o} is not input scale × weight scale (${expected})`,
      );
  }
  return bias;
}

/** A Gemm / MatMul's int8 weights as [out][in] with their quantization per output channel, or undefined. */
function fullyConnectedWeights(n: OnnxNode, w: number): number | undefined {
  const { b } = n;
  const spec = b.tensors[w]!;
  if (spec.shape.length !== 2) return undefined;
  const transposed = n.opType === 'Gemm' && n.int('transB', 0) === 1;
  const quant = spec.quant!;
  const perChannel = quant.scale.length > 1;
  if (perChannel && quant.axis !== (transposed ? 0 : 1))
    throw new QdqImportError(n.proto, 'per-channel weight scales must run along the output features');
  if (transposed) return w;
  const [k, outC] = spec.shape as [number, number];
  const values = b.data.get(w)!;
  const t = Array.from({ length: k * outC }, (_, i) => values[(i % k) * outC + Math.floor(i / k)]!);
  return b.constant(`${n.name}/weights_t`, spec.dtype, [outC, k], t, {
    ...quant,
    ...(perChannel ? { axis: 0 } : {}),
  });
}

/** One QDQ compute node as an integer layer; false when it keeps the float path. */
function quantizedCompute(n: OnnxNode, tail: QdqTail, handler: OnnxOpHandler): boolean {
  const { ctx, b } = n;
  const y = qdqParams(ctx, tail.q);
  const x = ctx.dequantized.get(n.proto.input?.[0] ?? '');
  if (y === undefined || x === undefined) return false;
  const clamp = clampOf(n, tail.activations, y);
  let out: number;
  switch (n.opType) {
    case 'Conv':
    case 'Gemm':
    case 'MatMul': {
      if (
        n.opType === 'Gemm' &&
        (n.float('alpha', 1) !== 1 || n.float('beta', 1) !== 1 || n.int('transA', 0))
      )
        return false;
      let w = dequantizedConstant(n, 1, 'weights');
      if (w === undefined || !['i8', 'u8'].includes(b.tensors[w]!.dtype)) return false;
      const bias = n.opType === 'MatMul' ? -1 : qdqBias(n, 2, x, w);
      if (bias === undefined) return false;
      const operands = { x, bias, y, attrs: { rounding: rounding(b, w), ...clamp } };
      if (n.opType === 'Conv') {
        conv(n, { ...operands, w });
        out = ctx.values.get(n.proto.output![0]!)!;
        break;
      }
      if (b.tensors[x]!.shape.length !== 2) return false;
      w = fullyConnectedWeights(n, w);
      if (w === undefined) return false;
      out = b.emit(n.name, 'qfully_connected', 'int8', [x, w, bias], operands.attrs, [y])[0]!;
      break;
    }
    case 'Add': {
      const other = ctx.dequantized.get(n.proto.input?.[1] ?? '');
      if (other === undefined || b.tensors[other]!.shape.join() !== b.tensors[x]!.shape.join()) return false;
      if (b.tensors[other]!.dtype !== b.tensors[x]!.dtype || b.tensors[x]!.dtype !== y.dtype) return false;
      out = b.emit(n.name, 'qadd', 'int8', [x, other], clamp, [y])[0]!;
      break;
    }
    default: {
      // GlobalAveragePool to the output's quantization; AveragePool (its handler on the integer tensor)
      // when input and output share it.
      if (b.tensors[x]!.dtype !== y.dtype || b.tensors[x]!.shape.length !== 4) return false;
      if (n.opType === 'GlobalAveragePool') {
        const [pooled] = b.emit(n.name, 'global_avgpool', 'int8', [b.toNhwc(x, n.name)], {}, [y]);
        out = b.toNchw(pooled!, n.name);
      } else {
        if (!sameQuant(b, x, y)) return false;
        out = onIntegers(n, [x], () => handler(n));
      }
      if (Object.keys(clamp).length > 0) out = b.emit(`${n.name}/clamp`, 'clip', 'int8', [out], clamp)[0]!;
    }
  }
  ctx.dequantized.set(n.proto.output![0]!, out);
  n.set(0, b.emit(`${n.name}/dequantized`, 'dequantize_linear', 'int8', [out], {})[0]!);
  for (const a of tail.activations) ctx.fusedActivations.add(a);
  return true;
}

/** Runs `convert` with the node's data inputs bound to integer tensors `ints`; returns its output tensor.
 * The float values stay bound afterwards. */
function onIntegers(n: OnnxNode, ints: readonly number[], convert: () => void): number {
  const names = n.proto.input ?? [];
  const saved = ints.map((_, i) => n.ctx.values.get(names[i]!)!);
  ints.forEach((t, i) => n.ctx.values.set(names[i]!, t));
  try {
    convert();
    return n.ctx.values.get(n.proto.output![0]!)!;
  } finally {
    saved.forEach((t, i) => n.ctx.values.set(names[i]!, t));
  }
}

/** Converts node n onto the integer tensors when it belongs to a QDQ pattern (see the header); false when
 * its own handler converts it. */
export function convertQdq(n: OnnxNode, handler: OnnxOpHandler | undefined): boolean {
  const { ctx, b } = n;
  if ((n.proto.domain ?? '') !== '') return false;
  const input = n.proto.input?.[0] ?? '';
  const output = n.proto.output?.[0] ?? '';
  if (ctx.fusedActivations.has(n.proto)) {
    // Fused into the layer before it: the same values.
    ctx.values.set(output, ctx.values.get(input)!);
    ctx.dequantized.set(output, ctx.dequantized.get(input)!);
    return true;
  }
  const tail = ctx.qdqTails.get(n.proto);
  if (handler === undefined) return false;
  if (tail) return quantizedCompute(n, tail, handler);
  const x = ctx.dequantized.get(input);
  if (x === undefined) return false;
  if (n.opType === 'QuantizeLinear') {
    const y = qdqParams(ctx, n.proto);
    if (y === undefined || !sameQuant(b, x, y)) return false;
    n.set(0, x);
    return true;
  }
  const concat = n.opType === 'Concat';
  if (!LAYOUT.includes(n.opType) && !concat) return false;
  const inputs = concat ? (n.proto.input ?? []) : [input];
  const ints = inputs.map((name) => ctx.dequantized.get(name));
  if (ints.some((t) => t === undefined || !sameQuant(b, t, b.tensors[x]!))) return false;
  handler(n);
  const float = ctx.values.get(output)!;
  ctx.dequantized.set(
    output,
    onIntegers(n, ints as number[], () => handler(n)),
  );
  ctx.values.set(output, float);
  return true;
}

/** IR ops that keep their meaning when every uint8 tensor they touch moves to int8 (x - 128, zero point -
 * 128): integer clamps (min / max attributes) move with their output. Inputs 1 of the layers are weights. */
const SHIFTABLE = new Set([
  'quantize_linear',
  'dequantize_linear',
  'identity',
  'reshape',
  'transpose',
  'concat',
  'channel_shuffle',
  'max_pool',
  'avg_pool',
  'global_avgpool',
  'qadd',
  'qconv2d',
  'qfully_connected',
  'qmatmul',
  'clip',
  'conv2d_integer',
  'matmul_integer',
]);
const WEIGHTS = new Set(['qconv2d', 'qfully_connected', 'conv2d_integer']);

/** Moves every computed uint8 tensor to int8 with the same values (see the header), when every node touching
 * one is SHIFTABLE and none is a graph input or output; else leaves the graph as it is (the int8 kernels also
 * take uint8 where both sides of a layer are uint8). Returns whether it shifted. */
export function shiftUint8(
  b: GraphBuilder,
  nodes: readonly ManifestNode[],
  ends: readonly number[],
): boolean {
  const computed = (t: number): boolean => t >= 0 && b.tensors[t]!.dtype === 'u8' && !b.data.has(t);
  const touched = nodes.filter((node) => [...node.inputs, ...node.outputs].some(computed));
  if (touched.length === 0 || ends.some(computed)) return false;
  for (const node of touched) {
    if (!SHIFTABLE.has(node.op)) return false;
    const constantU8 = node.inputs.some(
      (t, i) => t >= 0 && b.data.has(t) && b.tensors[t]!.dtype === 'u8' && !(i === 1 && WEIGHTS.has(node.op)),
    );
    if (constantU8) return false;
  }
  for (const node of touched)
    if (computed(node.outputs[0]!))
      for (const key of ['min', 'max']) if (typeof node.attrs[key] === 'number') node.attrs[key] -= 128;
  b.tensors.forEach((spec, t) => {
    if (!computed(t)) return;
    spec.dtype = 'i8';
    if (spec.quant) spec.quant = { ...spec.quant, zeroPoint: spec.quant.zeroPoint.map((z) => z - 128) };
  });
  return true;
}
