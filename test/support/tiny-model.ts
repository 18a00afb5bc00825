// A zoo model trained briefly on a Fashion-MNIST subset on the native training backend, for the tests of
// what consumes a `whittle train` directory (quantization, compression): one epoch at a constant rate,
// 100 test images, the rest as `overrides` say.
import { selectTrainingBackend } from '../../optimize/train/backend-select.js';
import { DEFAULT_TRAIN_CONFIG, train, type TrainConfig } from '../../optimize/train/trainer.js';

export async function trainTinyModel(
  model: string,
  outDir: string,
  overrides: Partial<TrainConfig> = {},
): Promise<void> {
  await selectTrainingBackend('whittle-native');
  await train({
    config: {
      ...DEFAULT_TRAIN_CONFIG,
      model,
      dataset: 'fashion-mnist',
      epochs: 1,
      trainLimit: 600,
      testLimit: 100,
      lrSchedule: 'constant',
      ...overrides,
    },
    outDir,
  });
}
