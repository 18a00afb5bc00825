// TensorFlow.js's Layers format on the local file system (what tfjs-node's file:// handler does, which is
// absent here): DIR/model.json (topology + weights manifest) and DIR/weights.bin. Files are written to a
// temporary name and renamed, so a crash never leaves a half-written model.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import { WhittleError } from '../../native/whittle-error.js';

/** A tensor with its name, as optimizers' getWeights returns them. */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

export const MODEL_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';

/** A saved model directory is missing or unreadable; the message names the file. */
export class ModelFileError extends WhittleError {
  override readonly name = 'ModelFileError';
  readonly code = 'bad-model-file';
}

export function writeAtomic(path: string, data: string | Uint8Array): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, data);
  renameSync(temporary, path);
}

function concatWeights(data: tf.io.WeightData | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  if (Array.isArray(data)) return new Uint8Array(tf.io.CompositeArrayBuffer.join(data));
  return new Uint8Array(data);
}

/** An IOHandler that saves to and loads from `dir`. */
export function fileHandler(dir: string): tf.io.IOHandler {
  return {
    save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      mkdirSync(dir, { recursive: true });
      const weights = concatWeights(artifacts.weightData);
      const manifest: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: 'whittle',
        weightsManifest: [{ paths: [`./${WEIGHTS_FILE}`], weights: artifacts.weightSpecs ?? [] }],
        ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
      };
      writeAtomic(join(dir, WEIGHTS_FILE), weights);
      writeAtomic(join(dir, MODEL_FILE), JSON.stringify(manifest));
      return Promise.resolve({
        modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts),
      });
    },
    load(): Promise<tf.io.ModelArtifacts> {
      const modelPath = join(dir, MODEL_FILE);
      let manifest: tf.io.ModelJSON;
      try {
        manifest = JSON.parse(readFileSync(modelPath, 'utf8')) as tf.io.ModelJSON;
      } catch (error) {
        return Promise.reject(
          new ModelFileError(`${modelPath}: cannot read the model (${(error as Error).message})`),
        );
      }
      if (typeof manifest !== 'object' || manifest === null || !Array.isArray(manifest.weightsManifest)) {
        return Promise.reject(new ModelFileError(`${modelPath}: not a TensorFlow.js Layers model.json`));
      }
      const specs: tf.io.WeightsManifestEntry[] = [];
      const buffers: Uint8Array[] = [];
      try {
        for (const group of manifest.weightsManifest) {
          specs.push(...group.weights);
          for (const path of group.paths) buffers.push(readFileSync(join(dir, path)));
        }
      } catch (error) {
        return Promise.reject(
          new ModelFileError(`${dir}: cannot read weights (${(error as Error).message})`),
        );
      }
      const total = buffers.reduce((n, b) => n + b.length, 0);
      const weightData = new Uint8Array(total);
      let at = 0;
      for (const b of buffers) {
        weightData.set(b, at);
        at += b.length;
      }
      const expected = specs.reduce((n, s) => n + s.shape.reduce((p, d) => p * d, 1) * 4, 0);
      if (expected !== total)
        return Promise.reject(
          new ModelFileError(`${dir}: weights are ${total} bytes but ${modelPath} declares ${expected}`),
        );
      return Promise.resolve({
        modelTopology: manifest.modelTopology,
        format: manifest.format,
        generatedBy: manifest.generatedBy,
        convertedBy: manifest.convertedBy,
        weightSpecs: specs,
        weightData: weightData.buffer,
        ...(manifest.trainingConfig ? { trainingConfig: manifest.trainingConfig } : {}),
      });
    },
  };
}

/** Saves named tensors (optimizer state) as DIR/NAME.json + DIR/NAME.bin. */
export async function saveNamedTensors(dir: string, name: string, tensors: NamedTensor[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const { data, specs } = await tf.io.encodeWeights(tensors);
  writeAtomic(join(dir, `${name}.bin`), concatWeights(data));
  writeAtomic(join(dir, `${name}.json`), JSON.stringify(specs));
}

export function loadNamedTensors(dir: string, name: string): NamedTensor[] {
  const specsPath = join(dir, `${name}.json`);
  try {
    const specs = JSON.parse(readFileSync(specsPath, 'utf8')) as tf.io.WeightsManifestEntry[];
    const bytes = readFileSync(join(dir, `${name}.bin`));
    const map = tf.io.decodeWeights(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
      specs,
    );
    return specs.map((s) => ({ name: s.name, tensor: map[s.name]! }));
  } catch (error) {
    throw new ModelFileError(`${specsPath}: cannot read saved tensors (${(error as Error).message})`);
  }
}
