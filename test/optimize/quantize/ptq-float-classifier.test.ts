// PtqOptions.floatClassifier (optimize/quantize/ptq.ts): the layer that makes the logits written in fp32 on its
// dequantized int8 input, so the logits are not rounded to an int8 step. Built on a model where that step is
// what loses the top-1 class: one logit swings far below the others, so the logits' int8 range is wide and its
// step (~2.5) larger than the gaps between the leading classes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { type Package, readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { GraphBuilder } from '../../../optimize/package/graph-builder.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });

const FEATURES = 16;
const CLASSES = 10;
const INPUTS = 500;

/** input [1, FEATURES] -> hidden FC + ReLU -> dense FC (the classifier) -> softmax. The classifier's last row
 * is -40 everywhere: its logit reaches about -320, far below the others' few units. */
function wideLogits(): Package {
  const random = new SeededRandom(5);
  const b = new GraphBuilder();
  const x = b.addTensor('input', { dtype: 'f32', shape: [1, FEATURES] });
  const w1 = Float32Array.from({ length: FEATURES * FEATURES }, () => random.next() - 0.5);
  const [hidden] = b.emit(
    'hidden',
    'fully_connected',
    'f32',
    [x, b.constant('w1', 'f32', [FEATURES, FEATURES], w1), -1],
    {},
  );
  const [relu] = b.emit('relu', 'clip', 'f32', [hidden!], { min: 0 });
  const w2 = Float32Array.from({ length: CLASSES * FEATURES }, (_, i) =>
    i >= (CLASSES - 1) * FEATURES ? -40 : random.next() - 0.5,
  );
  const [logits] = b.emit(
    'dense',
    'fully_connected',
    'f32',
    [relu!, b.constant('w2', 'f32', [CLASSES, FEATURES], w2), -1],
    {},
  );
  const [probabilities] = b.emit('softmax', 'softmax', 'f32', [logits!], {});
  return read(
    b.finish(
      [{ name: 'input', tensor: x, layout: 'NC' }],
      [{ name: 'probabilities', tensor: probabilities! }],
      {
        id: 'float-classifier',
        version: '1.0.0',
      },
    ),
  );
}

function top1(model: Model, inputs: Float32Array): number[] {
  return Array.from({ length: INPUTS }, (_, i) => {
    const [y] = model.run([inputs.subarray(i * FEATURES, (i + 1) * FEATURES)]);
    let best = 0;
    for (let c = 1; c < CLASSES; c++) if (y!.data[c]! > y!.data[best]!) best = c;
    return best;
  });
}

describe('float classifier', () => {
  const fp32 = wideLogits();
  const random = new SeededRandom(11);
  const calibration = {
    count: 64,
    data: Float32Array.from({ length: 64 * FEATURES }, () => random.next() * 2 - 1),
  };
  const inputs = Float32Array.from({ length: INPUTS * FEATURES }, () => random.next() * 2 - 1);
  const plain = read(quantizePackage(fp32, calibration).content);
  const float = read(quantizePackage(fp32, calibration, { floatClassifier: true }).content);
  const want = top1(Model.fromPackage(fp32), inputs);
  const agreement = (pkg: Package, options = {}): number => {
    const got = top1(Model.fromPackage(pkg, options), inputs);
    return got.filter((c, i) => c === want[i]).length / INPUTS;
  };

  test('the classifier is fp32 on the int8 hidden layer; the logits are never int8', () => {
    const ops = float.manifest.nodes.map((n) => `${n.name}:${n.op}:${n.format}`);
    assert.ok(ops.includes('hidden:qfully_connected:int8'), ops.join(' '));
    assert.ok(ops.includes('dense:fully_connected:f32'), ops.join(' '));
    const dense = float.manifest.nodes.find((n) => n.name === 'dense')!;
    assert.equal(float.manifest.tensors[dense.outputs[0]!]!.dtype, 'f32');
    // The default keeps every layer int8.
    assert.ok(plain.manifest.nodes.some((n) => n.name === 'dense' && n.op === 'qfully_connected'));
  });

  test('top-1 agreement with fp32 rises from the logits step to the hidden layer noise', () => {
    const [before, after] = [agreement(plain), agreement(float)];
    assert.ok(before < 0.9, `int8 logits: ${before}`);
    assert.ok(after >= 0.98, `fp32 classifier: ${after} (int8 logits ${before})`);
  });

  // The int8 layer is bit-exact between the two; the fp32 classifier sums in another order natively (about
  // 1e-8 apart here).
  test('the native kernels and the reference executors give the same probabilities', () => {
    const x = inputs.subarray(0, FEATURES);
    const native = Model.fromPackage(float).run([x])[0]!.data;
    const reference = Model.fromPackage(float, { referenceOnly: true }).run([x])[0]!.data;
    for (let c = 0; c < CLASSES; c++)
      assert.ok(
        Math.abs(native[c]! - reference[c]!) <= 1e-6 * Math.max(1, Math.abs(reference[c]!)),
        `class ${c}`,
      );
  });
});
