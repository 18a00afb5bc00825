// ONNX export cross-checked by ONNX Runtime: the int8 Fashion-MNIST model exported as QDQ agrees with the
// runtime on the top-1 class for >= 99.5% of a test subset, and the sample CNN whose layers use every
// compressed format exports to a model ONNX Runtime runs to the runtime's outputs.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';

import * as ort from 'onnxruntime-node';

import { readPackage, readPackageFile } from '../../../agent/package/reader.js';
import { packageRoot } from '../../../agent/package-root.js';
import { Model } from '../../../agent/runtime/model.js';
import { loadFashionMnist } from '../../../optimize/datasets/fashion-mnist.js';
import { exportOnnx } from '../../../optimize/onnx/export.js';
import { samplePackageContent } from '../../../optimize/package/sample-package.js';
import { type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

const keys = generateKeyPairSync('ed25519');
const signed = (content: PackageContent) =>
  readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey });

const argmax = (values: ArrayLike<number>): number => {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
};

test('int8 Fashion-MNIST: runtime and ONNX Runtime (QDQ export) agree on top-1 for >= 99.5% of 1000 images', async () => {
  const path = join(packageRoot(), 'agent', 'models', 'fashion-mlp-int8.whittle');
  const pkg = readPackageFile(path, { allowUnsigned: true, cpuFamily: null });
  const model = Model.fromPackage(pkg);
  const session = await ort.InferenceSession.create(exportOnnx(pkg));
  const { pixels } = loadFashionMnist('test');
  const images = 1000;
  let agree = 0;
  for (let i = 0; i < images; i++) {
    const input = Float32Array.from(pixels.subarray(i * 784, (i + 1) * 784), (p) => p / 255);
    const [ours] = model.run([input]);
    const theirs = await session.run({ image: new ort.Tensor('float32', input, [1, 784]) });
    if (argmax(ours!.data) === argmax(theirs.logits!.data as Float32Array)) agree++;
  }
  assert.ok(agree / images >= 0.995, `top-1 agreement ${agree}/${images}`);
});

test('the sample CNN with every compressed format exports to ONNX and ONNX Runtime gives the same outputs', async () => {
  const pkg = signed(samplePackageContent());
  const model = Model.fromPackage(pkg);
  const session = await ort.InferenceSession.create(exportOnnx(pkg));
  const random = new SeededRandom(5);
  for (let n = 0; n < 5; n++) {
    const input = Float32Array.from({ length: 192 }, () => random.normal());
    const [ours] = model.run([input]);
    const theirs = (await session.run({ image: new ort.Tensor('float32', input, [1, 8, 8, 3]) }))
      .probabilities!.data as Float32Array;
    for (let i = 0; i < 10; i++) {
      assert.ok(
        Math.abs(ours!.data[i]! - theirs[i]!) < 1e-4,
        `output ${i}: ${ours!.data[i]} vs ${theirs[i]}`,
      );
    }
  }
});
