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

test('zero padding read by a Conv folds into its pads; a Pad elsewhere is refused by name', () => {
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
  assert.throws(() => importOnnx(relu), /node "lonely" \(Pad\): the runtime has no pad op/);
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
