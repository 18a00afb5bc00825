// Every native executor of the registry (agent/runtime/ops/index.ts EXECUTORS) against the reference executor
// of its (op, format) pair, on random data: the test iterates the registry, so a native factory added to
// NATIVE_EXECUTORS is compared here without another list to edit (an op without a random case below fails
// the test, naming the pair). Integer outputs must agree bit for bit, fp32 ones within 1e-5 (relative, or
// absolute below 1): the native kernels sum in another order.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { type DecodedTensor, expandHashed, hashedSlot } from '../../../agent/package/encodings.js';
import type { ManifestNode, NumberFormat } from '../../../agent/package/manifest.js';
import type { PrepareContext } from '../../../agent/runtime/executor.js';
import { NATIVE_EXECUTORS, nativeAvailable } from '../../../agent/runtime/native-executors.js';
import { planExecution } from '../../../agent/runtime/native-plan.js';
import { type ExecutorEntry, EXECUTORS, OPS } from '../../../agent/runtime/ops/index.js';
import { allocate, elements, type TensorData, type TensorSpec } from '../../../agent/runtime/tensor.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

const random = new SeededRandom(1313);
const normal = (n: number): Float32Array => Float32Array.from({ length: n }, () => random.normal());
const int8 = (n: number): Int8Array => Int8Array.from({ length: n }, () => random.int(-128, 127));
const quant = (scale: number, zeroPoint: number) => ({ scale: [scale], zeroPoint: [zeroPoint] });

/** One node's random case: its attributes, its inputs (a constant where `data` is given: weights, bias) and,
 * for fixed-point weights, the words as the package stores them. */
interface Case {
  attrs: ManifestNode['attrs'];
  inputs: { spec: TensorSpec; data?: TensorData }[];
  decoded?: (DecodedTensor | undefined)[];
  /** The manifest's output tensor, where only it states the output's dtype and quantization. */
  declared?: TensorSpec;
}

/** fp32 weights [rows][reduction] that the format stores exactly (the native factory checks it). */
function formatWeights(format: NumberFormat, rows: number, reduction: number): Float32Array {
  const w = normal(rows * reduction);
  const alpha = (o: number) => 0.25 + (o % 5) / 8;
  switch (format) {
    case 'binary':
    case 'xnor':
      return w.map((v, i) => (v < 0 ? -1 : 1) * alpha(Math.floor(i / reduction)));
    case 'ternary':
      return w.map((v, i) => (Math.abs(v) < 0.5 ? 0 : Math.sign(v) * alpha(Math.floor(i / reduction))));
    case 'sparse':
      return w.map((v) => (random.next() < 0.8 ? 0 : v));
    case 'codebook':
      return w.map(() => (random.int(0, 15) - 7.5) / 8);
    default:
      return w;
  }
}

/** A conv2d or fully_connected layer in `format`: fp32 activations, constant weights and bias. */
function floatLayer(format: NumberFormat, x: number[], w: number[], attrs: ManifestNode['attrs']): Case {
  const rows = w[0]!;
  const reduction = elements(w.slice(1));
  const bias = { spec: { dtype: 'f32' as const, shape: [rows] }, data: normal(rows) };
  if (format === 'fixed16' || format === 'fixed8') {
    const bits = format === 'fixed16' ? 16 : 8;
    const fracBits = bits === 16 ? 12 : 6;
    const limit = bits === 16 ? 32767 : 127;
    const words = Array.from({ length: rows * reduction }, () =>
      Math.max(-limit, Math.min(limit, Math.round(random.normal() * 2 ** (fracBits - 2)))),
    );
    const values = bits === 16 ? Int16Array.from(words) : Int8Array.from(words);
    const decoded = (
      bits === 16 ? { kind: 'fixed16', fracBits, values } : { kind: 'fixed8', fracBits, values }
    ) as DecodedTensor;
    return {
      attrs: { ...attrs, input_fl: bits === 16 ? 8 : 4, output_fl: bits === 16 ? 7 : 3 },
      inputs: [
        { spec: { dtype: 'f32', shape: x } },
        { spec: { dtype: 'f32', shape: w }, data: Float32Array.from(words, (q) => q * 2 ** -fracBits) },
        bias,
      ],
      decoded: [undefined, decoded, undefined],
    };
  }
  if (format === 'hashed') {
    // A seventh of the weights as signed buckets, the dense weights their expansion (as the reader decodes).
    const buckets = normal(Math.ceil((rows * reduction) / 7));
    const seed = 12345;
    const slots = Int32Array.from({ length: rows * reduction }, (_, i) =>
      hashedSlot(i, seed, buckets.length),
    );
    const dense = expandHashed(buckets, slots, new Float32Array(rows * reduction));
    return {
      attrs,
      inputs: [{ spec: { dtype: 'f32', shape: x } }, { spec: { dtype: 'f32', shape: w }, data: dense }, bias],
      decoded: [undefined, { kind: 'hashed', buckets, seed }, undefined],
    };
  }
  return {
    attrs,
    inputs: [
      { spec: { dtype: 'f32', shape: x } },
      { spec: { dtype: 'f32', shape: w }, data: formatWeights(format, rows, reduction) },
      bias,
    ],
  };
}

/** An int8 layer: int8 activations, per-channel int8 weights, int32 bias. */
function int8Layer(x: number[], w: number[], attrs: ManifestNode['attrs']): Case {
  const rows = w[0]!;
  return {
    attrs,
    inputs: [
      { spec: { dtype: 'i8', shape: x, quant: quant(0.05, -3) } },
      {
        spec: {
          dtype: 'i8',
          shape: w,
          quant: {
            scale: Array.from({ length: rows }, (_, o) => 0.004 + o * 0.001),
            zeroPoint: new Array<number>(rows).fill(0),
            axis: 0,
          },
        },
        data: Int8Array.from({ length: elements(w) }, () => random.int(-127, 127)),
      },
      {
        spec: { dtype: 'i32', shape: [rows] },
        data: Int32Array.from({ length: rows }, () => random.int(-500, 500)),
      },
    ],
  };
}

const activation = (format: NumberFormat, shape: number[]) => ({
  spec:
    format === 'int8'
      ? { dtype: 'i8' as const, shape, quant: quant(0.1, 2) }
      : { dtype: 'f32' as const, shape },
});

/** A random case per op, for the format of the pair. */
const CASES: Record<string, (format: NumberFormat) => Case> = {
  conv2d: (format) =>
    floatLayer(format, [2, 9, 9, 8], [12, 3, 3, 8], { strides: [2, 2], pads: [1, 1, 1, 1], min: -1, max: 2 }),
  fully_connected: (format) => floatLayer(format, [3, 40], [10, 40], { min: -1.5 }),
  qconv2d: () => int8Layer([2, 9, 9, 8], [12, 3, 3, 8], { pads: [1, 0, 1, 0], min: -100 }),
  qfully_connected: () => int8Layer([3, 40], [10, 40], {}),
  max_pool: (format) => ({
    attrs: { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    inputs: [activation(format, [2, 9, 9, 5])],
  }),
  avg_pool: (format) => ({
    attrs: { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 0, 0] },
    inputs: [activation(format, [2, 9, 9, 5])],
  }),
  global_avgpool: (format) => ({ attrs: {}, inputs: [activation(format, [2, 5, 5, 8])] }),
  add: (format) => ({ attrs: {}, inputs: [activation(format, [2, 3, 7]), activation(format, [2, 3, 7])] }),
  clip: (format) => ({
    attrs: format === 'int8' ? { min: -20, max: 50 } : { min: -0.5, max: 1.25 },
    inputs: [activation(format, [3, 17])],
  }),
  softmax: (format) => ({ attrs: { axis: -1 }, inputs: [activation(format, [4, 10])] }),
  concat: (format) => ({
    attrs: { axis: 1 },
    inputs: [activation(format, [2, 3, 4]), activation(format, [2, 5, 4]), activation(format, [2, 1, 4])],
  }),
  channel_shuffle: (format) => ({ attrs: { groups: 3 }, inputs: [activation(format, [2, 3, 3, 12])] }),
  sigmoid: (format) => ({ attrs: {}, inputs: [activation(format, [3, 17])] }),
  hard_sigmoid: (format) => ({ attrs: { alpha: 0.3, beta: 0.4 }, inputs: [activation(format, [3, 17])] }),
  hard_swish: (format) => ({ attrs: {}, inputs: [activation(format, [3, 17])] }),
  silu: (format) => ({ attrs: {}, inputs: [activation(format, [3, 17])] }),
  // The tanh form on the int8 table, the erf form on the fp32 kernel (the C tests check both forms of it).
  gelu: (format) => ({
    attrs: format === 'int8' ? { approximate: 'tanh' } : { approximate: 'none' },
    inputs: [activation(format, [3, 17])],
  }),
  // ConvNeXt's channels-last LayerNorm: over the last axis of NHWC, with a scale and a bias.
  layer_norm: () => ({
    attrs: { axis: -1, epsilon: 1e-6 },
    inputs: [
      activation('f32', [2, 3, 4, 19]),
      { spec: { dtype: 'f32', shape: [19] }, data: normal(19) },
      { spec: { dtype: 'f32', shape: [19] }, data: normal(19) },
    ],
  }),
  // The SE block's scale: N x H x W x C times N x 1 x 1 x C.
  mul: (format) => ({
    attrs: {},
    inputs: [activation(format, [2, 3, 4, 5]), activation(format, [2, 1, 1, 5])],
  }),
  slice: (format) => ({
    attrs: { starts: [1], ends: [4], axes: [2] },
    inputs: [activation(format, [2, 3, 6, 5])],
  }),
  // One output (the case compares one; test/agent/runtime/native-conformance-ops.test.ts splits in two).
  split: (format) => ({ attrs: { axis: 3, split: [5] }, inputs: [activation(format, [2, 3, 4, 5])] }),
  // Two quantizations into a third, with a fused clamp.
  qadd: () => ({
    attrs: { min: -100 },
    inputs: [
      { spec: { dtype: 'i8', shape: [2, 3, 7], quant: quant(0.1, 2) } },
      { spec: { dtype: 'i8', shape: [2, 3, 7], quant: quant(0.07, -4) } },
    ],
    declared: { dtype: 'i8', shape: [2, 3, 7], quant: quant(0.2, -5) },
  }),
  // The SE block's scale in int8: N x H x W x C times N x 1 x 1 x C, each with its quantization, into a
  // third with a fused clamp.
  qmul: () => ({
    attrs: { max: 90 },
    inputs: [
      { spec: { dtype: 'i8', shape: [2, 3, 4, 5], quant: quant(0.1, 2) } },
      { spec: { dtype: 'i8', shape: [2, 1, 1, 5], quant: quant(0.01, -7) } },
    ],
    declared: { dtype: 'i8', shape: [2, 3, 4, 5], quant: quant(0.05, 3) },
  }),
  // Per channel along axis 1 (runs of 4 * 5 values), scales small enough that some values saturate.
  quantize_linear: () => ({
    attrs: {},
    inputs: [{ spec: { dtype: 'f32', shape: [2, 3, 4, 5] } }],
    declared: {
      dtype: 'u8',
      shape: [2, 3, 4, 5],
      quant: { scale: [0.01, 0.02, 0.005], zeroPoint: [128, 100, 0], axis: 1 },
    },
  }),
  dequantize_linear: () => ({
    attrs: {},
    inputs: [{ spec: { dtype: 'i8', shape: [2, 3, 4, 5], quant: quant(0.07, 3) } }],
  }),
  // A segmentation head's bilinear upsampling (NHWC: H and W move) to sizes that are not a multiple.
  resize: (format) => ({
    attrs: { sizes: [2, 7, 9, 5], mode: 'linear', coordinate_transformation_mode: 'half_pixel' },
    inputs: [activation(format, [2, 4, 5, 5])],
  }),
  // A segmentation model's NHWC output back to NCHW.
  transpose: (format) => ({ attrs: { perm: [0, 3, 1, 2] }, inputs: [activation(format, [2, 3, 4, 5])] }),
  reshape: (format) => ({ attrs: { shape: [3, -1] }, inputs: [activation(format, [3, 4, 5])] }),
  identity: (format) => ({ attrs: {}, inputs: [activation(format, [3, 17])] }),
};

function randomData(spec: TensorSpec): TensorData {
  const n = elements(spec.shape);
  return spec.dtype === 'f32' ? normal(n) : spec.dtype === 'i8' ? int8(n) : allocate(spec.dtype, n);
}

/** The pair's node prepared from its case: the context both executors get, and random data for its inputs. */
function prepare(entry: ExecutorEntry, make: (format: NumberFormat) => Case) {
  const c = make(entry.format);
  const node: ManifestNode = {
    name: `${entry.op}_${entry.format}`,
    op: entry.op,
    format: entry.format,
    inputs: c.inputs.map((_, i) => i),
    outputs: [c.inputs.length],
    attrs: c.attrs,
  };
  const inputs = c.inputs.map((i) => i.spec);
  const declared: TensorSpec[] = c.declared
    ? [c.declared]
    : inputs[0]!.quant
      ? [{ ...inputs[0]!, quant: quant(0.2, -5) }]
      : [inputs[0]!];
  const outputs = OPS[entry.op]!.infer(node, inputs, declared);
  const context: PrepareContext = {
    node,
    format: entry.format,
    inputs,
    outputs,
    constants: c.inputs.map((i) => i.data),
    ...(c.decoded ? { decoded: c.decoded } : {}),
  };
  const data = c.inputs.map((i) => i.data ?? randomData(i.spec));
  return { context, data, output: outputs[0]! };
}

function assertAgree(actual: TensorData, expected: TensorData, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    if (expected instanceof Float32Array) {
      const error = Math.abs(actual[i]! - e) / Math.max(1, Math.abs(e));
      assert.ok(error <= 1e-5, `${what}[${i}]: native ${actual[i]} vs reference ${e}`);
    } else {
      assert.equal(actual[i], e, `${what}[${i}]: native ${actual[i]} vs reference ${e}`);
    }
  }
}

describe('the executor registry', () => {
  test('joins every native factory with the reference executor of its pair', () => {
    for (const [op, formats] of Object.entries(NATIVE_EXECUTORS)) {
      for (const [format, native] of Object.entries(formats)) {
        const entry = EXECUTORS.find((e) => e.op === op && e.format === format);
        assert.ok(entry, `native ${op} x ${format} has no reference executor`);
        assert.equal(entry.native, native, `${op} x ${format}`);
      }
    }
    // Every pair of the runtime's op table is one entry of the list.
    const pairs = Object.entries(OPS).flatMap(([op, d]) => Object.keys(d.executors).map((f) => `${op} ${f}`));
    assert.deepEqual(
      pairs,
      EXECUTORS.map((e) => `${e.op} ${e.format}`),
    );
  });

  const natives = EXECUTORS.filter((e) => e.native !== undefined);
  test('holds the native executors', () => assert.ok(natives.length >= 30, `${natives.length}`));

  for (const entry of natives) {
    test(
      `native ${entry.op} x ${entry.format} agrees with the reference on random data`,
      { skip: nativeAvailable() ? false : 'the native addon is not built for this machine' },
      () => {
        const make = CASES[entry.op];
        assert.ok(make, `no random case for ${entry.op} x ${entry.format}: add one to CASES`);
        const { context, data, output } = prepare(entry, make);
        const native = entry.native!(context);
        assert.ok(native, `the native factory refused its random case`);
        assert.match(native.kernel, /^native:/);
        const reference = entry.reference(context);
        assert.match(reference.kernel, /^reference:/);
        const expected = allocate(output.dtype, elements(output.shape));
        const actual = allocate(output.dtype, elements(output.shape));
        reference.run(data, [expected]);
        native.run(data, [actual]);
        assertAgree(actual, expected, `${entry.op} x ${entry.format} (${native.kernel})`);
        // Its addon calls as steps of an execution plan give the same bytes as run().
        const planned = allocate(output.dtype, elements(output.shape));
        const execution = planExecution(new ArrayBuffer(0), [
          { name: entry.op, executor: native, inputs: data, outputs: [planned] },
        ]);
        assert.ok(execution.summary.nativeSteps >= 1, JSON.stringify(execution.summary));
        execution.run();
        assert.deepEqual(
          new Uint8Array(planned.buffer, planned.byteOffset, planned.byteLength),
          new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength),
          `${entry.op} x ${entry.format}: plan vs run()`,
        );
        // The case is not degenerate: the output is not constant.
        assert.ok(new Set(expected).size > 1, 'the reference output is constant');
      },
    );
  }
});
