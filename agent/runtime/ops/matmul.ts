// Batched matrix products with numpy broadcasting: matmul (fp32), qmatmul (int8 / uint8, requantized) and
// matmul_integer (int32 accumulators out, ONNX MatMulInteger).
import type { ManifestNode } from '../../package/manifest.js';
import { expect, input, isInt8, pick } from '../attributes.js';
import type { ExecutorFactory, OpDefinition, PrepareContext } from '../executor.js';
import { matmul, matmulShape } from '../reference-ops/matmul.js';
import { elements, type TensorSpec } from '../tensor.js';
import { quantizedOperands, requantizer } from './quantized-conv.js';

function matmulInfer(node: ManifestNode, a: TensorSpec, b: TensorSpec): number[] {
  const shape = matmulShape(a.shape, b.shape);
  expect(typeof shape !== 'string', node, typeof shape === 'string' ? shape : '');
  return shape;
}

const matmulMacs = (
  _node: ManifestNode,
  inputs: readonly (TensorSpec | undefined)[],
  outputs: readonly TensorSpec[],
): number => elements(outputs[0]!.shape) * (inputs[0]!.shape[inputs[0]!.shape.length - 1] ?? 1);

/** The executor of a matrix product (zero points of quantized operands subtracted): `finish` prepares what
 * turns each sum into an output value. */
function matmulExecutor(
  kernel: string,
  finish: (context: PrepareContext) => (sum: number) => number,
): ExecutorFactory {
  return (context) => {
    const [a, b] = context.inputs as [TensorSpec, TensorSpec];
    const value = finish(context);
    return {
      kernel: `reference:${kernel}`,
      run: (inputs, outputs) => {
        const y = outputs[0]!;
        matmul(
          a.shape,
          pick(context, inputs, 0)!,
          a.quant?.zeroPoint[0] ?? 0,
          b.shape,
          pick(context, inputs, 1)!,
          b.quant?.zeroPoint[0] ?? 0,
          (i, sum) => {
            y[i] = value(sum);
          },
        );
      },
    };
  };
}

const matmulOp: OpDefinition = {
  infer(node, inputs) {
    const a = input(node, inputs, 0, 'a');
    const b = input(node, inputs, 1, 'b');
    expect(a.dtype === 'f32' && b.dtype === 'f32', node, 'matmul takes fp32 operands');
    return [{ dtype: 'f32', shape: matmulInfer(node, a, b) }];
  },
  macs: matmulMacs,
  executors: { f32: matmulExecutor('matmul_f32', () => (sum) => sum) },
};

const qmatmul: OpDefinition = {
  infer(node, inputs, declared) {
    const { a, b, y, bq } = quantizedOperands(node, inputs, declared, ['a', 'b']);
    expect(bq.scale.length === 1, node, 'qmatmul supports a per-tensor scale of b only');
    return [{ ...y, shape: matmulInfer(node, a, b) }];
  },
  macs: matmulMacs,
  executors: {
    int8: matmulExecutor('qmatmul_int8', (context) => {
      const [a, b] = context.inputs as [TensorSpec, TensorSpec];
      const requantize = requantizer(context.node, a, b, context.outputs[0]!);
      return (sum) => requantize(sum | 0, 0);
    }),
  },
};

const matmulIntegerOp: OpDefinition = {
  infer(node, inputs) {
    const a = input(node, inputs, 0, 'a');
    const b = input(node, inputs, 1, 'b');
    expect(isInt8(a) && isInt8(b), node, 'matmul_integer takes int8/uint8 operands');
    return [{ dtype: 'i32', shape: matmulInfer(node, a, b) }];
  },
  macs: matmulMacs,
  executors: { int8: matmulExecutor('matmul_integer_int8', () => (sum) => sum | 0) },
};

export const MATMUL_OPS = {
  matmul: matmulOp,
  qmatmul,
  matmul_integer: matmulIntegerOp,
} satisfies Record<string, OpDefinition>;
