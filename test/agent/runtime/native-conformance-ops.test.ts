// The conformance models' ops on the native plan (issue 14): ceil-mode max and average pooling (edge windows
// that hang over the input), sigmoid, hard_sigmoid, hard_swish, the SE block's channel-broadcast mul, the
// same-shape mul of SiLU, and slice / split along channels (ShuffleNet's halves). Each model runs on the
// native plan with no TypeScript node and agrees with the reference executors within 1e-5, with 1 and 2
// threads; refused shapes (a mul broadcast the kernel does not take) keep the reference.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';

import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { buildModel, floatTensor, intTensor } from '../../optimize/onnx/build-model.js';

const keys = generateKeyPairSync('ed25519');
const random = new SeededRandom(14);
const normal = (n: number, scale = 1): number[] => Array.from({ length: n }, () => random.normal() * scale);

type Options = Parameters<typeof buildModel>[0];

/** Imports the model, checks that `ops` run on native kernels and no node but the output's layout transpose
 * runs on TypeScript, and compares
 * the native plan's output with the reference executors' (1 and 2 threads). */
function assertNative(options: Options, ops: string[], inputScale = 3): Model {
  const pkg = readPackage(writePackage(importOnnx(buildModel(options)), keys.privateKey), {
    publicKey: keys.publicKey,
  });
  const input = Float32Array.from(
    normal(
      options.inputs[0]!.dims.reduce<number>((p, d) => p * +d, 1),
      inputScale,
    ),
  );
  const expected = Model.fromPackage(pkg, { referenceOnly: true }).run([input]);
  let last: Model | undefined;
  for (const threads of [1, 2]) {
    const model = Model.fromPackage(pkg, { threads });
    for (const op of ops) {
      const layers = model.layers.filter((l) => l.op === op);
      assert.ok(layers.length > 0, `no ${op} layer in ${JSON.stringify(model.layers.map((l) => l.op))}`);
      assert.ok(
        layers.every((l) => l.kernel.startsWith('native:')),
        JSON.stringify(layers.map((l) => [l.op, l.kernel])),
      );
    }
    // The one TypeScript node allowed: the transpose of the graph's NHWC output back to ONNX's NCHW.
    assert.deepEqual(
      model.execution.typescriptNodes.filter((name) => !name.endsWith('/to_layout#1')),
      [],
      JSON.stringify(model.execution),
    );
    assert.deepEqual(model.execution.refused, []);
    const actual = model.run([input]);
    assert.equal(actual.length, expected.length);
    actual.forEach((tensor, k) => {
      const want = expected[k]!.data;
      assert.equal(tensor.data.length, want.length);
      for (let i = 0; i < want.length; i++) {
        assert.ok(
          Math.abs(tensor.data[i]! - want[i]!) <= 1e-5 * Math.max(1, Math.abs(want[i]!)),
          `output ${k} [${i}]: ${tensor.data[i]} vs ${want[i]} (threads ${threads})`,
        );
      }
    });
    last = model;
  }
  return last!;
}

test('ceil-mode max and average pooling run native, edge windows included', () => {
  // Sizes where ceil and floor differ (GoogLeNet's 3x3 stride 2 over an even size, SqueezeNet's odd one), with
  // and without explicit padding, and a 2x2 stride 2 over an odd size (a last window of one column).
  for (const [size, kernel, stride, pads] of [
    [12, 3, 2, [0, 0, 0, 0]],
    [13, 3, 2, [0, 0, 0, 0]],
    [9, 2, 2, [0, 0, 0, 0]],
    [10, 3, 2, [1, 1, 1, 1]],
    [11, 3, 3, [1, 0, 0, 1]],
  ] as const) {
    for (const op of ['MaxPool', 'AveragePool']) {
      assertNative(
        {
          nodes: [
            {
              op,
              name: 'pool',
              inputs: ['x'],
              outputs: ['y'],
              attrs: {
                kernel_shape: [kernel, kernel],
                strides: [stride, stride],
                pads: [...pads],
                ceil_mode: 1,
              },
            },
          ],
          inputs: [{ name: 'x', dims: [2, 5, size, size + 1] }],
          outputs: [{ name: 'y', dims: ['n', 5, 'h', 'w'] }],
        },
        [op === 'MaxPool' ? 'max_pool' : 'avg_pool'],
      );
    }
  }
});

test('sigmoid, hard_sigmoid, hard_swish and the SE block run native', () => {
  const c = 16;
  assertNative(
    {
      nodes: [
        { op: 'Conv', name: 'conv', inputs: ['x', 'w', 'b'], outputs: ['c'], attrs: { pads: [1, 1, 1, 1] } },
        { op: 'HardSwish', name: 'hswish', inputs: ['c'], outputs: ['h'] },
        // The SE block: squeeze, excite, hard-sigmoid gate, channel-broadcast multiply.
        { op: 'GlobalAveragePool', name: 'gap', inputs: ['h'], outputs: ['g'] },
        { op: 'Conv', name: 'fc1', inputs: ['g', 'w1', 'b1'], outputs: ['f1'] },
        { op: 'Relu', name: 'relu', inputs: ['f1'], outputs: ['r1'] },
        { op: 'Conv', name: 'fc2', inputs: ['r1', 'w2', 'b2'], outputs: ['f2'] },
        {
          op: 'HardSigmoid',
          name: 'gate',
          inputs: ['f2'],
          outputs: ['s'],
          attrs: { alpha: 1 / 6, beta: 0.5 },
        },
        { op: 'Mul', name: 'scale', inputs: ['h', 's'], outputs: ['m'] },
        // EfficientNet's SiLU: x * sigmoid(x), a same-shape mul (operands in the other order).
        { op: 'Sigmoid', name: 'sigmoid', inputs: ['m'], outputs: ['sg'] },
        { op: 'Mul', name: 'silu', inputs: ['sg', 'm'], outputs: ['y0'] },
        // ONNX HardSigmoid's own defaults (alpha 0.2).
        { op: 'HardSigmoid', name: 'hsig', inputs: ['y0'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dims: [2, 3, 9, 7] }],
      outputs: [{ name: 'y', dims: [2, c, 9, 7] }],
      initializers: [
        floatTensor('w', [c, 3, 3, 3], normal(c * 27, 0.5)),
        floatTensor('b', [c], normal(c)),
        floatTensor('w1', [4, c, 1, 1], normal(4 * c, 0.5)),
        floatTensor('b1', [4], normal(4)),
        floatTensor('w2', [c, 4, 1, 1], normal(4 * c, 0.5)),
        floatTensor('b2', [c], normal(c)),
      ],
      opset: 14,
    },
    ['hard_swish', 'hard_sigmoid', 'sigmoid', 'mul'],
  );
});

test('slice and split along channels, then concat, run native (ShuffleNet v2 halves)', () => {
  const model = assertNative(
    {
      nodes: [
        { op: 'Split', name: 'split', inputs: ['x', 'sizes'], outputs: ['a', 'b'], attrs: { axis: 1 } },
        { op: 'Relu', name: 'relu', inputs: ['b'], outputs: ['rb'] },
        { op: 'Concat', name: 'cat', inputs: ['a', 'rb'], outputs: ['c'], attrs: { axis: 1 } },
        { op: 'Slice', name: 'slice', inputs: ['c', 'starts', 'ends', 'axes'], outputs: ['s'] },
        // A slice along the width: rows of runs shorter than a pixel row.
        { op: 'Slice', name: 'slice_w', inputs: ['s', 'wstarts', 'wends', 'waxes'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dims: [2, 10, 5, 6] }],
      outputs: [{ name: 'y', dims: [2, 7, 5, 4] }],
      initializers: [
        intTensor('sizes', [2], [4, 6]),
        intTensor('starts', [1], [2]),
        intTensor('ends', [1], [9]),
        intTensor('axes', [1], [1]),
        intTensor('wstarts', [1], [1]),
        intTensor('wends', [1], [-1]),
        intTensor('waxes', [1], [3]),
      ],
    },
    ['split', 'slice'],
  );
  assert.ok(model.execution.nativeSteps >= 5);
});

test('a mul broadcast the native kernel does not take (over the height only) keeps the reference', () => {
  const pkg = readPackage(
    writePackage(
      importOnnx(
        buildModel({
          nodes: [{ op: 'Mul', name: 'mul', inputs: ['x', 'k'], outputs: ['y'] }],
          inputs: [{ name: 'x', dims: [1, 3, 4, 5] }],
          outputs: [{ name: 'y', dims: [1, 3, 4, 5] }],
          initializers: [floatTensor('k', [1, 1, 4, 1], normal(4))],
        }),
      ),
      keys.privateKey,
    ),
    { publicKey: keys.publicKey },
  );
  const model = Model.fromPackage(pkg, { threads: 1 });
  const mul = model.layers.filter((l) => l.op === 'mul');
  assert.equal(mul.length, 1);
  assert.ok(mul[0]!.kernel.startsWith('reference:'), mul[0]!.kernel);
  const input = Float32Array.from(normal(60));
  assert.deepEqual(
    Array.from(model.run([input])[0]!.data),
    Array.from(Model.fromPackage(pkg, { referenceOnly: true }).run([input])[0]!.data),
  );
});
