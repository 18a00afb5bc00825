// The conformance models' ops on the native plan (issue 14): ceil-mode max and average pooling (edge windows
// that hang over the input), sigmoid, hard_sigmoid, hard_swish, the SE block's channel-broadcast mul, the
// same-shape mul of SiLU, and slice / split along channels (ShuffleNet's halves); and those of DenseNet and
// Inception: a standalone batch norm (a 1x1 depthwise conv after compile) and a pad before an average pool
// (the pool's counted padding), in fp32 and int8, int8 averages rounding half to even. Each model runs on the
// native plan with no TypeScript node and agrees with the reference executors within 1e-5, with 1 and 2
// threads (int8: bit for bit); refused shapes (a mul broadcast the kernel does not take) keep the reference.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';

import * as ort from 'onnxruntime-node';

import type { ManifestNode } from '../../../agent/package/manifest.js';
import { readPackage } from '../../../agent/package/reader.js';
import { inputInLayout } from '../../../agent/runtime/compile/index.js';
import { Model } from '../../../agent/runtime/model.js';
import { EXECUTORS, OPS } from '../../../agent/runtime/ops/index.js';
import type { TensorSpec } from '../../../agent/runtime/tensor.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
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

test('a standalone batch norm and ReLU, pad + average pool: native in fp32 and int8, as ONNX Runtime', async () => {
  // DenseNet's pre-activation batch norm (no layer before it to fold into) and its transition's pad of
  // nothing before a 2x2 pool; Inception's pad of 1 before a 3x3 stride-1 pool (count_include_pad pooling).
  const c = 6;
  const options: Options = {
    nodes: [
      { op: 'Conv', name: 'conv', inputs: ['x', 'w'], outputs: ['v'], attrs: { pads: [1, 1, 1, 1] } },
      {
        op: 'MaxPool',
        name: 'max',
        inputs: ['v'],
        outputs: ['m'],
        attrs: { kernel_shape: [2, 2], strides: [1, 1] },
      },
      {
        op: 'BatchNormalization',
        name: 'bn',
        inputs: ['m', 'gamma', 'beta', 'mean', 'var'],
        outputs: ['n'],
        attrs: { epsilon: 1e-3 },
      },
      { op: 'Relu', name: 'relu', inputs: ['n'], outputs: ['r'] },
      { op: 'Pad', name: 'pad1', inputs: ['r', 'pads1'], outputs: ['p1'] },
      {
        op: 'AveragePool',
        name: 'pool1',
        inputs: ['p1'],
        outputs: ['a1'],
        attrs: { kernel_shape: [3, 3], strides: [1, 1] },
      },
      { op: 'Pad', name: 'pad0', inputs: ['a1', 'pads0'], outputs: ['p0'] },
      {
        op: 'AveragePool',
        name: 'pool0',
        inputs: ['p0'],
        outputs: ['y'],
        attrs: { kernel_shape: [2, 2], strides: [2, 2] },
      },
    ],
    inputs: [{ name: 'x', dims: [2, 3, 10, 9] }],
    outputs: [{ name: 'y', dims: [2, c, 4, 4] }],
    initializers: [
      floatTensor('w', [c, 3, 3, 3], normal(c * 27, 0.5)),
      floatTensor(
        'gamma',
        [c],
        normal(c, 0.5).map((v) => 1 + v),
      ),
      floatTensor('beta', [c], normal(c, 0.5)),
      floatTensor('mean', [c], normal(c, 0.5)),
      floatTensor(
        'var',
        [c],
        normal(c).map((v) => 0.5 + v * v),
      ),
      intTensor('pads1', [8], [0, 0, 1, 1, 0, 0, 1, 1]),
      intTensor('pads0', [8], [0, 0, 0, 0, 0, 0, 0, 0]),
    ],
    opset: 13,
  };
  const model = assertNative(options, ['conv2d', 'avg_pool']);
  assert.deepEqual(
    model.manifest.nodes.map((n) => n.op),
    ['conv2d', 'max_pool', 'conv2d', 'avg_pool', 'avg_pool', 'transpose'],
    'the batch norm is a conv with the ReLU as its clamp, the pads are the pools own',
  );
  const input = Float32Array.from(normal(2 * 3 * 10 * 9, 2));
  const session = await ort.InferenceSession.create(buildModel(options));
  const want = (await session.run({ x: new ort.Tensor('float32', input, [2, 3, 10, 9]) })).y!
    .data as Float32Array;
  // The package takes NHWC (its input's layout after import): the same image, transposed.
  const declared = model.manifest.inputs[0]!;
  const nhwc = (nchw: Float32Array) =>
    inputInLayout(
      nchw,
      [2, 3, 10, 9],
      model.manifest.tensors[declared.tensor]!.shape,
      declared.layout ?? 'NCHW',
    ) as Float32Array;
  const got = model.run([nhwc(input)])[0]!.data;
  want.forEach((v, i) => assert.ok(Math.abs(got[i]! - v) <= 1e-5, `[${i}]: ${got[i]} vs ONNX Runtime ${v}`));

  // int8: the batch norm's conv and both pools run native, bit for bit with the reference executors.
  const fp32 = readPackage(writePackage(importOnnx(buildModel(options)), keys.privateKey), {
    publicKey: keys.publicKey,
  });
  const calibration = Float32Array.from(normal(16 * 3 * 10 * 9, 2));
  const int8 = readPackage(
    writePackage(quantizePackage(fp32, { count: 16, data: calibration }).content, keys.privateKey),
    { publicKey: keys.publicKey },
  );
  const native = Model.fromPackage(int8, { threads: 2 });
  for (const op of ['qconv2d', 'avg_pool']) {
    const layers = native.layers.filter((l) => l.op === op);
    assert.ok(
      layers.length > 0 && layers.every((l) => l.kernel.startsWith('native:')),
      JSON.stringify(layers),
    );
  }
  assert.deepEqual(
    native.execution.typescriptNodes.filter((name) => !name.endsWith('/to_layout')),
    [],
    JSON.stringify(native.execution),
  );
  assert.deepEqual(
    Array.from(native.run([nhwc(input)])[0]!.data),
    Array.from(Model.fromPackage(int8, { referenceOnly: true }).run([nhwc(input)])[0]!.data),
  );
});

/** The int8 avg_pool executors (native and reference) of one node over x [1][H][W][1] (zero point zp). */
function int8AvgPool(attrs: ManifestNode['attrs'], shape: number[], zeroPoint: number) {
  const entry = EXECUTORS.find((e) => e.op === 'avg_pool' && e.format === 'int8')!;
  const x: TensorSpec = { dtype: 'i8', shape, quant: { scale: [0.1], zeroPoint: [zeroPoint] } };
  const node: ManifestNode = {
    name: 'pool',
    op: 'avg_pool',
    format: 'int8',
    inputs: [0],
    outputs: [1],
    attrs,
  };
  const [y] = OPS.avg_pool!.infer(node, [x], []) as [TensorSpec];
  const context = { node, format: 'int8' as const, inputs: [x], outputs: [y], constants: [undefined] };
  const run = (executor: ReturnType<typeof entry.reference>, data: Int8Array) => {
    const out = new Int8Array(y.shape.reduce((p, d) => p * d, 1));
    executor.run([data], [out]);
    return Array.from(out);
  };
  const native = entry.native!(context);
  assert.ok(native?.kernel.startsWith('native:'), native?.kernel);
  return {
    native: (data: Int8Array) => run(native!, data),
    reference: (data: Int8Array) => run(entry.reference(context), data),
  };
}

test('int8 average pooling rounds ties to even and counts padding as the zero point, native = reference', () => {
  // 2x2 windows whose sums are exact halves: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2 (TFLite would give 3, 4, -3).
  const ties = int8AvgPool({ kernel: [2, 2], strides: [2, 2] }, [1, 2, 6, 1], 0);
  const data = Int8Array.from([2, 2, 3, 3, -2, -2, 2, 4, 3, 5, -2, -4]);
  assert.deepEqual(ties.reference(data), [2, 4, -2]);
  assert.deepEqual(ties.native(data), [2, 4, -2]);
  // count_include_pad: a 3x3 window over a 2x2 input padded by 1, zero point 10, every pixel 20: four pixels
  // and five padded real zeros (10 each) average to 130 / 9 = 14.4 -> 14.
  const counted = int8AvgPool(
    { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], count_include_pad: 1 },
    [1, 2, 2, 1],
    10,
  );
  const flat = Int8Array.from([20, 20, 20, 20]);
  assert.deepEqual(counted.reference(flat), [14, 14, 14, 14]);
  assert.deepEqual(counted.native(flat), [14, 14, 14, 14]);
  // Random data, both paddings, windows with and without ties: bit for bit.
  const cases: [ManifestNode['attrs'], number][] = [
    [{ kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], count_include_pad: 1 }, -7],
    [{ kernel: [3, 3], strides: [2, 2], pads: [1, 0, 1, 1] }, 5],
    [{ kernel: [2, 2], strides: [2, 2] }, 0],
  ];
  for (const [attrs, zeroPoint] of cases) {
    const pool = int8AvgPool(attrs, [1, 9, 10, 1], zeroPoint);
    for (let k = 0; k < 20; k++) {
      const x = Int8Array.from({ length: 90 }, () => Math.floor(random.next() * 256) - 128);
      assert.deepEqual(pool.native(x), pool.reference(x), JSON.stringify(attrs));
    }
  }
});
