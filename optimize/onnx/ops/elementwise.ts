// Element-wise ops: activations (Relu, Clip, LeakyRelu, Sigmoid) and broadcasting arithmetic (Add, Mul).
import type { ManifestNode } from '../../../agent/package/manifest.js';
import type { OnnxNode, OnnxOpTable } from '../context.js';

function clip(n: OnnxNode): void {
  const x = n.input(0, 'input');
  let min = n.attrs.has('min') ? n.float('min', 0) : undefined;
  let max = n.attrs.has('max') ? n.float('max', 0) : undefined;
  if (n.opset >= 11) {
    // From opset 11 the bounds are (optional) inputs, which must be constants.
    if (n.optional(1) >= 0) min = n.constant(1, 'min')[0];
    if (n.optional(2) >= 0) max = n.constant(2, 'max')[0];
  }
  const attrs: ManifestNode['attrs'] = {};
  if (min !== undefined) attrs.min = min;
  if (max !== undefined) attrs.max = max;
  n.set(0, n.emit('clip', [x], attrs));
}

/** A binary op of the IR with ONNX's (multidirectional) broadcasting. */
const binary =
  (op: string) =>
  (n: OnnxNode): void =>
    n.set(0, n.emit(op, [n.input(0, 'A'), n.input(1, 'B')]));

export const ELEMENTWISE_ONNX_OPS: OnnxOpTable = {
  Relu: (n) => n.set(0, n.b.emit(n.name, 'clip', 'f32', [n.input(0, 'X')], { min: 0 })[0]!),
  Clip: clip,
  LeakyRelu: (n) =>
    n.set(0, n.b.emit(n.name, 'leaky_relu', 'f32', [n.input(0, 'X')], { alpha: n.float('alpha', 0.01) })[0]!),
  Sigmoid: (n) => n.set(0, n.b.emit(n.name, 'sigmoid', 'f32', [n.input(0, 'X')], {})[0]!),
  Add: binary('add'),
  Mul: binary('mul'),
};
