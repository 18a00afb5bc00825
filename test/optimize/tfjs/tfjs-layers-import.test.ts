// TensorFlow.js Layers import (optimize/tfjs/): a Sequential CNN saved by tfjs (model.json + weights.bin)
// becomes a package whose runtime outputs match tfjs's own predictions; batch norm folds into the conv.
// (Lives here because test/optimize/tfjs/ is not yet a test folder of this checkout's owners.)
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { importTfjsLayers, TfjsImportError } from '../../../optimize/tfjs/import.js';

test('a tfjs Sequential CNN imports and matches tfjs predictions', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-tfjs-'));
  try {
    const net = tf.sequential();
    net.add(
      tf.layers.conv2d({ inputShape: [8, 8, 2], filters: 4, kernelSize: 3, padding: 'same', useBias: true }),
    );
    net.add(tf.layers.batchNormalization());
    net.add(tf.layers.activation({ activation: 'relu' }));
    net.add(
      tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'valid', activation: 'relu6' }),
    );
    net.add(tf.layers.maxPooling2d({ poolSize: 2, padding: 'same' }));
    net.add(tf.layers.flatten());
    net.add(tf.layers.dense({ units: 5, activation: 'softmax' }));
    // Non-trivial batch-norm statistics, so folding is exercised.
    const bn = net.layers[1]!;
    bn.setWeights(
      bn.getWeights().map((w, i) => tf.add(w, tf.randomUniform(w.shape, 0.1, 0.9 + i, 'float32', 11 + i))),
    );
    await net.save(
      tf.io.withSaveHandler((artifacts) => {
        writeFileSync(join(dir, 'weights.bin'), Buffer.from(artifacts.weightData as ArrayBuffer));
        writeFileSync(
          join(dir, 'model.json'),
          JSON.stringify({
            modelTopology: artifacts.modelTopology,
            weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
          }),
        );
        return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } });
      }),
    );
    const keys = generateKeyPairSync('ed25519');
    const content = importTfjsLayers(join(dir, 'model.json'), { batch: 3 });
    const model = Model.fromPackage(
      readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey }),
    );
    assert.equal(model.layers.filter((l) => l.op === 'batch_norm').length, 0);
    const input = tf.randomNormal([3, 8, 8, 2], 0, 1, 'float32', 7);
    const expected = (net.predict(input) as tf.Tensor).dataSync();
    const [actual] = model.run([input.dataSync()]);
    assert.deepEqual(actual!.shape, [3, 5]);
    for (let i = 0; i < expected.length; i++)
      assert.ok(
        Math.abs(actual!.data[i]! - expected[i]!) < 1e-5,
        `${i}: ${actual!.data[i]} vs ${expected[i]}`,
      );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a non-Sequential or unsupported tfjs model is refused naming the layers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-tfjs-'));
  try {
    const file = join(dir, 'model.json');
    writeFileSync(
      file,
      JSON.stringify({
        modelTopology: {
          class_name: 'Sequential',
          config: {
            layers: [{ class_name: 'LSTM', config: { name: 'lstm_1', batch_input_shape: [null, 4, 4] } }],
          },
        },
        weightsManifest: [],
      }),
    );
    assert.throws(
      () => importTfjsLayers(file),
      (e: unknown) => e instanceof TfjsImportError && /lstm_1 \(LSTM\)/.test(e.message),
    );
    writeFileSync(
      file,
      '{"modelTopology": {"class_name": "Model", "config": {"layers": []}}, "weightsManifest": []}',
    );
    assert.throws(() => importTfjsLayers(file), /only Sequential models/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
