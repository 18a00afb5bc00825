// The rounding rules of the number formats (agent/runtime/number/rounding.ts): what each does with a tie,
// and frexp, which the requantization multiplier is built on, on every kind of double.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  frexp,
  roundHalfAwayFromZero,
  roundHalfEven,
  roundHalfUp,
} from '../../../../agent/runtime/number/rounding.js';

test('roundHalfAwayFromZero rounds ties away from zero', () => {
  assert.deepEqual([2.5, -2.5, 0.5, -0.5, 1.4, -1.6].map(roundHalfAwayFromZero), [3, -3, 1, -1, 1, -2]);
});

test('roundHalfEven rounds ties to the even neighbour, as ONNX does', () => {
  assert.deepEqual(
    [2.5, -2.5, 3.5, -3.5, 0.5, -0.5, 1.4, -1.6].map(roundHalfEven),
    [2, -2, 4, -4, 0, -0, 1, -2],
  );
});

test('roundHalfUp rounds ties toward +infinity, as the fixed-point kernels do', () => {
  assert.deepEqual([2.5, -2.5, 0.5, -0.5, 1.4, -1.6].map(roundHalfUp), [3, -2, 1, 0, 1, -2]);
  assert.ok(Number.isNaN(roundHalfUp(NaN)));
});

test('frexp matches C on normal, subnormal and special values', () => {
  assert.deepEqual(frexp(8), { fraction: 0.5, exponent: 4 });
  assert.deepEqual(frexp(-3), { fraction: -0.75, exponent: 2 });
  assert.deepEqual(frexp(0.1), { fraction: 0.8, exponent: -3 });
  assert.deepEqual(frexp(Number.MIN_VALUE), { fraction: 0.5, exponent: -1073 });
  assert.deepEqual(frexp(Number.MAX_VALUE), { fraction: 1 - 2 ** -53, exponent: 1024 });
  assert.deepEqual(frexp(0), { fraction: 0, exponent: 0 });
  assert.deepEqual(frexp(Infinity), { fraction: Infinity, exponent: 0 });
  assert.ok(Number.isNaN(frexp(NaN).fraction));
});
