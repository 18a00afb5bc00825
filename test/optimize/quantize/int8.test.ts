import assert from 'node:assert/strict';
import { test } from 'node:test';

import { requantizeGemmlowp } from '../../../agent/runtime/reference-ops/requantize.js';
import {
  activationQuantizationFromRange,
  dequantizeActivations,
  dequantizeBias,
  dequantizeMultiplier,
  dequantizeWeightsPerChannel,
  frexp,
  quantizeActivations,
  quantizeBias,
  quantizeMultiplier,
  quantizeWeightsPerChannel,
  roundHalfAwayFromZero,
} from '../../../optimize/quantize/int8.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

function assertRoundTrip(real: number): void {
  const { multiplier, shift } = quantizeMultiplier(real);
  assert.ok(Number.isInteger(multiplier) && Number.isInteger(shift), `${real}: integers`);
  assert.ok(
    Math.abs(multiplier) >= 2 ** 30 && Math.abs(multiplier) < 2 ** 31,
    `${real}: multiplier ${multiplier} is Q31 normalized`,
  );
  assert.ok(shift >= -31 && shift <= 30, `${real}: shift ${shift} in [-31, 30]`);
  const back = multiplier * 2 ** (shift - 31);
  assert.equal(dequantizeMultiplier({ multiplier, shift }), back);
  assert.ok(Math.abs(back - real) <= 1e-9 * Math.abs(real), `${real} -> ${back}`);
}

test('quantizeMultiplier round-trips within 1e-9 relative error', () => {
  const reals = [
    2 ** -32,
    1e-9,
    3.7e-7,
    1e-6,
    0.001,
    0.1,
    1 / 3,
    0.5,
    0.75,
    0.9999999,
    1,
    1.5,
    2,
    3.14159,
    1000,
    12345.678,
    2 ** 29,
    2 ** 30 - 1,
    -0.3,
    -1,
    -(2 ** 29),
  ];
  for (const real of reals) assertRoundTrip(real);
  const random = new SeededRandom(3);
  for (let i = 0; i < 2000; i++) assertRoundTrip(2 ** (-32 + random.next() * 61.9));
});

test('quantizeMultiplier handles 0, reals too small to matter, and fractions that round up to 1', () => {
  assert.deepEqual(quantizeMultiplier(0), { multiplier: 0, shift: 0 });
  assert.deepEqual(quantizeMultiplier(1e-12), { multiplier: 0, shift: 0 });
  assert.deepEqual(quantizeMultiplier(Number.MIN_VALUE), { multiplier: 0, shift: 0 });
  assert.deepEqual(quantizeMultiplier(1), { multiplier: 2 ** 30, shift: 1 });
  assert.deepEqual(quantizeMultiplier(0.5), { multiplier: 2 ** 30, shift: 0 });
  // 1 - 2^-40 has a fraction that rounds to 2^31 in Q31: renormalized to 0.5 * 2^1.
  assert.deepEqual(quantizeMultiplier(1 - 2 ** -40), { multiplier: 2 ** 30, shift: 1 });
  assert.throws(() => quantizeMultiplier(2 ** 30), { name: 'RangeError', message: /below 2\^30/ });
  assert.throws(() => quantizeMultiplier(NaN), { name: 'RangeError', message: /finite number for real/ });
  assert.throws(() => quantizeMultiplier(Infinity), { name: 'RangeError' });
});

test('frexp matches C on normal, subnormal and special values', () => {
  assert.deepEqual(frexp(8), { fraction: 0.5, exponent: 4 });
  assert.deepEqual(frexp(-3), { fraction: -0.75, exponent: 2 });
  assert.deepEqual(frexp(0.1), { fraction: 0.8, exponent: -3 });
  assert.deepEqual(frexp(Number.MIN_VALUE), { fraction: 0.5, exponent: -1073 });
  assert.deepEqual(frexp(Number.MAX_VALUE), { fraction: 1 - 2 ** -53, exponent: 1024 });
  assert.deepEqual(frexp(0), { fraction: 0, exponent: 0 });
});

test('a quantized multiplier requantizes integers to round(x * real) within one step', () => {
  const random = new SeededRandom(11);
  for (let i = 0; i < 2000; i++) {
    const real = 2 ** (-20 + random.next() * 20);
    const x = random.int(-(2 ** 24), 2 ** 24);
    const { multiplier, shift } = quantizeMultiplier(real);
    const got = requantizeGemmlowp(x, multiplier, shift);
    assert.ok(Math.abs(got - x * real) <= 1, `x=${x} real=${real}: ${got} vs ${x * real}`);
  }
});

test('activation quantization represents 0 exactly and round-trips within half a step', () => {
  const relu = activationQuantizationFromRange(0, 6.3);
  assert.equal(relu.zeroPoint, -128);
  assert.equal(relu.scale, 6.3 / 255);
  const wide = activationQuantizationFromRange(-3.2, 12.8);
  assert.equal(dequantizeActivations(quantizeActivations([0], wide), wide)[0], 0);
  const positive = activationQuantizationFromRange(2, 5); // widened to [0, 5]
  assert.equal(positive.zeroPoint, -128);
  assert.deepEqual(activationQuantizationFromRange(0, 0), { scale: 1, zeroPoint: 0 });
  assert.throws(() => activationQuantizationFromRange(1, -1), { name: 'RangeError' });

  const random = new SeededRandom(5);
  const values = Float32Array.from({ length: 1000 }, () => -3.2 + random.next() * 16);
  const back = dequantizeActivations(quantizeActivations(values, wide), wide);
  values.forEach((v, i) => assert.ok(Math.abs(back[i]! - v) <= wide.scale / 2 + 1e-6, `${v} -> ${back[i]}`));
  // Out of range saturates.
  assert.deepEqual([...quantizeActivations([-100, 100], wide)], [-128, 127]);
});

test('per-channel weight and bias quantization round-trip within half a step of each channel', () => {
  const random = new SeededRandom(9);
  const outChannels = 5;
  const inChannels = 33;
  const weights = Float32Array.from({ length: outChannels * inChannels }, (_, k) =>
    k < inChannels ? 0 : (random.next() - 0.5) * 10 ** ((k % outChannels) - 2),
  );
  const q = quantizeWeightsPerChannel(weights, outChannels, inChannels);
  assert.equal(q.scales[0], 1, 'all-zero channel gets scale 1');
  const back = dequantizeWeightsPerChannel(q);
  for (let o = 0; o < outChannels; o++) {
    let maxQ = 0;
    for (let i = 0; i < inChannels; i++) {
      const k = o * inChannels + i;
      assert.ok(q.values[k]! >= -127 && q.values[k]! <= 127);
      maxQ = Math.max(maxQ, Math.abs(q.values[k]!));
      assert.ok(Math.abs(back[k]! - weights[k]!) <= q.scales[o]! / 2 + 1e-7 * Math.abs(weights[k]!));
    }
    if (o > 0) assert.equal(maxQ, 127, `channel ${o} uses the full range`);
  }
  assert.throws(() => quantizeWeightsPerChannel(weights, 4, 33), {
    name: 'RangeError',
    message: /length 132/,
  });

  const bias = Float32Array.from({ length: outChannels }, () => random.next() - 0.5);
  const inputScale = 1 / 255;
  const qb = quantizeBias(bias, inputScale, q.scales);
  const bb = dequantizeBias(qb, inputScale, q.scales);
  bias.forEach((b, o) => assert.ok(Math.abs(bb[o]! - b) <= (inputScale * q.scales[o]!) / 2 + 1e-7));
});

test('roundHalfAwayFromZero rounds ties away from zero', () => {
  assert.deepEqual([2.5, -2.5, 0.5, -0.5, 1.4, -1.6].map(roundHalfAwayFromZero), [3, -3, 1, -1, 1, -2]);
});
