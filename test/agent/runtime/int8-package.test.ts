// The shipped int8 MLP package (agent/models/fashion-mlp-int8.whittle) through the runtime: the native int8
// kernels and the reference executor agree bit for bit on Fashion-MNIST test images.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { readPackageFile } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { loadFashionMnist } from '../../../optimize/datasets/fashion-mnist.js';
import { mlpPackagePath } from '../deploy/deploy-fixtures.js';

test('the int8 MLP package gives the same logits bit for bit, native and reference', () => {
  const pkg = readPackageFile(mlpPackagePath(), { allowUnsigned: true });
  const native = Model.fromPackage(pkg);
  const reference = Model.fromPackage(pkg, { referenceOnly: true });
  assert.match(native.layers[1]!.kernel, /^native:/);
  assert.match(reference.layers[1]!.kernel, /^reference:/);
  const { pixels: images } = loadFashionMnist('test');
  for (let i = 0; i < 200; i++) {
    const pixels = images.subarray(i * 784, (i + 1) * 784);
    const input = Float32Array.from(pixels, (p) => p / 255);
    const [a] = native.run([input]);
    const [b] = reference.run([input]);
    assert.deepEqual(Array.from(a!.data), Array.from(b!.data), `image ${i}`);
  }
});
