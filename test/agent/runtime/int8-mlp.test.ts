// The checked-in demo model through the real runtime and the native kernel: it loads, it is as accurate
// as its file says, the native path agrees with the reference kernel bit for bit, and damaged files are
// refused with a message that names the bad field.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Int8MlpModel } from '../../../agent/runtime/int8-mlp.js';
import { type Int8MlpFile, parseInt8MlpFile } from '../../../agent/runtime/int8-mlp-format.js';
import { fullyConnectedS8Reference } from '../../../native/reference/qs8-fc.js';
import { FASHION_MNIST_LABELS, loadFashionMnist } from '../../../optimize/datasets/fashion-mnist.js';

function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'agent', 'models'))) {
    if (dirname(dir) === dir)
      throw new Error('agent/models not found above the test file: run from a checkout');
    dir = dirname(dir);
  }
  return dir;
}

const MODEL_PATH = join(repositoryRoot(), 'agent', 'models', 'fashion-mlp-int8.json');
const MODEL_TEXT = readFileSync(MODEL_PATH, 'utf8');
/** Accuracy on the first 2000 test images measured when the model was made (0.8815), minus a margin. */
const MIN_ACCURACY_2000 = 0.86;

test('the checked-in model loads with its labels and input shape', () => {
  const model = Int8MlpModel.load(MODEL_PATH);
  assert.equal(model.id, 'fashion-mlp-int8');
  assert.deepEqual(model.labels, [...FASHION_MNIST_LABELS]);
  assert.deepEqual(model.input, { width: 28, height: 28, channels: 1, scale: 1 / 255, zeroPoint: -128 });
  const result = model.infer(new Uint8Array(28 * 28));
  assert.equal(result.logits.length, 10);
  assert.ok(result.confidence > 0 && result.confidence <= 1);
  assert.throws(() => model.infer(new Uint8Array(100)), {
    name: 'RangeError',
    message: 'Expected a frame of 784 bytes (28x28x1) for gray but received 100',
  });
});

test('classifies Fashion-MNIST test images as accurately as its file says, identically to the reference kernel', () => {
  const testSet = loadFashionMnist('test');
  const native = Int8MlpModel.load(MODEL_PATH);
  const reference = Int8MlpModel.load(MODEL_PATH, { kernel: fullyConnectedS8Reference });
  const frame = (n: number): Uint8Array => testSet.pixels.subarray(n * 784, (n + 1) * 784);

  let correct2000 = 0;
  for (let n = 0; n < 2000; n++) {
    const got = native.infer(frame(n));
    const expected = reference.infer(frame(n));
    assert.equal(got.classIndex, expected.classIndex, `image ${n}`);
    assert.deepEqual(got.logits, expected.logits, `image ${n}`);
    if (got.classIndex === testSet.labels[n]) correct2000++;
  }
  assert.ok(correct2000 / 2000 >= MIN_ACCURACY_2000, `accuracy ${correct2000 / 2000} on 2000 test images`);

  // The whole test set through the native kernel reproduces the accuracy recorded in the file exactly.
  let correct = correct2000;
  for (let n = 2000; n < testSet.count; n++)
    if (native.infer(frame(n)).classIndex === testSet.labels[n]) correct++;
  assert.equal(correct / testSet.count, native.accuracy?.int8);
});

/** The checked-in file with one change applied. */
function mutated(change: (file: Int8MlpFile) => void): string {
  const file = JSON.parse(MODEL_TEXT) as Int8MlpFile;
  change(file);
  return JSON.stringify(file);
}

test('refuses damaged model files with a message naming the layer and field', () => {
  const cases: [string, string, RegExp][] = [
    [
      'truncated base64',
      mutated((f) => (f.layers[0]!.weights = f.layers[0]!.weights.slice(0, -8))),
      /layers\[0\]\.weights: expected 100352 bytes \(outChannels 128 x inChannels 784 int8\) but the base64 decodes to 100347/,
    ],
    [
      'broken base64',
      mutated((f) => (f.layers[1]!.weights = f.layers[1]!.weights.slice(1))),
      /layers\[1\]\.weights: not valid padded base64/,
    ],
    [
      'short bias',
      mutated((f) => (f.layers[1]!.bias = 'AAAAAA==')),
      /layers\[1\]\.bias: expected 40 bytes \(outChannels 10 int32\) but the base64 decodes to 4/,
    ],
    [
      'missing multiplier',
      mutated((f) => f.layers[1]!.multipliers.pop()),
      /layers\[1\]\.multipliers: expected 10 values \(outChannels\) but received 9/,
    ],
    ['shift out of range', mutated((f) => (f.layers[0]!.shifts[3] = 31)), /layers\[0\]\.shifts\[3\]: /],
    [
      'chained shapes disagree',
      mutated((f) => (f.layers[1]!.inChannels = 64)),
      /layers\[1\]\.inChannels: expected 128 \(the outputs of layers\[0\]\) but received 64/,
    ],
    [
      'chained zero points disagree',
      mutated((f) => (f.layers[1]!.inputZeroPoint = 0)),
      /layers\[1\]\.inputZeroPoint: expected -128/,
    ],
    [
      'input size',
      mutated((f) => (f.input.width = 27)),
      /layers\[0\]\.inChannels: expected 756 \(the outputs of input\)/,
    ],
    ['labels', mutated((f) => f.labels.pop()), /labels: expected 10 labels/],
    [
      'clamp',
      mutated((f) => Object.assign(f.layers[1]!, { outputMin: 100, outputMax: 50 })),
      /layers\[1\]\.outputMax: expected >= outputMin \(100\) but received 50/,
    ],
    [
      'missing field',
      mutated((f) => delete (f.layers[0] as Partial<Int8MlpFile['layers'][number]>).outputScale),
      /layers\[0\]\.outputScale: /,
    ],
    ['format', mutated((f) => ((f as { format: string }).format = 'onnx')), /format: /],
    ['version', mutated((f) => ((f as { version: number }).version = 2)), /version: /],
    ['bad JSON', MODEL_TEXT.slice(0, 1000), /is not valid JSON/],
  ];
  for (const [what, text, message] of cases) {
    assert.throws(() => parseInt8MlpFile(text, 'model.json'), { name: 'ModelFormatError', message }, what);
  }
  // The original still parses (so each failure above is due to its change alone).
  parseInt8MlpFile(MODEL_TEXT, 'model.json');

  const dir = mkdtempSync(join(tmpdir(), 'whittle-model-'));
  try {
    const path = join(dir, 'broken.json');
    writeFileSync(path, cases[0]![1]);
    assert.throws(() => Int8MlpModel.load(path), {
      name: 'ModelFormatError',
      message: new RegExp(
        `^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a valid whittle-int8-mlp v1 model:\n  layers\\[0\\]\\.weights`,
      ),
    });
    assert.throws(() => Int8MlpModel.load(join(dir, 'missing.json')), {
      name: 'ModelFormatError',
      message: /Cannot read model file .*missing\.json/,
    });
  } finally {
    rmSync(dir, { recursive: true });
  }
});
