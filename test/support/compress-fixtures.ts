// What the compression tests check against: a package's scores on the runtime against the tfjs model it
// was made from (test/support/tiny-model.ts trains the models they start from).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import type { Package } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
import { loadPipeline, type ModelLayer } from '../../optimize/compress/pipeline.js';
import { firstImages, loadDataset } from '../../optimize/datasets/dataset-spec.js';
import { imageInput } from '../../optimize/evaluate-package.js';
import { fileHandler } from '../../optimize/train/file-io.js';

/** The package run on the runtime at batch `count` on the first Fashion-MNIST test images, against the
 * tfjs model in `modelDir` (after `prepare`, e.g. the training-time fake quantization): the scores' shape,
 * the largest absolute difference and on how many images the two pick the same class. */
export async function runtimeVsTfjs(
  pkg: Package,
  modelDir: string,
  count: number,
  prepare?: (model: tf.LayersModel) => void,
): Promise<{ shape: number[]; worst: number; same: number }> {
  const x = imageInput(firstImages(loadDataset('fashion-mnist').test!, count), 0, count);
  const scores = Model.fromPackage(pkg, { batch: count }).run([x])[0]!;
  const tfModel = await tf.loadLayersModel(fileHandler(modelDir));
  prepare?.(tfModel);
  const expected = tf.tidy(() =>
    (tfModel.predict(tf.tensor4d(x, [count, 28, 28, 1])) as tf.Tensor).dataSync(),
  );
  tfModel.dispose();
  const classes = scores.data.length / count;
  let worst = 0;
  let same = 0;
  for (let n = 0; n < count; n++) {
    const row = (a: ArrayLike<number>): number[] =>
      Array.from({ length: classes }, (_, c) => a[n * classes + c]!);
    const [e, r] = [row(expected), row(scores.data)];
    for (let c = 0; c < classes; c++) worst = Math.max(worst, Math.abs(e[c]! - r[c]!));
    if (e.indexOf(Math.max(...e)) === r.indexOf(Math.max(...r))) same++;
  }
  return { shape: scores.shape, worst, same };
}

/** Each case's steps, written to a spec file, are refused by loadPipeline (for a model of `layers`) with a
 * PipelineError whose message matches the case's. */
export function assertPipelineErrors(layers: ModelLayer[], cases: [steps: unknown, message: RegExp][]): void {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-pipeline-'));
  try {
    cases.forEach(([steps, message], i) => {
      const path = join(dir, `${i}.json`);
      writeFileSync(path, JSON.stringify({ steps }));
      assert.throws(() => loadPipeline(path, layers), { name: 'PipelineError', message });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
