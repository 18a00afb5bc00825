// The boundaries between fp32 and integer tensors: quantize_linear and dequantize_linear, per tensor or per
// channel along quant.axis.
import { expect, input, isInt8, needQuant, pick } from '../attributes.js';
import { type Executor, type OpDefinition, perImage, type PrepareContext } from '../executor.js';
import { roundHalfEven } from '../number/rounding.js';
import { intRange, saturate } from '../number/saturation.js';
import { channelOf, elements, type TensorSpec } from '../tensor.js';

// out[i] = f(input 0's x[i], the scale and zero point of i's channel), the channel along quant.axis of
// `quantized` (the side that is int8: the output of quantize_linear, the input of dequantize_linear).
function perElement(
  context: PrepareContext,
  quantized: TensorSpec,
  kernel: string,
  f: (x: number, scale: number, zeroPoint: number) => number,
): Executor {
  const { scale, zeroPoint, axis } = quantized.quant!;
  const channel = channelOf(quantized.shape, axis);
  return {
    kernel,
    run: (inputs, outputs) => {
      const x = pick(context, inputs, 0)!;
      const out = outputs[0]!;
      for (let i = 0; i < out.length; i++) {
        const c = channel ? channel(i) : 0;
        out[i] = f(x[i]!, scale[c]!, zeroPoint[c]!);
      }
    },
  };
}

const quantizeLinear: OpDefinition = {
  perImage,
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
      const [lo, hi] = intRange(y.dtype);
      return perElement(context, y, 'reference:quantize_linear_int8', (x, scale, zeroPoint) =>
        saturate(roundHalfEven(x / scale) + zeroPoint, lo, hi),
      );
    },
  },
};

const dequantizeLinear: OpDefinition = {
  perImage,
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(isInt8(x) || x.dtype === 'i32', node, 'dequantize_linear takes int8, uint8 or int32');
    needQuant(node, x, 'input');
    return [{ dtype: 'f32', shape: [...x.shape] }];
  },
  macs: (_node, inputs) => elements(inputs[0]!.shape),
  executors: {
    int8: (context) =>
      perElement(
        context,
        context.inputs[0]!,
        'reference:dequantize_linear_int8',
        (x, scale, zeroPoint) => (x - zeroPoint) * scale,
      ),
  },
};

export const QUANTIZE_OPS = {
  quantize_linear: quantizeLinear,
  dequantize_linear: dequantizeLinear,
} satisfies Record<string, OpDefinition>;
