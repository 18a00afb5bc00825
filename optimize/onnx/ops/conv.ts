// Convolutions (fp32, QLinearConv, ConvInteger) and the fusions decided before conversion: a batch norm
// after a Conv with constant weights folds into its weights, and zero padding read only by Conv layers
// folds into their pads (the runtime has no pad op).
import { type BatchNormParameters, foldBatchNorm } from '../../../agent/runtime/compile/fold-batchnorm.js';
import { samePads } from '../../../agent/runtime/window.js';
import { NCHW_TO_NHWC } from '../../package/graph-builder.js';
import { type ImportContext, OnnxNode, type OnnxOpTable } from '../context.js';
import type { NodeProto } from '../onnx-proto.js';
import { qlinearOperands, type QuantizedOperands } from '../qdq.js';

/** A 2-D window's padding as ONNX orders it, [top, left, bottom, right], from auto_pad or `pads`. */
export function pads2d(
  n: OnnxNode,
  inH: number,
  inW: number,
  kh: number,
  kw: number,
  strides: number[],
  dilations: number[],
  explicitPads: number[] = n.ints('pads', [0, 0, 0, 0]),
): number[] {
  const autoPad = n.oneOf('auto_pad', 'NOTSET', ['NOTSET', 'VALID', 'SAME_UPPER', 'SAME_LOWER']);
  if (autoPad === 'NOTSET') return explicitPads;
  if (autoPad === 'VALID') return [0, 0, 0, 0];
  const upper = samePads(inH, inW, kh, kw, strides, dilations);
  if (autoPad === 'SAME_UPPER') return upper;
  return [upper[2]!, upper[3]!, upper[0]!, upper[1]!];
}

/** Decides the fusions the Conv handler performs: batch norms folded into the Conv that feeds them (its
 * weights and the norm's parameters constant, its output read by the norm alone), and so a per-channel Mul
 * by a constant with an optional Add of one after it (a batch norm exported as arithmetic), and Pad nodes
 * read only by Conv layers as their data. */
export function planConvFusions(ctx: ImportContext, nodes: readonly NodeProto[]): void {
  const consumers = new Map<string, number>();
  for (const n of nodes) for (const i of n.input ?? []) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  const isConstant = (name: string | undefined): boolean => ctx.b.data.has(ctx.values.get(name ?? '') ?? -1);
  for (const n of nodes) {
    if (n.opType !== 'BatchNormalization') continue;
    const producer = nodes.find((p) => p.opType === 'Conv' && (p.output ?? [])[0] === n.input?.[0]);
    const flag = (key: string, fallback: number): number =>
      Number(n.attribute?.find((a) => a.name === key)?.i ?? fallback);
    // Training mode and per-position (spatial=0) norms are refused by the batch norm's own handler.
    const training = flag('training_mode', 0) === 1 || flag('spatial', 1) !== 1;
    if (
      producer &&
      !training &&
      consumers.get(n.input![0]!) === 1 &&
      isConstant(producer.input?.[1]) &&
      (n.input ?? []).slice(1).every(isConstant)
    ) {
      ctx.batchNormOf.set(producer, n);
      ctx.skip.add(n);
    }
  }
  // A batch norm exported as arithmetic, y = conv(x) * scale + shift with per-channel constants.
  const onlyReader = (value: string | undefined): NodeProto | undefined => {
    const readers = value === undefined ? [] : nodes.filter((r) => (r.input ?? []).includes(value));
    return readers.length === 1 && consumers.get(value!) === 1 ? readers[0] : undefined;
  };
  // The constant operand of a per-channel Mul / Add (through the Identity nodes exporters put on shared
  // initializers), by its initializer's name.
  const identityOf = new Map<string, string>();
  for (const n of nodes)
    if (n.opType === 'Identity' && n.output?.[0] !== undefined)
      identityOf.set(n.output[0], n.input?.[0] ?? '');
  const constantOperand = (n: NodeProto, value: string): string | undefined => {
    const [a, b] = n.input ?? [];
    let other = a === value ? b : b === value ? a : undefined;
    // Identity chains of a valid graph end at an initializer; a hostile file's cycle stops at the first repeat.
    const seen = new Set<string>();
    while (other !== undefined && identityOf.has(other) && !seen.has(other)) {
      seen.add(other);
      other = identityOf.get(other);
    }
    return other !== undefined && isConstant(other) && channelValues(ctx, other) !== undefined
      ? other
      : undefined;
  };
  for (const producer of nodes) {
    const out = producer.output?.[0];
    if (producer.opType !== 'Conv' || ctx.batchNormOf.has(producer) || !isConstant(producer.input?.[1]))
      continue;
    const mul = onlyReader(out);
    const scale = mul?.opType === 'Mul' ? constantOperand(mul, out!) : undefined;
    if (scale === undefined) continue;
    const add = onlyReader(mul!.output?.[0]);
    const shift = add?.opType === 'Add' ? constantOperand(add, mul!.output![0]!) : undefined;
    ctx.affineOf.set(
      producer,
      shift === undefined ? { mul: mul!, scale } : { mul: mul!, scale, add: add!, shift },
    );
    ctx.skip.add(mul!);
    if (shift !== undefined) ctx.skip.add(add!);
  }
  for (const n of nodes) {
    const out = n.output?.[0];
    if (n.opType !== 'Pad' || out === undefined) continue;
    const readers = nodes.filter((r) => (r.input ?? []).includes(out));
    if (readers.length > 0 && readers.every((r) => r.opType === 'Conv' && r.input?.[0] === out))
      ctx.padOf.set(out, n);
  }
}

/** The values of constant `name` when it broadcasts per channel over an NCHW tensor (a scalar, [C], [C, 1, 1]
 * or [1, C, 1, 1]); undefined otherwise. One value stands for every channel. */
function channelValues(ctx: ImportContext, name: string): Float32Array | undefined {
  const t = ctx.values.get(name);
  const values = t === undefined ? undefined : ctx.b.data.get(t);
  if (!(values instanceof Float32Array)) return undefined;
  const dims = ctx.b.tensors[t!]!.shape;
  const perChannel =
    values.length === 1 ||
    (dims.length === 3 && dims[1] === 1 && dims[2] === 1) ||
    (dims.length === 4 && dims[0] === 1 && dims[2] === 1 && dims[3] === 1);
  return perChannel ? values : undefined;
}

/** A Pad's padding of H and W as [top, left, bottom, right]; anything but constant zero padding of a 4-D
 * tensor's spatial axes fails. */
function spatialZeroPads(n: OnnxNode, padProto: NodeProto): number[] {
  const pad = new OnnxNode(n.ctx, padProto, 0);
  const mode = pad.string('mode', 'constant');
  const pads = n.opset >= 11 ? pad.constant(1, 'pads') : pad.ints('pads', []);
  const value =
    n.opset >= 11
      ? (padProto.input?.[2] ?? '') === ''
        ? 0
        : pad.constant(2, 'constant_value')[0]
      : pad.float('value', 0);
  const where = `Pad "${padProto.name ?? ''}"`;
  if (mode !== 'constant' || value !== 0) n.fail(`${where}: only constant zero padding folds into a Conv`);
  if ((padProto.input?.[3] ?? '') !== '') n.fail(`${where}: the axes input is not supported`);
  if (
    pads.length !== 8 ||
    pads.some((p) => !Number.isInteger(p) || p < 0) ||
    [0, 1, 4, 5].some((i) => pads[i] !== 0)
  )
    n.fail(`${where}: only non-negative padding of H and W of an NCHW tensor folds into a Conv`);
  return [pads[2]!, pads[3]!, pads[6]!, pads[7]!];
}

/** A Conv whose operands are integer tensors: QLinearConv's, or a QDQ Conv's (qdq.ts). */
export function conv(n: OnnxNode, q?: QuantizedOperands): void {
  const { b, name } = n;
  const quantized = q !== undefined || n.opType === 'QLinearConv';
  const wIndex = n.opType === 'QLinearConv' ? 3 : 1;
  const pad = q ? undefined : n.ctx.padOf.get(n.proto.input?.[0] ?? '');
  let x = q ? q.x : pad ? n.input(0, 'data', pad) : n.input(0, 'X');
  let w = q ? q.w : n.input(wIndex, 'W');
  n.rank4(x, 'X');
  n.rank4(w, 'W');
  const [, , inH, inW] = b.tensors[x]!.shape as [number, number, number, number];
  const [outC, , kh, kw] = b.tensors[w]!.shape as [number, number, number, number];
  const strides = n.ints('strides', [1, 1]);
  const dilations = n.ints('dilations', [1, 1]);
  let pads = pads2d(n, inH, inW, kh, kw, strides, dilations);
  if (pad) {
    if (!['NOTSET', 'VALID'].includes(n.string('auto_pad', 'NOTSET')))
      n.fail('a Pad before a Conv with auto_pad SAME_* is not supported');
    const extra = spatialZeroPads(n, pad);
    pads = pads.map((p, i) => p + extra[i]!);
  }
  const convAttrs = { strides, dilations, pads, groups: n.int('group', 1) };
  const weightsOhwi = (weights: number): number => {
    const t = b.emit(`${name}/weights_ohwi`, 'transpose', b.formatOf(weights), [weights], {
      perm: NCHW_TO_NHWC,
    })[0]!;
    if (b.tensors[weights]!.quant) b.tensors[t]!.quant = b.tensors[weights]!.quant;
    return t;
  };
  if (quantized) {
    const operands = q ?? qlinearOperands(n, x, w, 8, 0);
    const [y] = b.emit(
      name,
      'qconv2d',
      'int8',
      [b.toNhwc(operands.x, name), weightsOhwi(operands.w), operands.bias],
      { ...convAttrs, ...operands.attrs },
      [operands.y],
    );
    n.set(0, b.toNchw(y!, name));
  } else if (n.opType === 'ConvInteger') {
    const xq = n.optional(2) < 0 ? [0] : n.constant(2, 'x_zero_point');
    const wq = n.optional(3) < 0 ? [0] : n.constant(3, 'w_zero_point');
    x = b.withQuant(x, { scale: [1], zeroPoint: xq }, name);
    w = b.withQuant(
      w,
      { scale: wq.map(() => 1), zeroPoint: wq, ...(wq.length > 1 ? { axis: 0 } : {}) },
      name,
    );
    const [y] = b.emit(name, 'conv2d_integer', 'int8', [b.toNhwc(x, name), weightsOhwi(w)], convAttrs);
    n.set(0, b.toNchw(y!, name));
  } else {
    let bias = n.optional(2);
    const bn = n.ctx.batchNormOf.get(n.proto);
    const affine = n.ctx.affineOf.get(n.proto);
    let norm: BatchNormParameters | undefined;
    if (bn) {
      const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => {
        const values = b.data.get(n.input(i, 'batch norm parameter', bn));
        if (!(values instanceof Float32Array) || values.length !== outC)
          n.fail(
            `batch norm "${bn.name ?? ''}": its parameters must be ${outC} floats, one per output channel`,
          );
        return values;
      });
      const epsilon = bn.attribute?.find((a) => a.name === 'epsilon')?.f ?? 1e-5;
      norm = { gamma: gamma!, beta: beta!, mean: mean!, variance: variance!, epsilon };
    } else if (affine) {
      // y * scale + shift as a batch norm of mean 0 and variance 1 (epsilon 0: the scale is not rounded).
      const perChannel = (name: string | undefined, fill: number): Float32Array => {
        const values = name === undefined ? new Float32Array([fill]) : channelValues(n.ctx, name)!;
        if (values.length !== 1 && values.length !== outC)
          n.fail(`${name ?? ''}: ${values.length} values for ${outC} output channels`);
        return values.length === outC ? values : new Float32Array(outC).fill(values[0]!);
      };
      norm = {
        gamma: perChannel(affine.scale, 1),
        beta: perChannel(affine.shift, 0),
        mean: new Float32Array(outC),
        variance: new Float32Array(outC).fill(1),
        epsilon: 0,
      };
    }
    if (norm) {
      const weights = b.data.get(w);
      const biasValues = bias < 0 ? null : b.data.get(bias);
      if (!(weights instanceof Float32Array) || !(biasValues === null || biasValues instanceof Float32Array))
        n.fail('a batch norm folds only into float weights and bias that are constants');
      const folded = foldBatchNorm(weights, biasValues, outC, norm);
      w = b.constant(`${name}.folded_weight`, 'f32', b.tensors[w]!.shape, folded.weights);
      bias = b.constant(`${name}.folded_bias`, 'f32', [outC], folded.bias);
    }
    const [y] = b.emit(name, 'conv2d', 'f32', [b.toNhwc(x, name), weightsOhwi(w), bias], convAttrs);
    n.set(0, b.toNchw(y!, name));
    const last = bn ?? affine?.add ?? affine?.mul;
    if (last) n.ctx.values.set(last.output![0]!, n.ctx.values.get(n.proto.output![0]!)!);
  }
}

/** ConvTranspose: NHWC like Conv, weights [C_in][C_out / group][kH][kW] permuted to [C_in][kH][kW][C_out /
 * group]; output_shape is refused (give pads and output_padding). */
function convTranspose(n: OnnxNode): void {
  const { b, name } = n;
  const x = n.input(0, 'X');
  const w = n.input(1, 'W');
  n.rank4(x, 'X');
  n.rank4(w, 'W');
  if (n.attrs.has('output_shape'))
    n.fail('attribute output_shape is not supported (export pads and output_padding)');
  const autoPad = n.oneOf('auto_pad', 'NOTSET', ['NOTSET', 'VALID']);
  const attrs = {
    strides: n.ints('strides', [1, 1]),
    dilations: n.ints('dilations', [1, 1]),
    pads: autoPad === 'VALID' ? [0, 0, 0, 0] : n.ints('pads', [0, 0, 0, 0]),
    output_padding: n.ints('output_padding', [0, 0]),
    groups: n.int('group', 1),
  };
  const weights = b.emit(`${name}/weights_ihwo`, 'transpose', 'f32', [w], { perm: NCHW_TO_NHWC })[0]!;
  const [y] = b.emit(name, 'conv_transpose', 'f32', [b.toNhwc(x, name), weights, n.optional(2)], attrs);
  n.set(0, b.toNchw(y!, name));
}

export const CONV_ONNX_OPS: OnnxOpTable = {
  ConvTranspose: convTranspose,
  Conv: conv,
  QLinearConv: conv,
  ConvInteger: conv,
};
