// The agent's deployable unit: a signed package read strictly, built at batch 1 within a memory budget,
// fed camera frames through its manifest's preprocessing. The bundled demo package gives, frame by frame, the
// reference executor's logits bit for bit.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { defaultModelPath } from '../../../agent/config.js';
import type { Manifest } from '../../../agent/package/manifest.js';
import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { PackageModel } from '../../../agent/runtime/package-model.js';
import { loadFashionMnist } from '../../../optimize/datasets/fashion-mnist.js';
import { samplePackageContent } from '../../../optimize/package/sample-package.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { mlpPackagePath, rewritePackage } from '../deploy/deploy-fixtures.js';

const keys = generateKeyPairSync('ed25519');
const bundledBytes = readFileSync(mlpPackagePath());
const otherFamily = process.arch === 'arm' ? 'x86_64' : 'armv7';

/** Loads package bytes as a deployed package signed by `keys`. */
function fromBytes(
  bytes: Buffer,
  memoryBudgetBytes?: number,
  publicKey: KeyObject = keys.publicKey,
): PackageModel {
  return PackageModel.fromPackage(readPackage(bytes, { publicKey }), {
    ...(memoryBudgetBytes !== undefined ? { memoryBudgetBytes } : {}),
  });
}

/** A one-node package: the camera input, copied (f32) or dequantized (i8/u8) to the output, so the output
 * is exactly the tensor the adapter wrote. */
function passThrough(input: {
  layout: 'NHWC' | 'NCHW' | 'NC' | 'other';
  shape: number[];
  dtype: 'f32' | 'i8' | 'u8';
  quant?: { scale: number[]; zeroPoint: number[] };
  channels: 1 | 3;
  width: number;
  height: number;
  mean: number[];
  std: number[];
}): Buffer {
  const manifest: Manifest = {
    format: 'whittle-package',
    version: 1,
    model: { id: 'pass', version: '1' },
    target: { deviceClass: 'any', cpuFamily: 'any' },
    inputs: [
      {
        name: 'image',
        tensor: 0,
        layout: input.layout,
        preprocessing: {
          kind: 'image',
          width: input.width,
          height: input.height,
          channels: input.channels,
          mean: input.mean,
          std: input.std,
        },
      },
    ],
    outputs: [{ name: 'out', tensor: 1 }],
    tensors: [
      {
        name: 'image',
        dtype: input.dtype,
        shape: input.shape,
        ...(input.quant ? { quant: input.quant } : {}),
      },
      { name: 'out', dtype: 'f32', shape: input.shape },
    ],
    nodes: [
      input.dtype === 'f32'
        ? { name: 'copy', op: 'identity', format: 'f32', inputs: [0], outputs: [1], attrs: {} }
        : { name: 'deq', op: 'dequantize_linear', format: 'int8', inputs: [0], outputs: [1], attrs: {} },
    ],
  };
  return writePackage({ manifest, constants: new Map() }, keys.privateKey);
}

describe('the bundled package', () => {
  test('loads trusted as shipped and gives the reference executor’s logits bit for bit', () => {
    const model = PackageModel.load(mlpPackagePath(), { trust: 'shipped' });
    assert.equal(model.id, 'fashion-mlp-int8');
    assert.deepEqual(model.input, { width: 28, height: 28, channels: 1, resize: 'stretch', cropFraction: 1 });
    assert.equal(model.labels.length, 10);
    assert.equal(model.labels[9], 'Ankle boot');
    // The manifest's preprocessing is pixel / 255 (mean 0, std 1), written out here as the reference input.
    const reference = Model.fromPackage(readPackage(bundledBytes, { allowUnsigned: true }), {
      referenceOnly: true,
    });
    const { pixels, labels } = loadFashionMnist('test');
    let correct = 0;
    for (let i = 0; i < 300; i++) {
      const frame = pixels.subarray(i * 784, (i + 1) * 784);
      const got = model.infer(frame);
      const [want] = reference.run([Float32Array.from(frame, (p) => p / 255)]);
      assert.deepEqual(Array.from(got.logits), Array.from(want!.data), `image ${i}`);
      assert.ok(Math.abs(got.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5);
      assert.equal(got.confidence, Math.max(...got.probabilities));
      assert.equal(got.probabilities[got.classIndex], got.confidence);
      if (got.classIndex === labels[i]) correct++;
    }
    assert.ok(correct / 300 > 0.8, `accuracy ${correct / 300}`);
  });

  test('carries a probe that the model answers as the manifest says', () => {
    const model = PackageModel.load(mlpPackagePath(), { trust: 'shipped' });
    assert.ok(model.probe);
    assert.equal(model.probe.input.length, 784);
    assert.equal(model.infer(model.probe.input).classIndex, model.probe.expectedClass);
  });

  test('a damaged bundled package is refused even though its signature is not checked', () => {
    const damaged = Buffer.from(bundledBytes);
    damaged[5000]! ^= 1;
    assert.throws(() => PackageModel.fromPackage(readPackage(damaged, { allowUnsigned: true })), {
      name: 'PackageError',
      code: 'hash-mismatch',
    });
  });
});

describe('a deployed package is read strictly', () => {
  const signed = rewritePackage(bundledBytes, () => undefined, keys.privateKey);

  test('signed by the pinned key it loads; by another key, or with no key pinned, it is refused', () => {
    assert.equal(fromBytes(signed).id, 'fashion-mlp-int8');
    const other = generateKeyPairSync('ed25519');
    assert.throws(() => fromBytes(signed, undefined, other.publicKey), {
      name: 'PackageError',
      code: 'wrong-key',
    });
    assert.throws(() => fromBytes(bundledBytes), { name: 'PackageError', code: 'wrong-key' });
  });

  test('one for another CPU family is refused with the reader’s error', () => {
    const foreign = rewritePackage(
      bundledBytes,
      (m) => (m.target = { deviceClass: 'rpi', cpuFamily: otherFamily }),
      keys.privateKey,
    );
    assert.throws(
      () => fromBytes(foreign),
      (e: Error & { code?: string }) =>
        e.name === 'PackageError' && e.code === 'wrong-cpu-family' && /built for/.test(e.message),
    );
  });

  test('one beyond the memory budget is refused with the runtime’s error', () => {
    const fits = fromBytes(signed);
    assert.ok(fits.memoryBytes > 100_000 && fits.memoryBytes < 200_000, `${fits.memoryBytes} bytes`);
    assert.throws(() => fromBytes(signed, fits.memoryBytes - 1), {
      name: 'MemoryBudgetError',
      message: /memory budget is \d+ bytes/,
    });
    assert.equal(fromBytes(signed, fits.memoryBytes).memoryBytes, fits.memoryBytes);
  });
});

describe('camera frames become the input tensor the manifest describes', () => {
  const frame = Uint8Array.from({ length: 12 }, (_, i) => i * 20); // 2x2 RGB, interleaved
  const real = (p: number, c: number): number =>
    Math.fround((p / 255 - [0.5, 0.25, 0][c]!) / [0.5, 0.25, 1][c]!);
  const rgb = { width: 2, height: 2, channels: 3 as const, mean: [0.5, 0.25, 0], std: [0.5, 0.25, 1] };

  test('NHWC keeps the camera order, NCHW splits channel planes, NC flattens as delivered', () => {
    const nhwc = fromBytes(passThrough({ ...rgb, layout: 'NHWC', shape: [1, 2, 2, 3], dtype: 'f32' }));
    assert.deepEqual(
      Array.from(nhwc.infer(frame).logits),
      Array.from(frame, (p, i) => real(p, i % 3)),
    );
    const nchw = fromBytes(passThrough({ ...rgb, layout: 'NCHW', shape: [1, 3, 2, 2], dtype: 'f32' }));
    const planes = [0, 1, 2].flatMap((c) => [0, 1, 2, 3].map((px) => real(frame[px * 3 + c]!, c)));
    assert.deepEqual(Array.from(nchw.infer(frame).logits), planes);
    const nc = fromBytes(passThrough({ ...rgb, layout: 'NC', shape: [1, 12], dtype: 'f32' }));
    assert.deepEqual(Array.from(nc.infer(frame).logits), Array.from(nhwc.infer(frame).logits));
    assert.deepEqual(
      nc.labels,
      Array.from({ length: 12 }, (_, i) => String(i)),
    );
  });

  test('an int8 input is quantized with the runtime’s rounding (half to even), saturated', () => {
    const scale = 1 / 64;
    const zeroPoint = 3;
    const model = fromBytes(
      passThrough({
        ...rgb,
        layout: 'NHWC',
        shape: [1, 2, 2, 3],
        dtype: 'i8',
        quant: { scale: [scale], zeroPoint: [zeroPoint] },
      }),
    );
    const q = (x: number): number => {
      const r = x / scale;
      const even = Math.abs(r % 1) === 0.5 ? 2 * Math.round(r / 2) : Math.round(r);
      return Math.min(127, Math.max(-128, even + zeroPoint));
    };
    assert.deepEqual(
      Array.from(model.infer(frame).logits),
      Array.from(frame, (p, i) => Math.fround(scale * (q(real(p, i % 3)) - zeroPoint))),
    );
  });

  test('feeding the int8 tensor directly gives the float path’s logits on every test image', () => {
    // The bundled MLP quantizes its f32 input in the graph; the same graph started at the quantized
    // tensor must give identical results when the adapter quantizes instead.
    const direct = rewritePackage(
      bundledBytes,
      (m) => {
        const quantize = m.nodes.findIndex((n) => n.op === 'quantize_linear');
        m.inputs[0]!.tensor = m.nodes[quantize]!.outputs[0]!;
        m.nodes.splice(quantize, 1);
      },
      keys.privateKey,
    );
    const floatPath = fromBytes(rewritePackage(bundledBytes, () => undefined, keys.privateKey));
    const intPath = fromBytes(direct);
    const { pixels } = loadFashionMnist('test');
    for (let i = 0; i < 200; i++) {
      const frame = pixels.subarray(i * 784, (i + 1) * 784);
      assert.deepEqual(Array.from(intPath.infer(frame).logits), Array.from(floatPath.infer(frame).logits));
    }
  });

  test('int8 scores out of the one native frame call: dequantized, argmax and softmax as the float path', () => {
    // The bundled LeNet-5 cut before its dequantize_linear and softmax: its output is the int8 logits, which
    // the plan's frame call dequantizes into the model's own scores array (PackageModel.infer).
    const lenet = readFileSync(defaultModelPath());
    const cut = rewritePackage(
      lenet,
      (m) => {
        const dequantize = m.nodes.findIndex((n) => n.op === 'dequantize_linear');
        m.outputs[0]!.tensor = m.nodes[dequantize]!.inputs[0]!;
        m.nodes.splice(dequantize);
      },
      keys.privateKey,
    );
    const model = fromBytes(cut);
    const pkg = readPackage(cut, { publicKey: keys.publicKey });
    const byNode = Model.fromPackage(pkg, { nodeByNode: true });
    const { scale, zeroPoint } = byNode.specs[pkg.manifest.outputs[0]!.tensor]!.quant!;
    const { pixels } = loadFashionMnist('test');
    for (let i = 0; i < 50; i++) {
      const frame = pixels.subarray(i * 784, (i + 1) * 784);
      const got = model.infer(frame);
      const [q] = byNode.run([Float32Array.from(frame, (p) => p / 255)]);
      const logits = Array.from(q!.data, (v) => Math.fround(scale[0]! * (v - zeroPoint[0]!)));
      assert.deepEqual(Array.from(got.logits), logits, `image ${i}`);
      assert.equal(got.classIndex, logits.indexOf(Math.max(...logits)), `image ${i}`);
      const exp = logits.map((v) => Math.exp(v - logits[got.classIndex]!));
      const sum = exp.reduce((a, b) => a + b, 0);
      assert.deepEqual(
        Array.from(got.probabilities),
        exp.map((e) => Math.fround(Math.fround(e) / sum)),
      );
    }
    assert.throws(() => model.infer(new Uint8Array(783)), {
      name: 'PreprocessingError',
      message: /784 bytes/,
    });
  });

  test('an RGB CNN ending in softmax: the frame is normalized per the manifest, scores are probabilities', () => {
    const pkg = readPackage(writePackage(samplePackageContent(), keys.privateKey), {
      publicKey: keys.publicKey,
    });
    const model = PackageModel.fromPackage(pkg);
    assert.deepEqual(model.input, { width: 8, height: 8, channels: 3, resize: 'stretch', cropFraction: 1 });
    const rgbFrame = Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 37) % 256);
    const got = model.infer(rgbFrame);
    // The same graph run directly on (pixel/255 - 0.5)/0.25, in NHWC as the camera delivers it.
    const [want] = Model.fromPackage(pkg, { batch: 1 }).run([
      Float32Array.from(rgbFrame, (p) => Math.fround((p / 255 - 0.5) / 0.25)),
    ]);
    assert.deepEqual(Array.from(got.logits), Array.from(want!.data));
    assert.deepEqual(Array.from(got.probabilities), Array.from(got.logits), 'softmax output taken as is');
    assert.ok(Math.abs(got.logits.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    assert.equal(got.confidence, Math.max(...got.logits));
    assert.equal(model.labels[got.classIndex], 'abcdefghij'[got.classIndex]);
  });

  test('an input a camera cannot feed is refused at load, naming what is wrong', () => {
    const grey = { width: 2, height: 2, channels: 1 as const, mean: [0], std: [1] };
    assert.throws(() => fromBytes(passThrough({ ...grey, layout: 'other', shape: [1, 4], dtype: 'f32' })), {
      name: 'PackageModelError',
      message: /layout other/,
    });
    assert.throws(
      () => fromBytes(passThrough({ ...grey, layout: 'NHWC', shape: [1, 4, 1, 1], dtype: 'f32' })),
      {
        name: 'PackageModelError',
        message: /shape \[1, 4, 1, 1\]; a 2x2x1 frame in NHWC at batch 1 is \[1, 2, 2, 1\]/,
      },
    );
    assert.throws(
      () =>
        fromBytes(
          rewritePackage(
            bundledBytes,
            (m) => {
              m.labels = m.labels!.slice(0, 9);
              delete m.probe;
            },
            keys.privateKey,
          ),
        ),
      { name: 'PackageModelError', message: /10 scores but the manifest names 9 labels/ },
    );
  });
});

describe('the manifest probe is strictly validated', () => {
  const withProbe = (probe: unknown, edit: (m: Manifest) => void = () => undefined): Buffer =>
    rewritePackage(
      bundledBytes,
      (m) => {
        (m as { probe?: unknown }).probe = probe;
        edit(m);
      },
      keys.privateKey,
    );
  const frame = Buffer.alloc(784, 7).toString('base64');

  for (const [what, probe, edit, message] of [
    [
      'a frame of the wrong size',
      { input: Buffer.alloc(100).toString('base64'), expectedClass: 1 },
      undefined,
      /probe.input is 100 bytes; a 28x28x1 frame is 784/,
    ],
    [
      'a class past the labels',
      { input: frame, expectedClass: 10 },
      undefined,
      /probe.expectedClass is 10; the model has 10 labels/,
    ],
    [
      'text that is not base64',
      { input: '*'.repeat(8), expectedClass: 1 },
      undefined,
      /probe.input: expected base64/,
    ],
    [
      'an unknown field',
      { input: frame, expectedClass: 1, logits: [] },
      undefined,
      /probe: Unrecognized key/,
    ],
    [
      'no image preprocessing to feed it',
      { input: frame, expectedClass: 1 },
      (m: Manifest): void => void delete m.inputs[0]!.preprocessing,
      /inputs\[0\] has no image preprocessing/,
    ],
  ] as const) {
    test(`a probe with ${what} is refused`, () => {
      assert.throws(() => readPackage(withProbe(probe, edit), { publicKey: keys.publicKey }), {
        name: 'PackageError',
        code: 'bad-manifest',
        message,
      });
    });
  }

  test('cropFraction without a centre crop is refused; with one the camera format says so', () => {
    const crop = (resize: 'stretch' | 'center-crop' | undefined): Buffer =>
      rewritePackage(
        bundledBytes,
        (m) => {
          const p = m.inputs[0]!.preprocessing!;
          m.inputs[0]!.preprocessing = { ...p, cropFraction: 0.875, ...(resize ? { resize } : {}) };
        },
        keys.privateKey,
      );
    assert.throws(() => readPackage(crop(undefined), { publicKey: keys.publicKey }), {
      code: 'bad-manifest',
      message: /cropFraction needs resize "center-crop"/,
    });
    assert.deepEqual(fromBytes(crop('center-crop')).input, {
      width: 28,
      height: 28,
      channels: 1,
      resize: 'center-crop',
      cropFraction: 0.875,
    });
  });
});
