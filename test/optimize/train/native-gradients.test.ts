// The fused native gradients of the 'whittle-native' backend (ReLU, ReLU6 as min(relu(x), 6), Minimum,
// Maximum, Square, Mean) and the broadcasting binary ops against tfjs's own cpu backend. The native
// kernels compute the same float32 products tfjs does, so outputs and gradients must be identical, NaN for
// NaN; inputs include exact zeros, exact sixes and NaN so that every edge of a mask is exercised.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { COMPARE_OPS, loadTrainBinding, UNARY_GRAD_OPS } from '../../../native/train-kernels.js';
import { binarize } from '../../../optimize/compress/xnor.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { NATIVE_BACKEND } from '../../../optimize/train/native-backend.js';
import { buildZooModel } from '../../../optimize/zoo/index.js';
import {
  assertMatches,
  backendComparison,
  type Case,
  nativeBackendSuite,
  nativeRuns,
} from './backend-comparison.js';

/** Normal values scaled by 4 (so ReLU6's upper edge is crossed), with some exact 0, 6 and -6. */
function randomArray(random: SeededRandom, shape: readonly number[]): Float32Array {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) {
    const pick = random.next();
    data[i] = pick < 0.05 ? 0 : pick < 0.1 ? 6 : pick < 0.12 ? -6 : 4 * random.normal();
  }
  return data;
}

/** Bit-identical unless a case gives a tolerance. */
const compare = backendComparison(randomArray, 0);

describe('fused native gradients vs tfjs cpu', () => {
  nativeBackendSuite();

  test('ReLU gradient, with zeros and NaN in x', async () => {
    const runs = nativeRuns('WhittleUnaryGrad');
    await compare(
      'relu',
      ([x]) => tf.relu(x!),
      [[3, 5, 7, 4]],
      1,
      [0],
      ([x]) => {
        x![3] = NaN;
        x![10] = -0;
      },
    );
    assert.ok(nativeRuns('WhittleUnaryGrad') > runs, 'the gradient ran natively');
  });

  test('ReLU6 as the relu6 activation layer trains through Minimum and ReLU masks', async () => {
    const runs = nativeRuns('WhittleCompareMask');
    const layer = tf.layers.activation({ activation: 'relu6' });
    await compare('relu6 layer', ([x]) => layer.apply(x!) as tf.Tensor, [[4, 6, 6, 8]], 2);
    assert.ok(nativeRuns('WhittleCompareMask') > runs, 'the Minimum gradient ran natively');
  });

  test('Minimum and Maximum gradients, same shapes and broadcast operands', async () => {
    const runs = nativeRuns('WhittleCompareMask');
    // Ties (a == b) decide which input gets the gradient, so some are planted.
    const ties = ([a, b]: Float32Array[]): void => {
      for (let i = 0; i < a!.length; i += 5) a![i] = b![i % b!.length]!;
    };
    for (const [name, op] of [
      ['minimum', tf.minimum],
      ['maximum', tf.maximum],
    ] as const) {
      await compare(
        name,
        ([a, b]) => op(a!, b!),
        [
          [5, 6, 7],
          [5, 6, 7],
        ],
        3,
        [0, 1],
        ties,
      );
      // tfjs gives broadcast operands an output-shaped gradient, so only the full-shape input is
      // differentiated: a row broadcast, a column broadcast (the generic path) and a scalar.
      await compare(`${name} row`, ([a, b]) => op(a!, b!), [[4, 3, 8], [8]], 4, [0], ties);
      await compare(
        `${name} column`,
        ([a, b]) => op(a!, b!),
        [
          [3, 1],
          [3, 9],
        ],
        5,
        [1],
      );
      await compare(`${name} scalar`, ([a, b]) => op(a!, b!), [[], [6, 10]], 6, [1]);
    }
    assert.ok(nativeRuns('WhittleCompareMask') >= runs + 8);
  });

  test('Square gradient', async () => {
    const runs = nativeRuns('WhittleUnaryGrad');
    await compare(
      'square',
      ([x]) => tf.square(x!),
      [[7, 9, 5]],
      7,
      [0],
      ([x]) => (x![2] = NaN),
    );
    assert.ok(nativeRuns('WhittleUnaryGrad') > runs);
  });

  test('Mean gradient over contiguous axes natively, other axes through tfjs', async () => {
    const runs = nativeRuns('WhittleMeanGrad');
    // The native forward Sum adds in float32 where tfjs adds in float64: a float tolerance here.
    const mean = (name: string, f: Case, shape: number[], seed: number, tolerance = 1e-5): Promise<void> =>
      compare(name, f, [shape], seed, [0], () => undefined, tolerance);
    await mean('moments', ([x]) => tf.moments(x!, [0, 1, 2]).variance, [4, 5, 5, 6], 8);
    await mean('global average', ([x]) => x!.mean([1, 2]), [3, 4, 5, 7], 9);
    await mean('last axis keepDims', ([x]) => x!.mean(-1, true), [3, 4, 5], 10);
    await mean('all axes', ([x]) => x!.mean(), [6, 7], 11);
    const contiguous = nativeRuns('WhittleMeanGrad');
    assert.ok(contiguous >= runs + 5, 'the contiguous means differentiated natively');
    await mean('axes 0 and 2', ([x]) => x!.mean([0, 2]), [3, 4, 5], 12);
    assert.equal(nativeRuns('WhittleMeanGrad'), contiguous, 'a split block of axes used tfjs');
  });

  test('binary ops broadcasting a leading row operand or a column', async () => {
    const runs = nativeRuns('Multiply') + nativeRuns('Add') + nativeRuns('Sub');
    // The shapes of a and b, and the operands whose gradient is checked.
    const cases = [
      { name: 'mul row', op: tf.mul, a: [1, 1, 1, 6], b: [3, 4, 5, 6], seed: 13, checked: [1] },
      { name: 'sub row', op: tf.sub, a: [6], b: [3, 4, 6], seed: 14, checked: [1] },
      { name: 'add column', op: tf.add, a: [2, 3, 1], b: [2, 3, 4], seed: 15, checked: [1] },
      { name: 'mul column', op: tf.mul, a: [4, 5], b: [3, 4, 1], seed: 16, checked: [] },
    ];
    for (const c of cases) await compare(c.name, ([a, b]) => c.op(a!, b!), [c.a, c.b], c.seed, c.checked);
    assert.ok(nativeRuns('Multiply') + nativeRuns('Add') + nativeRuns('Sub') >= runs + 4);
  });

  test('a BatchNormalization layer in training mode: output, gradients and moving statistics', async () => {
    const runs = nativeRuns('WhittleBatchNormTrainGrad');
    for (const [shape, seed] of [
      [[6, 5, 5, 7], 30],
      [[9, 4], 31],
    ] as const) {
      const random = new SeededRandom(seed);
      const data = randomArray(random, shape);
      const weights = randomArray(random, shape);
      const results: Float32Array[][] = [];
      for (const backend of ['cpu', NATIVE_BACKEND]) {
        await tf.setBackend(backend);
        const layer = tf.layers.batchNormalization({
          momentum: 0.9,
          gammaInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed }),
          betaInitializer: tf.initializers.randomUniform({ minval: -1, maxval: 1, seed: seed + 1 }),
        });
        const w = tf.tensor(weights, [...shape]);
        layer.build([...shape]);
        const x = tf.variable(tf.tensor(data, [...shape]));
        const gamma = layer.trainableWeights[0]!.read() as tf.Variable;
        const beta = layer.trainableWeights[1]!.read() as tf.Variable;
        const { value, grads } = tf.variableGrads(
          () => (layer.apply(x, { training: true }) as tf.Tensor).mul(w).sum(),
          [x, gamma, beta],
        );
        const moving = layer.nonTrainableWeights.map((v) => v.read().dataSync() as Float32Array);
        results.push([
          value.dataSync() as Float32Array,
          ...[x, gamma, beta].map((v) => grads[v.name]!.dataSync() as Float32Array),
          ...moving,
        ]);
        tf.dispose([x, w, value, ...Object.values(grads)]);
      }
      const [expected, actual] = results as [Float32Array[], Float32Array[]];
      const names = ['loss', 'dx', 'dgamma', 'dbeta', 'moving mean', 'moving variance'];
      expected.forEach((e, i) => assertMatches(actual[i]!, e, `[${shape.join(',')}] ${names[i]}`, 2e-5));
    }
    assert.ok(nativeRuns('WhittleBatchNormTrainGrad') >= runs + 2, 'the fused gradient ran natively');
  });

  test("XNOR-Net's binary activation (compress/xnor.ts binarize) runs natively, as on the cpu backend", async () => {
    const runs = nativeRuns('Step') + nativeRuns('Abs') + nativeRuns('Sub');
    // Exact -1, +1 (the gradient window's edges), 0 and -0 (binarized to +1) planted among the values.
    const edges = ([x]: Float32Array[]): void => {
      for (let i = 0; i < x!.length; i += 7) x![i] = [-1, 1, 0, -0][(i / 7) % 4]!;
    };
    await compare('binarize', ([x]) => binarize(x!), [[4, 6, 6, 8]], 4, [0], edges);
    await compare(
      'binarize of unit-scale values',
      ([x]) => binarize(x!.div(4)),
      [[2, 5, 5, 3]],
      5,
      [0],
      edges,
    );
    assert.ok(
      nativeRuns('Step') + nativeRuns('Abs') + nativeRuns('Sub') >= runs + 6,
      'Step, Abs and Sub ran natively',
    );
  });

  test('one MobileNet training step matches the cpu backend', async () => {
    const runs = nativeRuns('WhittleCompareMask') + nativeRuns('WhittleMeanGrad');
    const random = new SeededRandom(20);
    const images = Float32Array.from({ length: 4 * 28 * 28 }, () => random.next());
    const labels = [0, 3, 7, 9];
    const weightsAfter: Float32Array[][] = [];
    for (const backend of ['cpu', NATIVE_BACKEND]) {
      await tf.setBackend(backend);
      const model = buildZooModel('mobilenet', {
        height: 28,
        width: 28,
        channels: 1,
        classes: 10,
        widthMultiplier: 0.25,
        seed: 3,
      });
      model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
      const x = tf.tensor4d(images, [4, 28, 28, 1]);
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
      await model.trainOnBatch(x, y);
      weightsAfter.push(model.getWeights().map((w) => w.dataSync() as Float32Array));
      tf.dispose([x, y]);
      model.dispose();
    }
    const [cpuWeights, nativeWeights] = weightsAfter as [Float32Array[], Float32Array[]];
    assert.equal(nativeWeights.length, cpuWeights.length);
    cpuWeights.forEach((expected, w) => {
      let maxDiff = 0;
      let maxRef = 0;
      expected.forEach((e, i) => {
        maxRef = Math.max(maxRef, Math.abs(e));
        maxDiff = Math.max(maxDiff, Math.abs(nativeWeights[w]![i]! - e));
      });
      // Convolutions sum in another order natively, so weights agree to float tolerance, not bits.
      assert.ok(maxDiff <= 1e-4 * Math.max(maxRef, 1e-3), `weight ${w}: max difference ${maxDiff}`);
    });
    assert.ok(nativeRuns('WhittleCompareMask') + nativeRuns('WhittleMeanGrad') > runs);
  });
});

describe('fused gradient kernels of the training addon', () => {
  const native = loadTrainBinding();

  test('compute dy * step(x), dy * 2x, masked dy and the broadcast mean gradient', () => {
    const dy = new Float32Array([1, 2, 3, 4, 5, 6]);
    const x = new Float32Array([-1, 0, 2, NaN, 7, 6]);
    const dx = new Float32Array(6);
    native.unaryGrad({ op: UNARY_GRAD_OPS.relu, dy, x, dx });
    assert.deepEqual([...dx], [0, 0, 3, NaN, 5, 6]);
    native.unaryGrad({ op: UNARY_GRAD_OPS.square, dy, x, dx });
    assert.deepEqual([...dx], [-2, 0, 12, NaN, 70, 72]);
    // Column broadcast of a ([a0, a1] each repeated 3 times) against scalar b = 6.
    const a = new Float32Array([7, 6]);
    const y = new Float32Array(6);
    const mask = {
      n: 6,
      dy,
      a,
      aDivisor: 3,
      aLength: 2,
      b: new Float32Array([6]),
      bDivisor: 1,
      bLength: 1,
      y,
    };
    native.compareMask({ ...mask, op: COMPARE_OPS.greater });
    assert.deepEqual([...y], [1, 2, 3, 0, 0, 0]);
    native.compareMask({ ...mask, op: COMPARE_OPS.lessEqual });
    assert.deepEqual([...y], [0, 0, 0, 4, 5, 6]);
    const mean = new Float32Array(12);
    native.meanGrad({ outer: 2, mid: 3, inner: 2, dy: new Float32Array([3, 6, 9, 12]), dx: mean });
    assert.deepEqual([...mean], [1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4]);
  });

  test('reject wrong lengths, unknown ops and aliased outputs with typed errors', () => {
    const v = new Float32Array(4);
    assert.throws(
      () => native.unaryGrad({ op: 9, dy: v, x: v, dx: new Float32Array(4) }),
      (e: Error) => e instanceof RangeError && /op/.test(e.message),
    );
    assert.throws(
      () => native.unaryGrad({ op: 0, dy: v, x: new Float32Array(3), dx: new Float32Array(4) }),
      (e: Error) => e instanceof RangeError && /\bx\b/.test(e.message),
    );
    assert.throws(() => native.unaryGrad({ op: 0, dy: v, x: new Float32Array(4), dx: v }), /dx/);
    assert.throws(
      () =>
        native.compareMask({
          op: 0,
          n: 4,
          dy: v,
          a: v,
          aDivisor: 1,
          aLength: 4,
          b: v,
          bDivisor: 1,
          bLength: 4,
          y: new Float32Array(3),
        }),
      (e: Error) => e instanceof RangeError && /\by\b/.test(e.message),
    );
    assert.throws(
      () => native.meanGrad({ outer: 1, mid: 2, inner: 2, dy: new Float32Array(3), dx: v }),
      (e: Error) => e instanceof RangeError && /dy/.test(e.message),
    );
  });

  test('retainFreedMemory takes effect on glibc', () => {
    const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
    const glibc = report.header?.glibcVersionRuntime !== undefined;
    assert.equal(native.retainFreedMemory(), glibc);
  });
});
