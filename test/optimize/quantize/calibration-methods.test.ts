// The calibration methods of post-training quantization (optimize/quantize/calibrate.ts, `whittle quantize
// --calibration-method`): min/max, percentile and mse ranges of a hidden activation with a few outliers, the
// graph input and the logits kept at min/max by every method; and a ReLU after a residual add fused into the
// qadd (its range and integer bounds) by ptq.ts; the refusals of `whittle quantize`'s calibration flags.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { type Package, readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { CommandUsageError } from '../../../electron/commands/command-error.js';
import { quantizeCommand } from '../../../electron/commands/quantize.js';
import { GraphBuilder } from '../../../optimize/package/graph-builder.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import {
  CALIBRATION_METHODS,
  CALIBRATION_PERCENTILE,
  type CalibrationMethod,
  collectRanges,
} from '../../../optimize/quantize/calibrate.js';
import {
  activationQuantizationFromRange,
  dequantizeActivations,
  quantizeActivations,
} from '../../../optimize/quantize/int8.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });

const FEATURES = 16;
const INPUTS = 1000;

/** input [1, FEATURES] -> dense with identity weights (hidden = input) -> dense -> logits. */
function identityThenDense(): Package {
  const b = new GraphBuilder();
  const x = b.addTensor('input', { dtype: 'f32', shape: [1, FEATURES] });
  const eye = new Float32Array(FEATURES * FEATURES);
  for (let i = 0; i < FEATURES; i++) eye[i * FEATURES + i] = 1;
  const [hidden] = b.emit(
    'identity',
    'fully_connected',
    'f32',
    [x, b.constant('eye', 'f32', [FEATURES, FEATURES], eye), -1],
    {},
  );
  const random = new SeededRandom(3);
  const w = Float32Array.from({ length: 4 * FEATURES }, () => random.next() - 0.5);
  const [logits] = b.emit(
    'dense',
    'fully_connected',
    'f32',
    [hidden!, b.constant('w', 'f32', [4, FEATURES], w), -1],
    {},
  );
  return read(
    b.finish([{ name: 'input', tensor: x, layout: 'NC' }], [{ name: 'logits', tensor: logits! }], {
      id: 'calibration-methods',
      version: '1.0.0',
    }),
  );
}

/** INPUTS inputs uniform in [-1, 1], but for one value of +20 and one of -20: 2 outliers in 16,000, fewer than
 * the 1.6 values a 99.99 % percentile leaves out at each end. */
function withOutliers(): { count: number; data: Float32Array } {
  const random = new SeededRandom(9);
  const data = Float32Array.from({ length: INPUTS * FEATURES }, () => 2 * random.next() - 1);
  data[777] = 20;
  data[12345] = -20;
  return { count: INPUTS, data };
}

describe('calibration methods', () => {
  const fp32 = identityThenDense();
  const calibration = withOutliers();
  const tensor = (name: string): number => fp32.manifest.tensors.findIndex((t) => t.name === name);
  const [input, hidden, logits] = [tensor('input'), tensor('identity.out'), tensor('dense.out')];
  const ranges = new Map(CALIBRATION_METHODS.map((m) => [m, collectRanges(fp32, calibration, m)]));
  const range = (method: CalibrationMethod, t: number) => ranges.get(method)!.get(t)!;

  test('min/max keeps the outliers', () => {
    assert.deepEqual(range('minmax', hidden), { min: -20, max: 20 });
  });

  test(`percentile leaves out at most ${(100 - CALIBRATION_PERCENTILE).toFixed(2)} % at each end`, () => {
    const { min, max } = range('percentile', hidden);
    const values = calibration.data;
    const tail = (values.length * (100 - CALIBRATION_PERCENTILE)) / 100;
    assert.ok(values.filter((v) => v < min).length <= tail, `below ${min}`);
    assert.ok(values.filter((v) => v > max).length <= tail, `above ${max}`);
    // The outliers are out, the uniform body in (to within a histogram bin of 40 / 2048).
    assert.ok(min > -1.05 && min <= -0.99 && max < 1.05 && max >= 0.99, `[${min}, ${max}]`);
  });

  test('mse gives the least squared quantization error of the three (two far outliers are worth keeping at 8 bits)', () => {
    const error = (method: CalibrationMethod): number => {
      const { min, max } = range(method, hidden);
      const quant = activationQuantizationFromRange(min, max);
      const back = dequantizeActivations(quantizeActivations(calibration.data, quant), quant);
      return calibration.data.reduce((sum, v, i) => sum + (v - back[i]!) ** 2, 0);
    };
    const errors = CALIBRATION_METHODS.map((m) => error(m));
    // Within 5 %: the search scores a histogram's expected rounding error (step² / 12), not the exact one.
    assert.ok(errors[2]! <= Math.min(errors[0]!, errors[1]!) * 1.05, errors.join(', '));
    // Clipping at the body would cost 2 * 19^2 = 722; rounding over [-20, 20] costs about 16,000 * step^2 / 12 = 33.
    assert.ok(errors[1]! > 700, `percentile ${errors[1]}`);
  });

  test('the graph input and the logits keep min/max whatever the method', () => {
    for (const method of CALIBRATION_METHODS)
      for (const t of [input, logits])
        assert.deepEqual(range(method, t), range('minmax', t), `${method}, tensor ${t}`);
  });

  test('quantizePackage takes the method: the int8 hidden layer gets the finer scale of the percentile range', () => {
    const scale = (method: CalibrationMethod): number => {
      const int8 = read(quantizePackage(fp32, calibration, { calibrationMethod: method }).content);
      const layer = int8.manifest.nodes.find((n) => n.name === 'identity')!;
      return int8.manifest.tensors[layer.outputs[0]!]!.quant!.scale[0]!;
    };
    assert.equal(scale('minmax'), 40 / 255);
    assert.ok(scale('percentile') < 2.1 / 255, `${scale('percentile')}`);
  });
});

for (const [what, flags, message] of [
  [
    'an unknown --calibration-method, naming the known ones',
    ['--calibration-method', 'kl'],
    '--calibration-method: expected one of minmax, percentile, mse but received "kl"',
  ],
  [
    '--float-classifier with a fixed-point format',
    ['--format', 'fixed16', '--float-classifier'],
    '--float-classifier is an int8 option; --format fixed16 has no int8 classifier',
  ],
] as const)
  test(`whittle quantize refuses ${what}`, () => {
    assert.throws(
      () =>
        quantizeCommand([
          'in.whittle',
          '--out',
          'out.whittle',
          '--calibration',
          'folder:/nonexistent',
          ...flags,
        ]),
      (error: Error) => error instanceof CommandUsageError && error.message === message,
    );
  });

test('a ReLU after a residual add is fused into the qadd: its range, and the zero point as the lower bound', () => {
  const b = new GraphBuilder();
  const x = b.addTensor('input', { dtype: 'f32', shape: [1, 4, 4, 2] });
  const random = new SeededRandom(5);
  const w = Float32Array.from({ length: 2 * 2 }, () => random.next() - 0.5);
  const [c] = b.emit('conv', 'conv2d', 'f32', [x, b.constant('w', 'f32', [2, 1, 1, 2], w), -1], {
    strides: [1, 1],
    dilations: [1, 1],
    pads: [0, 0, 0, 0],
  });
  const [sum] = b.emit('residual', 'add', 'f32', [x, c!], {});
  const [relu] = b.emit('residual/relu', 'clip', 'f32', [sum!], { min: 0 });
  const [gap] = b.emit('gap', 'global_avgpool', 'f32', [relu!], {});
  const fp32 = read(
    b.finish([{ name: 'input', tensor: x, layout: 'NHWC' }], [{ name: 'out', tensor: gap! }], {
      id: 'residual-relu',
      version: '1.0.0',
    }),
  );
  const data = Float32Array.from({ length: 32 * 32 }, () => 4 * random.next() - 2);
  const int8 = read(quantizePackage(fp32, { count: 32, data }).content);
  const ops = int8.manifest.nodes.map((n) => n.op);
  assert.ok(!ops.includes('clip'), ops.join(', '));
  const qadd = int8.manifest.nodes.find((n) => n.op === 'qadd')!;
  const quant = int8.manifest.tensors[qadd.outputs[0]!]!.quant!;
  assert.equal(quant.zeroPoint[0], -128, 'the output range starts at 0 (the ReLU)');
  assert.equal(qadd.attrs.min, -128);
  const [want] = Model.fromPackage(fp32, { batch: 32 }).run([data]);
  const [got] = Model.fromPackage(int8, { batch: 32 }).run([data]);
  const step = Math.max(...Array.from(want!.data)) / 255;
  want!.data.forEach((v, i) =>
    assert.ok(Math.abs(v - got!.data[i]!) <= 3 * step, `${i}: ${got!.data[i]} vs ${v}`),
  );
});
