// Element-wise ops: activations (Relu, Clip, LeakyRelu, Sigmoid, HardSigmoid, HardSwish, PRelu, Sqrt, Exp,
// Tanh, Erf) and broadcasting arithmetic (Add, Mul, Sub, Div, Pow).
import type { OnnxNode, OnnxOpTable } from '../context.js';

/** A Clip's constant bounds (attributes before opset 11, optional constant inputs from 11); Relu's is 0. */
export function clipBounds(n: OnnxNode): { min?: number; max?: number } {
  if (n.opType === 'Relu') return { min: 0 };
  let min = n.attrs.has('min') ? n.float('min', 0) : undefined;
  let max = n.attrs.has('max') ? n.float('max', 0) : undefined;
  if (n.opset >= 11) {
    // From opset 11 the bounds are (optional) inputs, which must be constants.
    // Bounds computed at run time are refused by name; constant ones fold into the clip's attributes.
    if (n.optional(1) >= 0) min = n.constant(1, 'min (a bound computed at run time is not supported)')[0];
    if (n.optional(2) >= 0) max = n.constant(2, 'max (a bound computed at run time is not supported)')[0];
  }
  return { ...(min === undefined ? {} : { min }), ...(max === undefined ? {} : { max }) };
}

function clip(n: OnnxNode): void {
  n.set(0, n.emit('clip', [n.input(0, 'input')], clipBounds(n)));
}

/** A binary op of the IR with ONNX's (multidirectional) broadcasting. */
const binary =
  (op: string) =>
  (n: OnnxNode): void =>
    n.set(0, n.emit(op, [n.input(0, 'A'), n.input(1, 'B')]));

/** A unary op of the IR, fp32. */
const unary =
  (op: string) =>
  (n: OnnxNode): void =>
    n.set(0, n.emit(op, [n.input(0, 'X')]));

export const ELEMENTWISE_ONNX_OPS: OnnxOpTable = {
  Relu: (n) => n.set(0, n.b.emit(n.name, 'clip', 'f32', [n.input(0, 'X')], { min: 0 })[0]!),
  Clip: clip,
  LeakyRelu: (n) =>
    n.set(0, n.b.emit(n.name, 'leaky_relu', 'f32', [n.input(0, 'X')], { alpha: n.float('alpha', 0.01) })[0]!),
  Sigmoid: (n) => n.set(0, n.b.emit(n.name, 'sigmoid', 'f32', [n.input(0, 'X')], {})[0]!),
  Add: binary('add'),
  Mul: binary('mul'),
  Sub: binary('sub'),
  Div: binary('div'),
  Pow: binary('pow'),
  // The slope broadcasts to X (per channel as exporters write it: [C, 1, 1]).
  PRelu: (n) => n.set(0, n.emit('prelu', [n.input(0, 'X'), n.input(1, 'slope')])),
  Sqrt: unary('sqrt'),
  Exp: unary('exp'),
  Tanh: unary('tanh'),
  Erf: unary('erf'),
  HardSigmoid: (n) =>
    n.set(
      0,
      n.emit('hard_sigmoid', [n.input(0, 'X')], { alpha: n.float('alpha', 0.2), beta: n.float('beta', 0.5) }),
    ),
  HardSwish: unary('hard_swish'),
};
