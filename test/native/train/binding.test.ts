// The training addon's argument checks: every bad argument is a TypeError or RangeError naming it, before
// any C runs; and the SGEMM paths this CPU has agree with each other.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { loadTrainBinding, type TrainIsa, type WindowShape } from '../../../native/train-kernels.js';

const shape: WindowShape = {
  batch: 1,
  inputHeight: 4,
  inputWidth: 4,
  inputChannels: 2,
  outputHeight: 4,
  outputWidth: 4,
  outputChannels: 3,
  kernelHeight: 3,
  kernelWidth: 3,
  strideHeight: 1,
  strideWidth: 1,
  dilationHeight: 1,
  dilationWidth: 1,
  paddingTop: 1,
  paddingLeft: 1,
};

function convArgs(): Parameters<ReturnType<typeof loadTrainBinding>['conv2dForward']>[0] {
  return {
    ...shape,
    x: new Float32Array(32),
    filter: new Float32Array(54),
    bias: null,
    activation: 'relu',
    y: new Float32Array(48),
  };
}

describe('training addon arguments', () => {
  const native = loadTrainBinding();

  test('a well-formed call runs', () => {
    const args = convArgs();
    args.x.fill(1);
    args.filter.fill(1);
    native.conv2dForward(args);
    // Centre pixels see 3x3x2 ones.
    assert.equal(args.y[(1 * 4 + 1) * 3], 18);
  });

  test('wrong types are TypeErrors naming the argument', () => {
    assert.throws(() => native.conv2dForward({ ...convArgs(), x: new Float64Array(32) as never }), {
      name: 'TypeError',
      message: /Expected a Float32Array for x but received Float64Array/,
    });
    assert.throws(() => native.conv2dForward({ ...convArgs(), batch: 1.5 }), {
      name: 'TypeError',
      message: /for batch/,
    });
    assert.throws(() => native.conv2dForward({ ...convArgs(), activation: 7 as never }), {
      name: 'TypeError',
      message: /for activation/,
    });
    assert.throws(() => (native.conv2dForward as (a: unknown) => void)(undefined), { name: 'TypeError' });
  });

  test('wrong sizes and values are RangeErrors naming the argument', () => {
    assert.throws(() => native.conv2dForward({ ...convArgs(), filter: new Float32Array(53) }), {
      name: 'RangeError',
      message: /Float32Array of 54 values for filter but received 53 values/,
    });
    assert.throws(() => native.conv2dForward({ ...convArgs(), strideHeight: 0 }), {
      name: 'RangeError',
      message: /strideHeight/,
    });
    assert.throws(() => native.conv2dForward({ ...convArgs(), activation: 'gelu' as never }), {
      name: 'RangeError',
      message: /activation but received "gelu"/,
    });
    assert.throws(() => native.maxPool({ ...shape, x: new Float32Array(32), y: new Float32Array(48) }), {
      name: 'RangeError',
      message: /outputChannels equal to inputChannels/,
    });
    assert.throws(
      () =>
        native.batchMatMul({
          batchA: 2,
          batchB: 3,
          m: 1,
          n: 1,
          k: 1,
          transposeA: false,
          transposeB: false,
          a: new Float32Array(2),
          b: new Float32Array(3),
          bias: null,
          activation: 'linear',
          c: new Float32Array(3),
        }),
      { name: 'RangeError', message: /for batchB/ },
    );
    assert.throws(() => native.setThreads(0), { name: 'RangeError', message: /threads/ });
    // A path of the other architecture: never one this CPU runs.
    const foreignIsa: TrainIsa = process.arch.startsWith('arm') ? 'avx2' : 'neon';
    assert.throws(() => native.setIsa(foreignIsa), { name: 'RangeError', message: /isa/ });
    assert.throws(
      () => native.transpose({ shape: [2, 2], perm: [0, 0], x: new Float32Array(4), y: new Float32Array(4) }),
      { name: 'RangeError', message: /permutation/ },
    );
  });

  test('an output sharing memory with an input is refused', () => {
    const buffer = new Float32Array(80);
    assert.throws(
      () => native.conv2dForward({ ...convArgs(), x: buffer.subarray(0, 32), y: buffer.subarray(30, 78) }),
      { name: 'RangeError', message: /y to share no memory with x/ },
    );
    const param = new Float32Array(4);
    assert.throws(
      () =>
        native.adamUpdate({
          param,
          grad: param,
          m: new Float32Array(4),
          v: new Float32Array(4),
          learningRate: 0.1,
          beta1: 0.9,
          beta2: 0.999,
          epsilon: 1e-7,
          bias1: 0.1,
          bias2: 0.001,
        }),
      { name: 'RangeError', message: /param to share no memory with grad/ },
    );
  });

  test('every SGEMM path this CPU has gives the same product', () => {
    const isas: TrainIsa[] = ['scalar', 'avx2', 'avx512'];
    const best = native.isa().best;
    const m = 37;
    const n = 53;
    const k = 300;
    const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.7));
    const results: Float32Array[] = [];
    for (const isa of isas.slice(0, isas.indexOf(best) + 1)) {
      native.setIsa(isa);
      const c = new Float32Array(m * n);
      native.batchMatMul({
        batchA: 1,
        batchB: 1,
        m,
        n,
        k,
        transposeA: false,
        transposeB: false,
        a,
        b,
        bias: null,
        activation: 'linear',
        c,
      });
      results.push(c);
    }
    native.setIsa(best);
    // Plain reference in double precision.
    for (let i = 0; i < m; i += 7)
      for (let j = 0; j < n; j += 5) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += a[i * k + p]! * b[p * n + j]!;
        for (const c of results) assert.ok(Math.abs(c[i * n + j]! - sum) < 1e-3, `c[${i}][${j}]`);
      }
  });
  test('adamUpdate is one step of tfjs AdamOptimizer, in place', () => {
    const param = Float32Array.from([0.5, -1, 2]);
    const grad = Float32Array.from([0.1, -0.2, 0.3]);
    const m = Float32Array.from([0.01, 0, -0.02]);
    const v = Float32Array.from([0.001, 0.002, 0]);
    const [lr, b1, b2, eps, t] = [0.01, 0.9, 0.999, 1e-7, 3];
    const expected = [...param].map((p, i) => {
      const mi = b1 * m[i]! + (1 - b1) * grad[i]!;
      const vi = b2 * v[i]! + (1 - b2) * grad[i]! ** 2;
      return p - (lr * (mi / (1 - b1 ** t))) / (Math.sqrt(vi / (1 - b2 ** t)) + eps);
    });
    native.adamUpdate({
      param,
      grad,
      m,
      v,
      learningRate: lr,
      beta1: b1,
      beta2: b2,
      epsilon: eps,
      bias1: 1 - b1 ** t,
      bias2: 1 - b2 ** t,
    });
    expected.forEach((e, i) => assert.ok(Math.abs(param[i]! - e) < 1e-6, `param[${i}] ${param[i]} vs ${e}`));
    assert.ok(Math.abs(m[0]! - (0.9 * 0.01 + 0.1 * 0.1)) < 1e-7);
  });
});
