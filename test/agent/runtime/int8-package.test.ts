// The demo int8 MLP as a signed package through the runtime: the native int8 kernel and the reference
// executor agree bit for bit, and both give exactly the logits of the existing int8-mlp runtime.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { readPackage } from '../../../agent/package/reader.js';
import { Int8MlpModel } from '../../../agent/runtime/int8-mlp.js';
import { parseInt8MlpFile } from '../../../agent/runtime/int8-mlp-format.js';
import { Model } from '../../../agent/runtime/model.js';
import { loadFashionMnist } from '../../../optimize/datasets/fashion-mnist.js';
import { packageContentFromInt8Mlp } from '../../../optimize/package/from-int8-mlp.js';
import { writePackage } from '../../../optimize/package/writer.js';

function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'agent', 'models'))) {
    if (dirname(dir) === dir) throw new Error('agent/models not found above the test file');
    dir = dirname(dir);
  }
  return dir;
}

const MODEL_PATH = join(repositoryRoot(), 'agent', 'models', 'fashion-mlp-int8.json');

test('the int8 MLP package matches the int8-mlp runtime bit for bit, native and reference', () => {
  const file = parseInt8MlpFile(readFileSync(MODEL_PATH, 'utf8'), MODEL_PATH);
  const keys = generateKeyPairSync('ed25519');
  const pkg = readPackage(writePackage(packageContentFromInt8Mlp(file), keys.privateKey), {
    publicKey: keys.publicKey,
  });
  const native = Model.fromPackage(pkg);
  const reference = Model.fromPackage(pkg, { referenceOnly: true });
  assert.match(native.layers[1]!.kernel, /^native:/);
  assert.match(reference.layers[1]!.kernel, /^reference:/);
  const mlp = Int8MlpModel.fromFile(file);
  const { pixels: images } = loadFashionMnist('test');
  for (let i = 0; i < 200; i++) {
    const pixels = images.subarray(i * 784, (i + 1) * 784);
    const input = Float32Array.from(pixels, (p) => p / 255);
    const [a] = native.run([input]);
    const [b] = reference.run([input]);
    const expected = mlp.infer(pixels).logits;
    assert.deepEqual(Array.from(a!.data), Array.from(expected), `image ${i}`);
    assert.deepEqual(Array.from(b!.data), Array.from(expected), `image ${i} (reference)`);
  }
});
