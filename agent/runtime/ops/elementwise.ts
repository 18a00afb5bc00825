// Element by element: add and mul with numpy broadcasting (integers wrap like the ONNX reference), sub,
// div, pow and prelu (fp32, broadcasting too), the quantized add (qadd), clip, leaky_relu, sigmoid, sqrt,
// exp, tanh, erf, hard_sigmoid and hard_swish.
import type { ManifestNode } from '../../package/manifest.js';
import { expect, input, intAttr, isInt8, needQuant, numberAttr, pick } from '../attributes.js';
import { type Executor, f32AndInt8, type OpDefinition, perImage, type PrepareContext } from '../executor.js';
import { intRange } from '../number/saturation.js';
import {
  binaryBroadcast,
  erf,
  quantizedAdd,
  type QuantizedAddParams,
  quantizedAddParams,
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

function binaryOp(name: string, f: (a: number, b: number) => number, floatOnly = false): OpDefinition {
  const run = (context: PrepareContext): Executor => {
    const [a, b] = context.inputs as [TensorSpec, TensorSpec];
    const y = context.outputs[0]!;
    const w = wrap(y.dtype);
    // Integer products and sums wrap like the ONNX (numpy) reference; fp32 rounds once per element.
    const combine =
      y.dtype === 'f32'
        ? (p: number, q: number) => Math.fround(f(p, q))
        : (p: number, q: number) => w(name === 'mul' ? Math.imul(p, q) : f(p, q));
    return {
      kernel: `reference:${name}_${context.format}`,
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

const clip = unaryOp(
  'clip',
  (node) => {
    const min = numberAttr(node, 'min', -Infinity);
    const max = numberAttr(node, 'max', Infinity);
    return (v) => (v < min ? min : v > max ? max : v);
  },
  false,
);

/** The parameters of a qadd node: its operands' and output's per-tensor quantization, and its fused clamp
 * (integer `min` / `max`, default the dtype's range). */
export function qaddParams(
  node: ManifestNode,
  a: TensorSpec,
  b: TensorSpec,
  y: TensorSpec,
): QuantizedAddParams {
  const [lo, hi] = intRange(y.dtype);
  const per = (spec: TensorSpec) => ({ scale: spec.quant!.scale[0]!, zeroPoint: spec.quant!.zeroPoint[0]! });
  return quantizedAddParams(
    per(a),
    per(b),
    per(y),
    intAttr(node, 'min', lo, lo, hi),
    intAttr(node, 'max', hi, lo, hi),
  );
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
      isInt8(a) && a.dtype === b.dtype,
      node,
      `qadd takes two int8 or two uint8 tensors, got ${a.dtype} and ${b.dtype}`,
    );
    expect(
      a.shape.join(',') === b.shape.join(','),
      node,
      `qadd operands must share a shape, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`,
    );
    const y = declared[0];
    expect(y !== undefined && y.dtype === a.dtype, node, `qadd gives the operands' dtype (${a.dtype})`);
    for (const [spec, what] of [
      [a, 'a'],
      [b, 'b'],
      [y, 'output'],
    ] as const) {
      const q = needQuant(node, spec, what);
      expect(q.scale.length === 1 && q.zeroPoint.length === 1, node, `qadd takes a per-tensor ${what}`);
    }
    const [lo, hi] = intRange(a.dtype);
    expect(
      intAttr(node, 'min', lo, lo, hi) <= intAttr(node, 'max', hi, lo, hi),
      node,
      'qadd needs min <= max',
    );
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

export const ELEMENTWISE_OPS = {
  add: binaryOp('add', (a, b) => a + b),
  mul: binaryOp('mul', (a, b) => a * b),
  qadd,
  clip,
  leaky_relu: unaryOp('leaky_relu', (node) => {
    const alpha = numberAttr(node, 'alpha', 0.01);
    return (v) => (v < 0 ? Math.fround(v * alpha) : v);
  }),
  sigmoid: unaryOp('sigmoid', () => sigmoid),
  sub: binaryOp('sub', (a, b) => a - b, true),
  div: binaryOp('div', (a, b) => a / b, true),
  pow: binaryOp('pow', (a, b) => a ** b, true),
  /** x < 0 ? x * slope : x, the slope broadcast to x (per channel as exported). */
  prelu: binaryOp('prelu', (a, b) => (a < 0 ? a * b : a), true),
  sqrt: unaryOp('sqrt', () => Math.sqrt),
  exp: unaryOp('exp', () => Math.exp),
  tanh: unaryOp('tanh', () => Math.tanh),
  erf: unaryOp('erf', () => erf),
  hard_sigmoid: unaryOp('hard_sigmoid', (node) => hardSigmoidOf(node)),
  /** x * hard_sigmoid(x), alpha 1/6 and beta 0.5 by default (ONNX HardSwish, PyTorch's hardswish). */
  hard_swish: unaryOp('hard_swish', (node) => {
    const gate = hardSigmoidOf(node);
    return (v) => v * gate(v);
  }),
} satisfies Record<string, OpDefinition>;
