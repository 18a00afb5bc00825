// The learning-rate schedules (values at given steps), selection of the kept weights by validation accuracy
// or loss on a small real Fashion-MNIST run, and bad schedule/selection values rejected with the option named.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { BatchStream, splitTrainValidation } from '../../../optimize/datasets/batches.js';
import { firstImages, loadDataset } from '../../../optimize/datasets/dataset-spec.js';
import { selectTrainingBackend } from '../../../optimize/train/backend-select.js';
import { fileHandler } from '../../../optimize/train/file-io.js';
import {
  checkTrainConfig,
  DEFAULT_TRAIN_CONFIG,
  type EpochRecord,
  evaluateModel,
  type LrSchedule,
  scheduledLearningRate,
  type Selection,
  train,
  type TrainConfig,
} from '../../../optimize/train/trainer.js';

const close = (actual: number, expected: number): void =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} is not ${expected}`);

describe('learning-rate schedules', () => {
  test('cosine goes from the base rate through half of it at mid-run down to zero', () => {
    close(scheduledLearningRate('cosine', 0.01, 0, 1000), 0.01);
    close(scheduledLearningRate('cosine', 0.01, 250, 1000), 0.01 * 0.5 * (1 + Math.SQRT1_2));
    close(scheduledLearningRate('cosine', 0.01, 500, 1000), 0.005);
    close(scheduledLearningRate('cosine', 0.01, 1000, 1000), 0);
    assert.ok(scheduledLearningRate('cosine', 0.01, 999, 1000) > 0, 'the last batch still learns');
  });

  test('step keeps the base rate to half-way, then ×0.1, then ×0.01 from three quarters', () => {
    close(scheduledLearningRate('step', 0.01, 0, 1000), 0.01);
    close(scheduledLearningRate('step', 0.01, 499, 1000), 0.01);
    close(scheduledLearningRate('step', 0.01, 500, 1000), 0.001);
    close(scheduledLearningRate('step', 0.01, 749, 1000), 0.001);
    close(scheduledLearningRate('step', 0.01, 750, 1000), 0.0001);
    close(scheduledLearningRate('step', 0.01, 999, 1000), 0.0001);
  });

  test('constant never changes', () => {
    for (const step of [0, 500, 999]) close(scheduledLearningRate('constant', 0.01, step, 1000), 0.01);
  });
});

describe('selection of the kept epoch', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-select-'));
  // A fast model on a small subset, a constant rate, and no early stopping so every epoch runs. With this
  // seed the best validation accuracy (epoch 4, not the last) and the best validation loss (epoch 6) come
  // from different epochs, with the tfjs and the fused Adam alike.
  const base: TrainConfig = {
    ...DEFAULT_TRAIN_CONFIG,
    model: 'lenet-300-100',
    dataset: 'fashion-mnist',
    epochs: 6,
    seed: 3,
    patience: 0,
    trainLimit: 1000,
    testLimit: 200,
    batchSize: 32,
    validationFraction: 0.3,
    learningRate: 1e-3,
    lrSchedule: 'constant',
  };
  before(async () => {
    await selectTrainingBackend('whittle-native');
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  const kept: Partial<Record<Selection, number>> = {};

  /** Accuracy of the saved model on the run's own validation images (the same split the trainer made). */
  async function savedValidationAccuracy(out: string): Promise<number> {
    const set = firstImages(loadDataset('fashion-mnist').train, base.trainLimit!);
    const split = splitTrainValidation(set.count, base.validationFraction, base.seed);
    const stream = new BatchStream(set, split.validation, {
      batchSize: 256,
      shuffle: false,
      seed: base.seed,
    });
    const model = await tf.loadLayersModel(fileHandler(out));
    try {
      return (await evaluateModel(model, stream, 10)).accuracy;
    } finally {
      model.dispose();
    }
  }

  for (const select of ['accuracy', 'loss'] as Selection[]) {
    test(`--select ${select} keeps the epoch with the best validation ${select}`, async () => {
      const out = join(root, select);
      const result = await train({ config: { ...base, select }, outDir: out });
      const history: EpochRecord[] = result.history;
      assert.equal(history.length, 6);
      const best = history.reduce((a, b) =>
        select === 'accuracy'
          ? b.validationAccuracy! > a.validationAccuracy! ||
            (b.validationAccuracy === a.validationAccuracy && b.validationLoss! < a.validationLoss!)
            ? b
            : a
          : b.validationLoss! < a.validationLoss!
            ? b
            : a,
      );
      assert.equal(result.bestEpoch, best.epoch);
      kept[select] = best.epoch;
      const written = JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8')) as { bestEpoch: number };
      assert.equal(written.bestEpoch, best.epoch);
      // The saved weights are that epoch's: they score its validation accuracy again.
      close(await savedValidationAccuracy(out), best.validationAccuracy!);
    });
  }

  test('the two selections kept different epochs, so each test above checked its own rule', () => {
    assert.ok(kept.accuracy !== undefined && kept.loss !== undefined);
    assert.notEqual(kept.accuracy, kept.loss);
  });

  test('bad schedule or selection values are TrainConfigErrors naming the option', async () => {
    assert.throws(() => checkTrainConfig({ ...base, lrSchedule: 'linear' as LrSchedule }), {
      name: 'TrainConfigError',
      message: /lrSchedule \(--lr-schedule\) to be constant, cosine, step but received linear/,
    });
    assert.throws(() => checkTrainConfig({ ...base, select: 'f1' as Selection }), {
      name: 'TrainConfigError',
      message: /select \(--select\) to be accuracy or loss but received f1/,
    });
    await assert.rejects(
      train({ config: { ...base, select: 'f1' as Selection }, outDir: join(root, 'bad') }),
      {
        name: 'TrainConfigError',
      },
    );
  });
});
