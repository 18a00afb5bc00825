// Element by element: add and mul with numpy broadcasting (integers wrap like the ONNX reference), sub,
// div, pow and prelu (fp32, broadcasting too), the quantized add and mul (qadd, qmul), clip, leaky_relu,
// sigmoid, sqrt, exp, tanh, erf, hard_sigmoid, hard_swish, silu (x * sigmoid(x)) and gelu (x * Phi(x), ConvNeXt's;
// attribute approximate: 'none' or 'tanh', as ONNX Gelu and PyTorch). sigmoid, hard_sigmoid, hard_swish, silu
// and gelu also take int8 / uint8 (the MobileNetV3 / EfficientNet / ConvNeXt activations of an int8 package): a 256-entry lookup table from
// the input's quantization to the output's declared one, built at load (reference-ops lookupTable).
import type { ManifestNode } from '../../package/manifest.js';
import { expect, input, intAttr, isInt8, needQuant, numberAttr, pick, stringAttr } from '../attributes.js';
import { type Executor, f32AndInt8, type OpDefinition, perImage, type PrepareContext } from '../executor.js';
import type { AffineQuantization } from '../number/requantization.js';
import { intRange } from '../number/saturation.js';
import {
  binaryBroadcast,
  erf,
  lookup,
  lookupTable,
  quantizedAdd,
  type QuantizedAddParams,
  quantizedAddParams,
  quantizedMul,
  type QuantizedMulParams,
  quantizedMulParams,
  sigmoid,
  unary,
} from '../reference-ops/elementwise.js';
import { broadcastShapes } from '../reference-ops/matmul.js';
import { elements, type TensorSpec } from '../tensor.js';

function wrap(dtype: string): (v: number) => number {
  switch (dtype) {
    case 'i8':
      return (v) => (v << 24) >> 24;
    case 'u8':
      return (v) => v & 0xff;
    case 'i32':
      return (v) => v | 0;
    default:
      return (v) => v;
  }
}

/** The reference executor of a binary node: `combine` over its two operands, numpy-broadcast. */
function broadcastExecutor(
  context: PrepareContext,
  kernel: string,
  combine: (a: number, b: number) => number,
): Executor {
  const [a, b] = context.inputs as [TensorSpec, TensorSpec];
  const y = context.outputs[0]!;
  return {
    kernel,
    run: (inputs, outputs) =>
      binaryBroadcast(
        a.shape,
        pick(context, inputs, 0)!,
        b.shape,
        pick(context, inputs, 1)!,
        y.shape,
        outputs[0]!,
        combine,
      ),
  };
}

function binaryOp(name: string, f: (a: number, b: number) => number, floatOnly = false): OpDefinition {
  const run = (context: PrepareContext): Executor => {
    const y = context.outputs[0]!;
    const w = wrap(y.dtype);
    // Integer products and sums wrap like the ONNX (numpy) reference; fp32 rounds once per element.
    const combine =
      y.dtype === 'f32'
        ? (p: number, q: number) => Math.fround(f(p, q))
        : (p: number, q: number) => w(name === 'mul' ? Math.imul(p, q) : f(p, q));
    return broadcastExecutor(context, `reference:${name}_${context.format}`, combine);
  };
  return {
    perImage,
    infer(node, inputs) {
      const a = input(node, inputs, 0, 'a');
      const b = input(node, inputs, 1, 'b');
      expect(a.dtype === b.dtype, node, `operands must share a dtype, got ${a.dtype} and ${b.dtype}`);
      expect(!floatOnly || a.dtype === 'f32', node, `${name} takes fp32 operands, got ${a.dtype}`);
      expect(
        a.quant === undefined && b.quant === undefined,
        node,
        `${name} of quantized tensors needs dequantize first`,
      );
      const shape = broadcastShapes(a.shape, b.shape);
      expect(typeof shape !== 'string', node, typeof shape === 'string' ? shape : '');
      return [{ dtype: a.dtype, shape }];
    },
    macs: (_node, _inputs, outputs) => elements(outputs[0]!.shape),
    executors: floatOnly ? { f32: run } : f32AndInt8(run),
  };
}

function unaryOp(
  name: string,
  make: (node: ManifestNode, spec: TensorSpec) => (v: number) => number,
  floatOnly = true,
): OpDefinition {
  const run = (context: PrepareContext): Executor => {
    const f = make(context.node, context.inputs[0]!);
    return {
      kernel: `reference:${name}_${context.format}`,
      run: (inputs, outputs) => unary(inputs[0]!, outputs[0]!, f),
    };
  };
  return {
    perImage,
    infer(node, inputs) {
      const x = input(node, inputs, 0, 'x');
      expect(!floatOnly || x.dtype === 'f32', node, `${name} takes fp32 input, got ${x.dtype}`);
      make(node, x);
      return [{ ...x, shape: [...x.shape] }];
    },
    macs: (_node, _inputs, outputs) => elements(outputs[0]!.shape),
    executors: f32AndInt8(run),
  };
}

/** The per-tensor scale and zero point of quantized operand `what` of an int8 node. */
function perTensor(node: ManifestNode, spec: TensorSpec, what: string): AffineQuantization {
  const q = needQuant(node, spec, what);
  expect(q.scale.length === 1 && q.zeroPoint.length === 1, node, `${node.op} takes a per-tensor ${what}`);
  return { scale: q.scale[0]!, zeroPoint: q.zeroPoint[0]! };
}

/** The output of an int8 element-wise node: the declared tensor, of dtype `dtype`, per-tensor quantized. */
function declaredInt8Output(
  node: ManifestNode,
  declared: readonly (TensorSpec | undefined)[],
  dtype: TensorSpec['dtype'],
): TensorSpec {
  const y = declared[0];
  expect(y !== undefined && y.dtype === dtype, node, `${node.op} gives its input's dtype (${dtype})`);
  perTensor(node, y, 'output');
  return y;
}

/** A unary activation: fp32 element by element; int8 / uint8 through the 256-entry lookupTable of the same
 * function (in double precision) from the input's quantization to the output's declared one. */
function activationOp(name: string, make: (node: ManifestNode) => (v: number) => number): OpDefinition {
  return {
    perImage,
    infer(node, inputs, declared) {
      const x = input(node, inputs, 0, 'x');
      make(node);
      if (x.dtype === 'f32') return [{ ...x, shape: [...x.shape] }];
      expect(isInt8(x), node, `${name} takes fp32, int8 or uint8 input, got ${x.dtype}`);
      perTensor(node, x, 'x');
      return [
        { dtype: x.dtype, shape: [...x.shape], quant: declaredInt8Output(node, declared, x.dtype).quant! },
      ];
    },
    macs: (_node, _inputs, outputs) => elements(outputs[0]!.shape),
    executors: {
      f32: (context) => {
        const f = make(context.node);
        return {
          kernel: `reference:${name}_f32`,
          run: (inputs, outputs) => unary(inputs[0]!, outputs[0]!, f),
        };
      },
      int8: (context) => {
        const table = activationTable(context);
        return {
          kernel: `reference:${name}_int8`,
          run: (inputs, outputs) => lookup(inputs[0]!, outputs[0]!, table),
        };
      },
    },
  };
}

/** The lookup table of an int8 sigmoid / hard_sigmoid / hard_swish / silu / gelu node (the reference and the native
 * kernel look up the same one). */
export function activationTable(context: PrepareContext): Int8Array | Uint8Array {
  const { node } = context;
  const x = context.inputs[0]!;
  const y = context.outputs[0]!;
  const f = ACTIVATIONS[node.op as keyof typeof ACTIVATIONS](node);
  return lookupTable(f, perTensor(node, x, 'x'), perTensor(node, y, 'output'), x.dtype as 'i8' | 'u8');
}

/** A hard_sigmoid / hard_swish node's alpha and beta: ONNX HardSigmoid's defaults are alpha 0.2, beta 0.5;
 * hard_swish's (ONNX HardSwish, PyTorch's hardswish) alpha 1/6. */
export function hardSigmoidParams(node: ManifestNode): { alpha: number; beta: number } {
  return {
    alpha: numberAttr(node, 'alpha', node.op === 'hard_swish' ? 1 / 6 : 0.2),
    beta: numberAttr(node, 'beta', 0.5),
  };
}

/** max(0, min(1, alpha * x + beta)): ONNX HardSigmoid. */
function hardSigmoidOf(node: ManifestNode): (v: number) => number {
  const { alpha: a, beta: b } = hardSigmoidParams(node);
  return (v) => Math.min(1, Math.max(0, a * v + b));
}

/** GELU, x * Phi(x): Phi the normal CDF, (1 + erf(x / sqrt 2)) / 2, or with approximate 'tanh' its
 * (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2. */
export function geluOf(node: ManifestNode): (v: number) => number {
  if (stringAttr(node, 'approximate', ['none', 'tanh'], 'none') === 'tanh')
    return (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
  return (v) => 0.5 * v * (1 + erf(v / Math.SQRT2));
}

/** The real functions of the activations that take int8 through a lookup table. */
const ACTIVATIONS = {
  sigmoid: () => sigmoid,
  hard_sigmoid: hardSigmoidOf,
  /** x * hard_sigmoid(x), alpha 1/6 and beta 0.5 by default (ONNX HardSwish, PyTorch's hardswish). */
  hard_swish: (node: ManifestNode) => {
    const gate = hardSigmoidOf(node);
    return (v: number) => v * gate(v);
  },
  /** x * sigmoid(x) (SiLU, EfficientNet's swish): what the quantizer writes for a mul of x by its sigmoid. */
  silu: () => (v: number) => v * sigmoid(v),
  gelu: geluOf,
} satisfies Record<string, (node: ManifestNode) => (v: number) => number>;

const clip = unaryOp(
  'clip',
  (node) => {
    const min = numberAttr(node, 'min', -Infinity);
    const max = numberAttr(node, 'max', Infinity);
    return (v) => (v < min ? min : v > max ? max : v);
  },
  false,
);

/** The parameters of a quantized binary node (qadd, qmul) made by `make` from its operands' and output's
 * per-tensor quantization and its fused clamp (integer `min` / `max`, default the dtype's range). */
function quantizedBinaryParams<P>(
  make: (a: AffineQuantization, b: AffineQuantization, y: AffineQuantization, min: number, max: number) => P,
): (node: ManifestNode, a: TensorSpec, b: TensorSpec, y: TensorSpec) => P {
  return (node, a, b, y) => {
    const [lo, hi] = intRange(y.dtype);
    return make(
      perTensor(node, a, 'a'),
      perTensor(node, b, 'b'),
      perTensor(node, y, 'output'),
      intAttr(node, 'min', lo, lo, hi),
      intAttr(node, 'max', hi, lo, hi),
    );
  };
}

/** The parameters of a qadd node (TFLite's quantized add). */
export const qaddParams = quantizedBinaryParams<QuantizedAddParams>(quantizedAddParams);

/** The parameters of a qmul node (TFLite's quantized mul). */
export const qmulParams = quantizedBinaryParams<QuantizedMulParams>(quantizedMulParams);

/** The checks qadd and qmul share: two int8 or two uint8 operands, each per-tensor quantized, the declared
 * output of their dtype, and a clamp with min <= max. */
function checkQuantizedBinary(
  node: ManifestNode,
  a: TensorSpec,
  b: TensorSpec,
  declared: readonly (TensorSpec | undefined)[],
): TensorSpec {
  expect(
    isInt8(a) && a.dtype === b.dtype,
    node,
    `${node.op} takes two int8 or two uint8 tensors, got ${a.dtype} and ${b.dtype}`,
  );
  perTensor(node, a, 'a');
  perTensor(node, b, 'b');
  const y = declaredInt8Output(node, declared, a.dtype);
  const [lo, hi] = intRange(a.dtype);
  expect(
    intAttr(node, 'min', lo, lo, hi) <= intAttr(node, 'max', hi, lo, hi),
    node,
    `${node.op} needs min <= max`,
  );
  return y;
}

/** int8 / uint8 add of two tensors of one shape, each with its own per-tensor quantization, into the
 * output's (declared): TFLite's quantized add (reference-ops/elementwise.ts quantizedAdd). The residual add
 * of an int8 model. */
const qadd: OpDefinition = {
  perImage,
  infer(node, inputs, declared) {
    const a = input(node, inputs, 0, 'a');
    const b = input(node, inputs, 1, 'b');
    expect(
      a.shape.join(',') === b.shape.join(','),
      node,
      `qadd operands must share a shape, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`,
    );
    const y = checkQuantizedBinary(node, a, b, declared);
    return [{ dtype: a.dtype, shape: [...a.shape], quant: y.quant! }];
  },
  macs: (_node, _inputs, outputs) => elements(outputs[0]!.shape),
  executors: {
    int8: (context) => {
      const [a, b] = context.inputs as [TensorSpec, TensorSpec];
      const p = qaddParams(context.node, a, b, context.outputs[0]!);
      return {
        kernel: 'reference:qadd_int8',
        run: (inputs, outputs) =>
          quantizedAdd(pick(context, inputs, 0)!, pick(context, inputs, 1)!, outputs[0]!, p),
      };
    },
  },
};

/** int8 / uint8 mul with numpy broadcasting (the SE block's N x H x W x C times N x 1 x 1 x C, and EfficientNet's
 * x * sigmoid(x)), each operand with its own per-tensor quantization, into the output's declared one: TFLite's
 * quantized mul (reference-ops/elementwise.ts quantizedMul). */
const qmul: OpDefinition = {
  perImage,
  infer(node, inputs, declared) {
    const a = input(node, inputs, 0, 'a');
    const b = input(node, inputs, 1, 'b');
    const y = checkQuantizedBinary(node, a, b, declared);
    const shape = broadcastShapes(a.shape, b.shape);
    expect(typeof shape !== 'string', node, typeof shape === 'string' ? shape : '');
    return [{ dtype: a.dtype, shape, quant: y.quant! }];
  },
  macs: (_node, _inputs, outputs) => elements(outputs[0]!.shape),
  executors: {
    int8: (context) => {
      const [a, b] = context.inputs as [TensorSpec, TensorSpec];
      const f = quantizedMul(qmulParams(context.node, a, b, context.outputs[0]!));
      return broadcastExecutor(context, 'reference:qmul_int8', f);
    },
  },
};

export const ELEMENTWISE_OPS = {
  add: binaryOp('add', (a, b) => a + b),
  mul: binaryOp('mul', (a, b) => a * b),
  qadd,
  qmul,
  clip,
  leaky_relu: unaryOp('leaky_relu', (node) => {
    const alpha = numberAttr(node, 'alpha', 0.01);
    return (v) => (v < 0 ? Math.fround(v * alpha) : v);
  }),
  sigmoid: activationOp('sigmoid', ACTIVATIONS.sigmoid),
  sub: binaryOp('sub', (a, b) => a - b, true),
  div: binaryOp('div', (a, b) => a / b, true),
  pow: binaryOp('pow', (a, b) => a ** b, true),
  /** x < 0 ? x * slope : x, the slope broadcast to x (per channel as exported). */
  prelu: binaryOp('prelu', (a, b) => (a < 0 ? a * b : a), true),
  sqrt: unaryOp('sqrt', () => Math.sqrt),
  exp: unaryOp('exp', () => Math.exp),
  tanh: unaryOp('tanh', () => Math.tanh),
  erf: unaryOp('erf', () => erf),
  hard_sigmoid: activationOp('hard_sigmoid', ACTIVATIONS.hard_sigmoid),
  hard_swish: activationOp('hard_swish', ACTIVATIONS.hard_swish),
  silu: activationOp('silu', ACTIVATIONS.silu),
  gelu: activationOp('gelu', ACTIVATIONS.gelu),
} satisfies Record<string, OpDefinition>;
