// The int8 kernels' output stage (native/src/qs8_requantize_gemmlowp.c and its SIMD copies) rounds exactly
// like TFLite's MultiplyByQuantizedMultiplier, and so does the TypeScript reference every int8 executor and
// test uses (requantizeGemmlowp): ties, saturation and wrapping, on a one-weight int8 fully-connected layer.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { requantizeGemmlowp } from '../../agent/runtime/number/requantization.js';
import { createFullyConnectedInt8 } from '../../native/index.js';

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

/** x through the native int8 layer: input 0, weight 1, bias x, so the accumulator is exactly x. */
function requantizeOne(x: number, multiplier: number, shift: number): number {
  const layer = createFullyConnectedInt8({
    batch: 1,
    inChannels: 1,
    outChannels: 1,
    activations: 'int8',
    inputZeroPoint: 0,
    outputZeroPoint: 0,
    weights: new Int8Array([1]),
    bias: new Int32Array([x]),
    multipliers: new Int32Array([multiplier]),
    shifts: new Int32Array([shift]),
  });
  const output = new Int8Array(1);
  layer.run(new Int8Array([0]), output);
  layer.dispose();
  return output[0]!;
}

test('rounds exactly like TFLite MultiplyByQuantizedMultiplier, native and reference', () => {
  const half = 1 << 30; // 0.5 in Q31
  assert.equal(requantizeOne(3, half, 0), 2); // 1.5: high-mul ties go up
  assert.equal(requantizeOne(-3, half, 0), -1); // -1.5: high-mul ties go up
  assert.equal(requantizeOne(-6, half, -1), -2); // -3 / 2: divide-by-POT ties go away from zero
  assert.equal(requantizeOne(6, half, -1), 2); // 3 / 2
  assert.equal(requantizeOne(5, half, 1), 5); // left shift
  assert.equal(requantizeOne(100, INT32_MAX, -31), 0);
  // INT32_MIN * INT32_MIN is the one product that saturates (to INT32_MAX, so the output clamps high).
  assert.equal(requantizeGemmlowp(INT32_MIN, INT32_MIN, 0), INT32_MAX);
  assert.equal(requantizeOne(INT32_MIN, INT32_MIN, 0), 127);
  assert.equal(requantizeOne(INT32_MIN, INT32_MIN, -31), 1);
  // Left shifts wrap modulo 2^32 as TFLite's int32 multiply does: 2^30 << 1 = INT32_MIN.
  assert.equal(requantizeGemmlowp(1 << 30, INT32_MAX, 1), requantizeGemmlowp(INT32_MIN, INT32_MAX, 0));
  for (const [x, m, s] of [
    [3, half, 0],
    [-3, half, 0],
    [-6, half, -1],
    [INT32_MIN, INT32_MAX, 0],
    [INT32_MAX, INT32_MIN, 0],
    [INT32_MAX, INT32_MAX, 30],
    [INT32_MIN, 1, -31],
    [-1, 1, -31],
    [1 << 30, INT32_MAX, 1],
  ] as const) {
    const expected = Math.min(127, Math.max(-128, requantizeGemmlowp(x, m, s)));
    assert.equal(requantizeOne(x, m, s), expected, `x=${x} multiplier=${m} shift=${s}`);
  }
});
