// Post-training quantization end to end on real data: a LeNet-5 trained briefly on 5,000 Fashion-MNIST
// images, imported from its TensorFlow.js files, calibrated on 100 training images and quantized, then both
// packages run by the agent's runtime on 300 test images. Also the refusals: an op with no int8 form and an
// empty calibration set.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { type Package, readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { nativeAvailable } from '../../../agent/runtime/native-executors.js';
import { PackageModel } from '../../../agent/runtime/package-model.js';
import { CommandUsageError } from '../../../electron/commands/command-error.js';
import { runModelCommand } from '../../../electron/commands/index.js';
import { quantizeCommand } from '../../../electron/commands/quantize.js';
import { loadDataset } from '../../../optimize/datasets/dataset-spec.js';
import { FASHION_MNIST_LABELS } from '../../../optimize/datasets/fashion-mnist.js';
import type { ImageSet } from '../../../optimize/datasets/image-set.js';
import { evaluatePackage } from '../../../optimize/evaluate-package.js';
import { type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import { calibrationFromImages } from '../../../optimize/quantize/calibrate.js';
import { QuantizationError, quantizePackage } from '../../../optimize/quantize/ptq.js';
import { importTfjsLayers } from '../../../optimize/tfjs/import.js';
import { trainTinyModel } from '../../support/tiny-model.js';

const { privateKey } = generateKeyPairSync('ed25519');
const signed = (content: PackageContent): Buffer => writePackage(content, privateKey);
const read = (bytes: Buffer): Package => readPackage(bytes, { allowUnsigned: true, cpuFamily: null });

describe('post-training int8 quantization of LeNet-5', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-ptq-'));
  let fp32Bytes: Buffer;
  let fp32: Package;
  let trainSet: ImageSet;
  let testSet: ImageSet;

  before(async () => {
    await trainTinyModel('lenet5', root, { trainLimit: 5000, batchSize: 32 });
    fp32Bytes = signed(importTfjsLayers(join(root, 'model.json'), { modelId: 'lenet5-test' }));
    fp32 = read(fp32Bytes);
    const data = loadDataset('fashion-mnist');
    trainSet = data.train;
    testSet = { ...data.test!, count: 300 };
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('the int8 package agrees with the fp32 one, runs every layer as int8 and is under 30 % of its size', (t) => {
    const { content } = quantizePackage(fp32, calibrationFromImages(trainSet, 100));
    const int8Bytes = signed(content);
    const int8 = read(int8Bytes);

    const reference = evaluatePackage(fp32, testSet);
    const quantized = evaluatePackage(int8, testSet);
    let agree = 0;
    for (let i = 0; i < testSet.count; i++)
      if (reference.predictions[i] === quantized.predictions[i]) agree++;
    t.diagnostic(
      `LeNet-5: fp32 top-1 ${reference.top1}, int8 ${quantized.top1}, agree on ${agree}/${testSet.count}`,
    );
    assert.ok(agree / testSet.count >= 0.95, `top-1 agrees on ${agree} of ${testSet.count} images`);
    // Agreement alone would pass for a model that gives one class for everything: it must also have learned.
    assert.ok(reference.top1 > 0.6, `fp32 top-1 ${reference.top1} after one short epoch`);
    assert.ok(
      Math.abs(quantized.top1 - reference.top1) <= 0.03,
      `int8 ${quantized.top1} vs ${reference.top1}`,
    );

    const layers = int8.manifest.nodes.filter((n) => /conv|fully_connected|matmul/.test(n.op));
    assert.deepEqual(
      layers.map((n) => `${n.op}/${n.format}`),
      [
        'qconv2d/int8',
        'qconv2d/int8',
        'qfully_connected/int8',
        'qfully_connected/int8',
        'qfully_connected/int8',
      ],
    );
    for (const n of layers) {
      const w = int8.manifest.tensors[n.inputs[1]!]!;
      assert.equal(w.dtype, 'i8', `${n.name} weights`);
      assert.equal(w.quant?.scale.length, w.shape[0], `${n.name}: one weight scale per output channel`);
      assert.equal(int8.manifest.tensors[n.inputs[2]!]!.dtype, 'i32', `${n.name} bias`);
      assert.equal(int8.manifest.tensors[n.outputs[0]!]!.dtype, 'i8', `${n.name} output`);
    }
    // The ReLUs were fused: no clip is left, and no float op runs before the logits are dequantized.
    assert.deepEqual(
      int8.manifest.nodes.filter((n) => n.format === 'f32').map((n) => n.op),
      ['softmax'],
    );
    if (nativeAvailable()) {
      for (const layer of Model.fromPackage(int8).layers.filter(
        (l) => l.op === 'qconv2d' || l.op === 'qfully_connected',
      ))
        assert.match(layer.kernel, /^native:/, `${layer.name} runs on ${layer.kernel}`);
    }
    assert.ok(
      int8Bytes.length <= 0.3 * fp32Bytes.length,
      `int8 ${int8Bytes.length} bytes vs fp32 ${fp32Bytes.length} bytes`,
    );
  });

  test('an op with no int8 kernel stays fp32 between a dequantize and a quantize; a non-f32 layer is refused', () => {
    // A tanh in place of the first dense layer's ReLU: no int8 form, so it runs in fp32 inside the int8 graph.
    // (A sigmoid there becomes an int8 lookup table: test/optimize/quantize/ptq-v3.test.ts.)
    const manifest = structuredClone(fp32.manifest);
    const relu = manifest.nodes.find((n) => n.op === 'clip' && n.name.startsWith('dense'))!;
    relu.op = 'tanh';
    relu.attrs = {};
    const withTanh: Package = { ...fp32, manifest };
    const island = quantizePackage(withTanh, calibrationFromImages(trainSet, 10)).content;
    const tanh = island.manifest.nodes.find((n) => n.op === 'tanh')!;
    assert.equal(tanh.format, 'f32');
    const producer = island.manifest.nodes.find((n) => n.outputs.includes(tanh.inputs[0]!))!;
    assert.equal(producer.op, 'dequantize_linear');
    assert.ok(
      island.manifest.nodes.some((n) => n.op === 'quantize_linear' && n.inputs[0] === tanh.outputs[0]),
    );
    // A layer stored in another format than f32 is refused, naming the node.
    const fixed = structuredClone(fp32.manifest);
    const layer = fixed.nodes.find((n) => n.op === 'fully_connected')!;
    layer.format = 'fixed16';
    assert.throws(
      () => quantizePackage({ ...fp32, manifest: fixed }, calibrationFromImages(trainSet, 10)),
      (error: unknown) =>
        error instanceof QuantizationError && error.node === layer.name && error.message.includes('fixed16'),
    );
  });

  test('an empty or misshapen calibration set is refused', () => {
    assert.throws(
      () => quantizePackage(fp32, { count: 0, data: new Float32Array(0) }),
      (error: unknown) =>
        error instanceof QuantizationError && /calibration set is empty/.test(error.message),
    );
    assert.throws(() => calibrationFromImages(trainSet, 0), QuantizationError);
    assert.throws(
      () => quantizePackage(fp32, { count: 2, data: new Float32Array(100) }),
      (error: unknown) => error instanceof QuantizationError && /input "input"/.test(error.message),
    );
  });

  test('whittle quantize writes a package with its measured accuracy, labels, preprocessing and probe', async () => {
    const source = join(root, 'fp32.whittle');
    const out = join(root, 'int8.whittle');
    writeFileSync(source, fp32Bytes);
    const args = [
      source,
      '--out',
      out,
      '--calibration',
      'fashion-mnist',
      '--images',
      '50',
      '--test-images',
      '200',
    ];
    assert.equal(quantizeCommand([...args, '--bundled-key']), 0);
    const pkg = read(readFileSync(out));
    const { manifest } = pkg;
    assert.equal(manifest.accuracy?.images, 200);
    assert.equal(manifest.accuracy?.top1, evaluatePackage(pkg, { ...testSet, count: 200 }).top1);
    assert.deepEqual(manifest.labels, [...FASHION_MNIST_LABELS]);
    assert.deepEqual(manifest.inputs[0]!.preprocessing, {
      kind: 'image',
      width: 28,
      height: 28,
      channels: 1,
      mean: [0],
      std: [1],
    });
    assert.deepEqual(manifest.target, { deviceClass: 'any', cpuFamily: 'any' });
    // The agent can serve it: its own adapter classifies the probe frame as the probe says.
    const model = PackageModel.fromPackage(pkg);
    const probe = manifest.probe!;
    assert.equal(model.infer(Buffer.from(probe.input, 'base64')).classIndex, probe.expectedClass);
    // Bad use is one line and exit code 1 through the CLI's dispatcher, not a stack trace.
    for (const bad of [
      [source, '--out', out],
      [...args, '--images', '0'],
      [...args, '--format', 'int4'],
    ]) {
      assert.throws(() => quantizeCommand(bad), CommandUsageError);
      assert.equal(await runModelCommand('quantize', bad), 1);
    }
  });

  for (const format of ['fixed16', 'fixed8'] as const) {
    test(`whittle quantize --format ${format} writes dynamic fixed point that runs on the fixed-point kernels`, () => {
      const source = join(root, 'fp32.whittle');
      const out = join(root, `${format}.whittle`);
      writeFileSync(source, fp32Bytes);
      const args = ['--calibration', 'fashion-mnist', '--images', '50', '--test-images', '200'];
      assert.equal(quantizeCommand([source, '--out', out, '--format', format, ...args, '--bundled-key']), 0);
      const pkg = read(readFileSync(out));
      const layers = pkg.manifest.nodes.filter((n) => n.op === 'conv2d' || n.op === 'fully_connected');
      assert.equal(layers.length, 5, 'LeNet-5: two convolutions and three dense layers');
      for (const node of layers) {
        assert.equal(node.format, format, node.name);
        assert.equal(typeof node.attrs.input_fl, 'number', `${node.name} carries its activation FLs`);
      }
      // Measured, and close to fp32 on the same 200 images.
      const fp32Top1 = evaluatePackage(fp32, { ...testSet, count: 200 }).top1;
      const top1 = pkg.manifest.accuracy!.top1;
      assert.equal(top1, evaluatePackage(pkg, { ...testSet, count: 200 }).top1);
      assert.ok(Math.abs(top1 - fp32Top1) <= (format === 'fixed16' ? 0.01 : 0.03), `${top1} vs ${fp32Top1}`);
      // Smaller than fp32: 16- or 8-bit words.
      assert.ok(readFileSync(out).length < fp32Bytes.length * (format === 'fixed16' ? 0.6 : 0.35));
      const probe = pkg.manifest.probe!;
      assert.equal(
        PackageModel.fromPackage(pkg).infer(Buffer.from(probe.input, 'base64')).classIndex,
        probe.expectedClass,
      );
    });
  }
});
