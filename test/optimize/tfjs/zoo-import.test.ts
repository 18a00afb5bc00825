// Every zoo model, saved the way `whittle train` saves it (optimize/train/file-io.ts), imports through the
// TensorFlow.js Layers importer and runs on the runtime with the outputs tfjs itself predicts. Weights are
// random and batch norms get non-trivial statistics, so a wrong fold, layout or padding shows up.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { buildZooModel, type ZooModelName, type ZooModelOptions } from '../../../optimize/zoo/index.js';
import { assertClose, compare, importToRuntime, randomizeWeights, saveLikeTrain } from './tfjs-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'whittle-tfjs-zoo-'));
after(() => rmSync(root, { recursive: true, force: true }));

const CASES: { name: ZooModelName; options: ZooModelOptions }[] = [
  { name: 'lenet-300-100', options: { height: 28, width: 28, channels: 1, classes: 10 } },
  { name: 'lenet5', options: { height: 28, width: 28, channels: 1, classes: 10 } },
  { name: 'vgg-small', options: { height: 32, width: 32, channels: 3, classes: 10 } },
  { name: 'mobilenet', options: { height: 32, width: 32, channels: 3, classes: 10, widthMultiplier: 0.25 } },
  { name: 'squeezenet', options: { height: 32, width: 32, channels: 3, classes: 10 } },
  // 64x64 takes ShuffleNet's full-size path: a strided stem and a SAME max pool.
  { name: 'shufflenet', options: { height: 64, width: 64, channels: 3, classes: 10, widthMultiplier: 0.5 } },
];

const BATCH = 3;

for (const { name, options } of CASES) {
  test(`zoo model ${name} imports and matches tfjs predictions`, async () => {
    const net = buildZooModel(name, { ...options, seed: 5 });
    randomizeWeights(net, 100);
    // Imported at batch 1 (what `whittle import` writes), run at batch 3: every reshape must follow the batch.
    const model = importToRuntime(
      await saveLikeTrain(net, join(root, name)),
      { modelId: name },
      { batch: BATCH },
    );
    // Every batch norm of the zoo directly follows a conv that nothing else reads: all fold.
    assert.equal(model.layers.filter((l) => l.op === 'batch_norm').length, 0);
    // Sequential models keep the names input/output; functional ones take their layers' names.
    const sequential = net instanceof tf.Sequential;
    assert.deepEqual(
      model.manifest.outputs.map((o) => o.name),
      sequential ? ['output'] : net.outputNames,
    );

    for (let trial = 0; trial < 2; trial++) {
      const input = tf.randomNormal(
        [BATCH, options.height, options.width, options.channels],
        0,
        1,
        'float32',
        // Not 0: tfjs takes a seed of 0 as "no seed" and the input would change from run to run.
        trial + 1,
      );
      const expected = (net.predict(input) as tf.Tensor).dataSync();
      const [actual] = model.run([input.dataSync()]);
      assert.deepEqual(actual!.shape, [BATCH, options.classes]);
      assertClose(expected, actual!.data, `${name} trial ${trial}`);
      // The comparison means something only if the predictions depend on the input well beyond the
      // tolerance (a saturated net gives every image the same output).
      const perImage = expected.length / BATCH;
      const { diff: spread, scale } = compare(
        expected.slice(0, perImage),
        expected.slice(perImage, 2 * perImage),
      );
      assert.ok(spread > 1e-2 * scale, `${name}: outputs of two images differ by only ${spread}`);
      tf.dispose(input);
    }
    net.dispose();
  });
}
