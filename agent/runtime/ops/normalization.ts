// batch_norm in inference form (fp32): (x - mean) / sqrt(variance + epsilon) * scale + bias along an axis.
// Imported models fold it into the convolution before it (optimize/fold-batchnorm.ts) where they can.
import { expect, input, intAttr, normalizeAxis, numberAttr, pick } from '../attributes.js';
import type { OpDefinition } from '../executor.js';
import { channelOf, elements } from '../tensor.js';

const batchNorm: OpDefinition = {
  perImage: (node) => intAttr(node, 'axis', 1) !== 0,
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(x.dtype === 'f32', node, 'batch_norm takes fp32 input');
    const axis = normalizeAxis(node, intAttr(node, 'axis', 1), x.shape.length);
    for (let i = 1; i <= 4; i++) {
      const p = input(node, inputs, i, ['', 'scale', 'bias', 'mean', 'variance'][i]!);
      expect(
        elements(p.shape) === x.shape[axis],
        node,
        `batch_norm parameter ${i} must have ${x.shape[axis]} elements`,
      );
    }
    return [{ ...x, shape: [...x.shape] }];
  },
  macs: (_node, inputs) => 2 * elements(inputs[0]!.shape),
  executors: {
    f32: (context) => {
      const x = context.inputs[0]!;
      const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', 1), x.shape.length);
      const channel = channelOf(x.shape, axis)!;
      const epsilon = numberAttr(context.node, 'epsilon', 1e-5);
      return {
        kernel: 'reference:batch_norm_f32',
        run: (inputs, outputs) => {
          const [data, s, b, m, v] = [0, 1, 2, 3, 4].map((i) => pick(context, inputs, i)!);
          const out = outputs[0]!;
          for (let i = 0; i < out.length; i++) {
            const c = channel(i);
            out[i] = ((data![i]! - m![c]!) / Math.sqrt(v![c]! + epsilon)) * s![c]! + b![c]!;
          }
        },
      };
    },
  },
};

export const NORMALIZATION_OPS = { batch_norm: batchNorm } satisfies Record<string, OpDefinition>;
