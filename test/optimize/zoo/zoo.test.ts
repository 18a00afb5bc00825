// Every zoo model builds for grey 28x28 and colour 32x32 inputs, gives class probabilities, takes a
// gradient step, and survives a save/load round trip in the Layers format (custom layers included).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { selectTrainingBackend } from '../../../optimize/train/backend-select.js';
import { fileHandler } from '../../../optimize/train/file-io.js';
import { buildZooModel, ZOO_MODEL_NAMES } from '../../../optimize/zoo/index.js';

describe('model zoo', () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-zoo-'));
  before(async () => {
    await selectTrainingBackend('whittle-native');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const name of ZOO_MODEL_NAMES) {
    test(`${name}: builds for 28x28x1 and 32x32x3, trains a step, saves and loads`, async () => {
      for (const [h, c, classes] of [
        [28, 1, 10],
        [32, 3, 5],
      ] as const) {
        const model = buildZooModel(name, {
          height: h,
          width: h,
          channels: c,
          classes,
          seed: 3,
          widthMultiplier: 0.5,
        });
        const x = tf.randomUniform([2, h, h, c], 0, 1, 'float32', 1);
        const p = model.predict(x) as tf.Tensor;
        assert.deepEqual(p.shape, [2, classes]);
        const sums = (await p.sum(-1).data()) as Float32Array;
        for (const s of sums) assert.ok(Math.abs(s - 1) < 1e-4, `${name} outputs probabilities`);
        model.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
        const loss = (await model.trainOnBatch(
          x,
          tf.oneHot(tf.tensor1d([0, 1], 'int32'), classes).toFloat(),
        )) as number;
        assert.ok(Number.isFinite(loss));
        if (h === 28) {
          const path = join(dir, name);
          await model.save(fileHandler(path));
          const loaded = await tf.loadLayersModel(fileHandler(path));
          const q = loaded.predict(x) as tf.Tensor;
          const diff = (await p.sub(q).abs().max().data())[0]!;
          // Dropout and batch-norm are in inference mode for predict; a trained step changed the weights.
          const after = model.predict(x) as tf.Tensor;
          assert.ok((await after.sub(q).abs().max().data())[0]! < 1e-5, `${name} round trip`);
          assert.ok(Number.isFinite(diff));
          loaded.dispose();
        }
        model.dispose();
      }
    });
  }

  test('unknown names and bad options are ZooOptionsErrors', () => {
    assert.throws(() => buildZooModel('resnet9000', { height: 28, width: 28, channels: 1, classes: 10 }), {
      name: 'ZooOptionsError',
      message: /unknown model "resnet9000"; the zoo has lenet-300-100, lenet5/,
    });
    assert.throws(() => buildZooModel('lenet5', { height: 8, width: 8, channels: 1, classes: 10 }), {
      name: 'ZooOptionsError',
      message: /at least 12x12/,
    });
    assert.throws(
      () =>
        buildZooModel('mobilenet', { height: 28, width: 28, channels: 1, classes: 10, widthMultiplier: 0 }),
      {
        name: 'ZooOptionsError',
        message: /width multiplier/,
      },
    );
    assert.throws(() => buildZooModel('vgg', { height: 28, width: 28, channels: 0, classes: 10 }), {
      name: 'ZooOptionsError',
      message: /channels/,
    });
  });
});
