// The integer layers: qconv2d and qfully_connected (int8 / uint8 in and out, requantized per output channel)
// and conv2d_integer (int32 accumulators out, ONNX ConvInteger), with the requantizer they and qmatmul share.
import type { ManifestNode } from '../../package/manifest.js';
import {
  expect,
  input,
  isInt8,
  needQuant,
  numberAttr,
  pick,
  scalarOrChannel,
  stringAttr,
} from '../attributes.js';
import { type ExecutorFactory, type OpDefinition, perImage } from '../executor.js';
import { quantizeMultiplier, requantizeGemmlowp } from '../number/requantization.js';
import { roundHalfEven } from '../number/rounding.js';
import { intRange, saturate } from '../number/saturation.js';
import { conv2dInteger } from '../reference-ops/conv.js';
import { fullyConnected } from '../reference-ops/matmul.js';
import { elements, type TensorSpec } from '../tensor.js';
import { convGeometry } from '../window.js';
import { checkAddend, withResidual } from './residual.js';

/** Requantization of an integer accumulator of output channel o to an int8/uint8 output. */
type Requantize = (accumulator: number, o: number) => number;

export function requantizer(node: ManifestNode, x: TensorSpec, w: TensorSpec, y: TensorSpec): Requantize {
  const xq = needQuant(node, x, 'input');
  const wq = needQuant(node, w, 'weights');
  const yq = needQuant(node, y, 'output');
  const [lo, hi] = intRange(y.dtype);
  const min = Math.max(lo, numberAttr(node, 'min', lo));
  const max = Math.min(hi, numberAttr(node, 'max', hi));
  const zero = yq.zeroPoint[0]!;
  const channels = wq.scale.length;
  if (stringAttr(node, 'rounding', ['gemmlowp', 'onnx'], 'gemmlowp') === 'onnx') {
    // ONNX's reference: float32 rescale, round half to even, saturate.
    const scales = Array.from({ length: channels }, (_, o) =>
      Math.fround(Math.fround(xq.scale[0]! * wq.scale[o]!) / yq.scale[0]!),
    );
    return (acc, o) =>
      saturate(roundHalfEven(Math.fround(acc * scalarOrChannel(scales, o))) + zero, min, max);
  }
  // 'saturate': the reader admits any positive finite scales, so the ratio can pass 2^30 (requantization.ts).
  const multipliers = Array.from({ length: channels }, (_, o) =>
    quantizeMultiplier((xq.scale[0]! * wq.scale[o]!) / yq.scale[0]!, 'saturate'),
  );
  return (acc, o) => {
    const m = multipliers.length === 1 ? multipliers[0]! : multipliers[o]!;
    return saturate(zero + requantizeGemmlowp(acc, m.multiplier, m.shift), min, max);
  };
}

const weightZero = (spec: TensorSpec): ((o: number) => number) => {
  const zp = spec.quant?.zeroPoint ?? [0];
  return (o) => scalarOrChannel(zp, o);
};

/** The int8 executor of qconv2d (bias added, requantized to the output's dtype) or conv2d_integer (the int32
 * accumulators out). */
function integerConvExecutor(op: 'qconv2d' | 'conv2d_integer'): ExecutorFactory {
  return (context) => {
    const [x, w] = context.inputs as [TensorSpec, TensorSpec];
    const g = convGeometry(context.node, x, w);
    const requantize = op === 'qconv2d' ? requantizer(context.node, x, w, context.outputs[0]!) : undefined;
    const xZero = x.quant?.zeroPoint[0] ?? 0;
    return {
      kernel: `reference:${op}_int8`,
      run: (inputs, outputs) => {
        const y = outputs[0]!;
        conv2dInteger(
          g,
          inputs[0]!,
          xZero,
          pick(context, inputs, 1)!,
          weightZero(w),
          requantize && (pick(context, inputs, 2) as Int32Array | undefined),
          requantize
            ? (index, o, acc) => {
                y[index] = requantize(acc, o);
              }
            : (index, _o, acc) => {
                y[index] = acc;
              },
        );
      },
    };
  };
}

/** The operands of a layer that requantizes an integer product to an int8/uint8 output (qconv2d,
 * qfully_connected, qmatmul): inputs 0 and 1 (named by `names`) and the declared output, each int8/uint8 with
 * a scale and zero point. */
export function quantizedOperands(
  node: ManifestNode,
  inputs: readonly (TensorSpec | undefined)[],
  declared: readonly (TensorSpec | undefined)[],
  names: readonly [string, string],
): { a: TensorSpec; b: TensorSpec; y: TensorSpec; bq: { scale: number[]; zeroPoint: number[] } } {
  const a = input(node, inputs, 0, names[0]);
  const b = input(node, inputs, 1, names[1]);
  const y = declared[0];
  expect(
    isInt8(a) && isInt8(b),
    node,
    `${node.op} takes int8/uint8 ${names[0]} and ${names[1]}, got ${a.dtype} and ${b.dtype}`,
  );
  expect(y !== undefined && isInt8(y), node, `${node.op} output must be int8 or uint8`);
  needQuant(node, a, names[0]);
  const bq = needQuant(node, b, names[1]);
  needQuant(node, y, 'output');
  return { a, b, y, bq };
}

const qconv2d: OpDefinition = {
  perImage,
  infer(node, inputs, declared) {
    const { a: x, b: w, y, bq: wq } = quantizedOperands(node, inputs, declared, ['input', 'weights']);
    const g = convGeometry(node, x, w);
    expect(
      wq.scale.length === 1 || wq.scale.length === g.outC,
      node,
      'weight scales must be per tensor or per output channel',
    );
    const bias = inputs[2];
    expect(
      bias === undefined || (bias.dtype === 'i32' && elements(bias.shape) === g.outC),
      node,
      `bias must be ${g.outC} int32`,
    );
    const out = { ...y, shape: [g.batch, g.outH, g.outW, g.outC] };
    checkAddend(node, inputs, out);
    return [out];
  },
  macs: (node, inputs, outputs) => elements(outputs[0]!.shape) * elements(inputs[1]!.shape.slice(1)),
  executors: { int8: withResidual(integerConvExecutor('qconv2d')) },
};

const conv2dIntegerOp: OpDefinition = {
  perImage,
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const w = input(node, inputs, 1, 'weights');
    expect(isInt8(x) && isInt8(w), node, 'conv2d_integer takes int8/uint8 input and weights');
    const g = convGeometry(node, x, w);
    return [{ dtype: 'i32', shape: [g.batch, g.outH, g.outW, g.outC] }];
  },
  macs: (node, inputs, outputs) => elements(outputs[0]!.shape) * elements(inputs[1]!.shape.slice(1)),
  executors: { int8: integerConvExecutor('conv2d_integer') },
};

const qfullyConnected: OpDefinition = {
  perImage,
  infer(node, inputs, declared) {
    const { a: x, b: w, y } = quantizedOperands(node, inputs, declared, ['input', 'weights']);
    expect(w.shape.length === 2, node, 'weights must be [out][in]');
    const batch = x.shape[0] ?? 1;
    expect(
      elements(x.shape) === batch * w.shape[1]!,
      node,
      `input does not hold ${w.shape[1]} features per row`,
    );
    return [{ ...y, shape: [batch, w.shape[0]!] }];
  },
  macs: (_node, inputs, outputs) => elements(outputs[0]!.shape) * inputs[1]!.shape[1]!,
  executors: {
    int8: (context) => {
      const [x, w] = context.inputs as [TensorSpec, TensorSpec];
      const requantize = requantizer(context.node, x, w, context.outputs[0]!);
      const batch = x.shape[0]!;
      const [outC, k] = w.shape as [number, number];
      const xZero = x.quant!.zeroPoint[0]!;
      return {
        kernel: 'reference:qfully_connected_int8',
        run: (inputs, outputs) => {
          const y = outputs[0]!;
          const bias = pick(context, inputs, 2);
          fullyConnected(
            batch,
            k,
            outC,
            inputs[0]!,
            xZero,
            pick(context, inputs, 1)!,
            weightZero(w),
            (index, o, sum) => {
              y[index] = requantize((sum + (bias ? bias[o]! : 0)) | 0, o);
            },
          );
        },
      };
    },
  },
};

export const QUANTIZED_CONV_OPS = {
  qconv2d,
  conv2d_integer: conv2dIntegerOp,
  qfully_connected: qfullyConnected,
} satisfies Record<string, OpDefinition>;
