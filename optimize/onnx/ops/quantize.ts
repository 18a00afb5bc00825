// QuantizeLinear and DequantizeLinear (per-tensor, or per-channel along `axis`).
import type { OnnxNode, OnnxOpTable } from '../context.js';

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
    n.set(0, n.b.emit(n.name, 'quantize_linear', 'int8', [x], {}, [{ dtype, quant }])[0]!);
  },
  DequantizeLinear: (n) => {
    const raw = n.input(0, 'x');
    const x = n.b.withQuant(raw, n.quant(1, 2, axisOf(n, n.b.tensors[raw]!.shape.length)), n.name);
    n.set(0, n.b.emit(n.name, 'dequantize_linear', 'int8', [x], {})[0]!);
  },
};
