// `whittle import`, `whittle inspect` and `whittle run` as a user runs them (the real CLI in a child
// process): an ONNX model becomes a signed package, inspect verifies it, run gives the runtime's outputs for
// a TensorProto input and top-k for an image, and unsupported models and tampered packages are refused.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { onnx } from '../../../optimize/onnx/onnx-proto.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { sampleTfliteModels } from '../../../optimize/tflite/sample-model.js';
import { buildModel, floatTensor } from '../../optimize/onnx/build-model.js';
import { cliSandbox } from '../../support/cli.js';
import { writeTestMedia } from '../../support/test-media.js';

const sandbox = cliSandbox('whittle-cli-');
after(() => sandbox.cleanup());
const { dir, privateKey, publicKey, whittle } = sandbox;

// A tiny image classifier: 1x8x8 gray -> conv 3x3 (2 filters) -> relu -> global average -> flatten -> gemm 3.
const random = new SeededRandom(9);
const weights = (n: number): number[] => Array.from({ length: n }, () => random.normal());
const modelFile = join(dir, 'tiny.onnx');
writeFileSync(
  modelFile,
  buildModel({
    nodes: [
      { op: 'Conv', name: 'conv', inputs: ['image', 'w'], outputs: ['c'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Relu', name: 'relu', inputs: ['c'], outputs: ['r'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['r'], outputs: ['g'] },
      { op: 'Flatten', name: 'flatten', inputs: ['g'], outputs: ['f'] },
      { op: 'Gemm', name: 'fc', inputs: ['f', 'fw', 'fb'], outputs: ['logits'], attrs: { transB: 1 } },
    ],
    inputs: [{ name: 'image', dims: [1, 1, 8, 8] }],
    outputs: [{ name: 'logits', dims: [1, 3] }],
    initializers: [
      floatTensor('w', [2, 1, 3, 3], weights(18)),
      floatTensor('fw', [3, 2], weights(6)),
      floatTensor('fb', [3], weights(3)),
    ],
  }),
);
const labelsFile = join(dir, 'labels.txt');
writeFileSync(labelsFile, 'cat\ndog\nbird\n');
const pkgFile = join(dir, 'tiny.wpkg');

test('import writes a signed package that inspect verifies', () => {
  const imported = whittle(
    'import',
    modelFile,
    '--out',
    pkgFile,
    '--key',
    privateKey,
    '--labels',
    labelsFile,
  );
  assert.equal(imported.status, 0, imported.stderr);
  assert.match(imported.stdout, /tiny\.wpkg \(\d+ bytes, \d+ layers/);
  const inspected = whittle('inspect', pkgFile, '--key', publicKey, '--json');
  assert.equal(inspected.status, 0, inspected.stderr);
  const report = JSON.parse(inspected.stdout) as {
    signature: { status: string };
    layers: { name: string; op: string; kernel: string }[];
    execution: { nativeSteps: number; typescriptNodes: string[] };
  };
  assert.equal(report.signature.status, 'verified');
  assert.ok(report.layers.some((l) => l.op === 'conv2d'));
  // The execution plan: every layer not on a native kernel runs in TypeScript between the plan's calls.
  assert.deepEqual(
    report.execution.typescriptNodes,
    report.layers.filter((l) => !l.kernel.startsWith('native:')).map((l) => l.name),
  );
  assert.ok(report.execution.nativeSteps >= 1);
  const text = whittle('inspect', pkgFile);
  assert.match(text.stdout, /NOT CHECKED/);
  assert.match(text.stdout, /arena \d+ bytes/);
  assert.match(text.stdout, /execution {2}\d+ native steps in \d+ plan call/);
});

test('run takes a TensorProto input and prints every output as JSON, or top-k with labels', () => {
  const pixels = Float32Array.from({ length: 64 }, (_, i) => (i % 9) / 9);
  const inputFile = join(dir, 'input_0.pb');
  writeFileSync(inputFile, onnx.TensorProto.encode(floatTensor('image', [1, 1, 8, 8], pixels)).finish());
  const json = whittle('run', pkgFile, '--key', publicKey, '--input', inputFile, '--json');
  assert.equal(json.status, 0, json.stderr);
  const outputs = JSON.parse(json.stdout) as Record<string, { shape: number[]; data: number[] }>;
  assert.deepEqual(outputs.logits?.shape, [1, 3]);
  const top = whittle('run', pkgFile, '--key', publicKey, '--input', inputFile, '--top', '2');
  assert.equal(top.status, 0, top.stderr);
  assert.match(top.stdout, /logits: top 2\n {2}(cat|dog|bird) \(\d\): -?\d/);
});

test('run decodes an image with ffmpeg to the package input size', () => {
  const image = join(dir, 'test.png');
  writeTestMedia('testsrc=size=32x32', ['-frames:v', '1'], image);
  const result = whittle('run', pkgFile, '--key', publicKey, '--input', image);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /logits: top 3/);
});

test('a tampered package, a wrong key and an unsupported model are refused with one-line errors', () => {
  const tampered = join(dir, 'tampered.wpkg');
  const bytes = readFileSync(pkgFile);
  bytes[100]! ^= 0x40;
  writeFileSync(tampered, bytes);
  const run = whittle('run', tampered, '--key', publicKey, '--input', join(dir, 'input_0.pb'));
  assert.equal(run.status, 1);
  assert.match(run.stderr, /^whittle run: content SHA-256 is [0-9a-f]+ but the trailer records/);
  const other = join(dir, 'other.pub.pem');
  writeFileSync(other, generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }));
  const wrongKey = whittle('inspect', pkgFile, '--key', other);
  assert.equal(wrongKey.status, 1);
  assert.match(wrongKey.stderr, /signed by key [0-9a-f]+, not by the trusted key/);
  const unsupported = join(dir, 'lstm.onnx');
  writeFileSync(
    unsupported,
    buildModel({
      nodes: [{ op: 'LSTM', name: 'rnn', inputs: ['x'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [1, 4] }],
      outputs: [{ name: 'y', dims: [1, 4] }],
    }),
  );
  const imported = whittle('import', unsupported, '--out', join(dir, 'lstm.wpkg'), '--key', privateKey);
  assert.equal(imported.status, 1);
  assert.match(imported.stderr, /^ {2}LSTM ×1 \(rnn\)$/m);
  assert.ok(!existsSync(join(dir, 'lstm.wpkg')));
});

test('import names a symbolic input dimension and takes --input-shape to fix it', () => {
  const dynamic = join(dir, 'dynamic.onnx');
  writeFileSync(
    dynamic,
    buildModel({
      nodes: [{ op: 'Relu', name: 'relu', inputs: ['x'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: ['n', 'features'] }],
      outputs: [{ name: 'y', dims: ['n', 'features'] }],
    }),
  );
  const out = join(dir, 'dynamic.wpkg');
  const refused = whittle('import', dynamic, '--out', out, '--key', privateKey);
  assert.equal(refused.status, 1);
  assert.match(
    refused.stderr,
    /graph input "x" has a symbolic dimension 1 \(features\).*--input-shape x=1,<features>/,
  );
  const fixed = whittle('import', dynamic, '--out', out, '--key', privateKey, '--input-shape', 'x=2,5');
  assert.equal(fixed.status, 0, fixed.stderr);
  assert.ok(existsSync(out));
  const bad = whittle('import', dynamic, '--out', out, '--key', privateKey, '--input-shape', 'x=2,five');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--input-shape expects NAME=D0,D1,/);
});

test('run follows the batch of a TensorProto input and refuses a plan over --memory-budget', () => {
  const batchFile = join(dir, 'batch.pb');
  const pixels = Float32Array.from({ length: 3 * 64 }, (_, i) => (i % 7) / 7);
  writeFileSync(batchFile, onnx.TensorProto.encode(floatTensor('image', [3, 1, 8, 8], pixels)).finish());
  const result = whittle('run', pkgFile, '--key', publicKey, '--input', batchFile, '--json');
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual((JSON.parse(result.stdout) as Record<string, { shape: number[] }>).logits?.shape, [3, 3]);
  const refused = whittle(
    'run',
    pkgFile,
    '--key',
    publicKey,
    '--input',
    batchFile,
    '--memory-budget',
    '1000',
  );
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /needs \d+ bytes .* but the memory budget is 1000 bytes/);
});

test('import takes a .tflite model (float and int8) and refuses a damaged one with one line', () => {
  const [float, int8] = sampleTfliteModels(4);
  for (const [name, bytes] of [
    ['float', float!],
    ['int8', int8!],
  ] as const) {
    // No extension: the "TFL3" identifier picks the TFLite importer.
    const file = join(dir, name === 'float' ? 'small.tflite' : 'small-int8.bin');
    writeFileSync(file, bytes);
    const imported = whittle('import', file, '--out', join(dir, `${name}.wpkg`), '--key', privateKey);
    assert.equal(imported.status, 0, imported.stderr);
    assert.match(imported.stdout, /\.wpkg \(\d+ bytes, \d+ layers/);
  }
  const damaged = join(dir, 'damaged.tflite');
  writeFileSync(damaged, float!.subarray(0, 200));
  const refused = whittle('import', damaged, '--out', join(dir, 'damaged.wpkg'), '--key', privateKey);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /^whittle import: malformed TFLite file: .*outside the file/);
  assert.ok(!existsSync(join(dir, 'damaged.wpkg')));
});
