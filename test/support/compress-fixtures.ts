// What the compression tests start from and check against: a zoo model trained on a few hundred
// Fashion-MNIST images (one epoch on the native backend, a constant learning rate), and the largest
// difference between a package's scores on the runtime and the tfjs model it was made from.
import * as tf from '@tensorflow/tfjs';

import type { Package } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
import { firstImages, loadDataset } from '../../optimize/datasets/dataset-spec.js';
import { imageInput } from '../../optimize/evaluate-package.js';
import { selectTrainingBackend } from '../../optimize/train/backend-select.js';
import { fileHandler } from '../../optimize/train/file-io.js';
import { DEFAULT_TRAIN_CONFIG, train, type TrainConfig } from '../../optimize/train/trainer.js';

export async function trainTiny(
  model: string,
  outDir: string,
  config: Partial<TrainConfig> & { trainLimit: number; testLimit: number },
): Promise<void> {
  await selectTrainingBackend('whittle-native');
  await train({
    config: {
      ...DEFAULT_TRAIN_CONFIG,
      model,
      dataset: 'fashion-mnist',
      epochs: 1,
      lrSchedule: 'constant',
      ...config,
    },
    outDir,
  });
}

/** The package run on the runtime at batch `count` on the first Fashion-MNIST test images, against the
 * tfjs model in `modelDir`: the scores' shape and the largest absolute difference. */
export async function runtimeVsTfjs(
  pkg: Package,
  modelDir: string,
  count: number,
): Promise<{ shape: number[]; worst: number }> {
  const x = imageInput(firstImages(loadDataset('fashion-mnist').test!, count), 0, count);
  const scores = Model.fromPackage(pkg, { batch: count }).run([x])[0]!;
  const tfModel = await tf.loadLayersModel(fileHandler(modelDir));
  const expected = tf.tidy(() =>
    (tfModel.predict(tf.tensor4d(x, [count, 28, 28, 1])) as tf.Tensor).dataSync(),
  );
  tfModel.dispose();
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(expected[i]! - scores.data[i]!));
  return { shape: scores.shape, worst };
}
