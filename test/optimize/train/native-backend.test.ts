// Each native kernel of the 'whittle-native' backend against tfjs's own cpu kernel, forward and gradients
// (through tf.grads, so the backward kernels are the ones autograd really calls), on random shapes with a
// fixed seed. Runs on the real addon; every SGEMM path this CPU has is exercised.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { loadTrainBinding, type TrainIsa } from '../../../native/train-kernels.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { nativeKernelStats } from '../../../optimize/train/native-backend.js';
import {
  assertMatches,
  backendComparison,
  nativeBackendSuite,
  nativeRuns,
  onBothBackends,
} from './backend-comparison.js';

const TOLERANCE = 1e-4;

function randomArray(random: SeededRandom, shape: readonly number[]): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = random.normal();
  return data;
}

const compare = backendComparison(randomArray, TOLERANCE);

function fallbacks(): number {
  let total = 0;
  for (const s of nativeKernelStats.values()) total += s.fallback;
  return total;
}

describe('whittle-native backend vs tfjs cpu', () => {
  nativeBackendSuite(() => loadTrainBinding().setIsa(loadTrainBinding().isa().best));

  test('conv2d forward, input and filter gradients on random shapes, every SGEMM path', async () => {
    const random = new SeededRandom(11);
    const binding = loadTrainBinding();
    const isas: TrainIsa[] = ['scalar', 'avx2', 'avx512'];
    const best = isas.indexOf(binding.isa().best);
    const before = [
      nativeRuns('Conv2D'),
      nativeRuns('Conv2DBackpropInput'),
      nativeRuns('Conv2DBackpropFilter'),
    ];
    const fallbackBefore = fallbacks();
    for (let c = 0; c < 8; c++) {
      const isa = isas[c % (best + 1)]!;
      binding.setIsa(isa);
      const batch = random.int(1, 3);
      const h = random.int(3, 12);
      const w = random.int(3, 12);
      const ic = random.int(1, 9);
      const oc = random.int(1, 37);
      const fh = random.int(1, Math.min(5, h));
      const fw = random.int(1, Math.min(5, w));
      const stride = random.int(1, 2);
      const pad = random.next() < 0.5 ? 'same' : 'valid';
      const dilation = stride === 1 && random.next() < 0.3 ? 2 : 1;
      if (dilation === 2 && (h < 2 * fh || w < 2 * fw)) continue;
      await compare(
        `conv2d #${c} (${isa}) x[${batch},${h},${w},${ic}] f[${fh},${fw},${ic},${oc}] s${stride} ${pad} d${dilation}`,
        ([x, f]) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, stride, pad, 'NHWC', dilation),
        [
          [batch, h, w, ic],
          [fh, fw, ic, oc],
        ],
        100 + c,
      );
    }
    assert.ok(nativeRuns('Conv2D') > before[0]!, 'Conv2D ran natively');
    assert.ok(nativeRuns('Conv2DBackpropInput') > before[1]!, 'Conv2DBackpropInput ran natively');
    assert.ok(nativeRuns('Conv2DBackpropFilter') > before[2]!, 'Conv2DBackpropFilter ran natively');
    assert.equal(fallbacks(), fallbackBefore, 'no call fell back to the cpu kernel');
  });

  test('fused conv2d with bias and relu / relu6, 1x1 pointwise', async () => {
    const before = nativeRuns('FusedConv2D');
    for (const [i, activation] of (['relu', 'relu6', 'linear'] as const).entries()) {
      await compare(
        `fused conv2d ${activation}`,
        ([x, f, b]) =>
          tf.fused.conv2d({
            x: x as tf.Tensor4D,
            filter: f as tf.Tensor4D,
            strides: 1,
            pad: 'same',
            bias: b!,
            activation,
          }),
        [[2, 7, 6, 3], [3, 3, 3, 5], [5]],
        200 + i,
      );
    }
    await compare(
      'pointwise conv2d',
      ([x, f]) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'valid'),
      [
        [3, 5, 5, 8],
        [1, 1, 8, 16],
      ],
      210,
    );
    assert.ok(nativeRuns('FusedConv2D') > before);
  });

  test('depthwise conv2d with multipliers 1 and 2, strides and padding', async () => {
    const random = new SeededRandom(21);
    const before = [
      nativeRuns('DepthwiseConv2dNative'),
      nativeRuns('DepthwiseConv2dNativeBackpropInput'),
      nativeRuns('DepthwiseConv2dNativeBackpropFilter'),
    ];
    for (let c = 0; c < 6; c++) {
      const batch = random.int(1, 3);
      const h = random.int(4, 11);
      const ch = random.int(1, 19);
      const mult = c % 3 === 2 ? 2 : 1;
      const stride = random.int(1, 2);
      const pad = c % 2 === 0 ? 'same' : 'valid';
      await compare(
        `depthwise #${c} x[${batch},${h},${h},${ch}] m${mult} s${stride} ${pad}`,
        ([x, f]) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, stride, pad),
        [
          [batch, h, h, ch],
          [3, 3, ch, mult],
        ],
        300 + c,
      );
    }
    assert.ok(nativeRuns('DepthwiseConv2dNative') > before[0]!);
    assert.ok(nativeRuns('DepthwiseConv2dNativeBackpropInput') > before[1]!);
    assert.ok(nativeRuns('DepthwiseConv2dNativeBackpropFilter') > before[2]!);
  });

  test('max and average pooling, forward and gradients', async () => {
    const random = new SeededRandom(31);
    const before = [nativeRuns('MaxPoolGrad'), nativeRuns('AvgPoolGrad')];
    for (let c = 0; c < 8; c++) {
      const h = random.int(2, 13);
      const size = random.int(1, Math.min(3, h));
      const stride = random.int(1, 2);
      const pad = c % 2 === 0 ? 'same' : 'valid';
      const shape = [random.int(1, 3), h, h + 1, random.int(1, 6)];
      for (const { name, pool, seed } of [
        { name: 'maxPool', pool: tf.maxPool, seed: 400 },
        { name: 'avgPool', pool: tf.avgPool, seed: 450 },
      ])
        await compare(`${name} #${c}`, ([x]) => pool(x as tf.Tensor4D, size, stride, pad), [shape], seed + c);
    }
    assert.ok(nativeRuns('MaxPoolGrad') > before[0]!);
    assert.ok(nativeRuns('AvgPoolGrad') > before[1]!);
  });

  test('split on every axis (and concat, whose gradient is a split), forward and gradients', async () => {
    const before = nativeRuns('SplitV');
    const cases: [number[] | number, number][] = [
      [[2, 4], 3],
      [[1, -1], 1],
      [3, 0],
      [[1, 1, 3], 2],
    ];
    for (const [k, [sizes, axis]] of cases.entries())
      await compare(
        `split #${k}`,
        ([x]) => tf.concat(tf.split(x!, Array.isArray(sizes) ? [...sizes] : sizes, axis).reverse(), axis),
        [[3, 4, 5, 6]],
        500 + k,
      );
    assert.ok(nativeRuns('SplitV') > before);
  });

  test('matMul with transposes, batched with broadcasting, fused bias + relu', async () => {
    const random = new SeededRandom(41);
    const before = [nativeRuns('BatchMatMul'), nativeRuns('_FusedMatMul')];
    for (let c = 0; c < 8; c++) {
      const m = random.int(1, 70);
      const n = random.int(1, 70);
      const k = random.int(1, 300);
      const ta = c % 2 === 1;
      const tb = c % 4 >= 2;
      await compare(
        `matMul #${c} ${m}x${k}x${n} tA=${ta} tB=${tb}`,
        ([a, b]) => tf.matMul(a!, b!, ta, tb),
        [ta ? [k, m] : [m, k], tb ? [n, k] : [k, n]],
        500 + c,
      );
    }
    // Broadcast is forward only (no operand differentiated): tfjs's own BatchMatMul gradient does not reduce
    // a broadcast batch (on every backend).
    const batched = [
      { name: 'batched matMul', a: [3, 5, 7], b: [3, 7, 4], seed: 520, differentiate: undefined },
      { name: 'broadcast matMul', a: [4, 6, 9], b: [1, 9, 5], seed: 521, differentiate: [] },
    ];
    for (const c of batched)
      await compare(c.name, ([a, b]) => tf.matMul(a!, b!), [c.a, c.b], c.seed, c.differentiate);
    await compare(
      'fused matMul',
      ([a, b, bias]) =>
        tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias, activation: 'relu' }),
      [[33, 65], [65, 40], [40]],
      530,
    );
    assert.ok(nativeRuns('BatchMatMul') > before[0]!);
    assert.ok(nativeRuns('_FusedMatMul') > before[1]!);
  });

  test('batch norm forward and gradients for every input', async () => {
    const before = nativeRuns('FusedBatchNorm');
    const gradBefore = nativeRuns('WhittleFusedBatchNormGrad');
    await compare(
      'batchNorm',
      ([x, mean, variance, offset, scale]) =>
        tf.batchNorm(x!, mean!, variance!.abs().add(0.5), offset, scale, 0.001),
      [[4, 5, 5, 6], [6], [6], [6], [6]],
      600,
    );
    assert.ok(nativeRuns('FusedBatchNorm') > before);
    assert.ok(nativeRuns('WhittleFusedBatchNormGrad') > gradBefore, 'the gradient ran natively');
  });

  test('mean over the batch and spatial axes (batch-norm moments), with its gradient', async () => {
    const before = nativeRuns('Mean');
    await compare('mean', ([x]) => tf.moments(x!, [0, 1, 2]).variance, [[4, 5, 5, 6]], 700);
    await compare('mean keepDims', ([x]) => x!.mean([1, 2], true), [[3, 4, 5, 2]], 701);
    assert.ok(nativeRuns('Mean') >= before + 2, 'the means ran natively');
  });

  test('Conv2D and Dense layers with a ReLU run fused: loss, input and weight gradients match tfjs cpu', async () => {
    const runs = ['WhittleConv2DBiasRelu', 'WhittleMatMulBiasRelu', 'WhittleBiasReluGrad'].map(nativeRuns);
    const random = new SeededRandom(31);
    const xs = randomArray(random, [5, 11, 11, 2]);
    const labels = Array.from({ length: 5 }, () => random.int(0, 3));
    const [cpuResults, nativeResults] = await onBothBackends(() => {
      const init = (seed: number): ReturnType<typeof tf.initializers.glorotUniform> =>
        tf.initializers.glorotUniform({ seed });
      const model = tf.sequential({
        layers: [
          // Same and valid padding, stride 1 and 2, 3 and 40 output channels: both conv product orientations.
          tf.layers.conv2d({
            inputShape: [11, 11, 2],
            filters: 3,
            kernelSize: 3,
            padding: 'same',
            activation: 'relu',
            kernelInitializer: init(1),
            biasInitializer: init(2),
          }),
          tf.layers.conv2d({
            filters: 40,
            kernelSize: 3,
            strides: 2,
            activation: 'relu',
            kernelInitializer: init(3),
            biasInitializer: init(4),
          }),
          tf.layers.flatten(),
          tf.layers.dense({
            units: 6,
            activation: 'relu',
            kernelInitializer: init(5),
            biasInitializer: init(6),
          }),
          tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init(7) }),
        ],
      });
      const x = tf.tensor4d(xs, [5, 11, 11, 2]);
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 4);
      const outputs = tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() =>
          tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor).asScalar(),
        );
        const inputGrad = tf.grad((input: tf.Tensor) => (model.apply(input) as tf.Tensor).square().sum())(x);
        return [value, inputGrad, ...model.trainableWeights.map((w) => grads[w.name]!)].map(
          (t) => t.dataSync() as Float32Array,
        );
      });
      tf.dispose([x, y]);
      model.dispose();
      return outputs;
    });
    assert.equal(nativeResults.length, 2 + 8);
    cpuResults.forEach((expected, i) => assertMatches(nativeResults[i]!, expected, `result ${i}`, TOLERANCE));
    const after = ['WhittleConv2DBiasRelu', 'WhittleMatMulBiasRelu', 'WhittleBiasReluGrad'].map(nativeRuns);
    after.forEach((n, i) => assert.ok(n > runs[i]!, `fused kernel ${i} ran natively`));
  });

  test('a small CNN trains to the same weights on both backends', async () => {
    const random = new SeededRandom(7);
    const xs = randomArray(random, [16, 12, 12, 1]);
    const labels = Array.from({ length: 16 }, () => random.int(0, 2));
    const trained = await onBothBackends(async () => {
      const model = tf.sequential({
        layers: [
          tf.layers.conv2d({
            inputShape: [12, 12, 1],
            filters: 4,
            kernelSize: 3,
            activation: 'relu',
            kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
          }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.flatten(),
          tf.layers.dense({
            units: 3,
            activation: 'softmax',
            kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
          }),
        ],
      });
      model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
      const x = tf.tensor4d(xs, [16, 12, 12, 1]);
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 3);
      await model.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 });
      const weights = model.getWeights().map((t) => t.dataSync() as Float32Array);
      tf.dispose([x, y]);
      model.dispose();
      return weights;
    });
    const [cpuWeights, nativeWeights] = trained;
    cpuWeights.forEach((w, i) => assertMatches(nativeWeights[i]!, w, `weight ${i}`, TOLERANCE));
  });
});
