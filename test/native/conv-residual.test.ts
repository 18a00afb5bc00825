// A conv layer with a residual add in its output stage (Conv2d's `residual` argument): run(input, output,
// addend) against the same layer without it followed by the add operator (bit-exact: the same kernels, then
// the same add), and the C reference path; and the addend's argument checks.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  addF32,
  addInt8,
  type Conv2dShape,
  createConv2dF32,
  createConv2dInt8,
  createFullyConnectedF32,
  uniformPadding,
} from '../../native/index.js';
import { xorshift32 } from '../support/xorshift32.js';

const random = xorshift32(4242);
const image = { batch: 2, inputHeight: 7, inputWidth: 5, inputChannels: 12, outputChannels: 12 };
const shape: Conv2dShape = { ...image, kernelHeight: 3, kernelWidth: 3, ...uniformPadding(1) };
const inputLength = 2 * 7 * 5 * 12;
const outputLength = inputLength;
const floats = (n: number) => Float32Array.from({ length: n }, () => random() * 2 - 1);
const bytes = (n: number) => Int8Array.from({ length: n }, () => Math.floor(random() * 256) - 128);

const int8Quantization = {
  activations: 'int8' as const,
  inputZeroPoint: 3,
  outputZeroPoint: -7,
  multipliers: Int32Array.from({ length: 12 }, () => 0x40000000 + Math.floor(random() * 0x3fffffff)),
  shifts: new Int32Array(12).fill(-9),
};
const addQuantization = {
  aZeroPoint: -7,
  aMultiplier: 1518500250,
  aShift: -1,
  bZeroPoint: 11,
  bMultiplier: 1073741824,
  bShift: 0,
  outputZeroPoint: -2,
  outputMultiplier: 1431655765,
  outputShift: -19,
};

for (const groups of [1, 12]) {
  const kind = groups === 1 ? '3x3' : 'depthwise 3x3';
  test(`fp32 ${kind}: run with an addend = run, then add (bit-exact); the C reference agrees`, () => {
    const weights = floats(12 * 9 * (12 / groups));
    const bias = floats(12);
    const input = floats(inputLength);
    const addend = floats(outputLength);
    const plain = createConv2dF32({ ...shape, groups, weights, bias, outputMin: -0.25 });
    const fused = createConv2dF32({
      ...shape,
      groups,
      weights,
      bias,
      outputMin: -0.25,
      residual: { outputMin: 0, outputMax: 1.5 },
    });
    const want = new Float32Array(outputLength);
    plain.run(input, want);
    addF32({ a: want.slice(), b: addend, output: want, outputMin: 0, outputMax: 1.5 });
    const got = new Float32Array(outputLength);
    fused.run(input, got, addend);
    assert.deepEqual(got, want);
    const reference = new Float32Array(outputLength);
    fused.runReference(input, reference, addend);
    for (let i = 0; i < outputLength; i++) assert.ok(Math.abs(reference[i]! - want[i]!) < 1e-5);
  });

  test(`int8 ${kind}: run with an addend = run, then addInt8 = the C reference (bit-exact)`, () => {
    const weights = bytes(12 * 9 * (12 / groups));
    const bias = Int32Array.from({ length: 12 }, () => Math.floor(random() * 2000) - 1000);
    const input = bytes(inputLength);
    const addend = bytes(outputLength);
    const common = { ...shape, groups, weights, bias, ...int8Quantization };
    const plain = createConv2dInt8(common);
    const fused = createConv2dInt8({ ...common, residual: { ...addQuantization, outputMin: -2 } });
    const want = new Int8Array(outputLength);
    plain.run(input, want);
    addInt8({ a: want.slice(), b: addend, output: want, ...addQuantization, outputMin: -2 });
    const got = new Int8Array(outputLength);
    fused.run(input, got, addend);
    assert.deepEqual(got, want);
    const reference = new Int8Array(outputLength);
    fused.runReference(input, reference, addend);
    assert.deepEqual(reference, want);
  });
}

test('the addend is checked: required, of the output length, apart from the output; refused elsewhere', () => {
  const weights = floats(12 * 9 * 12);
  const fused = createConv2dF32({ ...shape, weights, residual: {} });
  const plain = createConv2dF32({ ...shape, weights });
  const input = floats(inputLength);
  const output = new Float32Array(outputLength);
  assert.throws(() => fused.run(input, output), {
    name: 'TypeError',
    message: 'Expected a Float32Array for addend but received undefined',
  });
  assert.throws(() => fused.run(input, output, new Float32Array(5)), {
    name: 'RangeError',
    message: /^Expected .*outputChannels.* for addend but received/,
  });
  assert.throws(() => fused.run(input, output, output), { name: 'RangeError', message: /addend|output/ });
  assert.throws(() => plain.run(input, output, floats(outputLength)), {
    name: 'TypeError',
    message: /^Expected no addend \(the layer has no residual add\) for addend/,
  });
  assert.throws(
    () =>
      createFullyConnectedF32({
        batch: 1,
        inChannels: 4,
        outChannels: 2,
        weights: floats(8),
        residual: {},
      } as never),
    { name: 'TypeError', message: /^Expected no residual \(a conv2d layer takes one\) for residual/ },
  );
  assert.throws(() => createConv2dF32({ ...shape, weights, residual: { outputMin: 1, outputMax: 0 } }), {
    name: 'RangeError',
    message: /residual\.outputMax/,
  });
  assert.throws(
    () =>
      createConv2dInt8({
        ...shape,
        weights: bytes(12 * 9 * 12),
        ...int8Quantization,
        residual: { ...addQuantization, aZeroPoint: 0 },
      }),
    {
      name: 'RangeError',
      message: "Expected the layer's outputZeroPoint (-7) for residual.aZeroPoint but received 0",
    },
  );
});
