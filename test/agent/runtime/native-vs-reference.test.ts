// Native executors against the reference executors on the same package: an fp32 CNN imported from ONNX
// (conv, relu, max pool, depthwise conv, global average pool, gemm, softmax) and an int8 conv stack agree,
// with one and with two kernel threads, and the layers report native kernels.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';

import { type EncodedTensor, encodeRaw } from '../../../agent/package/encodings.js';
import type { Manifest } from '../../../agent/package/manifest.js';
import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { buildModel, floatTensor } from '../../optimize/onnx/build-model.js';

const keys = generateKeyPairSync('ed25519');
const random = new SeededRandom(21);
const normal = (n: number): number[] => Array.from({ length: n }, () => random.normal() * 0.5);
/** Symmetric per-output-channel int8 weight quantization: scales min + 2 min |v| of random v. */
const perChannelQuant = (channels: number, min: number) => ({
  scale: normal(channels).map((v) => min + Math.abs(v) * 2 * min),
  zeroPoint: new Array<number>(channels).fill(0),
  axis: 0,
});

test('fp32 CNN: native kernels match the reference executors, with 1 and 2 threads', () => {
  const onnxModel = buildModel({
    nodes: [
      {
        op: 'Conv',
        name: 'conv1',
        inputs: ['x', 'w1', 'b1'],
        outputs: ['c1'],
        attrs: { pads: [1, 1, 1, 1], strides: [2, 2] },
      },
      { op: 'Relu', name: 'relu1', inputs: ['c1'], outputs: ['r1'] },
      {
        op: 'MaxPool',
        name: 'pool1',
        inputs: ['r1'],
        outputs: ['p1'],
        attrs: { kernel_shape: [2, 2], strides: [2, 2] },
      },
      {
        op: 'Conv',
        name: 'dw',
        inputs: ['p1', 'w2'],
        outputs: ['c2'],
        attrs: { pads: [1, 1, 1, 1], group: 16 },
      },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['c2'], outputs: ['g'] },
      { op: 'Flatten', name: 'flatten', inputs: ['g'], outputs: ['f'] },
      { op: 'Gemm', name: 'fc', inputs: ['f', 'fw', 'fb'], outputs: ['l'], attrs: { transB: 1 } },
      { op: 'Softmax', name: 'softmax', inputs: ['l'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [2, 3, 32, 32] }],
    outputs: [{ name: 'y', dims: [2, 10] }],
    initializers: [
      floatTensor('w1', [16, 3, 3, 3], normal(432)),
      floatTensor('b1', [16], normal(16)),
      floatTensor('w2', [16, 1, 3, 3], normal(144)),
      floatTensor('fw', [10, 16], normal(160)),
      floatTensor('fb', [10], normal(10)),
    ],
  });
  const pkg = readPackage(writePackage(importOnnx(onnxModel), keys.privateKey), {
    publicKey: keys.publicKey,
  });
  const reference = Model.fromPackage(pkg, { referenceOnly: true });
  const native = Model.fromPackage(pkg, { threads: 1 });
  assert.ok(
    native.layers.filter((l) => l.op === 'conv2d').every((l) => l.kernel.startsWith('native:')),
    JSON.stringify(native.layers),
  );
  const input = Float32Array.from(normal(2 * 3 * 32 * 32));
  const expected = reference.run([input])[0]!.data;
  for (const threads of [1, 2]) {
    const model = Model.fromPackage(pkg, { threads });
    const actual = model.run([input])[0]!.data;
    for (let i = 0; i < expected.length; i++)
      assert.ok(Math.abs(actual[i]! - expected[i]!) < 1e-5, `threads ${threads}, ${i}`);
  }
  Model.fromPackage(pkg, { threads: 1 });
});

/** An int8 graph under construction: tensors (constants encoded raw), per-channel conv weights of random
 * int8 values and int32 biases. */
function int8Graph() {
  const tensors: Manifest['tensors'] = [];
  const constants = new Map<number, EncodedTensor>();
  const add = (t: Manifest['tensors'][number], data?: Int8Array | Int32Array): number => {
    tensors.push(t);
    if (data) constants.set(tensors.length - 1, encodeRaw(data));
    return tensors.length - 1;
  };
  const q = (scale: number, zero: number) => ({ scale: [scale], zeroPoint: [zero] });
  const weights = (o: number, k: number, kernel = 3) =>
    add(
      {
        name: `w${tensors.length}`,
        dtype: 'i8',
        shape: [o, kernel, kernel, k],
        quant: perChannelQuant(o, 0.01),
      },
      Int8Array.from({ length: o * kernel * kernel * k }, () => random.int(-127, 127)),
    );
  const bias = (o: number) =>
    add(
      { name: `b${tensors.length}`, dtype: 'i32', shape: [o] },
      Int32Array.from({ length: o }, () => random.int(-2000, 2000)),
    );
  const pkg = (nodes: Manifest['nodes'], input: number, output: number) => {
    const manifest: Manifest = {
      format: 'whittle-package',
      version: 1,
      model: { id: 'int8-convs', version: '1' },
      target: { deviceClass: 'any', cpuFamily: 'any' },
      inputs: [{ name: 'x', tensor: input, layout: 'NHWC' }],
      outputs: [{ name: 'y', tensor: output }],
      tensors,
      nodes,
    };
    return readPackage(writePackage({ manifest, constants }, keys.privateKey), { publicKey: keys.publicKey });
  };
  return { add, q, weights, bias, pkg };
}

/** The package's output on the native plan (1 and 2 threads, every layer native) equals the reference's. */
function assertNativeMatchesReference(pkg: ReturnType<typeof readPackage>, input: Int8Array): void {
  const expected = Array.from(Model.fromPackage(pkg, { referenceOnly: true }).run([input])[0]!.data);
  for (const threads of [1, 2]) {
    const model = Model.fromPackage(pkg, { threads });
    assert.ok(
      model.layers.every((l) => l.kernel.startsWith('native:')),
      JSON.stringify(model.layers.map((l) => l.kernel)),
    );
    assert.deepEqual(Array.from(model.run([input])[0]!.data), expected);
  }
}

test('int8 conv stack: native qconv2d is bit-exact with the reference, with 1 and 2 threads', () => {
  const { add, q, weights, bias, pkg: build } = int8Graph();
  const x = add({ name: 'x', dtype: 'i8', shape: [3, 12, 12, 8], quant: q(0.05, -3) });
  const w1 = weights(16, 8);
  const b1 = bias(16);
  const y1 = add({ name: 'y1', dtype: 'i8', shape: [3, 6, 6, 16], quant: q(0.1, 5) });
  const w2 = weights(16, 1);
  const y2 = add({ name: 'y2', dtype: 'i8', shape: [3, 6, 6, 16], quant: q(0.08, -10) });
  const pkg = build(
    [
      {
        name: 'conv1',
        op: 'qconv2d',
        format: 'int8',
        inputs: [x, w1, b1],
        outputs: [y1],
        attrs: { strides: [2, 2], pads: [1, 1, 1, 1], min: 5 },
      },
      {
        name: 'dw',
        op: 'qconv2d',
        format: 'int8',
        inputs: [y1, w2, -1],
        outputs: [y2],
        attrs: { pads: [1, 1, 1, 1], groups: 16 },
      },
    ],
    x,
    y2,
  );
  const input = Int8Array.from({ length: 3 * 12 * 12 * 8 }, () => random.int(-128, 127));
  assertNativeMatchesReference(pkg, input);
  Model.fromPackage(pkg, { threads: 1 });
});

test('int8 ShuffleNet unit: channel shuffle, narrow grouped convs (dense form) and in-place pointwise convs are bit-exact', () => {
  // x [2, 5, 6, 48] -> shuffle (2 groups) -> the channel split as a grouped 1x1 conv (24 groups of 2 inputs
  // and 1 output: the kernels run it as one dense conv) -> a pointwise conv whose tiles read the input in
  // place (48 channels, stride 1) -> concat with a 3x3 conv of 6 groups (dense too) -> shuffle.
  const { add, q, weights, bias, pkg: build } = int8Graph();
  const shape = (c: number) => [2, 5, 6, c];
  const x = add({ name: 'x', dtype: 'i8', shape: shape(48), quant: q(0.05, -3) });
  const shuffled = add({ name: 'shuffled', dtype: 'i8', shape: shape(48), quant: q(0.05, -3) });
  const split = add({ name: 'split', dtype: 'i8', shape: shape(24), quant: q(0.07, 4) });
  const pointwise = add({ name: 'pointwise', dtype: 'i8', shape: shape(24), quant: q(0.1, -2) });
  const grouped = add({ name: 'grouped', dtype: 'i8', shape: shape(24), quant: q(0.09, 1) });
  const joined = add({ name: 'joined', dtype: 'i8', shape: shape(48), quant: q(0.1, -2) });
  const y = add({ name: 'y', dtype: 'i8', shape: shape(48), quant: q(0.1, -2) });
  const wSplit = weights(24, 2, 1);
  const wPointwise = weights(24, 24, 1);
  const wGrouped = weights(24, 8, 3);
  type Node = Manifest['nodes'][number];
  const node = (
    name: string,
    op: string,
    inputs: number[],
    output: number,
    attrs: Node['attrs'] = {},
  ): Node => ({
    name,
    op,
    format: 'int8',
    inputs,
    outputs: [output],
    attrs,
  });
  const pkg = build(
    [
      node('shuffle1', 'channel_shuffle', [x], shuffled, { groups: 2 }),
      node('split', 'qconv2d', [shuffled, wSplit, -1], split, { groups: 24 }),
      node('pointwise', 'qconv2d', [split, wPointwise, bias(24)], pointwise, { min: -2 }),
      node('grouped', 'qconv2d', [x, wGrouped, bias(24)], grouped, { groups: 6, pads: [1, 1, 1, 1] }),
      node('concat', 'concat', [pointwise, grouped], joined, { axis: 3 }),
      node('shuffle2', 'channel_shuffle', [joined], y, { groups: 2 }),
    ],
    x,
    y,
  );
  assertNativeMatchesReference(
    pkg,
    Int8Array.from({ length: 2 * 5 * 6 * 48 }, () => random.int(-128, 127)),
  );
});

test('int8 requantization at the edges: multipliers flushed to 0 and saturated past 2^30 load and agree', () => {
  // real = x scale * w scale[o] / y scale = 1e20 * w scale[o]: 0.01 (an ordinary multiplier), 1e-15 (below
  // 2^-32: flushed to {0, 0}), 1e10 (past 2^30: saturated to {INT32_MAX, 30}), and Infinity (1e10 * 1e300
  // overflows). The reader admits every one of these scales, so the runtime must load the layer, and the
  // native kernel and the reference must compute the same bits from the same multipliers.
  const weightScales = [1e-22, 1e-35, 1e-10, 1e300];
  const o = weightScales.length;
  const k = 4;
  const q = (scale: number, zero: number) => ({ scale: [scale], zeroPoint: [zero] });
  const tensors: Manifest['tensors'] = [
    { name: 'x', dtype: 'i8', shape: [2, 5, 5, k], quant: q(1e10, 0) },
    {
      name: 'w',
      dtype: 'i8',
      shape: [o, 1, 1, k],
      quant: { scale: weightScales, zeroPoint: new Array<number>(o).fill(0), axis: 0 },
    },
    { name: 'y', dtype: 'i8', shape: [2, 5, 5, o], quant: q(1e-10, 7) },
  ];
  const weights = Int8Array.from({ length: o * k }, () => random.int(-127, 127));
  weights.copyWithin(3 * k, 2 * k, 3 * k); // channels 2 and 3 share their weights
  const constants = new Map<number, EncodedTensor>([[1, encodeRaw(weights)]]);
  const manifest: Manifest = {
    format: 'whittle-package',
    version: 1,
    model: { id: 'int8-requantization-edges', version: '1' },
    target: { deviceClass: 'any', cpuFamily: 'any' },
    inputs: [{ name: 'x', tensor: 0, layout: 'NHWC' }],
    outputs: [{ name: 'y', tensor: 2 }],
    tensors,
    nodes: [{ name: 'conv', op: 'qconv2d', format: 'int8', inputs: [0, 1, -1], outputs: [2], attrs: {} }],
  };
  const pkg = readPackage(writePackage({ manifest, constants }, keys.privateKey), {
    publicKey: keys.publicKey,
  });
  const input = Int8Array.from({ length: 2 * 5 * 5 * k }, () => random.int(-128, 127));
  const expected = Array.from(Model.fromPackage(pkg, { referenceOnly: true }).run([input])[0]!.data);
  // The flushed channel's multiplier is 0: every output is the zero point. An overflowing product saturates
  // like a large finite one: channels 2 and 3 give the same outputs.
  for (let i = 0; i < expected.length; i += o) {
    assert.equal(expected[i + 1], 7);
    assert.equal(expected[i + 3], expected[i + 2]);
  }
  const model = Model.fromPackage(pkg, { threads: 1 });
  assert.ok(
    model.layers.every((l) => l.kernel.startsWith('native:')),
    JSON.stringify(model.layers.map((l) => l.kernel)),
  );
  assert.deepEqual(Array.from(model.run([input])[0]!.data), expected);
});

test('int8 stem convolutions (1-4 input channels) run the indirect kernels, bit-exact with the reference', () => {
  // LeNet's first conv, the small VGG's and MobileNet's stems (TF 'same' at stride 2 pads bottom/right only),
  // and 2- and 4-channel inputs with dilation and uint8 activations: each a one-layer package whose native
  // qconv2d must report an indirect GEMM kernel (qs8_igemm_*) and give the reference executor's bytes.
  interface Stem {
    name: string;
    dtype: 'i8' | 'u8';
    batch: number;
    size: number;
    cin: number;
    cout: number;
    k: number;
    stride: number;
    dilation: number;
    /** top, left, bottom, right */
    pads: [number, number, number, number];
    min?: number;
  }
  const stems: Stem[] = [
    {
      name: 'lenet-conv1',
      dtype: 'i8',
      batch: 2,
      size: 28,
      cin: 1,
      cout: 6,
      k: 5,
      stride: 1,
      dilation: 1,
      pads: [0, 0, 0, 0],
    },
    {
      name: 'vgg-stem',
      dtype: 'i8',
      batch: 1,
      size: 32,
      cin: 3,
      cout: 32,
      k: 3,
      stride: 1,
      dilation: 1,
      pads: [1, 1, 1, 1],
      min: -4,
    },
    {
      name: 'mobilenet-stem',
      dtype: 'u8',
      batch: 2,
      size: 96,
      cin: 3,
      cout: 16,
      k: 3,
      stride: 2,
      dilation: 1,
      pads: [0, 0, 1, 1],
    },
    {
      name: 'c2-dilated',
      dtype: 'u8',
      batch: 1,
      size: 15,
      cin: 2,
      cout: 20,
      k: 3,
      stride: 1,
      dilation: 2,
      pads: [2, 1, 2, 3],
    },
    {
      name: 'c4-7x7',
      dtype: 'i8',
      batch: 1,
      size: 19,
      cin: 4,
      cout: 17,
      k: 7,
      stride: 2,
      dilation: 1,
      pads: [0, 0, 0, 0],
    },
  ];
  for (const stem of stems) {
    const { batch, size, cin, cout, k, stride, dilation, pads } = stem;
    const unsigned = stem.dtype === 'u8';
    const outH = Math.floor((size + pads[0] + pads[2] - (k - 1) * dilation - 1) / stride) + 1;
    const outW = Math.floor((size + pads[1] + pads[3] - (k - 1) * dilation - 1) / stride) + 1;
    const attrs = {
      strides: [stride, stride],
      dilations: [dilation, dilation],
      pads: [...pads],
      ...(stem.min !== undefined ? { min: stem.min } : {}),
    };
    const q = (scale: number, zero: number) => ({ scale: [scale], zeroPoint: [zero] });
    const tensors: Manifest['tensors'] = [
      { name: 'x', dtype: stem.dtype, shape: [batch, size, size, cin], quant: q(0.02, unsigned ? 131 : -7) },
      {
        name: 'w',
        dtype: 'i8',
        shape: [cout, k, k, cin],
        quant: perChannelQuant(cout, 0.005),
      },
      { name: 'b', dtype: 'i32', shape: [cout] },
      { name: 'y', dtype: stem.dtype, shape: [batch, outH, outW, cout], quant: q(0.03, unsigned ? 120 : 4) },
    ];
    const constants = new Map<number, EncodedTensor>([
      [1, encodeRaw(Int8Array.from({ length: cout * k * k * cin }, () => random.int(-127, 127)))],
      [2, encodeRaw(Int32Array.from({ length: cout }, () => random.int(-3000, 3000)))],
    ]);
    const manifest: Manifest = {
      format: 'whittle-package',
      version: 1,
      model: { id: `int8-${stem.name}`, version: '1' },
      target: { deviceClass: 'any', cpuFamily: 'any' },
      inputs: [{ name: 'x', tensor: 0, layout: 'NHWC' }],
      outputs: [{ name: 'y', tensor: 3 }],
      tensors,
      nodes: [{ name: 'stem', op: 'qconv2d', format: 'int8', inputs: [0, 1, 2], outputs: [3], attrs }],
    };
    const pkg = readPackage(writePackage({ manifest, constants }, keys.privateKey), {
      publicKey: keys.publicKey,
    });
    const length = batch * size * size * cin;
    const input = unsigned
      ? Uint8Array.from({ length }, () => random.int(0, 255))
      : Int8Array.from({ length }, () => random.int(-128, 127));
    const expected = Array.from(Model.fromPackage(pkg, { referenceOnly: true }).run([input])[0]!.data);
    for (const threads of [1, 2]) {
      const model = Model.fromPackage(pkg, { threads });
      assert.match(model.layers[0]!.kernel, /^native:.*_igemm_/, `${stem.name}: ${model.layers[0]!.kernel}`);
      assert.deepEqual(Array.from(model.run([input])[0]!.data), expected, `${stem.name}, threads ${threads}`);
    }
  }
});
