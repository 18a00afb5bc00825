import assert from 'node:assert/strict';
import { test } from 'node:test';

import { foldBatchNorm } from '../../agent/runtime/compile/fold-batchnorm.js';

// y[o] = sum_i w[o][i] * x[i] + b[o], the layer in its plainest form (any conv is this per output pixel).
function dense(weights: Float32Array, bias: Float32Array, x: number[], outputs: number): number[] {
  const inputs = x.length;
  return Array.from({ length: outputs }, (_, o) => {
    let sum = bias[o]!;
    for (let i = 0; i < inputs; i++) sum += weights[o * inputs + i]! * x[i]!;
    return sum;
  });
}

test('a layer with folded batch norm equals the layer followed by batch norm', () => {
  const outputs = 3;
  const weights = Float32Array.from([0.5, -1, 2, 0.25, 1.5, -0.75, 3, 0, -2, 1, 0.1, -0.3]);
  const bias = Float32Array.from([0.1, -0.2, 0.3]);
  const bn = {
    gamma: Float32Array.from([1.5, 0.5, -2]),
    beta: Float32Array.from([0.2, -0.1, 0]),
    mean: Float32Array.from([0.3, 1, -0.5]),
    variance: Float32Array.from([4, 0.25, 1]),
    epsilon: 1e-5,
  };
  const folded = foldBatchNorm(weights, bias, outputs, bn);
  const x = [0.7, -1.2, 0.4, 2];
  const plain = dense(weights, bias, x, outputs);
  const withBatchNorm = plain.map(
    (v, o) => (bn.gamma[o]! * (v - bn.mean[o]!)) / Math.sqrt(bn.variance[o]! + bn.epsilon) + bn.beta[o]!,
  );
  const viaFolded = dense(folded.weights, folded.bias, x, outputs);
  for (let o = 0; o < outputs; o++) {
    assert.ok(
      Math.abs(viaFolded[o]! - withBatchNorm[o]!) < 1e-5,
      `channel ${o}: ${viaFolded[o]} vs ${withBatchNorm[o]}`,
    );
  }
});

test('a layer without bias gets one', () => {
  const folded = foldBatchNorm(Float32Array.from([1, 2]), null, 2, {
    gamma: Float32Array.from([1, 1]),
    beta: Float32Array.from([0.5, 0]),
    mean: Float32Array.from([1, 0]),
    variance: Float32Array.from([1, 1]),
    epsilon: 1e-3,
  });
  assert.equal(folded.bias.length, 2);
  assert.ok(Math.abs(folded.bias[0]! - (-1 / Math.sqrt(1.001) + 0.5)) < 1e-6);
});

test('inconsistent sizes and a negative variance are refused naming the argument', () => {
  const bn = {
    gamma: new Float32Array(2),
    beta: new Float32Array(2),
    mean: new Float32Array(2),
    variance: new Float32Array(2),
    epsilon: 1e-5,
  };
  assert.throws(() => foldBatchNorm(new Float32Array(5), null, 2, bn), /weights.length/);
  assert.throws(() => foldBatchNorm(new Float32Array(4), new Float32Array(3), 2, bn), /bias of length 2/);
  // epsilon 0 divides by the variance alone: refused where a channel's variance is 0, and for a negative one.
  assert.throws(
    () => foldBatchNorm(new Float32Array(4), null, 2, { ...bn, epsilon: 0 }),
    /variance \+ epsilon/,
  );
  assert.throws(() => foldBatchNorm(new Float32Array(4), null, 2, { ...bn, epsilon: -1e-5 }), /epsilon/);
  const scaled = foldBatchNorm(Float32Array.from([1, 2, 3, 4]), null, 2, {
    ...bn,
    gamma: Float32Array.from([2, 3]),
    beta: Float32Array.from([1, -1]),
    variance: Float32Array.from([1, 1]),
    epsilon: 0,
  });
  assert.deepEqual(scaled.weights, Float32Array.from([2, 4, 9, 12]));
  assert.deepEqual(scaled.bias, Float32Array.from([1, -1]));
  assert.throws(
    () => foldBatchNorm(new Float32Array(4), null, 2, { ...bn, variance: Float32Array.from([1, -1]) }),
    /variance\[1\]/,
  );
});
