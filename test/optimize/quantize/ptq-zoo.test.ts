// Post-training int8 quantization of the functional zoo models (MobileNet-v1 x0.25, SqueezeNet, ShuffleNet
// x0.5): each is built with random but realistic weights (tfjs-fixtures.ts randomizeWeights: batch-norm
// statistics measured on the layer's own inputs) and a classifier fitted to 600 training images
// (zoo-readout.ts: training the nets takes minutes), saved the way `whittle train` saves it, imported,
// quantized on 100 other Fashion-MNIST training images and run next to its fp32 package on 200 test images
// by the agent's runtime.
// Their grouped / depthwise convolutions, concats, channel shuffles and global average pools are what the
// LeNet-5 test (ptq.test.ts) never meets.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import type { ImagePreprocessing } from '../../../agent/package/manifest.js';
import { type Package, readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { nativeAvailable } from '../../../agent/runtime/native-executors.js';
import { PackageModel } from '../../../agent/runtime/package-model.js';
import { loadDataset } from '../../../optimize/datasets/dataset-spec.js';
import type { ImageSet } from '../../../optimize/datasets/image-set.js';
import { evaluatePackage } from '../../../optimize/evaluate-package.js';
import { type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import { calibrationFromImages } from '../../../optimize/quantize/calibrate.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { importTfjsLayers } from '../../../optimize/tfjs/import.js';
import { buildZooModel, type ZooModelName } from '../../../optimize/zoo/index.js';
import { randomizeWeights, saveLikeTrain } from '../tfjs/tfjs-fixtures.js';
import { fitReadout } from './zoo-readout.js';

const { privateKey } = generateKeyPairSync('ed25519');
const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, privateKey), { allowUnsigned: true, cpuFamily: null });

// Fashion-MNIST's pixel mean and standard deviation: the inputs then look like the unit normal batches
// randomizeWeights measured the batch-norm statistics on, so no layer starts out saturated.
const PREPROCESSING: ImagePreprocessing = {
  kind: 'image',
  width: 28,
  height: 28,
  channels: 1,
  mean: [0.286],
  std: [0.353],
};

const CASES: { name: ZooModelName; widthMultiplier?: number; ops: string[] }[] = [
  { name: 'mobilenet', widthMultiplier: 0.25, ops: ['global_avgpool'] },
  { name: 'squeezenet', ops: ['concat', 'max_pool', 'global_avgpool'] },
  { name: 'shufflenet', widthMultiplier: 0.5, ops: ['concat', 'channel_shuffle', 'global_avgpool'] },
];

const TEST_IMAGES = 200;
/**
 * Least share of the test images on which the int8 and fp32 top-1 must agree. Measured (seeded, so the same
 * on every run): MobileNet 166, SqueezeNet 182, ShuffleNet 185 of 200. Below the 95 % a trained model
 * reaches because a random net amplifies the rounding of every layer instead of damping it: the relative
 * error of the activations grows steadily with depth (to 15-20 % at the last layer, ~1 % per layer, with no
 * jump at any concat, shuffle or depthwise layer), and the fitted readout's margins are small. A broken
 * rewrite (a wrong scale, layout or zero point) agrees on a fraction of the images.
 */
const MIN_AGREEMENT = 0.8;
/** Training images the classifier is fitted on (zoo-readout.ts); taken from the end of the training set so
 * they are not the calibration images. */
const FIT_IMAGES = 600;

function readoutImages(set: ImageSet, count: number): { images: tf.Tensor4D; labels: Uint8Array } {
  const per = set.height * set.width * set.channels;
  const start = set.count - count;
  const images = new Float32Array(count * per);
  for (let i = 0; i < images.length; i++)
    images[i] = (set.pixels[start * per + i]! / 255 - PREPROCESSING.mean[0]!) / PREPROCESSING.std[0]!;
  return {
    images: tf.tensor4d(images, [count, set.height, set.width, set.channels]),
    labels: set.labels.slice(start, start + count),
  };
}

describe('post-training int8 quantization of the functional zoo models', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-ptq-zoo-'));
  let trainSet: ImageSet;
  let testSet: ImageSet;
  before(() => {
    const data = loadDataset('fashion-mnist');
    trainSet = data.train;
    testSet = { ...data.test!, count: TEST_IMAGES };
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const { name, widthMultiplier, ops } of CASES) {
    test(`${name}: every conv / dense layer is int8 and top-1 agrees with fp32 on ${TEST_IMAGES} test images`, async (t) => {
      const net = buildZooModel(name, {
        height: 28,
        width: 28,
        channels: 1,
        classes: 10,
        seed: 11,
        ...(widthMultiplier === undefined ? {} : { widthMultiplier }),
      });
      randomizeWeights(net, 200);
      const fit = readoutImages(trainSet, FIT_IMAGES);
      fitReadout(net, fit.images, fit.labels);
      fit.images.dispose();
      const imported = importTfjsLayers(await saveLikeTrain(net, join(root, name)), { modelId: name });
      net.dispose();
      imported.manifest.inputs[0]!.preprocessing = PREPROCESSING;
      const fp32 = read(imported);
      for (const op of ops)
        assert.ok(
          fp32.manifest.nodes.some((n) => n.op === op),
          `the fp32 ${name} has a ${op} for this test to cover`,
        );

      const int8 = read(quantizePackage(fp32, calibrationFromImages(trainSet, 100, PREPROCESSING)).content);

      // Every conv (grouped, depthwise and the ShuffleNet channel-split selections included) and every dense
      // layer became its int8 form with int8 weights, int32 bias and an int8 output.
      const fp32Layers = fp32.manifest.nodes.filter((n) => n.op === 'conv2d' || n.op === 'fully_connected');
      const layers = int8.manifest.nodes.filter((n) => /conv|fully_connected|matmul/.test(n.op));
      assert.equal(layers.length, fp32Layers.length);
      for (const n of layers) {
        assert.match(n.op, /^q(conv2d|fully_connected)$/, n.name);
        assert.equal(n.format, 'int8', n.name);
        assert.equal(int8.manifest.tensors[n.inputs[1]!]!.dtype, 'i8', `${n.name} weights`);
        if (n.inputs[2]! >= 0)
          assert.equal(int8.manifest.tensors[n.inputs[2]!]!.dtype, 'i32', `${n.name} bias`);
        assert.equal(int8.manifest.tensors[n.outputs[0]!]!.dtype, 'i8', `${n.name} output`);
      }
      const groupsOf = (n: { attrs: Record<string, unknown> }): unknown => n.attrs.groups ?? 1;
      assert.deepEqual(
        layers.map(groupsOf),
        fp32Layers.map(groupsOf),
        'grouped convolutions keep their groups',
      );
      // The only fp32 op is the one with no int8 form, the softmax: the global average pool and the reshape
      // after it stay int8 up to the classifier.
      const floatOps = new Set(int8.manifest.nodes.filter((n) => n.format === 'f32').map((n) => n.op));
      for (const op of floatOps) assert.ok(['softmax'].includes(op), op);
      for (const n of int8.manifest.nodes.filter((m) => m.op === 'global_avgpool'))
        assert.equal(n.format, 'int8', n.name);
      // Concats and shuffles move int8 bytes; no input of a concat needed requantizing through fp32.
      for (const n of int8.manifest.nodes.filter((m) => m.op === 'concat' || m.op === 'channel_shuffle'))
        assert.equal(n.format, 'int8', n.name);
      assert.equal(int8.manifest.nodes.filter((n) => n.name.endsWith('/requantize')).length, 0);
      if (nativeAvailable()) {
        for (const layer of Model.fromPackage(int8).layers.filter((l) => l.op === 'qconv2d'))
          assert.match(layer.kernel, /^native:/, `${layer.name} runs on ${layer.kernel}`);
      }

      const reference = evaluatePackage(fp32, testSet);
      const quantized = evaluatePackage(int8, testSet);
      // Agreement only means something if the fp32 model tells the images apart: a random net that gives
      // (almost) every image one class would agree with anything that does the same.
      const counts = new Map<number, number>();
      for (const p of reference.predictions) counts.set(p, (counts.get(p) ?? 0) + 1);
      assert.ok(counts.size >= 4, `fp32 ${name} predicts only ${counts.size} distinct classes`);
      assert.ok(
        Math.max(...counts.values()) <= 0.6 * TEST_IMAGES,
        `fp32 ${name} gives one class to ${Math.max(...counts.values())} of ${TEST_IMAGES} images`,
      );
      // And it classifies: the fitted readout makes it well better than chance (10 %).
      assert.ok(reference.top1 >= 0.3, `fp32 ${name} top-1 ${reference.top1}`);
      let agree = 0;
      for (let i = 0; i < TEST_IMAGES; i++)
        if (reference.predictions[i] === quantized.predictions[i]) agree++;
      t.diagnostic(
        `${name}: fp32 top-1 ${reference.top1}, int8 ${quantized.top1}, agree on ${agree}/${TEST_IMAGES}`,
      );
      assert.ok(
        agree >= MIN_AGREEMENT * TEST_IMAGES,
        `${name}: top-1 agrees on ${agree} of ${TEST_IMAGES} images`,
      );

      // The agent serves it: camera frames (raw bytes) through the manifest's preprocessing give the class
      // the evaluation gave the same image.
      const served = PackageModel.fromPackage(int8);
      const per = 28 * 28;
      for (let i = 0; i < 5; i++) {
        const frame = testSet.pixels.subarray(i * per, (i + 1) * per);
        assert.equal(served.infer(frame).classIndex, quantized.predictions[i], `${name} image ${i}`);
      }
    });
  }
});
