// Pooling over NHWC activations: max_pool and avg_pool (fp32 or int8 / uint8, int8 keeping the input's
// quantization: its averages round half to even, count_include_pad counting padded positions as the zero
// point) and global_avgpool (fp32, or int8 / uint8 requantized from the input's quantization to the
// output's).
import { expect, input, intAttr, isInt8, needQuant } from '../attributes.js';
import { type Executor, f32AndInt8, type OpDefinition, perImage, type PrepareContext } from '../executor.js';
import { roundHalfEven } from '../number/rounding.js';
import { intRange } from '../number/saturation.js';
import {
  averagePool,
  globalAveragePoolInt8,
  globalAvgPoolMultiplier,
  maxPool,
} from '../reference-ops/pool.js';
import { elements } from '../tensor.js';
import { poolGeometry, poolKernel } from '../window.js';

function poolOp(kind: 'max' | 'avg'): OpDefinition {
  const run = (context: PrepareContext): Executor => {
    const x = context.inputs[0]!;
    const g = poolGeometry(context.node, x);
    const includePad = intAttr(context.node, 'count_include_pad', 0, 0, 1) === 1;
    const integer = x.dtype !== 'f32';
    return {
      kernel: `reference:${kind}_pool_${context.format}`,
      run: (inputs, outputs) =>
        kind === 'max'
          ? maxPool(g, inputs[0]!, outputs[0]!)
          : averagePool(
              g,
              inputs[0]!,
              outputs[0]!,
              includePad,
              integer ? (mean) => roundHalfEven(mean) : undefined,
              integer ? (x.quant?.zeroPoint[0] ?? 0) : 0,
            ),
    };
  };
  return {
    perImage,
    infer(node, inputs) {
      const x = input(node, inputs, 0, 'x');
      expect(x.dtype === 'f32' || isInt8(x), node, `pooling takes fp32 or int8 input, got ${x.dtype}`);
      const g = poolGeometry(node, x);
      return [{ ...x, shape: [g.batch, g.outH, g.outW, g.channels] }];
    },
    macs: (node, _inputs, outputs) => elements(outputs[0]!.shape) * elements(poolKernel(node, [1, 1])),
    executors: f32AndInt8(run),
  };
}

const globalAvgPool: OpDefinition = {
  perImage,
  infer(node, inputs, declared) {
    const x = input(node, inputs, 0, 'x');
    expect(x.shape.length === 4, node, 'global_avgpool takes NHWC input');
    expect(x.dtype === 'f32' || isInt8(x), node, `global_avgpool takes fp32 or int8 input, got ${x.dtype}`);
    const shape = [x.shape[0]!, 1, 1, x.shape[3]!];
    if (x.dtype === 'f32') return [{ ...x, shape }];
    // int8: from the input's per-tensor quantization to the output's (declared, or else the input's).
    const y = declared[0]?.quant !== undefined ? declared[0] : x;
    expect(y.dtype === x.dtype, node, `global_avgpool keeps the dtype (${x.dtype}), got ${y.dtype}`);
    for (const [spec, what] of [
      [x, 'input'],
      [y, 'output'],
    ] as const) {
      const q = needQuant(node, spec, what);
      expect(
        q.scale.length === 1 && q.zeroPoint.length === 1,
        node,
        `global_avgpool takes a per-tensor ${what}`,
      );
    }
    return [{ dtype: x.dtype, shape, quant: y.quant! }];
  },
  macs: (_node, inputs) => elements(inputs[0]!.shape),
  executors: {
    f32: (context) => {
      const [n, h, w, c] = context.inputs[0]!.shape as [number, number, number, number];
      return {
        kernel: 'reference:global_avgpool_f32',
        run: (inputs, outputs) => {
          const x = inputs[0]!;
          const y = outputs[0]!;
          for (let b = 0; b < n; b++) {
            for (let ch = 0; ch < c; ch++) {
              let sum = 0;
              for (let p = 0; p < h * w; p++) sum += x[(b * h * w + p) * c + ch]!;
              y[b * c + ch] = sum / (h * w);
            }
          }
        },
      };
    },
    int8: (context) => {
      const x = context.inputs[0]!;
      const y = context.outputs[0]!;
      const [n, h, w, c] = x.shape as [number, number, number, number];
      const [min, max] = intRange(y.dtype);
      const q = {
        inputZeroPoint: x.quant!.zeroPoint[0]!,
        outputZeroPoint: y.quant!.zeroPoint[0]!,
        multiplier: globalAvgPoolMultiplier(x.quant!.scale[0]!, y.quant!.scale[0]!, h * w),
        min,
        max,
      };
      return {
        kernel: 'reference:global_avgpool_int8',
        run: (inputs, outputs) => globalAveragePoolInt8(n, h * w, c, inputs[0]!, outputs[0]!, q),
      };
    },
  },
};

export const POOL_OPS = {
  max_pool: poolOp('max'),
  avg_pool: poolOp('avg'),
  global_avgpool: globalAvgPool,
} satisfies Record<string, OpDefinition>;
