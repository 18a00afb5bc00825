// Shared by the TensorFlow.js import tests: saving a tfjs model the way `whittle train` does, loading the imported package on the runtime, and the output comparison.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import { readPackage } from '../../../agent/package/reader.js';
import { Model, type ModelOptions } from '../../../agent/runtime/model.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { importTfjsLayers, type TfjsImportOptions } from '../../../optimize/tfjs/import.js';
import { fileHandler, MODEL_FILE } from '../../../optimize/train/file-io.js';

export { randomizeWeights } from '../../../optimize/zoo/random-weights.js';

const keys = generateKeyPairSync('ed25519');

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
