import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BatchStream, identity, splitTrainValidation } from '../../../optimize/datasets/batches.js';
import type { ImageSet } from '../../../optimize/datasets/image-set.js';

function set(count: number): ImageSet {
  const pixels = new Uint8Array(count * 3 * 4);
  for (let i = 0; i < count; i++) for (let p = 0; p < 12; p++) pixels[i * 12 + p] = (i * 10 + p) % 256; // 3 rows x 4 columns, grey
  return {
    count,
    height: 3,
    width: 4,
    channels: 1,
    pixels,
    labels: Uint8Array.from({ length: count }, (_, i) => i % 2),
    classes: ['even', 'odd'],
    source: 'synthetic',
  };
}

test('the split is disjoint, covers every image and is seeded', () => {
  const { train, validation } = splitTrainValidation(100, 0.2, 3);
  assert.equal(train.length, 80);
  assert.equal(validation.length, 20);
  assert.equal(new Set([...train, ...validation]).size, 100);
  assert.deepEqual(splitTrainValidation(100, 0.2, 3).validation, validation);
  assert.notDeepEqual(splitTrainValidation(100, 0.2, 4).validation, validation);
  assert.throws(() => splitTrainValidation(10, 1, 1), { name: 'DatasetError' });
});

test('batches hold each image once per epoch, scaled to [0, 1], reshuffled per epoch, resumable', () => {
  const data = set(10);
  const stream = new BatchStream(data, identity(10), { batchSize: 4, shuffle: true, seed: 9 });
  const epoch0 = [...stream.epoch(0)];
  assert.deepEqual(
    epoch0.map((b) => b.size),
    [4, 4, 2],
  );
  const firstPixels = epoch0.flatMap((b) =>
    Array.from({ length: b.size }, (_, i) => Math.round(b.x[i * 12]! * 255)),
  );
  assert.deepEqual(
    [...firstPixels].sort((a, b) => a - b),
    [0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
  );
  const epoch1 = [...stream.epoch(1)];
  assert.notDeepEqual(epoch1[0]!.x, epoch0[0]!.x);
  // Resuming at batch 1 of epoch 0 gives the same batches as the uninterrupted epoch.
  assert.deepEqual(
    [...stream.epoch(0, 1)].map((b) => b.x),
    epoch0.slice(1).map((b) => b.x),
  );
});

test('augmentation flips and shifts images with zero fill', () => {
  const data = set(1);
  const flipped = new BatchStream(data, identity(1), {
    batchSize: 1,
    shuffle: false,
    seed: 1,
    augmentation: { flip: true },
  });
  const seen = new Set<string>();
  for (let e = 0; e < 12; e++) seen.add([...flipped.epoch(e)][0]!.x.join(','));
  const row0 = [0, 1, 2, 3].map((v) => v / 255);
  const options = [...seen].map((s) => s.split(',').slice(0, 4).map(Number));
  assert.ok(
    options.some((r) => r.every((v, i) => Math.abs(v - row0[i]!) < 1e-6)),
    'an unflipped image',
  );
  assert.ok(
    options.some((r) => r.every((v, i) => Math.abs(v - row0[3 - i]!) < 1e-6)),
    'a flipped image',
  );
  const shifted = new BatchStream(data, identity(1), {
    batchSize: 1,
    shuffle: false,
    seed: 1,
    augmentation: { cropPadding: 2 },
  });
  let zeros = 0;
  for (let e = 0; e < 8; e++) zeros += [...shifted.epoch(e)][0]!.x.filter((v) => v === 0).length;
  assert.ok(zeros > 8, 'shifted images have zero-filled borders');
  assert.throws(() => new BatchStream(data, identity(1), { batchSize: 0, shuffle: false, seed: 1 }), {
    name: 'DatasetError',
  });
});
