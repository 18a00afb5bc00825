// Training end to end on small real Fashion-MNIST subsets (a few hundred images, one epoch): the model,
// checkpoint and evaluation files, resume, early stopping, and a diverging run that stops with a message.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { selectTrainingBackend } from '../../../optimize/train/backend-select.js';
import { fileHandler } from '../../../optimize/train/file-io.js';
import { DEFAULT_TRAIN_CONFIG, train, type TrainConfig } from '../../../optimize/train/trainer.js';

const base: TrainConfig = {
  ...DEFAULT_TRAIN_CONFIG,
  model: 'lenet5',
  dataset: 'fashion-mnist',
  epochs: 1,
  trainLimit: 400,
  testLimit: 200,
  batchSize: 32,
  // One short epoch: a cosine decay would spend half of it at a small rate; these tests are about files.
  lrSchedule: 'constant',
};

describe('trainer', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-train-'));
  before(async () => {
    await selectTrainingBackend('whittle-native');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('one epoch writes the model, a checkpoint and the test evaluation next to it', async () => {
    const out = join(root, 'one');
    const progress: number[] = [];
    const result = await train({ config: base, outDir: out, onProgress: (p) => progress.push(p.batch) });
    assert.equal(result.interrupted, false);
    assert.equal(result.epochsRun, 1);
    assert.equal(result.evaluation?.on, 'test');
    assert.equal(result.evaluation?.count, 200);
    assert.ok(result.evaluation.accuracy > 0.3, `accuracy ${result.evaluation.accuracy} beats chance`);
    assert.ok(progress.length >= 12);
    const evaluation = JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8')) as {
      evaluation: { accuracy: number };
      backend: string;
    };
    assert.equal(evaluation.evaluation.accuracy, result.evaluation.accuracy);
    assert.equal(evaluation.backend, 'whittle-native');
    assert.ok(existsSync(join(out, 'checkpoint', 'state.json')));
    const model = await tf.loadLayersModel(fileHandler(out));
    assert.deepEqual(model.outputs[0]!.shape, [null, 10]);
    model.dispose();
  });

  test('resume continues from the checkpoint to more epochs', async () => {
    const out = join(root, 'resume');
    await train({ config: base, outDir: out });
    // tfjs-layers itself keeps a tensor or two per model it builds; a leak per batch would add dozens.
    const tensorsBefore = tf.memory().numTensors;
    const result = await train({ config: { ...base, epochs: 2 }, outDir: out, resume: true });
    assert.ok(tf.memory().numTensors - tensorsBefore <= 2, 'no tensors leak per batch');
    assert.equal(result.epochsRun, 2);
    assert.deepEqual(
      result.history.map((h) => h.epoch),
      [1, 2],
    );
    await assert.rejects(train({ config: base, outDir: join(root, 'nothing'), resume: true }), {
      name: 'CheckpointError',
      message: /no checkpoint to resume from/,
    });
  });

  test('an aborted run saves a checkpoint at the current batch', async () => {
    const out = join(root, 'abort');
    const controller = new AbortController();
    const result = await train({
      config: base,
      outDir: out,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.batch === 3) controller.abort();
      },
    });
    assert.equal(result.interrupted, true);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')) as {
      epoch: number;
      batch: number;
    };
    assert.deepEqual([state.epoch, state.batch], [0, 3]);
    assert.equal(existsSync(join(out, 'model.json')), false);
  });

  test('a NaN or exploding loss stops training with a message and writes no model', async () => {
    const out = join(root, 'diverge');
    await assert.rejects(train({ config: { ...base, learningRate: 1e30 }, outDir: out }), {
      name: 'TrainingDivergedError',
      message:
        /training stopped at epoch 1, batch \d+: the loss (became NaN|exploded).*Lower the learning rate/,
    });
    assert.equal(existsSync(join(out, 'model.json')), false);
  });

  test('early stopping ends a run whose validation loss stops improving', async () => {
    // A learning rate so small that the weights, and so the validation loss, cannot change in float32.
    const result = await train({
      config: { ...base, epochs: 4, patience: 1, learningRate: 1e-30, trainLimit: 200 },
      outDir: join(root, 'early'),
    });
    assert.equal(result.stoppedEarly, true);
    assert.equal(result.epochsRun, 2);
  });

  test('bad settings are TrainConfigErrors naming the setting', async () => {
    await assert.rejects(train({ config: { ...base, batchSize: 0 }, outDir: join(root, 'bad') }), {
      name: 'TrainConfigError',
      message: /batchSize/,
    });
    await assert.rejects(train({ config: { ...base, learningRate: -1 }, outDir: join(root, 'bad') }), {
      name: 'TrainConfigError',
      message: /learning rate/,
    });
  });
});
