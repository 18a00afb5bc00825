// Quantized ONNX models onto the int8 kernels (optimize/onnx/qdq.ts): QDQ graphs written as ONNX Runtime's
// quantizer writes them (a QuantizeLinear / DequantizeLinear pair on every activation, int8 weights per tensor
// or per channel, int32 biases, uint8 or int8 activations), QOperator graphs, and Whittle's own QDQ export of
// its int8 zoo packages. Each import must run on native kernels only (no TypeScript executor, so no reference
// Q/DQ) and give ONNX Runtime's outputs on the same file: equal, or one quantization step apart where ONNX
// Runtime's float32 rescale and the int8 kernels' Q31 multiplier round a near-tie differently.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as ort from 'onnxruntime-node';

import { inputInLayout } from '../../../agent/runtime/compile/index.js';
import { type LayerInfo, Model } from '../../../agent/runtime/model.js';
import { benchPackages, read } from '../../../bench/models.js';
import { exportOnnx } from '../../../optimize/onnx/export.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import type { TensorProto } from '../../../optimize/onnx/onnx-proto.js';
import { QdqImportError } from '../../../optimize/onnx/qdq.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { buildModel, floatTensor, type NodeSpec } from './build-model.js';

type Act = 'u8' | 'i8';
const ELEM = { f32: 1, u8: 2, i8: 3, i32: 6 } as const;

function typed(
  name: string,
  dtype: 'u8' | 'i8' | 'i32',
  dims: number[],
  values: readonly number[],
): TensorProto {
  const data =
    dtype === 'u8'
      ? Uint8Array.from(values)
      : dtype === 'i8'
        ? Int8Array.from(values)
        : Int32Array.from(values);
  return { name, dims, dataType: ELEM[dtype], rawData: new Uint8Array(data.buffer) };
}

const scaleOf = (lo: number, hi: number): number => Math.fround((hi - lo) / 255);

/** Writes a QDQ graph the way ONNX Runtime's quantizer does: q(...) puts a QuantizeLinear and a
 * DequantizeLinear on an activation, weights(...) and bias(...) DequantizeLinear initializers. */
class QdqGraph {
  readonly nodes: NodeSpec[] = [];
  readonly inits: TensorProto[] = [];
  readonly random: SeededRandom;
  #count = 0;
  constructor(
    readonly act: Act,
    seed: number,
  ) {
    this.random = new SeededRandom(seed);
  }

  fresh(hint: string): string {
    return `${hint}_${++this.#count}`;
  }

  node(op: string, inputs: string[], attrs: NodeSpec['attrs'] = {}, domain?: string): string {
    const out = this.fresh(op.toLowerCase());
    this.nodes.push({ op, name: out, inputs, outputs: [out], attrs, ...(domain ? { domain } : {}) });
    return out;
  }

  constant(value: number): string {
    const name = this.fresh('c');
    this.inits.push(floatTensor(name, [], [value]));
    return name;
  }

  /** Scale and zero point initializers of an activation whose real values lie in [lo, hi]. */
  params(lo: number, hi: number): { scale: number; zero: number; names: [string, string] } {
    const scale = scaleOf(lo, hi);
    const offset = this.act === 'u8' ? 0 : -128;
    const zero = Math.min(255 + offset, Math.max(offset, Math.round(-lo / scale) + offset));
    const s = this.fresh('scale');
    const z = this.fresh('zero');
    this.inits.push(floatTensor(s, [], [scale]), typed(z, this.act, [], [zero]));
    return { scale, zero, names: [s, z] };
  }

  /** QuantizeLinear then DequantizeLinear of x at the quantization of [lo, hi]. */
  q(x: string, lo: number, hi: number): string {
    return this.dq(this.quantize(x, lo, hi));
  }

  quantize(x: string, lo: number, hi: number): { value: string; names: [string, string]; scale: number } {
    const p = this.params(lo, hi);
    return { value: this.node('QuantizeLinear', [x, ...p.names]), names: p.names, scale: p.scale };
  }

  dq(q: { value: string; names: [string, string] }): string {
    return this.node('DequantizeLinear', [q.value, ...q.names]);
  }

  /** int8 weights of `dims`, symmetric, per tensor or per channel along `axis` (or uint8 ones with zero
   * point 120, asymmetric); returns the DequantizeLinear output and the scales. */
  weights(
    dims: number[],
    perChannel: boolean,
    axis = 0,
    dtype: 'i8' | 'u8' = 'i8',
  ): { value: string; scales: number[] } {
    const count = dims.reduce((a, b) => a * b, 1);
    const [lo, hi, zero] = dtype === 'i8' ? [-127, 127, 0] : [0, 255, 120];
    const values = Array.from({ length: count }, () => this.random.int(lo, hi));
    const channels = perChannel ? dims[axis]! : 1;
    const scales = Array.from({ length: channels }, () => Math.fround(0.002 + 0.004 * this.random.next()));
    const w = this.fresh('w');
    const s = this.fresh('w_scale');
    const z = this.fresh('w_zero');
    const shape = perChannel ? [channels] : [];
    this.inits.push(
      typed(w, dtype, dims, values),
      floatTensor(s, shape, scales),
      typed(
        z,
        dtype,
        shape,
        scales.map(() => zero),
      ),
    );
    return {
      value: this.node('DequantizeLinear', [w, s, z], perChannel ? { axis } : {}),
      scales,
    };
  }

  /** An int32 bias at scale x_scale * w_scale (zero point 0), as ONNX Runtime's quantizer writes it. */
  bias(count: number, xScale: number, wScales: number[]): string {
    const scales = Array.from({ length: count }, (_, o) =>
      Math.fround(xScale * wScales[wScales.length === 1 ? 0 : o]!),
    );
    const perChannel = wScales.length > 1;
    const b = this.fresh('b');
    const s = this.fresh('b_scale');
    const z = this.fresh('b_zero');
    const shape = perChannel ? [count] : [];
    this.inits.push(
      typed(
        b,
        'i32',
        [count],
        Array.from({ length: count }, () => this.random.int(-1000, 1000)),
      ),
      floatTensor(s, shape, perChannel ? scales : [scales[0]!]),
      typed(z, 'i32', shape, perChannel ? scales.map(() => 0) : [0]),
    );
    return this.node('DequantizeLinear', [b, s, z], perChannel ? { axis: 0 } : {});
  }

  model(inputs: { name: string; dims: number[] }[], outputs: { name: string; dims: number[] }[]): Uint8Array {
    return buildModel({ nodes: this.nodes, inputs, outputs, initializers: this.inits, opset: 13 });
  }
}

/** A small CNN as ONNX Runtime's quantizer writes it: Conv+Relu, MaxPool, Conv+Clip, Add, Concat,
 * GlobalAveragePool, Flatten, Gemm, each between QuantizeLinear / DequantizeLinear pairs. */
function quantizedCnn(act: Act, perChannel: boolean, seed: number): Uint8Array {
  const g = new QdqGraph(act, seed);
  const C = 8;
  const xq = g.quantize('x', -3, 3);
  const x = g.dq(xq);
  const w1 = g.weights([C, 3, 3, 3], perChannel);
  const conv1 = g.node('Conv', [x, w1.value, g.bias(C, xq.scale, w1.scales)], {
    pads: [1, 1, 1, 1],
    kernel_shape: [3, 3],
  });
  const t1 = g.q(g.node('Relu', [conv1]), 0, 4);
  const t2 = g.q(g.node('MaxPool', [t1], { kernel_shape: [2, 2], strides: [2, 2] }), 0, 4);
  const w2 = g.weights([C, C, 1, 1], perChannel);
  const conv2 = g.node('Conv', [t2, w2.value, g.bias(C, scaleOf(0, 4), w2.scales)], { kernel_shape: [1, 1] });
  const t3 = g.q(g.node('Clip', [conv2, g.constant(0), g.constant(4)]), 0, 4);
  const t4 = g.q(g.node('Add', [t2, t3]), 0, 8);
  const t5 = g.q(g.node('Concat', [t2, t3], { axis: 1 }), 0, 4);
  const cat = g.q(g.node('Flatten', [g.q(g.node('GlobalAveragePool', [t5]), 0, 4)], { axis: 1 }), 0, 4);
  const t6 = g.q(g.node('GlobalAveragePool', [t4]), 0, 8);
  const t7q = g.quantize(g.node('Flatten', [t6], { axis: 1 }), 0, 8);
  const w3 = g.weights([10, C], perChannel);
  const gemm = g.node('Gemm', [g.dq(t7q), w3.value, g.bias(10, t7q.scale, w3.scales)], { transB: 1 });
  const y = g.q(gemm, -2, 2);
  g.nodes.push({ op: 'Identity', name: 'out_y', inputs: [y], outputs: ['y'] });
  g.nodes.push({ op: 'Identity', name: 'out_cat', inputs: [cat], outputs: ['cat'] });
  return g.model(
    [{ name: 'x', dims: [1, 3, 16, 16] }],
    [
      { name: 'y', dims: [1, 10] },
      { name: 'cat', dims: [1, 2 * C] },
    ],
  );
}

interface Output {
  name: string;
  /** Quantization step of the output (its DequantizeLinear's scale). */
  step: number;
}

/** Imports `bytes`, checks every layer runs on a native kernel, and compares with ONNX Runtime on the same
 * file over `runs` seeded inputs: returns, per output, the largest difference in quantization steps and the
 * share of equal elements. */
async function againstOrt(
  bytes: Uint8Array,
  input: { name: string; dims: number[] },
  outputs: Output[],
  runs = 8,
  /** Layers expected on the TypeScript reference (the rest must be native). */
  reference: readonly string[] = [],
): Promise<{ name: string; maxSteps: number; equal: number }[]> {
  const pkg = read(importOnnx(bytes, { source: 'quantized.onnx' }));
  const model = Model.fromPackage(pkg);
  // A 4-D output is NCHW, as in the file: the layout transpose of its fp32 values is the one layer left.
  const outputLayout = (l: LayerInfo): boolean => l.op === 'transpose' && l.format === 'f32';
  assert.deepEqual(
    model.fallbacks
      .map((f) => f.node)
      .filter((name) => !model.layers.some((l) => l.name === name && outputLayout(l))),
    reference,
    'layers on the reference executors (Model.fallbacks)',
  );
  const typescript = model.layers.filter(
    (l) => !l.kernel.startsWith('native:') && !outputLayout(l) && !reference.includes(l.name),
  );
  assert.deepEqual(
    typescript.map((l) => `${l.name} (${l.op}): ${l.kernel}`),
    [],
    'every layer on a native kernel',
  );
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  const random = new SeededRandom(11);
  const stats = outputs.map((o) => ({ name: o.name, maxSteps: 0, equal: 0, total: 0 }));
  const declared = pkg.manifest.inputs[0]!;
  for (let r = 0; r < runs; r++) {
    const data = Float32Array.from(
      { length: input.dims.reduce((a, b) => a * b, 1) },
      () => 1.2 * random.normal(),
    );
    const ours = model.run([
      inputInLayout(data, input.dims, model.specs[declared.tensor]!.shape, declared.layout),
    ]);
    const theirs = await session.run({ [input.name]: new ort.Tensor('float32', data, input.dims) });
    outputs.forEach((o, k) => {
      const a = ours.find((x) => x.name === o.name)!.data;
      const b = theirs[o.name]!.data as Float32Array;
      assert.equal(a.length, b.length, `${o.name}: element count`);
      for (let i = 0; i < a.length; i++) {
        const steps = Math.round(Math.abs(a[i]! - b[i]!) / o.step);
        stats[k]!.maxSteps = Math.max(stats[k]!.maxSteps, steps);
        stats[k]!.equal += steps === 0 ? 1 : 0;
        stats[k]!.total++;
      }
    });
  }
  return stats.map((s) => ({ name: s.name, maxSteps: s.maxSteps, equal: s.equal / s.total }));
}

for (const act of ['u8', 'i8'] as const)
  for (const perChannel of [false, true])
    test(`QDQ CNN as ONNX Runtime's quantizer writes it (${act} activations, ${perChannel ? 'per-channel' : 'per-tensor'} weights): native int8 kernels, ONNX Runtime's outputs within 2 steps`, async () => {
      const bytes = quantizedCnn(act, perChannel, perChannel ? 3 : 2);
      const pkg = read(importOnnx(bytes, { source: 'cnn.onnx' }));
      const ops = pkg.manifest.nodes.map((n) => n.op);
      for (const op of ['qconv2d', 'qadd', 'global_avgpool', 'qfully_connected', 'concat', 'max_pool'])
        assert.ok(ops.includes(op), `${op} in ${ops.join(' ')}`);
      assert.equal(
        ops.filter((op) => op === 'quantize_linear').length,
        1,
        'one quantize_linear, at the input',
      );
      assert.equal(
        ops.filter((op) => op === 'dequantize_linear').length,
        2,
        'one dequantize_linear per output',
      );
      assert.ok(!pkg.manifest.tensors.some((t) => t.dtype === 'u8'), 'uint8 activations moved to int8');
      const stats = await againstOrt(bytes, { name: 'x', dims: [1, 3, 16, 16] }, [
        { name: 'y', step: scaleOf(-2, 2) },
        { name: 'cat', step: scaleOf(0, 4) },
      ]);
      // Six layers deep: a one-step difference in one layer moves the next layer's sum by a weight's worth,
      // so the network's outputs may be two steps apart where each layer is at most one (the test below).
      for (const s of stats) {
        assert.ok(s.maxSteps <= 2, `${s.name}: ${s.maxSteps} steps from ONNX Runtime`);
        assert.ok(s.equal >= 0.4, `${s.name}: only ${(100 * s.equal).toFixed(1)} % equal`);
      }
    });

/** One op between QuantizeLinear / DequantizeLinear pairs, on input x [1, 8, 6, 6]. */
const SINGLE_OPS: Record<string, (g: QdqGraph, x: string) => { y: string; step: number; dims: number[] }> = {
  'Conv+Relu (3x3, stride 2)': (g, x) => {
    const w = g.weights([6, 8, 3, 3], true);
    const conv = g.node('Conv', [x, w.value, g.bias(6, scaleOf(-3, 3), w.scales)], {
      kernel_shape: [3, 3],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
    });
    return { y: g.q(g.node('Relu', [conv]), 0, 3), step: scaleOf(0, 3), dims: [1, 6, 3, 3] };
  },
  'depthwise Conv': (g, x) => {
    const w = g.weights([8, 1, 3, 3], true);
    const conv = g.node('Conv', [x, w.value, g.bias(8, scaleOf(-3, 3), w.scales)], {
      kernel_shape: [3, 3],
      group: 8,
      pads: [1, 1, 1, 1],
    });
    return { y: g.q(conv, -2, 2), step: scaleOf(-2, 2), dims: [1, 8, 6, 6] };
  },
  'Flatten + Gemm': (g, x) => {
    const flat = g.q(g.node('Flatten', [x], { axis: 1 }), -3, 3);
    const w = g.weights([10, 288], true);
    const gemm = g.node('Gemm', [flat, w.value, g.bias(10, scaleOf(-3, 3), w.scales)], { transB: 1 });
    return { y: g.q(gemm, -6, 6), step: scaleOf(-6, 6), dims: [1, 10] };
  },
  'MatMul (per-tensor)': (g, x) => {
    const flat = g.q(g.node('Flatten', [x], { axis: 1 }), -3, 3);
    const w = g.weights([288, 12], false);
    return { y: g.q(g.node('MatMul', [flat, w.value]), -6, 6), step: scaleOf(-6, 6), dims: [1, 12] };
  },
  'Add of two scales': (g, x) => {
    const other = g.q(g.node('Relu', [x]), 0, 3);
    return { y: g.q(g.node('Add', [x, other]), -3, 6), step: scaleOf(-3, 6), dims: [1, 8, 6, 6] };
  },
  GlobalAveragePool: (g, x) => ({
    y: g.q(g.node('GlobalAveragePool', [x]), -1, 1),
    step: scaleOf(-1, 1),
    dims: [1, 8, 1, 1],
  }),
  'MaxPool, Concat': (g, x) => {
    const pooled = g.q(
      g.node('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
      -3,
      3,
    );
    return {
      y: g.q(g.node('Concat', [pooled, pooled], { axis: 1 }), -3, 3),
      step: scaleOf(-3, 3),
      dims: [1, 16, 3, 3],
    };
  },
};

for (const act of ['u8', 'i8'] as const)
  test(`each QDQ op alone (${act} activations) runs natively and is at most 1 step from ONNX Runtime`, async () => {
    for (const [name, build] of Object.entries(SINGLE_OPS)) {
      const g = new QdqGraph(act, 7);
      const x = g.q('x', -3, 3);
      const { y, step, dims } = build(g, x);
      g.nodes.push({ op: 'Identity', name: 'out', inputs: [y], outputs: ['y'] });
      const bytes = g.model([{ name: 'x', dims: [1, 8, 6, 6] }], [{ name: 'y', dims }]);
      const [s] = await againstOrt(bytes, { name: 'x', dims: [1, 8, 6, 6] }, [{ name: 'y', step }], 16);
      assert.ok(s!.maxSteps <= 1, `${name}: ${s!.maxSteps} steps from ONNX Runtime`);
      // Where the rescale lands exactly on a half (GlobalAveragePool here: 36 pixels at a scale ratio of 3, so
      // sums 6 mod 12), ONNX Runtime rounds to even and the int8 kernels away from zero: one step.
      assert.ok(s!.equal >= 0.9, `${name}: only ${(100 * s!.equal).toFixed(1)} % equal`);
      if (name.startsWith('MaxPool')) assert.equal(s!.equal, 1, `${name}: exact`);
    }
  });

test('QOperator ops (QLinearConv, QLinearMatMul, com.microsoft QLinearAdd / QLinearGlobalAveragePool / QLinearConcat) run natively within 1 step of ONNX Runtime', async () => {
  const g = new QdqGraph('u8', 9);
  const p = (lo: number, hi: number): [string, string] => g.params(lo, hi).names;
  const ms = { domain: 'com.microsoft' };
  const xq = g.node('QuantizeLinear', ['x', ...p(-3, 3)]);
  const w = g.fresh('w');
  const ws = g.fresh('ws');
  const wz = g.fresh('wz');
  g.inits.push(
    typed(
      w,
      'i8',
      [8, 8, 3, 3],
      Array.from({ length: 576 }, () => g.random.int(-127, 127)),
    ),
    floatTensor(
      ws,
      [8],
      Array.from({ length: 8 }, () => 0.003),
    ),
    typed(wz, 'i8', [8], new Array<number>(8).fill(0)),
  );
  const conv = g.node('QLinearConv', [xq, ...p(-3, 3), w, ws, wz, ...p(-4, 4)], {
    kernel_shape: [3, 3],
    pads: [1, 1, 1, 1],
  });
  const add = g.node('QLinearAdd', [conv, ...p(-4, 4), conv, ...p(-4, 4), ...p(-6, 6)], {}, ms.domain);
  const cat = g.node(
    'QLinearConcat',
    [...p(-6, 6), add, ...p(-6, 6), add, ...p(-6, 6)],
    { axis: 1 },
    ms.domain,
  );
  const gap = g.node('QLinearGlobalAveragePool', [cat, ...p(-6, 6), ...p(-1.5, 1.5)], {}, ms.domain);
  const shape = g.fresh('shape');
  g.inits.push({ name: shape, dims: [2], dataType: 7, int64Data: [1, 16] });
  const flat = g.node('Reshape', [gap, shape]);
  const m = g.fresh('m');
  g.inits.push(
    typed(
      m,
      'i8',
      [16, 10],
      Array.from({ length: 160 }, () => g.random.int(-127, 127)),
    ),
  );
  const mm = g.node('QLinearMatMul', [
    flat,
    ...p(-1.5, 1.5),
    m,
    g.constant(0.004),
    g.fresh('unused'),
    ...p(-2, 2),
  ]);
  // The weights' zero point: int8 0.
  const mmNode = g.nodes.at(-1)!;
  const mz = g.fresh('mz');
  g.inits.push(typed(mz, 'i8', [], [0]));
  mmNode.inputs[5] = mz;
  g.nodes.push({ op: 'DequantizeLinear', name: 'out', inputs: [mm, ...p(-2, 2)], outputs: ['y'] });
  const bytes = buildModel({
    nodes: g.nodes,
    inputs: [{ name: 'x', dims: [1, 8, 6, 6] }],
    outputs: [{ name: 'y', dims: [1, 10] }],
    initializers: g.inits,
    domains: [{ domain: 'com.microsoft', version: 1 }],
  });
  const ops = read(importOnnx(bytes)).manifest.nodes.map((n) => n.op);
  assert.deepEqual(
    ops.filter((op) => op !== 'transpose' && op !== 'reshape'),
    [
      'quantize_linear',
      'qconv2d',
      'qadd',
      'concat',
      'global_avgpool',
      'qfully_connected',
      'dequantize_linear',
    ],
  );
  const [s] = await againstOrt(
    bytes,
    { name: 'x', dims: [1, 8, 6, 6] },
    [{ name: 'y', step: scaleOf(-2, 2) }],
    16,
  );
  // Four layers deep (see the CNN above): 80.6 % equal when written.
  assert.ok(s!.maxSteps <= 1, `${s!.maxSteps} steps from ONNX Runtime`);
  assert.ok(s!.equal >= 0.7, `only ${(100 * s!.equal).toFixed(1)} % equal`);
});

test("Whittle's own QDQ export of its int8 zoo packages imports onto the same kernels and outputs", async () => {
  for (const name of ['lenet5', 'squeezenet']) {
    const packages = await benchPackages(name, 1);
    const imported = read(
      importOnnx(exportOnnx(packages.int8, { activations: 'u8' }), { source: `${name}.onnx` }),
    );
    const ops = (pkg: typeof imported): string[] =>
      pkg.manifest.nodes.map((n) => n.op).filter((op) => op !== 'transpose');
    assert.deepEqual(ops(imported), ops(packages.int8), name);
    const ours = Model.fromPackage(imported);
    const theirs = Model.fromPackage(packages.int8);
    const input = packages.inputs(1, 5);
    // The same integers; the softmax after the last dequantize is fp32 (a few ulps between plans).
    const a = ours.run([input])[0]!.data;
    const b = theirs.run([input])[0]!.data;
    a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= 1e-6, `${name}: output ${i}: ${v} vs ${b[i]}`));
  }
});

const refused = (bytes: Uint8Array, pattern: RegExp): void =>
  assert.throws(
    () => importOnnx(bytes, { source: 'bad.onnx' }),
    (e: Error) => e instanceof QdqImportError && pattern.test(e.message),
  );

test('bad quantized models are refused with a QdqImportError naming the node', () => {
  const conv = (edit: (g: QdqGraph, w: { value: string; scales: number[] }) => string): Uint8Array => {
    const g = new QdqGraph('u8', 4);
    const x = g.q('x', -3, 3);
    const w = g.weights([4, 8, 1, 1], true);
    const bias = edit(g, w);
    g.nodes.push({
      op: 'Conv',
      name: 'the_conv',
      inputs: [x, w.value, bias],
      outputs: ['c'],
      attrs: { kernel_shape: [1, 1] },
    });
    const y = g.q('c', -3, 3);
    g.nodes.push({ op: 'Identity', name: 'out', inputs: [y], outputs: ['y'] });
    return g.model([{ name: 'x', dims: [1, 8, 4, 4] }], [{ name: 'y', dims: [1, 4, 4, 4] }]);
  };
  // A bias scale that is not input scale x weight scale.
  refused(
    conv((g, w) => g.bias(4, 2 * scaleOf(-3, 3), w.scales)),
    /node "the_conv" \(Conv\): bias scale .* is not input scale × weight scale/,
  );
  // Weights computed at run time.
  const g = new QdqGraph('u8', 4);
  const x = g.q('x', -3, 3);
  const wq = g.quantize('x', -3, 3);
  g.nodes.push({
    op: 'Conv',
    name: 'dynamic',
    inputs: [x, g.dq(wq)],
    outputs: ['c'],
    attrs: { kernel_shape: [1, 1] },
  });
  g.nodes.push({ op: 'Identity', name: 'out', inputs: [g.q('c', -3, 3)], outputs: ['y'] });
  refused(
    g.model([{ name: 'x', dims: [8, 8, 1, 1] }], [{ name: 'y', dims: [8, 8, 1, 1] }]),
    /node "dynamic" \(Conv\): the weights are DequantizeLinear .* of a computed tensor/,
  );
  // A zero point outside the quantized type (int8 data, 200).
  const h = new QdqGraph('i8', 4);
  const s = h.constant(0.1);
  const z = h.fresh('z');
  h.inits.push(typed(z, 'i32', [], [200]));
  const q = h.node('QuantizeLinear', ['x', s, h.params(-1, 1).names[1]]);
  h.nodes.push({ op: 'DequantizeLinear', name: 'bad_dq', inputs: [q, s, z], outputs: ['y'] });
  refused(
    h.model([{ name: 'x', dims: [1, 4] }], [{ name: 'y', dims: [1, 4] }]),
    /node "bad_dq" \(DequantizeLinear\): zero point 200 is outside the i8 range/,
  );
});

test('uint8 asymmetric weights (no native kernel takes a weight zero point) keep the reference qconv2d with ONNX rounding: equal to ONNX Runtime, listed in Model.fallbacks', async () => {
  const g = new QdqGraph('u8', 12);
  const x = g.q('x', -3, 3);
  const w = g.weights([6, 8, 3, 3], false, 0, 'u8');
  const conv = g.node('Conv', [x, w.value, g.bias(6, scaleOf(-3, 3), w.scales)], { kernel_shape: [3, 3] });
  const y = g.q(conv, -4, 4);
  g.nodes.push({ op: 'Identity', name: 'out', inputs: [y], outputs: ['y'] });
  const bytes = g.model([{ name: 'x', dims: [1, 8, 6, 6] }], [{ name: 'y', dims: [1, 6, 4, 4] }]);
  const [s] = await againstOrt(
    bytes,
    { name: 'x', dims: [1, 8, 6, 6] },
    [{ name: 'y', step: scaleOf(-4, 4) }],
    8,
    [conv],
  );
  assert.equal(s!.maxSteps, 0, `${s!.maxSteps} steps from ONNX Runtime`);
});
