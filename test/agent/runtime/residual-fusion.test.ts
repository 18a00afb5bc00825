// Conv + residual add fusion (compile/fuse.ts, ops/residual.ts, the conv drivers' output stage): every fused
// path (native plan, native node by node, the fused node's reference executor) against the unfused reference
// graph (compile: false, reference executors): fp32 within 1e-5, int8 bit-exact. 1x1, 3x3 and depthwise
// convs; per-tensor and per-channel int8 weights, int8 and uint8 activations; with and without a ReLU after
// the add. And the graphs where fusion must not happen, which stay unfused and are reported.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import type { TensorQuantization } from '../../../agent/package/manifest.js';
import type { Package } from '../../../agent/package/reader.js';
import { Model, type ModelOptions } from '../../../agent/runtime/model.js';
import type { TensorData } from '../../../agent/runtime/tensor.js';
import { formatInspectReport, inspectPackage } from '../../../electron/commands/inspect.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { GraphBuilder } from '../../../optimize/package/graph-builder.js';
import type { PackageContent } from '../../../optimize/package/writer.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { buildModel, floatTensor, type NodeSpec } from '../../optimize/onnx/build-model.js';
import { maxDiff, quantized, randomImages, toPackage } from './compile-fixtures.js';

const C = 8;
const SIDE = 6;

interface ConvKind {
  name: string;
  kernel: number;
  groups: number;
}

const CONVS: readonly ConvKind[] = [
  { name: '1x1', kernel: 1, groups: 1 },
  { name: '3x3', kernel: 3, groups: 1 },
  { name: 'depthwise 3x3', kernel: 3, groups: C },
];

type Format = 'f32' | 'int8 per-tensor' | 'int8 per-channel' | 'uint8 per-channel';

function values(n: number, seed: number, lo: number, hi: number, integer: boolean): number[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: n }, () => {
    const v = lo + random.next() * (hi - lo);
    return integer ? Math.round(v) : v;
  });
}

const finish = (b: GraphBuilder, x: number, y: number): PackageContent =>
  b.finish([{ name: 'x', tensor: x, layout: 'NHWC' }], [{ name: 'y', tensor: y }], { id: 't', version: '1' });

/** x -> stem conv (a) -> the conv under test (y) -> add(y, a) [-> relu]: the addend a is computed before the
 * conv, which is the add's only reader. */
function residualBlock(conv: ConvKind, format: Format, relu: boolean): PackageContent {
  const b = new GraphBuilder();
  const int8 = format !== 'f32';
  const dtype = format.startsWith('uint8') ? 'u8' : 'i8';
  const q = (scale: number, zeroPoint: number): TensorQuantization => ({
    scale: [scale],
    zeroPoint: [zeroPoint],
  });
  const zero = dtype === 'u8' ? 128 : 0;
  const x = b.addTensor('x', {
    dtype: int8 ? dtype : 'f32',
    shape: [1, SIDE, SIDE, C],
    ...(int8 ? { quant: q(0.05, zero + 3) } : {}),
  });
  const pad = (conv.kernel - 1) / 2;
  const layer = (name: string, input: number, kind: ConvKind, seed: number, out: TensorQuantization) => {
    const inC = C / kind.groups;
    const shape = [C, kind.kernel, kind.kernel, inC];
    const n = C * kind.kernel * kind.kernel * inC;
    const attrs = { groups: kind.groups, pads: [pad, pad, pad, pad].map(() => (kind.kernel - 1) / 2) };
    if (!int8) {
      const w = b.constant(`${name}.w`, 'f32', shape, values(n, seed, -0.5, 0.5, false));
      const bias = b.constant(`${name}.b`, 'f32', [C], values(C, seed + 1, -0.5, 0.5, false));
      return b.emit(name, 'conv2d', 'f32', [input, w, bias], attrs)[0]!;
    }
    const scales = format === 'int8 per-tensor' ? [0.01] : values(C, seed + 2, 0.004, 0.02, false);
    const w = b.constant(`${name}.w`, 'i8', shape, values(n, seed, -127, 127, true), {
      scale: scales,
      zeroPoint: scales.map(() => 0),
      ...(scales.length > 1 ? { axis: 0 } : {}),
    });
    const bias = b.constant(`${name}.b`, 'i32', [C], values(C, seed + 1, -300, 300, true));
    return b.emit(name, 'qconv2d', 'int8', [input, w, bias], attrs, [{ dtype, quant: out }])[0]!;
  };
  const stem: ConvKind = { name: 'stem', kernel: 3, groups: 1 };
  const a = layer('stem', x, stem, 1, q(0.04, zero - 5));
  const y = layer('conv', a, conv, 11, q(0.03, zero + 7));
  let sum: number;
  if (int8) {
    sum = b.emit('add', 'qadd', 'int8', [y, a], {}, [{ dtype, quant: q(0.06, zero - 2) }])[0]!;
  } else {
    sum = b.emit('add', 'add', 'f32', [y, a], {})[0]!;
  }
  if (!relu) return finish(b, x, sum);
  const min = int8 ? zero - 2 : 0;
  const [r] = b.emit('relu', 'clip', int8 ? 'int8' : 'f32', [sum], { min }, [
    int8 ? { dtype, quant: q(0.06, zero - 2) } : {},
  ]);
  return finish(b, x, r!);
}

function inputOf(pkg: Package, seed: number): TensorData {
  const spec = pkg.manifest.tensors[pkg.manifest.inputs[0]!.tensor]!;
  const n = spec.shape.reduce((p, d) => p * d, 1);
  if (spec.dtype === 'f32') return Float32Array.from(values(n, seed, -1, 1, false));
  if (spec.dtype === 'u8') return Uint8Array.from(values(n, seed, 0, 255, true));
  return Int8Array.from(values(n, seed, -128, 127, true));
}

const run = (pkg: Package, input: TensorData, options: ModelOptions): TensorData =>
  Model.fromPackage(pkg, options).run([input])[0]!.data;

describe('conv + residual add fusion against the unfused reference', () => {
  for (const conv of CONVS)
    for (const format of ['f32', 'int8 per-tensor', 'int8 per-channel', 'uint8 per-channel'] as const)
      for (const relu of [false, true]) {
        test(`${conv.name}, ${format}, ${relu ? 'ReLU after the add' : 'no activation'}`, () => {
          const pkg = toPackage(residualBlock(conv, format, relu));
          const fused = Model.fromPackage(pkg);
          assert.deepEqual(
            fused.manifest.nodes.map((n) => n.op),
            format === 'f32' ? ['conv2d', 'conv2d'] : ['qconv2d', 'qconv2d'],
          );
          assert.deepEqual(fused.compileReport.fused, [
            { node: 'add', into: 'conv' },
            ...(relu ? [{ node: 'relu', into: 'conv' }] : []),
          ]);
          assert.deepEqual(fused.compileReport.notFused, []);
          // The fused conv runs on the native kernel with its addend, inside the plan.
          const layer = fused.layers.find((l) => l.name === 'conv')!;
          assert.match(layer.kernel, /^native:.*\+add$/);
          assert.deepEqual(fused.execution.refused, []);
          const input = inputOf(pkg, 7);
          const reference = run(pkg, input, { compile: false, referenceOnly: true });
          const paths: [string, TensorData][] = [
            ['native plan', fused.run([input])[0]!.data],
            ['native node by node', run(pkg, input, { nodeByNode: true })],
            ['fused reference executors', run(pkg, input, { referenceOnly: true })],
            ['unfused, native', run(pkg, input, { fuseResidual: false })],
          ];
          for (const [path, out] of paths) {
            if (format === 'f32') {
              const diff = maxDiff(out, reference);
              assert.ok(diff < 1e-5, `${path}: max diff ${diff}`);
            } else {
              assert.deepEqual(out, reference, path);
            }
          }
          if (relu) {
            const min = format === 'f32' ? 0 : format.startsWith('uint8') ? 126 : -2;
            assert.ok(Array.from(reference).every((v) => v >= min));
            assert.ok(
              Array.from(reference).some((v) => v === min),
              'the ReLU clamps something',
            );
          }
        });
      }

  test('batch 3, 2 threads: the native plan matches the unfused reference bit for bit (int8)', () => {
    const pkg = toPackage(residualBlock(CONVS[1]!, 'int8 per-channel', true));
    const images = 3;
    const one = inputOf(pkg, 1);
    const input = new Int8Array(one.length * images);
    for (let k = 0; k < images; k++) input.set(inputOf(pkg, 10 + k), k * one.length);
    const fused = run(pkg, input, { batch: images, threads: 2 });
    const reference = run(pkg, input, { batch: images, compile: false, referenceOnly: true, threads: 1 });
    assert.deepEqual(fused, reference);
  });
});

describe('residual adds that must not fuse stay apart and are reported', () => {
  const f32Conv = (b: GraphBuilder, name: string, input: number, seed: number): number => {
    const w = b.constant(`${name}.w`, 'f32', [C, 1, 1, C], values(C * C, seed, -0.5, 0.5, false));
    return b.emit(name, 'conv2d', 'f32', [input, w, -1], {})[0]!;
  };

  const cases: { name: string; build: (b: GraphBuilder, x: number) => number; why: RegExp }[] = [
    {
      name: 'a broadcasting add',
      build: (b, x) => {
        const y = f32Conv(b, 'conv', x, 1);
        const bias = b.constant('bias', 'f32', [1, 1, 1, C], values(C, 2, -1, 1, false));
        return b.emit('add', 'add', 'f32', [y, bias], {})[0]!;
      },
      why: /^residual add not fused: conv: the add broadcasts \[1, 1, 1, 8\] to \[1, 6, 6, 8\]$/,
    },
    {
      name: 'an add whose other operand is computed after the conv',
      build: (b, x) => {
        const y = f32Conv(b, 'conv', x, 1);
        const [later] = b.emit('later', 'clip', 'f32', [x], { min: 0 });
        return b.emit('add', 'add', 'f32', [y, later!], {})[0]!;
      },
      why: /^residual add not fused: conv: the other operand \(later\.out\) is computed after conv$/,
    },
    {
      name: 'a conv output with two readers',
      build: (b, x) => {
        const a = f32Conv(b, 'stem', x, 3);
        const y = f32Conv(b, 'conv', a, 1);
        const [sum] = b.emit('add', 'add', 'f32', [y, a], {});
        const [other] = b.emit('other', 'clip', 'f32', [y], { max: 1 });
        return b.emit('join', 'mul', 'f32', [sum!, other!], {})[0]!;
      },
      why: /^residual add not fused: conv: its output has another reader \(or is a graph output\); stem: .*/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const b = new GraphBuilder();
      const x = b.addTensor('x', { dtype: 'f32', shape: [1, SIDE, SIDE, C] });
      const content = finish(b, x, c.build(b, x));
      const pkg = toPackage(content);
      const model = Model.fromPackage(pkg);
      assert.ok(
        model.manifest.nodes.some((n) => n.op === 'add'),
        'the add stays',
      );
      assert.ok(
        model.manifest.nodes.every((n) => (n.inputs[3] ?? -1) < 0),
        'no conv takes an addend',
      );
      const notFused = model.compileReport.notFused.filter((f) => f.node === 'add');
      assert.equal(notFused.length, 1);
      assert.match(notFused[0]!.why, c.why);
      const input = inputOf(pkg, 3);
      const diff = maxDiff(
        model.run([input])[0]!.data,
        run(pkg, input, { compile: false, referenceOnly: true }),
      );
      assert.ok(diff < 1e-5, String(diff));
      // `whittle inspect` shows it.
      const dir = mkdtempSync(join(tmpdir(), 'whittle-residual-'));
      try {
        const file = join(dir, 'model.whittle');
        writeFileSync(file, writePackage(content, generateKeyPairSync('ed25519').privateKey));
        const text = formatInspectReport(inspectPackage(file));
        assert.match(text, new RegExp(`not fused {7}add: residual add not fused: conv: `));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test('fuseResidual: false keeps conv and add apart and says so', () => {
    const pkg = toPackage(residualBlock(CONVS[0]!, 'f32', true));
    const model = Model.fromPackage(pkg, { fuseResidual: false });
    assert.deepEqual(
      model.manifest.nodes.map((n) => n.op),
      ['conv2d', 'conv2d', 'add', 'clip'],
    );
    assert.deepEqual(model.compileReport.notFused, [
      { node: 'add', why: 'residual add fusion is off (fuseResidual: false)' },
    ]);
  });

  test('a conv node with an addend it cannot take is refused with a clear error', () => {
    const b = new GraphBuilder();
    const x = b.addTensor('x', { dtype: 'f32', shape: [1, SIDE, SIDE, C] });
    const other = b.addTensor('other', { dtype: 'f32', shape: [1, SIDE, SIDE, 4] });
    const w = b.constant('w', 'f32', [C, 1, 1, C], values(C * C, 1, -0.5, 0.5, false));
    assert.throws(
      () => b.emit('conv', 'conv2d', 'f32', [x, w, -1, other], {}),
      /the addend must be f32 \[1, 6, 6, 8\] like the output, got f32 \[1, 6, 6, 4\]/,
    );
    const xi = b.addTensor('xi', {
      dtype: 'i8',
      shape: [1, 2, 2, 2],
      quant: { scale: [0.1], zeroPoint: [0] },
    });
    const wi = b.constant('wi', 'i8', [2, 1, 1, 2], [1, 2, 3, 4], { scale: [0.1], zeroPoint: [0] });
    assert.throws(
      () =>
        b.emit('qconv', 'qconv2d', 'int8', [xi, wi, -1, xi], {}, [
          { dtype: 'i8', quant: { scale: [0.1], zeroPoint: [0] } },
        ]),
      /an int8 conv with an addend needs conv_scale > 0 and an integer conv_zero_point/,
    );
  });
});

/** A ResNet basic-block network as PyTorch exports it (NCHW): a stem, an identity block and a downsampling
 * block (stride 2, 1x1 projection on the shortcut), each conv followed by batch norm, the adds by ReLU. */
function resnetOnnx(): Uint8Array {
  const nodes: NodeSpec[] = [];
  const initializers: ReturnType<typeof floatTensor>[] = [];
  let seed = 100;
  const conv = (
    name: string,
    x: string,
    cin: number,
    cout: number,
    k: number,
    stride: number,
    relu: boolean,
  ) => {
    const w = floatTensor(
      `${name}.w`,
      [cout, cin, k, k],
      values(cout * cin * k * k, seed++, -0.3, 0.3, false),
    );
    const bn = ['scale', 'bias', 'mean', 'var'].map((p) =>
      floatTensor(
        `${name}.bn.${p}`,
        [cout],
        values(
          cout,
          seed++,
          p === 'var' || p === 'scale' ? 0.5 : -0.2,
          p === 'var' || p === 'scale' ? 1.5 : 0.2,
          false,
        ),
      ),
    );
    initializers.push(w, ...bn);
    const p = (k - 1) / 2;
    nodes.push({
      op: 'Conv',
      name,
      inputs: [x, `${name}.w`],
      outputs: [`${name}.y`],
      attrs: { kernel_shape: [k, k], strides: [stride, stride], pads: [p, p, p, p] },
    });
    nodes.push({
      op: 'BatchNormalization',
      name: `${name}.bn`,
      inputs: [`${name}.y`, ...['scale', 'bias', 'mean', 'var'].map((p) => `${name}.bn.${p}`)],
      outputs: [`${name}.n`],
    });
    if (!relu) return `${name}.n`;
    nodes.push({ op: 'Relu', name: `${name}.relu`, inputs: [`${name}.n`], outputs: [`${name}.r`] });
    return `${name}.r`;
  };
  const add = (name: string, a: string, b: string) => {
    nodes.push({ op: 'Add', name, inputs: [a, b], outputs: [`${name}.y`] });
    nodes.push({ op: 'Relu', name: `${name}.relu`, inputs: [`${name}.y`], outputs: [`${name}.r`] });
    return `${name}.r`;
  };
  const stem = conv('stem', 'x', 3, 16, 3, 1, true);
  const b1 = conv('block1.conv2', conv('block1.conv1', stem, 16, 16, 3, 1, true), 16, 16, 3, 1, false);
  const r1 = add('block1.add', b1, stem);
  const b2 = conv('block2.conv2', conv('block2.conv1', r1, 16, 32, 3, 2, true), 32, 32, 3, 1, false);
  const shortcut = conv('block2.downsample', r1, 16, 32, 1, 2, false);
  const r2 = add('block2.add', b2, shortcut);
  nodes.push({ op: 'GlobalAveragePool', name: 'pool', inputs: [r2], outputs: ['pooled'] });
  nodes.push({ op: 'Flatten', name: 'flatten', inputs: ['pooled'], outputs: ['flat'] });
  const fc = floatTensor('fc.w', [10, 32], values(320, seed++, -0.3, 0.3, false));
  initializers.push(fc);
  nodes.push({
    op: 'Gemm',
    name: 'fc',
    inputs: ['flat', 'fc.w'],
    outputs: ['logits'],
    attrs: { transB: 1 },
  });
  return buildModel({
    nodes,
    inputs: [{ name: 'x', dims: [1, 3, 12, 12] }],
    outputs: [{ name: 'logits', dims: [1, 10] }],
    initializers,
  });
}

describe('a ResNet-style network imported from ONNX', () => {
  const fp32 = toPackage(importOnnx(resnetOnnx(), { source: 'resnet-blocks.onnx' }));
  const int8 = quantized(fp32);
  for (const [format, pkg] of [
    ['fp32', fp32],
    ['int8', int8],
  ] as const) {
    test(`${format}: both residual adds and their ReLUs fuse; fused = unfused reference`, () => {
      const model = Model.fromPackage(pkg);
      // The identity block's add goes to its second conv, the downsampling block's to the 1x1 shortcut
      // conv (computed after the main path, which the add's other operand then is).
      const into = new Map(model.compileReport.fused.map((f) => [f.node, f.into]));
      assert.deepEqual(
        ['block1.add', 'block2.add'].map((add) => into.get(add)),
        ['block1.conv2', 'block2.downsample'],
        JSON.stringify(model.compileReport.fused),
      );
      assert.equal(model.compileReport.notFused.length, 0, JSON.stringify(model.compileReport.notFused));
      assert.ok(!model.manifest.nodes.some((n) => n.op === 'add' || n.op === 'qadd'), 'no add node left');
      assert.ok(!model.manifest.nodes.some((n) => n.op === 'clip'), 'the ReLUs after the adds folded too');
      const input = randomImages(3 * 12 * 12, 1, 5);
      const reference = run(pkg, input, { compile: false, referenceOnly: true });
      for (const options of [{}, { nodeByNode: true }, { referenceOnly: true }] as ModelOptions[]) {
        const out = run(pkg, input, options);
        if (format === 'fp32') assert.ok(maxDiff(out, reference) < 1e-5, String(maxDiff(out, reference)));
        else assert.deepEqual(out, reference, JSON.stringify(options));
      }
    });
  }
});
