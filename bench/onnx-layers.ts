// The benchmark's peer: one layer of bench/shapes.json as an ONNX model, built in code, run by ONNX Runtime's
// CPU provider. fp32 is Conv / Gemm; int8 is QDQ (uint8 activations, int8 per-channel weights for conv,
// per-tensor for the fully-connected MatMul) with uint8 graph input and output, so that ONNX Runtime fuses
// DequantizeLinear → op → QuantizeLinear into a single QLinearConv / QLinearMatMul and runs nothing else.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as ort from 'onnxruntime-node';

import {
  attributeProto,
  encodeModel,
  onnx,
  type TensorProto,
  tensorValueInfo,
  type ValueInfoProto,
} from '../optimize/onnx/onnx-proto.js';
import { SeededRandom } from '../optimize/seeded-random.js';
import { type BenchShape, outputSize } from './kernel-shapes.js';

const FLOAT = 1;
const UINT8 = 2;
const INT8 = 3;
const INT32 = 6;

/** A random source with a fixed seed (SeededRandom's mulberry32), so every run benchmarks the same numbers. */
export function seededRandom(seed: number): () => number {
  const random = new SeededRandom(seed);
  return () => random.next();
}

function tensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): TensorProto {
  return {
    name,
    dims,
    dataType,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(),
  };
}

interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, number | number[]>;
}

function model(
  nodes: Node[],
  input: ValueInfoProto,
  output: ValueInfoProto,
  initializers: TensorProto[],
): Uint8Array {
  return encodeModel(
    {
      name: 'bench-layer',
      node: nodes.map((n, i) => ({
        opType: n.op,
        name: `${n.op}_${i}`,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([name, value]) => attributeProto(name, value)),
      })),
      input: [input],
      output: [output],
      initializer: initializers,
    },
    13,
  );
}

/** ONNX dims of the layer's input and output (NCHW for conv). */
export function onnxDims(shape: BenchShape): { input: number[]; output: number[] } {
  if (shape.kind === 'fullyConnected')
    return { input: [1, shape.inChannels], output: [1, shape.outChannels] };
  const o = outputSize(shape);
  return {
    input: [1, shape.inputChannels, shape.inputSize, shape.inputSize],
    output: [1, shape.outputChannels, o, o],
  };
}

function convAttrs(shape: BenchShape): Record<string, number | number[]> {
  if (shape.kind !== 'conv2d') return {};
  const p = shape.padding;
  return {
    kernel_shape: [shape.kernel, shape.kernel],
    pads: [p, p, p, p],
    strides: [shape.stride, shape.stride],
    group: shape.groups,
  };
}

function weightDims(shape: BenchShape): number[] {
  return shape.kind === 'fullyConnected'
    ? [shape.outChannels, shape.inChannels]
    : [shape.outputChannels, shape.inputChannels / shape.groups, shape.kernel, shape.kernel];
}

const count = (dims: number[]): number => dims.reduce((a, b) => a * b, 1);

/** fp32 Conv (with bias) or Gemm (transB, with bias). */
export function fp32LayerModel(shape: BenchShape, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const dims = onnxDims(shape);
  const wDims = weightDims(shape);
  const outChannels = wDims[0]!;
  const w = Float32Array.from({ length: count(wDims) }, () => random() - 0.5);
  const b = Float32Array.from({ length: outChannels }, () => random() - 0.5);
  const node: Node =
    shape.kind === 'fullyConnected'
      ? { op: 'Gemm', inputs: ['x', 'w', 'b'], outputs: ['y'], attrs: { transB: 1 } }
      : { op: 'Conv', inputs: ['x', 'w', 'b'], outputs: ['y'], attrs: convAttrs(shape) };
  return model([node], tensorValueInfo('x', dims.input, FLOAT), tensorValueInfo('y', dims.output, FLOAT), [
    tensor('w', FLOAT, wDims, w),
    tensor('b', FLOAT, [outChannels], b),
  ]);
}

/** uint8 x → DequantizeLinear → Conv (DQ int8 per-channel weights, DQ int32 bias) or MatMul (DQ int8
 * weights [in][out]) → QuantizeLinear → uint8 y. */
export function int8QdqLayerModel(shape: BenchShape, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const dims = onnxDims(shape);
  const inputScale = 0.02;
  const outputScale = 0.05;
  const scalar = (name: string, dataType: number, value: number): TensorProto =>
    dataType === FLOAT
      ? tensor(name, FLOAT, [], Float32Array.of(value))
      : tensor(name, dataType, [], dataType === UINT8 ? Uint8Array.of(value) : Int8Array.of(value));
  const initializers: TensorProto[] = [
    scalar('x_scale', FLOAT, inputScale),
    scalar('x_zero', UINT8, 128),
    scalar('y_scale', FLOAT, outputScale),
    scalar('y_zero', UINT8, 128),
  ];
  const nodes: Node[] = [{ op: 'DequantizeLinear', inputs: ['x', 'x_scale', 'x_zero'], outputs: ['xf'] }];
  const randomInt8 = (n: number): Int8Array =>
    Int8Array.from({ length: n }, () => Math.floor(random() * 255) - 127);
  if (shape.kind === 'fullyConnected') {
    const wDims = [shape.inChannels, shape.outChannels];
    initializers.push(
      tensor('wq', INT8, wDims, randomInt8(count(wDims))),
      scalar('w_scale', FLOAT, 0.01),
      scalar('w_zero', INT8, 0),
    );
    nodes.push(
      { op: 'DequantizeLinear', inputs: ['wq', 'w_scale', 'w_zero'], outputs: ['wf'] },
      { op: 'MatMul', inputs: ['xf', 'wf'], outputs: ['yf'] },
    );
  } else {
    const wDims = weightDims(shape);
    const oc = shape.outputChannels;
    const wScales = Float32Array.from({ length: oc }, () => 0.005 + 0.01 * random());
    initializers.push(
      tensor('wq', INT8, wDims, randomInt8(count(wDims))),
      tensor('w_scale', FLOAT, [oc], wScales),
      tensor('w_zero', INT8, [oc], new Int8Array(oc)),
      tensor(
        'bq',
        INT32,
        [oc],
        Int32Array.from({ length: oc }, () => Math.floor(random() * 2000) - 1000),
      ),
      tensor(
        'b_scale',
        FLOAT,
        [oc],
        Float32Array.from(wScales, (s) => s * inputScale),
      ),
      tensor('b_zero', INT32, [oc], new Int32Array(oc)),
    );
    nodes.push(
      { op: 'DequantizeLinear', inputs: ['wq', 'w_scale', 'w_zero'], outputs: ['wf'], attrs: { axis: 0 } },
      { op: 'DequantizeLinear', inputs: ['bq', 'b_scale', 'b_zero'], outputs: ['bf'], attrs: { axis: 0 } },
      { op: 'Conv', inputs: ['xf', 'wf', 'bf'], outputs: ['yf'], attrs: convAttrs(shape) },
    );
  }
  nodes.push({ op: 'QuantizeLinear', inputs: ['yf', 'y_scale', 'y_zero'], outputs: ['y'] });
  return model(
    nodes,
    tensorValueInfo('x', dims.input, UINT8),
    tensorValueInfo('y', dims.output, UINT8),
    initializers,
  );
}

export interface OrtLayer {
  session: ort.InferenceSession;
  feeds: Record<string, ort.Tensor>;
  /** Operator types of the graph ONNX Runtime actually runs (after its optimizations). */
  optimizedOps: string[];
}

/** How the benchmark runs ONNX Runtime: CPU provider, all graph optimizations, `threads` intra-op threads,
 * one inter-op thread. Intra-op workers do not spin after a run: on a 2-core machine a spinning ORT worker
 * would steal the core our next (interleaved) call needs; our own pool also sleeps after a short spin. */
export function ortSessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

/** An ONNX Runtime session opened the way the benchmarks run it (graph optimizations all, `threads`
 * intra-op threads, one inter-op thread), with the ops of its optimized graph: which kernels run. */
export async function openOptimizedSession(
  modelBytes: Uint8Array,
  threads: number,
): Promise<{ session: ort.InferenceSession; ops: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-ort-'));
  try {
    const optimizedModelFilePath = join(dir, 'optimized.onnx');
    const session = await ort.InferenceSession.create(modelBytes, {
      ...ortSessionOptions(threads),
      optimizedModelFilePath,
    });
    const optimized = onnx.ModelProto.decode(readFileSync(optimizedModelFilePath));
    return { session, ops: (optimized.graph?.node ?? []).map((n) => n.opType ?? '?') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A one-layer session as the kernel benchmark runs it, with its feeds for `input`. */
export async function openOrtLayer(
  modelBytes: Uint8Array,
  input: Float32Array | Uint8Array,
  dims: number[],
  threads: number,
): Promise<OrtLayer> {
  const { session, ops } = await openOptimizedSession(modelBytes, threads);
  const feeds = { x: new ort.Tensor(input instanceof Float32Array ? 'float32' : 'uint8', input, dims) };
  return { session, feeds, optimizedOps: ops };
}

/** The integer kernel ONNX Runtime fused the QDQ layer into, or null when it did not (it would then run
 * the layer in float and the int8 comparison would be meaningless). */
export function quantizedKernel(ops: string[]): string | null {
  return ops.find((op) => op === 'QLinearConv' || op === 'QLinearMatMul' || op === 'QGemm') ?? null;
}
