// The runtime on a signed package: the sample CNN (every weight encoding) loads and runs at batch 1 and
// any batch with identical per-image results, its memory plan reuses activation memory, a budget below the
// plan is refused before anything runs, and bad graphs and inputs are refused with typed errors.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';

import { readPackage } from '../../../agent/package/reader.js';
import { GraphError, InputError, MemoryBudgetError } from '../../../agent/runtime/graph-error.js';
import { planMemory } from '../../../agent/runtime/memory-plan.js';
import { Model } from '../../../agent/runtime/model.js';
import { samplePackageContent } from '../../../optimize/package/sample-package.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

const keys = generateKeyPairSync('ed25519');
const pkg = readPackage(writePackage(samplePackageContent(), keys.privateKey), { publicKey: keys.publicKey });

function image(seed: number): Float32Array {
  const random = new SeededRandom(seed);
  return Float32Array.from({ length: 8 * 8 * 3 }, () => random.normal());
}

describe('runtime on the sample package', () => {
  test('runs every layer format and gives a probability distribution', () => {
    const model = Model.fromPackage(pkg);
    assert.deepEqual(
      model.layers.map((l) => l.format),
      [
        'f32',
        'binary',
        'ternary',
        'codebook',
        'sparse',
        'fixed16',
        'fixed8',
        'xnor',
        'sparse-codebook',
        'f32',
        'hashed',
        'f32',
      ],
    );
    const [out] = model.run([image(1)]);
    assert.ok(out !== undefined);
    assert.deepEqual(out.shape, [1, 10]);
    const sum = Array.from(out.data).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `probabilities sum to ${sum}`);
    assert.ok(model.layers.every((l) => l.macs >= 0 && l.kernel.length > 0));
  });

  test('batch 4 gives each image the result of batch 1', () => {
    const single = Model.fromPackage(pkg);
    const batched = Model.fromPackage(pkg, { batch: 4 });
    const images = [1, 2, 3, 4].map(image);
    const input = new Float32Array(4 * 192);
    images.forEach((img, i) => input.set(img, i * 192));
    const [out] = batched.run([input]);
    assert.deepEqual(out!.shape, [4, 10]);
    images.forEach((img, i) => {
      const [one] = single.run([img]);
      assert.deepEqual(Array.from(out!.data.subarray(i * 10, (i + 1) * 10)), Array.from(one!.data));
    });
  });

  test('the memory plan shares the arena between tensors whose lifetimes do not overlap', () => {
    const model = Model.fromPackage(pkg);
    assert.ok(model.plan.arenaBytes < model.plan.unsharedBytes, JSON.stringify(model.plan));
    // No two tensors that are live at the same time overlap in the arena.
    for (const a of model.plan.tensors) {
      for (const b of model.plan.tensors) {
        if (a === b || a.first > b.last || b.first > a.last) continue;
        assert.ok(
          a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset,
          `${a.tensor} overlaps ${b.tensor}`,
        );
      }
    }
  });

  test('a memory budget below the plan is refused with the numbers', () => {
    const model = Model.fromPackage(pkg);
    // Including what the layers keep: the sample's hashed layer expands its weights at load, its binary,
    // ternary and codebook layers run on the dense operators with their weights expanded.
    const needed = model.plan.arenaBytes + model.weightBytes + model.scratchBytes;
    assert.ok(model.scratchBytes > 0);
    assert.throws(
      () => Model.fromPackage(pkg, { memoryBudgetBytes: needed - 1 }),
      (error: unknown) => {
        assert.ok(error instanceof MemoryBudgetError);
        assert.equal(error.neededBytes, needed);
        assert.match(error.message, /memory budget is \d+ bytes/);
        assert.match(error.message, /expanded weights/);
        return true;
      },
    );
    assert.ok(Model.fromPackage(pkg, { memoryBudgetBytes: needed }));
    // expandWeights: false keeps the compact kernels: less memory.
    const compact = Model.fromPackage(pkg, { expandWeights: false });
    assert.ok(compact.scratchBytes < model.scratchBytes);
    assert.ok(Model.fromPackage(pkg, { memoryBudgetBytes: needed - 1, expandWeights: false }));
  });

  test('inputs of the wrong size or type are refused', () => {
    const model = Model.fromPackage(pkg);
    assert.throws(() => model.run([new Float32Array(10)]), InputError);
    assert.throws(() => model.run([new Int8Array(192)]), InputError);
    assert.throws(() => model.run([]), InputError);
    assert.throws(() => model.run({ wrong: image(1) }), /missing input "image"/);
  });

  test('unsupported ops and formats are listed together before anything runs', () => {
    const manifest = {
      ...pkg.manifest,
      nodes: pkg.manifest.nodes.map((n, i) =>
        i === 0 ? { ...n, op: 'lstm' } : i === 1 ? { ...n, format: 'int8' as const } : n,
      ),
    };
    assert.throws(
      () => Model.fromPackage({ ...pkg, manifest }),
      (error: unknown) =>
        error instanceof GraphError &&
        /2 node\(s\): conv1 \(op lstm\), conv2 \(op conv2d in format int8\)/.test(error.message),
    );
  });
});

test('planMemory reuses a freed buffer for a later tensor of the same size', () => {
  const plan = planMemory([
    { tensor: 0, bytes: 1000, first: -1, last: 0 },
    { tensor: 1, bytes: 1000, first: 0, last: 1 },
    { tensor: 2, bytes: 1000, first: 1, last: 2 },
  ]);
  assert.equal(plan.tensors[0]!.offset, plan.tensors[2]!.offset);
  assert.equal(plan.arenaBytes, 2048);
  assert.equal(plan.unsharedBytes, 3072);
});
