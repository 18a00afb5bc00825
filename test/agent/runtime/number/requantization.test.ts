// The one Q31 requantization multiplier (agent/runtime/number/requantization.ts): round trips, and the edge
// cases where a manager and a device could otherwise disagree — 0, subnormal and tiny scales, the 2^30 and
// 2^31 bounds, NaN and infinities, negative reals — pinned for both of the caller's choices.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  dequantizeMultiplier,
  type MultiplierOutOfRange,
  quantizeMultiplier,
  requantizeGemmlowp,
} from '../../../../agent/runtime/number/requantization.js';
import { SeededRandom } from '../../../../optimize/seeded-random.js';

const INT32_MAX = 0x7fffffff;
const MODES: MultiplierOutOfRange[] = ['refuse', 'saturate'];

function assertRoundTrip(real: number): void {
  const { multiplier, shift } = quantizeMultiplier(real, 'refuse');
  assert.ok(Number.isInteger(multiplier) && Number.isInteger(shift), `${real}: integers`);
  assert.ok(
    Math.abs(multiplier) >= 2 ** 30 && Math.abs(multiplier) < 2 ** 31,
    `${real}: multiplier ${multiplier} is Q31 normalized`,
  );
  assert.ok(shift >= -31 && shift <= 30, `${real}: shift ${shift} in [-31, 30]`);
  const back = multiplier * 2 ** (shift - 31);
  assert.equal(dequantizeMultiplier({ multiplier, shift }), back);
  // Q31 rounding of a fraction in [0.5, 1): at most half a step of 2^-31 relative to 2^30.
  assert.ok(Math.abs(back - real) <= 2 ** -31 * Math.abs(real), `${real} -> ${back}`);
  // Inside the range the two modes are one function.
  assert.deepEqual(quantizeMultiplier(real, 'saturate'), { multiplier, shift });
}

test('quantizeMultiplier round-trips within 2^-31 relative error, in both modes alike', () => {
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
    2 ** 30 - 0.5,
    -0.3,
    -1,
    -(2 ** 29),
  ];
  for (const real of reals) assertRoundTrip(real);
  const random = new SeededRandom(3);
  for (let i = 0; i < 2000; i++) assertRoundTrip(2 ** (-32 + random.next() * 61.9));
});

test('quantizeMultiplier: 0, subnormal and tiny reals become {0, 0} in both modes', () => {
  for (const mode of MODES) {
    for (const real of [
      0,
      -0,
      1e-12,
      2 ** -33,
      Number.MIN_VALUE,
      -Number.MIN_VALUE,
      2 ** -1060,
      2 ** -1022,
    ]) {
      const q = quantizeMultiplier(real, mode);
      // Strict: a -0 multiplier would be a different JavaScript value from the 0 the kernels are given.
      assert.ok(Object.is(q.multiplier, 0) && Object.is(q.shift, 0), `${mode} ${real}: ${JSON.stringify(q)}`);
    }
    // The smallest real that keeps a multiplier, and a fraction that rounds up to 1 just below it.
    assert.deepEqual(quantizeMultiplier(2 ** -32, mode), { multiplier: 2 ** 30, shift: -31 });
    assert.deepEqual(quantizeMultiplier(2 ** -32 * (1 - 2 ** -53), mode), {
      multiplier: 2 ** 30,
      shift: -31,
    });
  }
});

test('quantizeMultiplier renormalizes fractions that round up to 1', () => {
  assert.deepEqual(quantizeMultiplier(1, 'refuse'), { multiplier: 2 ** 30, shift: 1 });
  assert.deepEqual(quantizeMultiplier(0.5, 'refuse'), { multiplier: 2 ** 30, shift: 0 });
  // 1 - 2^-40 has a fraction that rounds to 2^31 in Q31: renormalized to 0.5 * 2^1.
  assert.deepEqual(quantizeMultiplier(1 - 2 ** -40, 'refuse'), { multiplier: 2 ** 30, shift: 1 });
  assert.deepEqual(quantizeMultiplier(-(1 - 2 ** -40), 'refuse'), { multiplier: -(2 ** 30), shift: 1 });
});

test('quantizeMultiplier at and past 2^30: refused, or saturated to the largest multiplier', () => {
  // The largest representable real is (2^31 - 1) * 2^-1 = 2^30 - 0.5.
  assert.deepEqual(quantizeMultiplier(2 ** 30 - 0.5, 'refuse'), { multiplier: INT32_MAX, shift: 30 });
  // 2^30 - 0.25 rounds up to 2^30 in Q31, which has no representation.
  for (const real of [2 ** 30 - 0.25, 2 ** 30, 2 ** 31, 2 ** 31 + 1, 1e300, Number.MAX_VALUE]) {
    assert.throws(() => quantizeMultiplier(real, 'refuse'), { name: 'RangeError', message: /below 2\^30/ });
    assert.throws(() => quantizeMultiplier(-real, 'refuse'), { name: 'RangeError', message: /below 2\^30/ });
    assert.deepEqual(quantizeMultiplier(real, 'saturate'), { multiplier: INT32_MAX, shift: 30 }, `${real}`);
    assert.deepEqual(
      quantizeMultiplier(-real, 'saturate'),
      { multiplier: -INT32_MAX, shift: 30 },
      `${-real}`,
    );
  }
  // A saturated multiplier sends an accumulator of +-1 to about +-2^30, past every int8 bound (the high
  // multiply's ties go up, so -1 lands one short of -2^30).
  assert.equal(requantizeGemmlowp(1, INT32_MAX, 30), 2 ** 30);
  assert.equal(requantizeGemmlowp(-1, INT32_MAX, 30), -(2 ** 30) + 1);
});

test('quantizeMultiplier: NaN is always refused, infinities as the mode says', () => {
  for (const mode of MODES) {
    assert.throws(() => quantizeMultiplier(NaN, mode), {
      name: 'RangeError',
      message: /finite number for real but received NaN/,
    });
  }
  assert.throws(() => quantizeMultiplier(Infinity, 'refuse'), {
    name: 'RangeError',
    message: /finite number for real but received Infinity/,
  });
  assert.throws(() => quantizeMultiplier(-Infinity, 'refuse'), { name: 'RangeError' });
  // What a package's scales give when their product overflows: the largest multiplier, like 1e300.
  assert.deepEqual(quantizeMultiplier(Infinity, 'saturate'), { multiplier: INT32_MAX, shift: 30 });
  assert.deepEqual(quantizeMultiplier(-Infinity, 'saturate'), { multiplier: -INT32_MAX, shift: 30 });
});

test('a quantized multiplier requantizes integers to round(x * real) within one step', () => {
  const random = new SeededRandom(11);
  for (let i = 0; i < 2000; i++) {
    const real = 2 ** (-20 + random.next() * 20);
    const x = random.int(-(2 ** 24), 2 ** 24);
    const { multiplier, shift } = quantizeMultiplier(real, 'refuse');
    const got = requantizeGemmlowp(x, multiplier, shift);
    assert.ok(Math.abs(got - x * real) <= 1, `x=${x} real=${real}: ${got} vs ${x * real}`);
  }
});
