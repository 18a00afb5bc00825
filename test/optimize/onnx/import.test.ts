// The ONNX importer's own behaviour beyond the conformance data: a model with initializers becomes a
// package whose graph uses fully_connected and folds its constants, Conv + BatchNormalization folds into one
// conv, and a file that is not ONNX is refused with a typed error (refusals.test.ts: the other refusals).
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';

import { readPackage } from '../../../agent/package/reader.js';
import { inputInLayout } from '../../../agent/runtime/compile/index.js';
import { Model } from '../../../agent/runtime/model.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { OnnxImportError } from '../../../optimize/onnx/onnx-proto.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { buildModel, floatTensor, intTensor, type NodeSpec } from './build-model.js';

const keys = generateKeyPairSync('ed25519');
const load = (bytes: Uint8Array): Model =>
  Model.fromPackage(
    readPackage(writePackage(importOnnx(bytes), keys.privateKey), { publicKey: keys.publicKey }),
  );

test('Gemm with initializers becomes one fully_connected layer with alpha, beta and transB folded, the ReLU fused', () => {
  const random = new SeededRandom(3);
  const w = Float32Array.from({ length: 12 }, () => random.normal());
  const c = Float32Array.from({ length: 3 }, () => random.normal());
  const model = load(
    buildModel({
      nodes: [
        {
          op: 'Gemm',
          name: 'gemm',
          inputs: ['x', 'w', 'c'],
          outputs: ['y'],
          attrs: { transB: 1, alpha: 0.5, beta: 2 },
        },
        { op: 'Relu', name: 'relu', inputs: ['y'], outputs: ['z'] },
      ],
      inputs: [{ name: 'x', dims: [2, 4] }],
      outputs: [{ name: 'z', dims: [2, 3] }],
      initializers: [floatTensor('w', [3, 4], w), floatTensor('c', [3], c)],
    }),
  );
  assert.deepEqual(
    model.layers.map((l) => l.op),
    ['fully_connected'],
  );
  const x = Float32Array.from({ length: 8 }, () => random.normal());
  const [z] = model.run([x]);
  for (let r = 0; r < 2; r++) {
    for (let o = 0; o < 3; o++) {
      let sum = 0;
      for (let k = 0; k < 4; k++) sum += x[r * 4 + k]! * w[o * 4 + k]!;
      const expected = Math.max(0, 0.5 * sum + 2 * c[o]!);
      assert.ok(Math.abs(z!.data[r * 3 + o]! - expected) < 1e-5, `${z!.data[r * 3 + o]} vs ${expected}`);
    }
  }
});

test('Conv followed by BatchNormalization is one conv2d layer, consecutive convs share one layout, the input is NHWC', () => {
  const random = new SeededRandom(4);
  const weights = (n: number): Float32Array => Float32Array.from({ length: n }, () => random.normal());
  const positive = (n: number): Float32Array => Float32Array.from({ length: n }, () => 0.5 + random.next());
  const model = load(
    buildModel({
      nodes: [
        {
          op: 'Conv',
          name: 'conv1',
          inputs: ['x', 'w1', 'b1'],
          outputs: ['c1'],
          attrs: { pads: [1, 1, 1, 1] },
        },
        { op: 'BatchNormalization', name: 'bn1', inputs: ['c1', 's', 'bb', 'm', 'v'], outputs: ['n1'] },
        { op: 'Conv', name: 'conv2', inputs: ['n1', 'w2'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dims: [1, 2, 5, 5] }],
      outputs: [{ name: 'y', dims: [1, 3, 5, 5] }],
      initializers: [
        floatTensor('w1', [4, 2, 3, 3], weights(72)),
        floatTensor('b1', [4], weights(4)),
        floatTensor('s', [4], positive(4)),
        floatTensor('bb', [4], weights(4)),
        floatTensor('m', [4], weights(4)),
        floatTensor('v', [4], positive(4)),
        floatTensor('w2', [3, 4, 1, 1], weights(12)),
      ],
    }),
  );
  assert.deepEqual(
    model.layers.map((l) => l.op),
    ['conv2d', 'conv2d', 'transpose'],
  );
  // The NCHW input is declared NHWC (its only reader was the NCHW->NHWC transpose); the 4-D output keeps
  // the ONNX layout, so one transpose stays there, reported with its reason.
  assert.equal(model.manifest.inputs[0]!.layout, 'NHWC');
  assert.deepEqual(model.specs[model.manifest.inputs[0]!.tensor]!.shape, [1, 5, 5, 2]);
});

test('Constant nodes are constants: Clip bounds as PyTorch writes a ReLU6', () => {
  const model = load(
    buildModel({
      nodes: [
        {
          op: 'Constant',
          name: 'lo',
          inputs: [],
          outputs: ['min'],
          attrs: { value: floatTensor('', [], [0]) },
        },
        {
          op: 'Constant',
          name: 'hi',
          inputs: [],
          outputs: ['max'],
          attrs: { value: floatTensor('', [], [6]) },
        },
        { op: 'Clip', name: 'relu6', inputs: ['x', 'min', 'max'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dims: [1, 4] }],
      outputs: [{ name: 'y', dims: [1, 4] }],
    }),
  );
  assert.deepEqual(
    model.layers.map((l) => l.op),
    ['clip'],
  );
  assert.deepEqual(Array.from(model.run([Float32Array.from([-1, 3, 7, 6])])[0]!.data), [0, 3, 6, 6]);
});

test('zero padding read by a Conv folds into its pads; a Pad elsewhere runs as a pad node', () => {
  const random = new SeededRandom(8);
  const w = Float32Array.from({ length: 2 * 2 * 3 * 3 }, () => random.normal());
  const convOf = (nodes: NodeSpec[], pads?: number[]): Model =>
    load(
      buildModel({
        nodes: [
          ...nodes,
          { op: 'Conv', name: 'conv', inputs: ['p', 'w'], outputs: ['y'], attrs: pads ? { pads } : {} },
        ],
        inputs: [{ name: 'x', dims: [1, 2, 5, 5] }],
        outputs: [{ name: 'y', dims: [1, 2, 5, 7] }],
        initializers: [floatTensor('w', [2, 2, 3, 3], w), intTensor('pads', [8], [0, 0, 1, 0, 0, 0, 1, 2])],
      }),
    );
  const padded = convOf([{ op: 'Pad', name: 'pad', inputs: ['x', 'pads'], outputs: ['p'] }], [0, 1, 0, 1]);
  const direct = convOf([{ op: 'Identity', name: 'same', inputs: ['x'], outputs: ['p'] }], [1, 1, 1, 3]);
  assert.deepEqual(padded.manifest.nodes.find((n) => n.op === 'conv2d')!.attrs.pads, [1, 1, 1, 3]);
  const x = Float32Array.from({ length: 50 }, () => random.normal());
  // The padded model's input is only read through the conv's layout transpose, so it is declared NHWC.
  const input = padded.manifest.inputs[0]!;
  assert.equal(input.layout, 'NHWC');
  const nhwc = inputInLayout(x, [1, 2, 5, 5], padded.specs[input.tensor]!.shape, input.layout);
  assert.deepEqual(padded.run([nhwc])[0]!.data, direct.run([x])[0]!.data);
  const relu = buildModel({
    nodes: [
      { op: 'Pad', name: 'lonely', inputs: ['x', 'pads'], outputs: ['p'] },
      { op: 'Relu', name: 'relu', inputs: ['p'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [1, 2, 5, 5] }],
    outputs: [{ name: 'y', dims: [1, 2, 7, 7] }],
    initializers: [intTensor('pads', [8], [0, 0, 1, 1, 0, 0, 1, 1])],
  });
  const lonely = load(relu);
  assert.deepEqual(
    lonely.manifest.nodes.map((n) => n.op),
    ['pad', 'clip'],
  );
  const y = lonely.run([x])[0]!.data;
  for (let c = 0; c < 2; c++)
    for (let i = 0; i < 7; i++)
      for (let j = 0; j < 7; j++) {
        const inside = i >= 1 && i <= 5 && j >= 1 && j <= 5;
        const expected = inside ? Math.max(0, x[(c * 5 + i - 1) * 5 + j - 1]!) : 0;
        assert.equal(y[(c * 7 + i) * 7 + j], expected, `channel ${c} (${i}, ${j})`);
      }
});

test('a file that is not ONNX and a Reshape with a runtime shape are refused with typed errors', () => {
  assert.throws(() => importOnnx(new Uint8Array([0xff, 0xff, 0xff, 0x01])), OnnxImportError);
  const bytes = buildModel({
    nodes: [{ op: 'Reshape', name: 'reshape', inputs: ['x', 'shape'], outputs: ['y'] }],
    inputs: [
      { name: 'x', dims: [2, 3] },
      { name: 'shape', dims: [2] },
    ],
    outputs: [{ name: 'y', dims: [3, 2] }],
  });
  assert.throws(() => importOnnx(bytes), /shape must be a constant/);
});

test('nn.Linear on an NHWC tensor with a tanh GELU and a layer scale: fully_connected layers, one gelu, the scale folded', () => {
  const random = new SeededRandom(5);
  const values = (n: number): Float32Array => Float32Array.from({ length: n }, () => random.normal());
  const [w1, b1, w2, b2, gamma] = [values(4 * 6), values(6), values(6 * 4), values(4), values(4)];
  const scalar = (name: string, v: number) => floatTensor(name, [], [v]);
  const node = (op: string, inputs: string[], out: string): NodeSpec => ({
    op,
    name: out,
    inputs,
    outputs: [out],
  });
  const model = load(
    buildModel({
      nodes: [
        node('MatMul', ['x', 'w1'], 'm1'),
        node('Add', ['b1', 'm1'], 'h'),
        // PyTorch's GELU(approximate='tanh') before opset 20.
        node('Pow', ['h', 'three'], 'cube'),
        node('Mul', ['cube', 'c'], 'cubic'),
        node('Add', ['h', 'cubic'], 'inner'),
        node('Mul', ['inner', 'k'], 'scaled'),
        node('Tanh', ['scaled'], 't'),
        node('Add', ['t', 'one'], 'gate'),
        node('Mul', ['h', 'gate'], 'product'),
        node('Mul', ['product', 'half'], 'g'),
        node('MatMul', ['g', 'w2'], 'm2'),
        node('Add', ['m2', 'b2'], 'o'),
        node('Mul', ['o', 'gamma'], 'y'),
      ],
      inputs: [{ name: 'x', dims: [1, 2, 3, 4] }],
      outputs: [{ name: 'y', dims: [1, 2, 3, 4] }],
      initializers: [
        floatTensor('w1', [4, 6], w1),
        floatTensor('b1', [6], b1),
        floatTensor('w2', [6, 4], w2),
        floatTensor('b2', [4], b2),
        floatTensor('gamma', [4], gamma),
        scalar('three', 3),
        scalar('c', 0.044715),
        scalar('k', Math.sqrt(2 / Math.PI)),
        scalar('one', 1),
        scalar('half', 0.5),
      ],
    }),
  );
  assert.deepEqual(
    model.manifest.nodes.map((n) => n.op),
    ['reshape', 'fully_connected', 'reshape', 'gelu', 'reshape', 'fully_connected', 'reshape'],
  );
  assert.equal(model.manifest.nodes[3]!.attrs.approximate, 'tanh');
  assert.deepEqual(model.execution.typescriptNodes, []);
  const x = values(24);
  const [y] = model.run([x]);
  for (let r = 0; r < 6; r++) {
    const hidden = Array.from({ length: 6 }, (_, j) => {
      let h = b1[j]!;
      for (let k = 0; k < 4; k++) h += x[r * 4 + k]! * w1[k * 6 + j]!;
      return 0.5 * h * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (h + 0.044715 * h ** 3)));
    });
    for (let o = 0; o < 4; o++) {
      let sum = b2[o]!;
      for (let j = 0; j < 6; j++) sum += hidden[j]! * w2[j * 4 + o]!;
      const expected = sum * gamma[o]!;
      assert.ok(Math.abs(y!.data[r * 4 + o]! - expected) < 1e-5, `${y!.data[r * 4 + o]} vs ${expected}`);
    }
  }
});
