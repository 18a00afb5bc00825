// Fixed-point Q(IL.FL) lengths and the bias in accumulator units (agent/runtime/number/fixed-point.ts): the
// choices a package writer makes and the runtime reads back. The quantizers' bits against the C kernels
// are test/native/fixed-point.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  fixedPointLimit,
  fractionalLength,
  quantizeFixedPointBias,
} from '../../../../agent/runtime/number/fixed-point.js';

test('fractionalLength is the largest FL at which the magnitude still fits the words', () => {
  const limit = fixedPointLimit(8);
  assert.equal(limit, 127);
  assert.equal(fixedPointLimit(16), 32767);
  assert.equal(fractionalLength(1, limit, -64, 64), 6); // 1 * 2^6 = 64 <= 127 < 128
  assert.equal(fractionalLength(127, limit, -64, 64), 0); // exactly the limit
  assert.equal(fractionalLength(127.5, limit, -64, 64), -1);
  assert.equal(fractionalLength(0.75, fixedPointLimit(16), -64, 64), 15);
  for (let e = -40; e <= 40; e++) {
    const magnitude = 2 ** e;
    const fl = fractionalLength(magnitude, limit, -64, 64);
    assert.ok(magnitude * 2 ** fl <= limit && magnitude * 2 ** (fl + 1) > limit, `2^${e} -> ${fl}`);
  }
  // All-zero (or no) values take the largest FL; the bounds clamp the rest.
  assert.equal(fractionalLength(0, limit, -16, 31), 31);
  assert.equal(fractionalLength(NaN, limit, -16, 31), 31);
  assert.equal(fractionalLength(1e-30, limit, -16, 31), 31);
  assert.equal(fractionalLength(1e30, limit, -16, 31), -16);
});

test('a bias in accumulator units rounds half up, maps NaN to 0 and saturates to what the kernels take', () => {
  const bias = Float32Array.from([0.3, -0.3, 0.125, -0.125, NaN, Infinity, -Infinity, 1e30]);
  const narrow = quantizeFixedPointBias(bias, 2, 8);
  assert.ok(narrow instanceof Int32Array);
  assert.deepEqual(Array.from(narrow), [1, -1, 1, 0, 0, 0x7fffffff, -0x80000000, 0x7fffffff]);
  const wide = quantizeFixedPointBias(bias, 2, 16);
  assert.ok(wide instanceof BigInt64Array);
  assert.deepEqual(Array.from(wide), [1n, -1n, 1n, 0n, 0n, 2n ** 56n, -(2n ** 56n), 2n ** 56n]);
});
