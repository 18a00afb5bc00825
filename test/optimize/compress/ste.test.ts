// The straight-through-estimator hook (optimize/compress/ste.ts) and its quantizers, driven by hand through
// the trainer's hook sequence: start, gradients, the optimizer's update, afterUpdate, save / restore.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { decodeTensor, encodeBinary, encodeTernary, toFloat32 } from '../../../agent/package/encodings.js';
import { readKernel, shareWeights, writeKernel } from '../../../optimize/compress/projection.js';
import {
  BINARY_QUANTIZER,
  channelMeanAbs,
  codebookQuantizer,
  steHooks,
  ternaryQuantizer,
} from '../../../optimize/compress/ste.js';

function denseModel(
  kernel = Float32Array.from([0.5, -0.2, 0.1, -0.4, 0.3, 2, 0.05, -0.1, -0.3, 0.2, 0, 1.5]),
): tf.LayersModel {
  const model = tf.sequential({
    layers: [tf.layers.dense({ units: 3, inputShape: [4], useBias: false, name: 'fc' })],
  });
  writeKernel(model, 'fc', kernel);
  return model;
}

/** [in][O] -> [O][in], the package's row layout. */
function rows(w: Float32Array, inputs: number, outputs: number): Float32Array {
  return Float32Array.from(
    { length: w.length },
    (_, i) => w[(i % inputs) * outputs + Math.floor(i / inputs)]!,
  );
}

describe('straight-through estimator', () => {
  test('binary Q(w): sign times the output channel mean |w|, sign(0) = +1, idempotent', () => {
    const w = Float32Array.from([0.5, -0.2, 0.1, -0.4, 0.3, 2, 0.05, -0.1, -0.3, 0.2, 0, 1.5]);
    const q = BINARY_QUANTIZER.quantize(w, [4, 3]);
    const alpha = channelMeanAbs(w, [4, 3]);
    assert.ok(Math.abs(alpha[0]! - (0.5 + 0.4 + 0.05 + 0.2) / 4) < 1e-7);
    assert.equal(q[0], alpha[0]);
    assert.equal(q[1], -alpha[1]!);
    assert.equal(q[10], alpha[1]); // w = 0 -> +alpha
    assert.deepEqual(BINARY_QUANTIZER.quantize(q, [4, 3]), q);
  });

  test('binary and ternary Q(w) are what the package encoders store, exactly', () => {
    const w = Float32Array.from({ length: 60 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 5)));
    for (const [quantizer, encode] of [
      [BINARY_QUANTIZER, encodeBinary],
      [ternaryQuantizer(true), encodeTernary],
    ] as const) {
      const q = quantizer.quantize(w, [20, 3]);
      const packed = rows(q, 20, 3);
      const { encoding, bytes } = encode(packed, [3, 20]);
      const decoded = toFloat32(
        decodeTensor(bytes, 0, { dtype: 'f32', shape: [3, 20] }, encoding, { layer: 'w' }),
        60,
      );
      assert.deepEqual(decoded, packed, quantizer.name);
    }
  });

  test('ternary Q(w): threshold 0.7 mean |w|, alpha the mean above it, per channel or per layer', () => {
    const w = Float32Array.from([1, 0.1, -0.9, 0.2, 0.05, -3]);
    // One channel: mean |w| = 5.25 / 6, threshold 0.6125; kept 1, -0.9, -3 -> alpha 4.9 / 3.
    const q = ternaryQuantizer(false).quantize(w, [6, 1]);
    const alpha = Math.fround(4.9 / 3);
    assert.deepEqual([...q], [alpha, 0, -alpha, 0, 0, -alpha]);
    const perChannel = ternaryQuantizer(true).quantize(w, [3, 2]);
    // Channel 0: 1, -0.9, 0.05 -> threshold 0.7 * 0.65 = 0.455: kept 1, -0.9. Channel 1: 0.1, 0.2, -3.
    const a0 = Math.fround(0.95);
    const a1 = Math.fround(3);
    assert.deepEqual([...perChannel], [a0, 0, -a0, 0, 0, -a1]);
  });

  test('the forward pass sees Q(w), the optimizer updates the float copy, clipped, and the layer ends on Q(w)', async () => {
    const model = denseModel();
    const original = readKernel(model, 'fc');
    const hooks = steHooks([{ layer: 'fc', quantizer: BINARY_QUANTIZER }]);
    hooks.start!(model);
    assert.deepEqual(readKernel(model, 'fc'), BINARY_QUANTIZER.quantize(original, [4, 3]));
    const name = model.getLayer('fc').trainableWeights[0]!.name;
    const g = tf.fill([4, 3], 1);
    const applied = hooks.gradients!({ [name]: g });
    // |w| = 2 and 1.5 are outside the STE window: no gradient.
    const passed = applied[name]!.dataSync();
    assert.equal(passed[5], 0);
    assert.equal(passed[11], 0);
    assert.equal(passed[0], 1);
    // The variable holds the float copy for the update.
    assert.deepEqual(readKernel(model, 'fc'), original);
    // An SGD step of 0.25 on the float copy.
    writeKernel(
      model,
      'fc',
      original.map((v, i) => v - 0.25 * passed[i]!),
    );
    hooks.afterUpdate!(model);
    const float = original.map((v, i) => Math.min(1, Math.max(-1, Math.fround(v - 0.25 * passed[i]!))));
    assert.deepEqual(readKernel(model, 'fc'), BINARY_QUANTIZER.quantize(float, [4, 3]));

    // The float copy survives a checkpoint: a fresh hook restored from it quantizes the same float weights.
    const dir = mkdtempSync(join(tmpdir(), 'whittle-ste-'));
    try {
      await hooks.save!(dir);
      const other = denseModel();
      const resumed = steHooks([{ layer: 'fc', quantizer: BINARY_QUANTIZER }]);
      resumed.restore!(dir);
      resumed.start!(other);
      const g2 = tf.fill([4, 3], 0);
      resumed.gradients!({ [other.getLayer('fc').trainableWeights[0]!.name]: g2 });
      assert.deepEqual(readKernel(other, 'fc'), float);
      assert.throws(() => steHooks([{ layer: 'other', quantizer: BINARY_QUANTIZER }]).restore!(dir), /other/);
      tf.dispose([g, g2]);
      other.dispose();
    } finally {
      rmSync(dir, { recursive: true });
      model.dispose();
    }
  });
  test('codebook Q(w): trained assignments move a weight to another cluster, the codebook follows, pruned stay 0', async () => {
    // A pruned kernel: indices 6 and 10 are its zeros.
    const pruned = Float32Array.from([0.5, -0.2, 0.1, -0.4, 0.3, 2, 0, -0.1, -0.3, 0.2, 0, 1.5]);
    const mask = Uint8Array.from(pruned, (v) => (v !== 0 ? 1 : 0));
    const model = denseModel(pruned);
    const layer = () => [{ layer: 'fc', quantizer: codebookQuantizer(4, mask) }];
    const hooks = steHooks(layer());
    hooks.start!(model);
    // It starts where kmeans puts the layer today: linear-initialised k-means of the kept weights.
    const start = readKernel(model, 'fc');
    assert.deepEqual(start, shareWeights(pruned, 4, mask).shared);
    assert.ok(new Set(start).size <= 4 && start[6] === 0 && start[10] === 0);
    assert.throws(() => codebookQuantizer(4, mask).quantize(pruned, [4, 3]), /before its first fit/);
    // 0.1 shares 0.5's cluster (centroids -0.25, 0.275, 1.75).
    assert.equal(start[2], start[0]);
    assert.notEqual(start[2], start[1]);

    const name = model.getLayer('fc').trainableWeights[0]!.name;
    const g = tf.tensor2d(
      Float32Array.from({ length: 12 }, (_, i) => (i === 2 || i === 6 ? 1 : 0)),
      [4, 3],
    );
    const passed = hooks.gradients!({ [name]: g })[name]!.dataSync();
    // A pruned weight gets no gradient; the variable holds the float copy for the update.
    assert.deepEqual([passed[2], passed[6]], [1, 0]);
    assert.deepEqual(readKernel(model, 'fc'), pruned);
    // An SGD step of 0.25 takes 0.1 to -0.15, across the midpoint 0.0125: it joins -0.2's cluster, whose
    // centroid becomes the mean of its five float weights.
    const float = pruned.map((v, i) => v - 0.25 * passed[i]!);
    writeKernel(model, 'fc', float);
    hooks.afterUpdate!(model);
    const q = readKernel(model, 'fc');
    assert.equal(q[2], q[1]);
    assert.notEqual(q[2], q[0]);
    const cluster = [1, 2, 3, 7, 8].map((i) => float[i]!);
    assert.equal(q[1], Math.fround(cluster.reduce((a, b) => a + b, 0) / 5));
    assert.equal(q[0], Math.fround((float[0]! + float[4]! + float[9]!) / 3));
    assert.ok(new Set(q).size <= 4 && q[6] === 0 && q[10] === 0);
    // Q(Q(w)) = Q(w) on the same codebook.
    const quantizer = codebookQuantizer(4, mask);
    quantizer.fitted!.fit(float, [4, 3]);
    assert.deepEqual(quantizer.quantize(quantizer.quantize(float, [4, 3]), [4, 3]), q);

    // The codebook survives a checkpoint with the float copy: a restored hook gives the same Q(w).
    const dir = mkdtempSync(join(tmpdir(), 'whittle-ste-'));
    try {
      await hooks.save!(dir);
      const other = denseModel(pruned);
      const resumed = steHooks(layer());
      resumed.restore!(dir);
      resumed.start!(other);
      assert.deepEqual(readKernel(other, 'fc'), q);
      other.dispose();
      // A checkpoint without it (an STE phase of another quantizer) is refused.
      const binary = steHooks([{ layer: 'fc', quantizer: BINARY_QUANTIZER }]);
      const plain = mkdtempSync(join(tmpdir(), 'whittle-ste-'));
      binary.start!(denseModel());
      await binary.save!(plain);
      assert.throws(() => steHooks(layer()).restore!(plain));
      rmSync(plain, { recursive: true });
    } finally {
      rmSync(dir, { recursive: true });
      tf.dispose(g);
      model.dispose();
    }
  });
});
