// The boundaries between fp32 and integer tensors: quantize_linear and dequantize_linear, per tensor or per
// channel along quant.axis.
import { expect, input, isInt8, needQuant, pick } from '../attributes.js';
import type { OpDefinition } from '../executor.js';
import { roundHalfEven } from '../number/rounding.js';
import { intRange, saturate } from '../number/saturation.js';
import { channelOf, elements } from '../tensor.js';

const quantizeLinear: OpDefinition = {
  infer(node, inputs, declared) {
    const x = input(node, inputs, 0, 'x');
    const y = declared[0];
    expect(x.dtype === 'f32', node, 'quantize_linear takes fp32 input');
    expect(y !== undefined && isInt8(y), node, 'quantize_linear gives int8 or uint8');
    const q = needQuant(node, y, 'output');
    expect(
      q.scale.length === 1 || (y.quant?.axis !== undefined && x.shape[y.quant.axis] === q.scale.length),
      node,
      'scale count does not match the axis',
    );
    return [{ ...y, shape: [...x.shape] }];
  },
  macs: (_node, inputs) => elements(inputs[0]!.shape),
  executors: {
    int8: (context) => {
      const y = context.outputs[0]!;
      const { scale, zeroPoint, axis } = y.quant!;
      const channel = channelOf(y.shape, axis);
      const [lo, hi] = intRange(y.dtype);
      return {
        kernel: 'reference:quantize_linear_int8',
        run: (inputs, outputs) => {
          const x = pick(context, inputs, 0)!;
          const out = outputs[0]!;
          for (let i = 0; i < out.length; i++) {
            const c = channel ? channel(i) : 0;
            out[i] = saturate(roundHalfEven(x[i]! / scale[c]!) + zeroPoint[c]!, lo, hi);
          }
        },
      };
    },
  },
};

const dequantizeLinear: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(isInt8(x) || x.dtype === 'i32', node, 'dequantize_linear takes int8, uint8 or int32');
    needQuant(node, x, 'input');
    return [{ dtype: 'f32', shape: [...x.shape] }];
  },
  macs: (_node, inputs) => elements(inputs[0]!.shape),
  executors: {
    int8: (context) => {
      const x = context.inputs[0]!;
      const { scale, zeroPoint, axis } = x.quant!;
      const channel = channelOf(x.shape, axis);
      return {
        kernel: 'reference:dequantize_linear_int8',
        run: (inputs, outputs) => {
          const data = pick(context, inputs, 0)!;
          const out = outputs[0]!;
          for (let i = 0; i < out.length; i++) {
            const c = channel ? channel(i) : 0;
            out[i] = (data[i]! - zeroPoint[c]!) * scale[c]!;
          }
        },
      };
    },
  },
};

export const QUANTIZE_OPS = {
  quantize_linear: quantizeLinear,
  dequantize_linear: dequantizeLinear,
} satisfies Record<string, OpDefinition>;
