// Element by element: add and mul with numpy broadcasting (integers wrap like the ONNX reference), clip,
// leaky_relu and sigmoid.
import type { ManifestNode } from '../../package/manifest.js';
import { expect, input, numberAttr, pick } from '../attributes.js';
import { type Executor, f32AndInt8, type OpDefinition, type PrepareContext } from '../executor.js';
import { binaryBroadcast, sigmoid, unary } from '../reference-ops/elementwise.js';
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

function binaryOp(name: string, f: (a: number, b: number) => number): OpDefinition {
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
    infer(node, inputs) {
      const a = input(node, inputs, 0, 'a');
      const b = input(node, inputs, 1, 'b');
      expect(a.dtype === b.dtype, node, `operands must share a dtype, got ${a.dtype} and ${b.dtype}`);
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
    executors: f32AndInt8(run),
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

const clip = unaryOp(
  'clip',
  (node) => {
    const min = numberAttr(node, 'min', -Infinity);
    const max = numberAttr(node, 'max', Infinity);
    return (v) => (v < min ? min : v > max ? max : v);
  },
  false,
);

export const ELEMENTWISE_OPS = {
  add: binaryOp('add', (a, b) => a + b),
  mul: binaryOp('mul', (a, b) => a * b),
  clip,
  leaky_relu: unaryOp('leaky_relu', (node) => {
    const alpha = numberAttr(node, 'alpha', 0.01);
    return (v) => (v < 0 ? Math.fround(v * alpha) : v);
  }),
  sigmoid: unaryOp('sigmoid', () => sigmoid),
} satisfies Record<string, OpDefinition>;
