// The compile pass (agent/runtime/compile/) on the zoo models exported to ONNX: the compiled graph has no
// transpose left and computes what the uncompiled graph computes (fp32 within rounding, int8 bit-exact);
// and on hand-built graphs: fusions, constants folded, a graph it cannot resolve still runs and says why.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Package } from '../../../agent/package/reader.js';
import { Model, type ModelOptions } from '../../../agent/runtime/model.js';
import {
  importBoth,
  nchwToNhwc,
  quantized,
  randomImages,
  ZOO_CASES,
  zooOnnx,
} from './compile-fixtures.js';

const transposes = (model: Model): number => model.manifest.nodes.filter((n) => n.op === 'transpose').length;

function run(pkg: Package, input: Float32Array, options: ModelOptions): Float32Array {
  const model = Model.fromPackage(pkg, options);
  return model.run([input])[0]!.data as Float32Array;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('compile pass on the zoo models exported to ONNX', () => {
  for (const zoo of ZOO_CASES) {
    test(`${zoo.name}: no transpose left, same outputs in f32 and int8`, async () => {
      const { stored, compiled } = importBoth(await zooOnnx(zoo), `${zoo.name}.onnx`);
      const [, c, h, w] = stored.manifest.tensors[stored.manifest.inputs[0]!.tensor]!.shape as number[];
      const nchw = randomImages(c! * h! * w!, 1, 7);
      const nhwc = nchwToNhwc(nchw, 1, c!, h!, w!);

      // Stored by the importer: NHWC input, no transpose, activations fused.
      const imported = Model.fromPackage(compiled, { compile: false });
      assert.equal(transposes(imported), 0, 'transposes stored by the importer');
      assert.equal(compiled.manifest.inputs[0]!.layout, 'NHWC');
      // An old package compiled at load keeps its NCHW input: one transpose there and none after.
      const loaded = Model.fromPackage(stored);
      assert.ok(Model.fromPackage(stored, { compile: false }).manifest.nodes.some((n) => n.op === 'transpose'));
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
