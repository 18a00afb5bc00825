// QuantizeLinear and DequantizeLinear (per-tensor, or per-channel along `axis`). A DequantizeLinear of a
// computed integer tensor, per tensor, also records that tensor (ctx.dequantized) for the QDQ rewrite
// (../qdq.ts), which runs the ops between such pairs on the integer tensors.
import type { OnnxNode, OnnxOpTable } from '../context.js';
import { checkZeroPoints } from '../qdq.js';

/** The node's `axis` attribute (default 1) made non-negative for a tensor of rank `rank`. */
function axisOf(n: OnnxNode, rank: number): number {
  const axis = n.int('axis', 1);
  return axis < 0 ? axis + rank : axis;
}

export const QUANTIZE_ONNX_OPS: OnnxOpTable = {
  QuantizeLinear: (n) => {
    const x = n.input(0, 'x');
    const zp = n.optional(2);
    // Without a zero point the output is uint8 (ONNX's default).
    const dtype = zp < 0 ? 'u8' : n.b.tensors[zp]!.dtype;
    const quant = n.quant(1, 2, axisOf(n, n.b.tensors[x]!.shape.length));
    checkZeroPoints(n.proto, dtype, quant);
    n.set(0, n.b.emit(n.name, 'quantize_linear', 'int8', [x], {}, [{ dtype, quant }])[0]!);
  },
  DequantizeLinear: (n) => {
    const raw = n.input(0, 'x');
    const quant = n.quant(1, 2, axisOf(n, n.b.tensors[raw]!.shape.length));
    checkZeroPoints(n.proto, n.b.tensors[raw]!.dtype, quant);
    const x = n.b.withQuant(raw, quant, n.name);
    if (!n.b.data.has(x) && quant.scale.length === 1) n.ctx.dequantized.set(n.proto.output?.[0] ?? '', x);
    n.set(0, n.b.emit(n.name, 'dequantize_linear', 'int8', [x], {})[0]!);
  },
};
