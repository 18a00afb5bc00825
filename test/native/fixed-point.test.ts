// The TypeScript fixed-point reference (agent/runtime/number/fixed-point.ts, reference-ops/fixed-point.ts)
// against values computed by the C
// kernels (native/src/qf_conv2d.c): the same random stream, rounding and saturation, so a
// model quantized by the trainer in TypeScript runs bit-exactly on the device. The C side of these
// numbers is printed by the C quantizers and kernels with the same arguments.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  dequantize,
  quantizeGradientMask,
  quantizeNearest,
  quantizeStochastic,
  roundShiftSaturate,
  uniform24,
} from '../../agent/runtime/number/fixed-point.js';
import {
  type Conv2dGeometry,
  fixedPointConv2dReference,
  fixedPointFullyConnectedReference,
  fullyConnectedGeometry,
} from '../../agent/runtime/reference-ops/fixed-point.js';

const SAMPLE = Float32Array.from([0.3, -0.3, 1.7, -2.55, 0.01, 100.0, -0.126, 3.14159]);

test('the random stream equals the C one (whittle_fixed_point_uniform24)', () => {
  assert.equal(uniform24(42, 0), 0.37542694807052612);
  assert.equal(uniform24(42, 1), 0.56269222497940063);
  assert.equal(uniform24(0xffffffff, 123456), 0.76783204078674316);
});

test('stochastic quantization gives the C bits, including saturation and a wrapping index', () => {
  assert.deepEqual(
    Array.from(quantizeStochastic(SAMPLE, 6, 16, 2024, 10)),
    [19, -19, 108, -163, 0, 6400, -8, 201],
  );
  assert.deepEqual(
    Array.from(quantizeStochastic(SAMPLE, 4, 8, 7, 4294967290)),
    [5, -5, 27, -41, 0, 127, -2, 50],
  );
});

test('stochastic rounding is unbiased and leaves grid values alone', () => {
  for (const value of [0.3, -0.3, 1.7, -2.55, 0.01]) {
    const count = 100_000;
    const q = quantizeStochastic(new Float32Array(count).fill(value), 4, 16, 42);
    let sum = 0;
    for (const v of q) sum += v;
    const mean = sum / count / 16;
    // One draw's standard deviation is at most 1/32; 6 sigma of the mean of 1e5 draws is 6e-4.
    assert.ok(Math.abs(mean - Math.fround(value)) < 6e-4, `mean of ${value} is ${mean}`);
  }
  assert.deepEqual(Array.from(quantizeStochastic([0.25, -3, 0], 2, 16, 1)), [1, -12, 0]);
});

test('a split array quantizes to the same bits as the whole (counter-based stream)', () => {
  const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 3);
  const whole = quantizeStochastic(values, 7, 16, 99, 5);
  const tail = quantizeStochastic(values.subarray(500), 7, 16, 99, 505);
  assert.deepEqual(Array.from(tail), Array.from(whole.subarray(500)));
});

test('nearest rounding ties toward +infinity and saturates symmetrically; NaN becomes 0', () => {
  assert.deepEqual(
    Array.from(quantizeNearest(SAMPLE, 10, 16)),
    [307, -307, 1741, -2611, 10, 32767, -129, 3217],
  );
  assert.deepEqual(
    Array.from(quantizeNearest([0.125, -0.125, 0.375, 1e9, -1e9, NaN], 2, 16)),
    [1, 0, 2, 32767, -32767, 0],
  );
  assert.deepEqual(Array.from(quantizeNearest([1e9, -1e9], 0, 8)), [127, -127]);
});

test('dequantize and the straight-through mask are the inverse and the gradient of the quantizer', () => {
  assert.deepEqual(Array.from(dequantize(Int16Array.from([1, -12, 32767]), 2)), [0.25, -3, 8191.75]);
  assert.deepEqual(Array.from(quantizeGradientMask([0.5, 127.9, -128, 200], 0, 8)), [1, 0, 0, 0]);
});

test('the output shift rounds half up, multiplies exactly for negative shifts, and saturates', () => {
  const cases: [bigint, number, number][] = [
    [3n, 1, 2],
    [-3n, 1, -1],
    [5n, 2, 1],
    [-5n, 2, -1],
    [-6n, 2, -1],
    [6n, 2, 2],
    [3n, -2, 12],
    [100000n, 0, 32767],
    [-100000n, 0, -32768],
    [1n << 40n, -32, 32767],
  ];
  for (const [acc, shift, want] of cases) {
    assert.equal(roundShiftSaturate(acc, shift, -32768, 32767), want, `${acc} >> ${shift}`);
  }
});

const GEOMETRY: Conv2dGeometry = {
  batch: 1,
  inputHeight: 4,
  inputWidth: 5,
  kernelHeight: 3,
  kernelWidth: 3,
  strideHeight: 2,
  strideWidth: 2,
  paddingTop: 1,
  paddingLeft: 1,
  outputHeight: 2,
  outputWidth: 3,
  groups: 1,
  groupInputChannels: 3,
  groupOutputChannels: 2,
};

test('the convolution reference gives the C kernel outputs (padding, stride 2, int64 bias)', () => {
  const input = Int16Array.from({ length: 60 }, (_, i) => ((i * 7919) % 65536) - 32768);
  const weights = Int16Array.from({ length: 54 }, (_, i) => ((i * 104729) % 65535) - 32767);
  const bias = BigInt64Array.from([-5000n, 123456789n]);
  const run = (outputFl: number): number[] => {
    const output = new Int16Array(6);
    fixedPointConv2dReference({
      geometry: GEOMETRY,
      input,
      weights,
      bias,
      inputFl: 12,
      weightFl: 14,
      outputFl,
      outputMin: -32768,
      outputMax: 32767,
      output,
    });
    return Array.from(output);
  };
  assert.deepEqual(run(10), [-19847, -10090, -32768, 26462, -3973, 26475]);
  assert.deepEqual(run(4), [-310, -158, -561, 413, -62, 414]);
});

test('the fully-connected reference is the 1x1 convolution, and a channel range writes only its channels', () => {
  const input = Int8Array.from([10, -20, 30, 127, -128, 5]);
  const weights = Int8Array.from([1, 2, 3, -1, -2, -3, 127, 0, -127]);
  const layer = {
    input,
    weights,
    bias: Int32Array.from([4, 0, -4]),
    inputFl: 2,
    weightFl: 1,
    outputFl: 1,
    outputMin: -128,
    outputMax: 127,
  };
  const output = new Int8Array(6).fill(99);
  fixedPointFullyConnectedReference(2, 3, 3, { ...layer, output });
  // Row 0: dot + bias = 64, -60, -2544 in units of 2^-3, moved to 2^-1 by a shift of 2: 16, -15, and -636
  // saturated to -128.
  assert.deepEqual(Array.from(output.subarray(0, 3)), [16, -15, -128]);
  const partial = new Int8Array(6).fill(99);
  fixedPointConv2dReference(
    {
      geometry: fullyConnectedGeometry(2, 3, 3),
      ...layer,
      output: partial,
    },
    1,
    2,
  );
  assert.deepEqual(Array.from(partial), [99, output[1], 99, 99, output[4], 99]);
});
