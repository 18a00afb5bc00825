// Pooling: MaxPool and AveragePool (2-D, and 1-D as 2-D pooling of a height-1 image), GlobalAveragePool.
// The runtime pools NHWC, so each is wrapped in layout transposes.
import type { OnnxNode, OnnxOpTable } from '../context.js';
import { pads2d } from './conv.js';

function pool(n: OnnxNode): void {
  const { b, name } = n;
  if (n.outputCount > 1) n.fail('the Indices output is not supported');
  let x = n.input(0, 'X');
  const oneD = b.tensors[x]!.shape.length === 3;
  const lift = (values: number[], fill: number): number[] => (oneD ? [fill, ...values] : values);
  if (oneD) {
    const [batch, c, l] = b.tensors[x]!.shape as [number, number, number];
    x = n.emit('reshape', [x], { shape: [batch, c, 1, l] }, 'to_2d');
  }
  n.rank4(x, 'X');
  const [, , inH, inW] = b.tensors[x]!.shape as [number, number, number, number];
  const kernel = lift(n.ints('kernel_shape', []), 1);
  if (kernel.length !== 2) n.fail('kernel_shape must have 2 entries (or 1 for 1-D pooling)');
  const strides = lift(n.ints('strides', oneD ? [1] : [1, 1]), 1);
  const dilations = lift(n.ints('dilations', oneD ? [1] : [1, 1]), 1);
  const rawPads = n.ints('pads', oneD ? [0, 0] : [0, 0, 0, 0]);
  const explicitPads = oneD ? [0, rawPads[0]!, 0, rawPads[1]!] : rawPads;
  const pads = pads2d(n, inH, inW, kernel[0]!, kernel[1]!, strides, dilations, explicitPads);
  const poolAttrs = {
    kernel,
    strides,
    dilations,
    pads,
    ceil_mode: n.int('ceil_mode', 0),
    count_include_pad: n.int('count_include_pad', 0),
  };
  const op = n.opType === 'MaxPool' ? 'max_pool' : 'avg_pool';
  const [y] = b.emit(name, op, b.formatOf(x), [b.toNhwc(x, name)], poolAttrs);
  let out = b.toNchw(y!, name);
  if (oneD) {
    const [batch, c, , l] = b.tensors[out]!.shape as [number, number, number, number];
    out = n.emit('reshape', [out], { shape: [batch, c, l] }, 'to_1d');
  }
  n.set(0, out);
}

export const POOL_ONNX_OPS: OnnxOpTable = {
  MaxPool: pool,
  AveragePool: pool,
  GlobalAveragePool: (n) => {
    const x = n.input(0, 'X');
    n.rank4(x, 'X');
    const [y] = n.b.emit(n.name, 'global_avgpool', 'f32', [n.b.toNhwc(x, n.name)], {});
    n.set(0, n.b.toNchw(y!, n.name));
  },
};
