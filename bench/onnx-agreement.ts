// Top-1 agreement between the Whittle runtime and ONNX Runtime on the int8 Fashion-MNIST model exported as
// QDQ ONNX, over the whole test set; also each one's accuracy against the labels.
import { join } from 'node:path';

import * as ort from 'onnxruntime-node';

import { readPackageFile } from '../agent/package/reader.js';
import { packageRoot } from '../agent/package-root.js';
import { Model } from '../agent/runtime/model.js';
import { loadFashionMnist } from '../optimize/datasets/fashion-mnist.js';
import { exportOnnx } from '../optimize/onnx/export.js';

export interface AgreementReport {
  images: number;
  agree: number;
  runtimeCorrect: number;
  ortCorrect: number;
  runtimeMs: number;
  ortMs: number;
}

const argmax = (values: ArrayLike<number>): number => {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
};

export async function measureOnnxAgreement(limit?: number): Promise<AgreementReport> {
  // The shipped MLP package: trusted as shipped, so only its hash is checked.
  const path = join(packageRoot(), 'agent', 'models', 'fashion-mlp-int8.whittle');
  const pkg = readPackageFile(path, { allowUnsigned: true, cpuFamily: null });
  const model = Model.fromPackage(pkg);
  const session = await ort.InferenceSession.create(exportOnnx(pkg));
  const { pixels, labels, count } = loadFashionMnist('test');
  const images = Math.min(limit ?? count, count);
  const report: AgreementReport = {
    images,
    agree: 0,
    runtimeCorrect: 0,
    ortCorrect: 0,
    runtimeMs: 0,
    ortMs: 0,
  };
  for (let i = 0; i < images; i++) {
    const input = Float32Array.from(pixels.subarray(i * 784, (i + 1) * 784), (p) => p / 255);
    let t0 = performance.now();
    const ours = argmax(model.run([input])[0]!.data);
    report.runtimeMs += performance.now() - t0;
    t0 = performance.now();
    const theirs = argmax(
      (await session.run({ image: new ort.Tensor('float32', input, [1, 784]) })).logits!.data as Float32Array,
    );
    report.ortMs += performance.now() - t0;
    if (ours === theirs) report.agree++;
    if (ours === labels[i]) report.runtimeCorrect++;
    if (theirs === labels[i]) report.ortCorrect++;
  }
  return report;
}
