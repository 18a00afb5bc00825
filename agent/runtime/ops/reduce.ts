// Reductions over axes of any tensor: reduce_mean (fp32) and reduce_max (fp32 or int8 / uint8, keeping the
// input's quantization), ONNX's ReduceMean / ReduceMax with attribute axes (default all) and keepdims
// (default 1). The global average pool of an NCHW image (ReduceMean over H and W) is imported as
// global_avgpool instead, which has native kernels.
import type { ManifestNode } from '../../package/manifest.js';
import { expect, input, intAttr, intListAttr, isInt8, normalizeAxis } from '../attributes.js';
import type { ExecutorFactory, OpDefinition } from '../executor.js';
import { stridesOf } from '../reference-ops/layout.js';
import { elements, type TensorSpec } from '../tensor.js';

/** The reduced axes (sorted, distinct) and whether they are kept as 1s. */
export function reducedAxes(node: ManifestNode, rank: number): { axes: number[]; keep: boolean } {
  const all = [...Array(rank).keys()];
  const axes = intListAttr(node, 'axes', all).map((a) => normalizeAxis(node, a, rank));
  expect(new Set(axes).size === axes.length, node, `reduced axes repeat: [${axes.join(', ')}]`);
  return {
    axes: (axes.length === 0 ? all : axes).sort((a, b) => a - b),
    keep: intAttr(node, 'keepdims', 1, 0, 1) === 1,
  };
}

function reducedShape(node: ManifestNode, shape: readonly number[]): number[] {
  const { axes, keep } = reducedAxes(node, shape.length);
  return keep ? shape.map((d, a) => (axes.includes(a) ? 1 : d)) : shape.filter((_, a) => !axes.includes(a));
}

function reduceOp(kind: 'mean' | 'max'): OpDefinition {
  const run: ExecutorFactory = (context) => {
    const shape = context.inputs[0]!.shape;
    const { axes } = reducedAxes(context.node, shape.length);
    // Each input element adds into the output element of its index with the reduced axes at 0.
    const keptShape = shape.map((d, a) => (axes.includes(a) ? 1 : d));
    const keptStrides = stridesOf(keptShape).map((s, a) => (axes.includes(a) ? 0 : s));
    const count = elements(shape) / Math.max(1, elements(keptShape));
    return {
      kernel: `reference:reduce_${kind}_${context.format}`,
      run: (inputs, outputs) => {
        const x = inputs[0]!;
        const y = outputs[0]!;
        const acc = new Float64Array(y.length).fill(kind === 'max' ? -Infinity : 0);
        const index = new Array<number>(shape.length).fill(0);
        let at = 0;
        for (let i = 0; i < x.length; i++) {
          acc[at] = kind === 'max' ? Math.max(acc[at]!, x[i]!) : acc[at]! + x[i]!;
          for (let a = shape.length - 1; a >= 0; a--) {
            at += keptStrides[a]!;
            if (++index[a]! < shape[a]!) break;
            at -= keptStrides[a]! * shape[a]!;
            index[a] = 0;
          }
        }
        for (let o = 0; o < y.length; o++) y[o] = kind === 'max' ? acc[o]! : acc[o]! / count;
      },
    };
  };
  return {
    infer(node, inputs) {
      const x = input(node, inputs, 0, 'x');
      expect(
        x.dtype === 'f32' || (kind === 'max' && isInt8(x)),
        node,
        `reduce_${kind} takes ${kind === 'max' ? 'fp32 or int8' : 'fp32'} input, got ${x.dtype}`,
      );
      expect(elements(x.shape) > 0, node, `reduce_${kind} of an empty tensor`);
      const spec: TensorSpec = { ...x, shape: reducedShape(node, x.shape) };
      return [spec];
    },
    macs: (_node, inputs) => elements(inputs[0]!.shape),
    executors: kind === 'max' ? { f32: run, int8: run } : { f32: run },
  };
}

export const REDUCE_OPS = {
  reduce_mean: reduceOp('mean'),
  reduce_max: reduceOp('max'),
} satisfies Record<string, OpDefinition>;
