// The compile pass (agent/runtime/compile/) on the zoo models exported to ONNX: the compiled graph has no
// transpose left and computes what the uncompiled graph computes (fp32 within rounding, int8 bit-exact);
// and on hand-built graphs: fusions, constants folded, a graph it cannot resolve still runs and says why.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import type { Package } from '../../../agent/package/reader.js';
import { Model, type ModelOptions } from '../../../agent/runtime/model.js';
import { formatInspectReport, inspectPackage } from '../../../electron/commands/inspect.js';
import { GraphBuilder } from '../../../optimize/package/graph-builder.js';
import { writePackage } from '../../../optimize/package/writer.js';
import {
  importBoth,
  maxDiff,
  nchwToNhwc,
  quantized,
  randomImages,
  toPackage,
  ZOO_CASES,
  zooOnnx,
} from './compile-fixtures.js';

const transposes = (model: Model): number => model.manifest.nodes.filter((n) => n.op === 'transpose').length;

function run(pkg: Package, input: Float32Array, options: ModelOptions): Float32Array {
  const model = Model.fromPackage(pkg, options);
  return model.run([input])[0]!.data as Float32Array;
}

describe('compile pass on the zoo models exported to ONNX', () => {
  for (const zoo of ZOO_CASES) {
    test(`${zoo.name}: no transpose left, same outputs in f32 and int8`, async () => {
      const { stored, compiled } = importBoth(await zooOnnx(zoo), `${zoo.name}.onnx`);
      const [, c, h, w] = stored.manifest.tensors[stored.manifest.inputs[0]!.tensor]!.shape;
      const nchw = randomImages(c! * h! * w!, 1, 7);
      const nhwc = nchwToNhwc(nchw, 1, c!, h!, w!);

      // Stored by the importer: NHWC input, no transpose, activations fused.
      const imported = Model.fromPackage(compiled, { compile: false });
      assert.equal(transposes(imported), 0, 'transposes stored by the importer');
      assert.equal(compiled.manifest.inputs[0]!.layout, 'NHWC');
      // An old package compiled at load keeps its NCHW input: one transpose there and none after.
      const loaded = Model.fromPackage(stored);
      assert.ok(
        Model.fromPackage(stored, { compile: false }).manifest.nodes.some((n) => n.op === 'transpose'),
      );
      assert.equal(transposes(loaded), 1, loaded.compileReport.transposesLeft.map((t) => t.why).join('; '));
      assert.equal(loaded.compileReport.transposesLeft.length, 1);
      // Idempotent: a compiled package compiles to itself.
      assert.deepEqual(Model.fromPackage(compiled).manifest.nodes, compiled.manifest.nodes);

      const reference = run(stored, nchw, { compile: false, referenceOnly: true });
      const scale = Math.max(...reference.map(Math.abs), 1e-3);
      for (const [what, out] of [
        ['imported', run(compiled, nhwc, {})],
        ['imported, reference kernels', run(compiled, nhwc, { referenceOnly: true })],
        ['loaded', run(stored, nchw, {})],
      ] as const)
        assert.ok(maxDiff(out, reference) <= 1e-4 * scale, `${what}: ${maxDiff(out, reference)} vs ${scale}`);

      // int8: an old int8 package (transposes, clip unfused) compiled at load is bit-exact with itself
      // uncompiled, on the native kernels and on the reference; the compiled import quantizes with every
      // ReLU fused into its qconv2d and no transpose.
      const storedInt8 = quantized(stored);
      const int8Reference = run(storedInt8, nchw, { compile: false, referenceOnly: true });
      assert.deepEqual(run(storedInt8, nchw, { referenceOnly: true }), int8Reference);
      assert.deepEqual(run(storedInt8, nchw, {}), run(storedInt8, nchw, { compile: false }));
      const compiledInt8 = quantized(compiled);
      const int8 = Model.fromPackage(compiledInt8, { compile: false });
      assert.equal(transposes(int8), 0);
      assert.ok(!int8.manifest.nodes.some((n) => n.op === 'clip'), 'every clip fused into a layer');
      assert.deepEqual(run(compiledInt8, nhwc, {}), run(compiledInt8, nhwc, { compile: false }));
      const int8Out = run(compiledInt8, nhwc, {});
      assert.ok(maxDiff(int8Out, reference) <= 0.25 * scale, `int8 vs fp32: ${maxDiff(int8Out, reference)}`);
    });
  }
});

describe('compile pass on hand-built graphs', () => {
  const random = (n: number, seed: number): number[] => Array.from(randomImages(n, 1, seed), (v) => v - 0.5);

  test('conv + batch norm + clip fuse into one conv; a constant addend is permuted once', () => {
    const b = new GraphBuilder();
    const x = b.addTensor('x', { dtype: 'f32', shape: [1, 4, 4, 2] });
    const w = b.constant('w', 'f32', [3, 1, 1, 2], random(6, 1));
    const [y] = b.emit('conv', 'conv2d', 'f32', [x, w, -1], {});
    const params = [1, 2, 3, 4].map((k) =>
      b.constant(`bn${k}`, 'f32', [3], k === 4 ? [0.5, 1, 2] : random(3, 10 + k)),
    );
    const [n] = b.emit('bn', 'batch_norm', 'f32', [y!, ...params], { axis: 3, epsilon: 1e-3 });
    const [r] = b.emit('relu', 'clip', 'f32', [n!], { min: 0, max: 6 });
    const [t] = b.emit('to_nchw', 'transpose', 'f32', [r!], { perm: [0, 3, 1, 2] });
    const bias = b.constant('bias', 'f32', [3, 1, 1], [1, -2, 3]);
    const [s] = b.emit('add', 'add', 'f32', [t!, bias], {});
    const [o] = b.emit('to_nhwc', 'transpose', 'f32', [s!], { perm: [0, 2, 3, 1] });
    const pkg = toPackage(
      b.finish([{ name: 'x', tensor: x, layout: 'NHWC' }], [{ name: 'y', tensor: o! }], {
        id: 't',
        version: '1',
      }),
    );
    const model = Model.fromPackage(pkg);
    assert.deepEqual(
      model.manifest.nodes.map((node) => node.op),
      ['conv2d', 'add'],
    );
    assert.deepEqual(model.compileReport.fused, [
      { node: 'bn', into: 'conv' },
      { node: 'relu', into: 'conv' },
    ]);
    assert.equal(model.compileReport.transposesRemoved, 2);
    const input = Float32Array.from(random(32, 5));
    const out = model.run([input])[0]!.data;
    const reference = Model.fromPackage(pkg, { compile: false, referenceOnly: true }).run([input])[0]!.data;
    assert.ok(maxDiff(out, reference) < 1e-5, String(maxDiff(out, reference)));
  });

  test('a transpose the pass cannot resolve stays, runs, and is reported with its reader', () => {
    const b = new GraphBuilder();
    const x = b.addTensor('x', { dtype: 'f32', shape: [1, 2, 3, 4] });
    const [t] = b.emit('to_nhwc', 'transpose', 'f32', [x], { perm: [0, 2, 3, 1] });
    const [c] = b.emit('relu', 'clip', 'f32', [t!], { min: 0 });
    // A reshape that splits the permuted channels: no layout-free form, so the transpose must run.
    const [r] = b.emit('split', 'reshape', 'f32', [c!], { shape: [1, 6, 2, 2] });
    const [m] = b.emit('lrelu', 'leaky_relu', 'f32', [r!], { alpha: 0.1 });
    const content = b.finish([{ name: 'x', tensor: x, layout: 'other' }], [{ name: 'y', tensor: m! }], {
      id: 't',
      version: '1',
    });
    const pkg = toPackage(content);
    const model = Model.fromPackage(pkg);
    assert.deepEqual(model.compileReport.transposesLeft, [
      { node: 'relu.out/to_layout', why: 'read by split (reshape) in the source layout' },
    ]);
    // It runs on the native transpose (the channel-shuffle kernel: NCHW -> NHWC swaps two blocks of axes).
    assert.ok(!model.fallbacks.some((f) => f.op === 'transpose'), JSON.stringify(model.fallbacks));
    assert.ok(
      model.layers.some((l) => l.op === 'transpose' && l.kernel === 'native:transpose_f32'),
      JSON.stringify(model.layers),
    );
    const input = Float32Array.from(random(24, 6));
    assert.deepEqual(
      model.run([input])[0]!.data,
      Model.fromPackage(pkg, { compile: false }).run([input])[0]!.data,
    );
    // `whittle inspect` shows both the transpose left (and why) and the nodes on the reference.
    const dir = mkdtempSync(join(tmpdir(), 'whittle-compile-'));
    try {
      const file = join(dir, 'unresolved.whittle');
      writeFileSync(file, writePackage(content, generateKeyPairSync('ed25519').privateKey));
      const report = inspectPackage(file);
      assert.deepEqual(report.compile.transposesLeft, model.compileReport.transposesLeft);
      assert.deepEqual(report.fallbacks, [...model.fallbacks]);
      const text = formatInspectReport(report);
      assert.match(
        text,
        /transpose left {2}relu\.out\/to_layout: read by split \(reshape\) in the source layout/,
      );
      assert.match(text, /fallback {3}\d+ layer\(s\) on the TypeScript reference/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an int8 clip that relabels the quantization is not fused, and says why', () => {
    const b = new GraphBuilder();
    const x = b.addTensor('x', { dtype: 'i8', shape: [1, 2, 2, 2], quant: { scale: [0.1], zeroPoint: [0] } });
    const w = b.constant('w', 'i8', [2, 1, 1, 2], [1, -2, 3, 4], { scale: [0.05], zeroPoint: [0] });
    const [y] = b.emit('conv', 'qconv2d', 'int8', [x, w, -1], {}, [
      { dtype: 'i8', quant: { scale: [0.2], zeroPoint: [3] } },
    ]);
    const [c] = b.emit('clip', 'clip', 'int8', [y!], { min: 3 }, [
      { dtype: 'i8', quant: { scale: [0.4], zeroPoint: [3] } },
    ]);
    b.tensors[c!]!.quant = { scale: [0.4], zeroPoint: [3] };
    const pkg = toPackage(
      b.finish([{ name: 'x', tensor: x, layout: 'NHWC' }], [{ name: 'y', tensor: c! }], {
        id: 't',
        version: '1',
      }),
    );
    const model = Model.fromPackage(pkg);
    assert.deepEqual(model.compileReport.notFused, [
      { node: 'clip', why: 'the clip changes the dtype or quantization' },
    ]);
    const input = Int8Array.from([10, -20, 30, 40, -50, 60, 70, -80]);
    assert.deepEqual(
      model.run([input])[0]!.data,
      Model.fromPackage(pkg, { compile: false, referenceOnly: true }).run([input])[0]!.data,
    );
  });
});
