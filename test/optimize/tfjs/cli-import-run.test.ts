// `whittle import model.json` and `whittle run` as a user runs them (the real CLI in a child process) on a
// functional model trained-format-saved by Whittle: a MobileNet's package gives tfjs's predictions for a
// TensorProto input, and a broken model.json is refused with a one-line error and no package.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { onnx } from '../../../optimize/onnx/onnx-proto.js';
import { buildZooModel } from '../../../optimize/zoo/index.js';
import { cliSandbox } from '../../support/cli.js';
import { floatTensor } from '../onnx/build-model.js';
import { assertClose, randomizeWeights, saveLikeTrain } from './tfjs-fixtures.js';

const sandbox = cliSandbox('whittle-tfjs-cli-', 120_000);
after(() => sandbox.cleanup());
const { dir, privateKey, publicKey, whittle } = sandbox;

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
