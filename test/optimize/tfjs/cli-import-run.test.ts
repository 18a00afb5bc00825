// `whittle import model.json` and `whittle run` as a user runs them (the real CLI in a child process) on a
// functional model trained-format-saved by Whittle: a MobileNet's package gives tfjs's predictions for a
// TensorProto input, and a broken model.json is refused with a one-line error and no package.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as tf from '@tensorflow/tfjs';

import { onnx } from '../../../optimize/onnx/onnx-proto.js';
import { buildZooModel } from '../../../optimize/zoo/index.js';
import { floatTensor } from '../onnx/build-model.js';
import { assertClose, randomizeWeights, saveLikeTrain } from './tfjs-fixtures.js';

function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'bin', 'whittle.js'))) {
    if (dirname(dir) === dir) throw new Error('bin/whittle.js not found above the test file');
    dir = dirname(dir);
  }
  return dir;
}

const WHITTLE = join(repositoryRoot(), 'bin', 'whittle.js');
const dir = mkdtempSync(join(tmpdir(), 'whittle-tfjs-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
// A private data dir, so the test never touches the user's signing key.
const env = { ...process.env, XDG_DATA_HOME: join(dir, 'data') };

function whittle(...args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [WHITTLE, ...args], { env, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

const keys = generateKeyPairSync('ed25519');
const privateKey = join(dir, 'key.pem');
const publicKey = join(dir, 'key.pub.pem');
writeFileSync(privateKey, keys.privateKey.export({ format: 'pem', type: 'pkcs8' }));
writeFileSync(publicKey, keys.publicKey.export({ format: 'pem', type: 'spki' }));

test('import of a functional MobileNet model.json and run of its package give the tfjs predictions', async () => {
  const net = buildZooModel('mobilenet', {
    height: 16,
    width: 16,
    channels: 3,
    classes: 5,
    widthMultiplier: 0.25,
  });
  randomizeWeights(net, 21);
  const modelJson = await saveLikeTrain(net, join(dir, 'mobilenet'));
  const pkg = join(dir, 'x.whittle');
  const imported = whittle('import', modelJson, '--out', pkg, '--key', privateKey);
  assert.equal(imported.status, 0, imported.stderr);
  assert.match(imported.stdout, /x\.whittle \(\d+ bytes, \d+ layers/);

  const input = tf.randomNormal([1, 16, 16, 3], 0, 1, 'float32', 5);
  const inputFile = join(dir, 'input_0.pb');
  writeFileSync(
    inputFile,
    onnx.TensorProto.encode(floatTensor('input', [1, 16, 16, 3], input.dataSync())).finish(),
  );
  const run = whittle('run', pkg, '--key', publicKey, '--input', inputFile, '--json');
  assert.equal(run.status, 0, run.stderr);
  const outputs = JSON.parse(run.stdout) as Record<string, { shape: number[]; data: number[] }>;
  const output = outputs[net.outputNames[0]!];
  assert.ok(output, `outputs ${Object.keys(outputs).join(', ')} lack ${net.outputNames[0]}`);
  assert.deepEqual(output.shape, [1, 5]);
  assertClose((net.predict(input) as tf.Tensor).dataSync(), output.data, 'whittle run');
});

test('import refuses a model.json whose weights file is truncated, writing nothing', async () => {
  const modelJson = await saveLikeTrain(
    buildZooModel('squeezenet', { height: 16, width: 16, channels: 1, classes: 3 }),
    join(dir, 'squeezenet'),
  );
  const weights = join(dirname(modelJson), 'weights.bin');
  writeFileSync(weights, readFileSync(weights).subarray(0, 1000));
  const pkg = join(dir, 'truncated.whittle');
  const imported = whittle('import', modelJson, '--out', pkg, '--key', privateKey);
  assert.equal(imported.status, 1);
  assert.match(
    imported.stderr,
    /^whittle import: .*weights\.bin holds 1000 bytes but the weights manifest declares \d+ .*truncated/,
  );
  assert.ok(!existsSync(pkg));
});
