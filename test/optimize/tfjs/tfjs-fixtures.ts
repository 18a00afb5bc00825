// Shared by the TensorFlow.js import tests: realistic random weights for a tfjs model, saving it the way
// `whittle train` does, loading the imported package on the runtime, and the output comparison.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import { readPackage } from '../../../agent/package/reader.js';
import { Model, type ModelOptions } from '../../../agent/runtime/model.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { importTfjsLayers, type TfjsImportOptions } from '../../../optimize/tfjs/import.js';
import { fileHandler, MODEL_FILE } from '../../../optimize/train/file-io.js';

const keys = generateKeyPairSync('ed25519');

/**
 * Replaces the batch-norm parameters (zero or one at initialization, which would hide a wrong fold) and the
 * biases with seeded random values. The moving mean and variance are each layer's actual statistics on a
 * random batch, perturbed: statistics unrelated to the activations would saturate a deep net's ReLU6s and
 * make its output the same for every input, a comparison that proves little.
 */
export function randomizeWeights(model: tf.LayersModel, seed: number): void {
  let s = seed;
  const calibration = model.inputs.map((input) =>
    tf.randomNormal([8, ...(input.shape.slice(1) as number[])], 0, 1, 'float32', s++),
  );
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const values = tf.tidy(() => {
      let moments: { mean: tf.Tensor; variance: tf.Tensor } | undefined;
      if (layer.getClassName() === 'BatchNormalization') {
        // The first call's input (a shared batch norm would have several).
        const input = Array.isArray(layer.input) ? layer.input[0]! : layer.input;
        const probe = tf.model({ inputs: model.inputs, outputs: input });
        const x = probe.predict(calibration) as tf.Tensor;
        moments = tf.moments(x, [...Array(x.rank - 1).keys()]);
      }
      return layer.weights.map((w) => {
        const shape = w.shape as number[];
        const name = w.originalName;
        if (name.endsWith('/gamma')) return tf.randomUniform(shape, 0.6, 1.4, 'float32', s++);
        if (name.endsWith('/beta')) return tf.randomNormal(shape, 0, 0.3, 'float32', s++);
        if (moments && name.endsWith('/moving_mean'))
          return moments.mean.add(
            tf.randomNormal(shape, 0, 0.2, 'float32', s++).mul(moments.variance.sqrt()),
          );
        if (moments && name.endsWith('/moving_variance'))
          return moments.variance.mul(tf.randomUniform(shape, 0.7, 1.3, 'float32', s++)).add(1e-3);
        if (name.endsWith('/bias')) return tf.randomNormal(shape, 0, 0.1, 'float32', s++);
        return w.read().clone();
      });
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
  tf.dispose(calibration);
}

/** Saves `model` to DIR/model.json + DIR/weights.bin with the trainer's handler; returns the model.json path. */
export async function saveLikeTrain(model: tf.LayersModel, dir: string): Promise<string> {
  await model.save(fileHandler(dir));
  return join(dir, MODEL_FILE);
}

/** Imports a model.json, signs the package, reads it back and loads it on the runtime. */
export function importToRuntime(
  modelJson: string,
  options: TfjsImportOptions = {},
  modelOptions: ModelOptions = {},
): Model {
  const content = importTfjsLayers(modelJson, options);
  return Model.fromPackage(
    readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey }),
    modelOptions,
  );
}

/** Largest |actual - expected|, and the outputs' scale (largest |expected|). */
export function compare(
  expected: ArrayLike<number>,
  actual: ArrayLike<number>,
): { diff: number; scale: number } {
  assert.equal(actual.length, expected.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return { diff, scale };
}

/** Asserts the runtime's outputs equal tfjs's within 1e-4 of the output scale. */
export function assertClose(expected: ArrayLike<number>, actual: ArrayLike<number>, what: string): void {
  const { diff, scale } = compare(expected, actual);
  assert.ok(diff <= 1e-4 * scale, `${what}: max |diff| ${diff} at output scale ${scale}`);
}
