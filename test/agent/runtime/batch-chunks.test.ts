// Batch chunks (agent/runtime/batch-chunks.ts): at a batch above 1, stretches of per-image nodes run a few
// images at a time. The zoo models exported to ONNX compute the same outputs chunked as run whole on the
// batch (int8 bit for bit, fp32 within 1e-5 of the output scale), on the native kernels and on the
// reference executors, through the plan and node by node, with 1 and 2 threads, and from node 1 after
// writing the quantized input; the planner keeps whole what it must (not per image, shapes that do not
// follow the batch, graph inputs and outputs); Model.profile times every node.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { ManifestNode } from '../../../agent/package/manifest.js';
import { planBatchChunks } from '../../../agent/runtime/batch-chunks.js';
import { Model, type ModelOptions } from '../../../agent/runtime/model.js';
import { roundHalfEven } from '../../../agent/runtime/number/rounding.js';
import { intRange, saturate } from '../../../agent/runtime/number/saturation.js';
import type { TensorSpec } from '../../../agent/runtime/tensor.js';
import { importBoth, maxDiff, quantized, randomImages, ZOO_CASES, zooOnnx } from './compile-fixtures.js';

const BATCH = 6;
/** Small enough that every zoo model's early layers run one image at a time at 32x32 and up. */
const SMALL_CHUNK = 16 * 1024;

function outputs(pkg: Parameters<typeof Model.fromPackage>[0], input: Float32Array, options: ModelOptions) {
  return Model.fromPackage(pkg, { batch: BATCH, ...options }).run([input])[0]!.data as Float32Array;
}

describe('batch chunks on the zoo models', () => {
  for (const zoo of ZOO_CASES) {
    test(`${zoo.name}: chunked runs compute what whole-batch runs compute, fp32 and int8`, async () => {
      const { compiled } = importBoth(await zooOnnx(zoo), `${zoo.name}.onnx`);
      const int8 = quantized(compiled);
      const perImage = zoo.channels * zoo.height * zoo.height;
      const input = randomImages(perImage, BATCH, 11);
      for (const [format, pkg] of [
        ['fp32', compiled],
        ['int8', int8],
      ] as const) {
        const chunked = Model.fromPackage(pkg, { batch: BATCH, batchChunkBytes: SMALL_CHUNK });
        assert.ok(
          chunked.batchSegments.some((s) => s.images < BATCH),
          `${format}: nothing chunked (${JSON.stringify(chunked.batchSegments)})`,
        );
        assert.deepEqual(Model.fromPackage(pkg, { batch: BATCH, batchChunkBytes: 0 }).batchSegments, [
          { first: 0, last: pkg.manifest.nodes.length, images: BATCH },
        ]);
        const whole = outputs(pkg, input, { batchChunkBytes: 0 });
        const scale = Math.max(...whole.map(Math.abs), 1e-3);
        const check = (what: string, got: Float32Array, want = whole): void => {
          if (format === 'int8') assert.deepEqual(got, want, `${format} ${what}`);
          else assert.ok(maxDiff(got, want) <= 1e-5 * scale, `${format} ${what}: ${maxDiff(got, want)}`);
        };
        check('plan', chunked.run([input])[0]!.data as Float32Array);
        check('plan, second run', chunked.run([input])[0]!.data as Float32Array);
        check('node by node', outputs(pkg, input, { batchChunkBytes: SMALL_CHUNK, nodeByNode: true }));
        check('2 threads', outputs(pkg, input, { batchChunkBytes: SMALL_CHUNK, threads: 2 }));
        check('default chunks', outputs(pkg, input, {}));
        check(
          'reference executors',
          outputs(pkg, input, { batchChunkBytes: SMALL_CHUNK, referenceOnly: true }),
          outputs(pkg, input, { batchChunkBytes: 0, referenceOnly: true }),
        );
        // The agent's path: the quantized input written in place, the run from node 1.
        const q = chunked.quantizedInput(0);
        if (format === 'int8' && q !== undefined) {
          const [lo, hi] = intRange(q.spec.dtype);
          const { scale, zeroPoint } = q.spec.quant!;
          q.view.set(input.map((x) => saturate(roundHalfEven(x / scale[0]!) + zeroPoint[0]!, lo, hi)));
          chunked.runInPlace(1);
          check('runInPlace(1)', chunked.outputView(0).slice() as Float32Array);
          chunked.outputView(0).fill(0);
          chunked.inPlaceRunner(1)();
          check('inPlaceRunner(1)', chunked.outputView(0).slice() as Float32Array);
        }
        // A run cannot start after a node whose output is held one chunk at a time.
        const first = chunked.batchSegments[0]!;
        if (format === 'fp32' && first.images < BATCH && first.last > 1) {
          assert.throws(() => chunked.runInPlace(1), /held one batch chunk at a time/);
          assert.throws(() => chunked.inPlaceRunner(1), /held one batch chunk at a time/);
        }
      }
    });
  }

  test('the profile times every node of a chunked run', async () => {
    const { compiled } = importBoth(await zooOnnx(ZOO_CASES[0]!), 'lenet5.onnx');
    const model = Model.fromPackage(compiled, { batch: BATCH, batchChunkBytes: SMALL_CHUNK });
    const profile = model.profile(3);
    assert.deepEqual(
      profile.map((p) => p.name),
      model.layers.map((l) => l.name),
    );
    assert.ok(profile.every((p) => Number.isFinite(p.ms) && p.ms >= 0));
    assert.throws(() => model.profile(0), /profile runs must be a positive integer/);
  });
});

describe('planBatchChunks', () => {
  const node = (name: string, inputs: number[], outputs: number[], op = 'clip'): ManifestNode => ({
    name,
    op,
    format: 'f32',
    inputs,
    outputs,
    attrs: {},
  });
  // A chain 0 -> a -> 1 -> b -> 2 -> c -> 3 of [8, n] f32 tensors: 4 KB, 1 KB, 1 KB, 64 B per image.
  const widths = [1024, 256, 256, 16];
  const specsAt = (images: number): TensorSpec[] =>
    widths.map((w) => ({ dtype: 'f32' as const, shape: [images, w] }));
  const nodes = [node('a', [0], [1]), node('b', [1], [2]), node('c', [2], [3])];
  const base = {
    nodes,
    batch: 8,
    specs: specsAt(8),
    specsAt,
    isActivation: () => true,
    wholeTensors: new Set([0, 3]),
    perImage: () => true,
    budgetBytes: 10 * 1024,
  };

  test('chunks to the budget, rounded to a divisor, never larger than a later node', () => {
    const { segments, tensorImages } = planBatchChunks(base);
    // a: 5 KB per image -> 2 images; b: 2 KB -> 4; c: 1.1 KB -> all 8 (9 KB fits).
    assert.deepEqual(segments, [
      { first: 0, last: 1, images: 2 },
      { first: 1, last: 2, images: 4 },
      { first: 2, last: 3, images: 8 },
    ]);
    assert.equal(tensorImages.get(0), 8); // graph input: whole
    assert.equal(tensorImages.get(1), 8); // crosses segments: whole
    assert.equal(tensorImages.get(3), 8);
    const one = planBatchChunks({ ...base, budgetBytes: 3 * 1024 });
    assert.deepEqual(one.segments, [
      { first: 0, last: 2, images: 1 },
      { first: 2, last: 3, images: 2 },
    ]);
    assert.equal(one.tensorImages.get(1), 1); // inside the first segment: one image
  });

  test('keeps whole what it must', () => {
    const whole = [{ first: 0, last: 3, images: 8 }];
    assert.deepEqual(planBatchChunks({ ...base, batch: 1, specs: specsAt(1) }).segments, [
      { first: 0, last: 3, images: 1 },
    ]);
    assert.deepEqual(planBatchChunks({ ...base, budgetBytes: 0 }).segments, whole);
    assert.deepEqual(planBatchChunks({ ...base, perImage: () => false }).segments, whole);
    assert.deepEqual(planBatchChunks({ ...base, specsAt: () => undefined }).segments, whole);
    // A tensor whose first dimension does not follow the batch (a reshape across images): its nodes whole.
    const mixing = (images: number): TensorSpec[] =>
      specsAt(images).map((s, t) => (t === 2 ? { ...s, shape: [8, 256] } : s));
    assert.deepEqual(planBatchChunks({ ...base, specsAt: mixing }).segments, [
      { first: 0, last: 1, images: 2 },
      { first: 1, last: 3, images: 8 },
    ]);
    // A prime batch chunks to single images.
    const seven = planBatchChunks({ ...base, batch: 7, specs: specsAt(7) });
    assert.ok(seven.segments.every((s) => s.images === 1 || s.images === 7));
  });
});
