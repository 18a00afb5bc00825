import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  activationQuantizationFromRange,
  dequantizeActivations,
  dequantizeBias,
  dequantizeWeightsPerChannel,
  quantizeActivations,
  quantizeBias,
  quantizeWeightsPerChannel,
} from '../../../optimize/quantize/int8.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

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
