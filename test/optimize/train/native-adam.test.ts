// The fused native Adam against tfjs's own AdamOptimizer: the same steps on the same variables give the
// same weights, the learning rate can change between steps, and the moments survive a checkpoint round trip
// in tfjs's layout (so a checkpoint written by either optimizer resumes with the other).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { loadTrainBinding } from '../../../native/train-kernels.js';
import { selectTrainingBackend } from '../../../optimize/train/backend-select.js';
import { NativeAdamOptimizer } from '../../../optimize/train/native-adam.js';

/** A least-squares fit of w (3×2) and b (2) to fixed data: a few real gradient steps. */
function problem(prefix: string): { w: tf.Variable; b: tf.Variable; loss: () => tf.Scalar } {
  const w = tf.variable(tf.tensor2d([0.1, -0.2, 0.3, 0.05, -0.1, 0.2], [3, 2]), true, `${prefix}w`);
  const b = tf.variable(tf.zeros([2]), true, `${prefix}b`);
  const x = tf.tensor2d([1, 2, 3, -1, 0.5, 2, 0, 1, -2, 3, 1, 1], [4, 3]);
  const y = tf.tensor2d([1, 0, 0, 1, 2, -1, 0.5, 0.5], [4, 2]);
  return { w, b, loss: () => tf.losses.meanSquaredError(y, x.matMul(w).add(b)) };
}

function assertClose(actual: Float32Array | Int32Array | Uint8Array, expected: typeof actual): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++)
    assert.ok(Math.abs(actual[i]! - expected[i]!) < 1e-5, `[${i}] ${actual[i]} vs ${expected[i]}`);
}

describe('NativeAdamOptimizer', () => {
  before(async () => {
    await selectTrainingBackend('whittle-native');
  });

  test('takes the same steps as tfjs Adam, including a learning-rate change mid-way', () => {
    const ours = problem('ours/');
    const theirs = problem('theirs/');
    const native = new NativeAdamOptimizer(loadTrainBinding(), 0.05);
    const reference = tf.train.adam(0.05);
    for (let step = 0; step < 8; step++) {
      if (step === 4) {
        native.learningRate = 0.01;
        (reference as unknown as { learningRate: number }).learningRate = 0.01;
      }
      native.minimize(ours.loss);
      reference.minimize(theirs.loss);
    }
    assertClose(ours.w.dataSync(), theirs.w.dataSync());
    assertClose(ours.b.dataSync(), theirs.b.dataSync());
    assert.notDeepEqual(Array.from(ours.b.dataSync()), [0, 0], 'the weights moved');
  });

  test('a clone of a weight taken before a step keeps its old value', () => {
    const p = problem('clone/');
    const before = p.w.clone();
    const values = Array.from(before.dataSync());
    new NativeAdamOptimizer(loadTrainBinding(), 0.05).minimize(p.loss);
    assert.deepEqual(Array.from(before.dataSync()), values);
    assert.notDeepEqual(Array.from(p.w.dataSync()), values);
  });

  test('moments round-trip through getWeights/setWeights in the tfjs layout', async () => {
    const p = problem('round/');
    const first = new NativeAdamOptimizer(loadTrainBinding(), 0.05);
    for (let i = 0; i < 3; i++) first.minimize(p.loss);
    const saved = await first.getWeights();
    assert.deepEqual(
      saved.map((s) => s.name),
      ['iter', 'round/w/m', 'round/b/m', 'round/w/v', 'round/b/v'],
    );
    // A tfjs Adam reads the same checkpoint: both continue identically from it.
    const twin = problem('twin/');
    twin.w.assign(p.w);
    twin.b.assign(p.b);
    const second = new NativeAdamOptimizer(loadTrainBinding(), 0.05);
    await second.setWeights(saved);
    const reference = tf.train.adam(0.05);
    await reference.setWeights(
      saved.map((s) => ({ name: s.name.replace(/^round\//, 'twin/'), tensor: s.tensor.clone() })),
    );
    second.minimize(p.loss);
    reference.minimize(twin.loss);
    assertClose(p.w.dataSync(), twin.w.dataSync());
  });
});
