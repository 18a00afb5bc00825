// QOperator ops ONNX Runtime writes in its com.microsoft domain (QLinearConv and QLinearMatMul are in the
// default domain: ops/conv.ts, ops/matmul.ts), onto the int8 ops; what no int8 op computes exactly
// (broadcasting adds, concats of inputs at other scales) runs in float between the integer ends.
import type { OnnxOpTable } from '../context.js';
import { checkZeroPoints, sameQuant } from '../qdq.js';

/** Keyed "domain.OpType", as the importer looks up ops outside the default domain. */
export const QOPERATOR_ONNX_OPS: OnnxOpTable = {
  'com.microsoft.QLinearAdd': (n) => {
    const { b } = n;
    const a = b.withQuant(n.input(0, 'A'), n.quant(1, 2, undefined), n.name);
    const c = b.withQuant(n.input(3, 'B'), n.quant(4, 5, undefined), n.name);
    const y = { dtype: b.tensors[n.input(7, 'C_zero_point')]!.dtype, quant: n.quant(6, 7, undefined) };
    for (const t of [a, c]) checkZeroPoints(n.proto, b.tensors[t]!.dtype, b.tensors[t]!.quant!);
    checkZeroPoints(n.proto, y.dtype, y.quant);
    if (b.tensors[a]!.shape.join() === b.tensors[c]!.shape.join() && b.tensors[a]!.dtype === y.dtype) {
      n.set(0, b.emit(n.name, 'qadd', 'int8', [a, c], {}, [y])[0]!);
      return;
    }
    // Broadcasting: the reference path, float between the integer ends.
    const sum = n.emit('add', [
      n.emit('dequantize_linear', [a], {}, 'a'),
      n.emit('dequantize_linear', [c], {}, 'b'),
    ]);
    n.set(0, b.emit(n.name, 'quantize_linear', 'int8', [sum], {}, [y])[0]!);
  },
  'com.microsoft.QLinearGlobalAveragePool': (n) => {
    const { b } = n;
    const x = b.withQuant(n.input(0, 'X'), n.quant(1, 2, undefined), n.name);
    const y = { dtype: b.tensors[n.input(4, 'y_zero_point')]!.dtype, quant: n.quant(3, 4, undefined) };
    checkZeroPoints(n.proto, y.dtype, y.quant);
    n.rank4(x, 'X');
    const channelsLast = n.oneOf('channels_last', 0, [0, 1]) === 1;
    const [pooled] = b.emit(n.name, 'global_avgpool', 'int8', [channelsLast ? x : b.toNhwc(x, n.name)], {}, [
      y,
    ]);
    n.set(0, channelsLast ? pooled! : b.toNchw(pooled!, n.name));
  },
  'com.microsoft.QLinearConcat': (n) => {
    const { b } = n;
    const y = { dtype: b.tensors[n.input(1, 'Y_zero_point')]!.dtype, quant: n.quant(0, 1, undefined) };
    const count = ((n.proto.input ?? []).length - 2) / 3;
    if (!Number.isInteger(count) || count < 1)
      n.fail('inputs must be Y_scale, Y_zero_point, then (X, scale, zero point) triples');
    const xs = Array.from({ length: count }, (_, i) =>
      b.withQuant(n.input(2 + 3 * i, 'X'), n.quant(3 + 3 * i, 4 + 3 * i, undefined), n.name),
    );

    const axis = n.int('axis', 0);
    if (xs.every((t) => sameQuant(b, t, y))) {
      n.set(0, n.emit('concat', xs, { axis }));
      return;
    }
    // Inputs at other scales: the reference path, float between the integer ends.
    const floats = xs.map((t, i) => n.emit('dequantize_linear', [t], {}, `x${i}`));
    n.set(0, b.emit(n.name, 'quantize_linear', 'int8', [n.emit('concat', floats, { axis })], {}, [y])[0]!);
  },
};
