// Does the supernet rank architectures as training them does? A small run (`npm run bench -- nas
// --rank-check N`): the supernet trained on the first images of a dataset, N architectures drawn from the
// search's formats and scored by it on held-out images (search.ts's scoring: slices, formats, batch norms
// recalibrated), then each trained stand-alone from fresh weights on the same images for as many epochs
// and scored on the same held-out images (its batch norms recalibrated alike); Kendall's tau between the two accuracies says how well the
// supernet's order predicts the stand-alone order (1: the same, 0: unrelated).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import { identity } from '../datasets/batches.js';
import { loadDataset } from '../datasets/dataset-spec.js';
import { imageInput } from '../evaluate-package.js';
import { SeededRandom } from '../seeded-random.js';
import { fileHandler } from '../train/file-io.js';
import { DEFAULT_TRAIN_CONFIG, train } from '../train/trainer.js';
import type { NasSettings } from './search.js';
import {
  archKey,
  archLayers,
  buildArchModel,
  parseFormatChoices,
  projectArchWeights,
  sampleArch,
} from './space.js';
import { modelAccuracy, recalibrateBatchNorm, Supernet } from './supernet.js';

/** Kendall's tau-b of two equally long lists (ties in either count as neither concordant nor discordant);
 * NaN when either list is constant. */
export function kendallTau(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new RangeError(`kendallTau: ${a.length} values against ${b.length}`);
  let concordant = 0;
  let discordant = 0;
  let tiesA = 0;
  let tiesB = 0;
  for (let i = 0; i < a.length; i++)
    for (let j = i + 1; j < a.length; j++) {
      const da = Math.sign(a[i]! - a[j]!);
      const db = Math.sign(b[i]! - b[j]!);
      if (da === 0 && db === 0) continue;
      if (da === 0) tiesA++;
      else if (db === 0) tiesB++;
      else if (da === db) concordant++;
      else discordant++;
    }
  return (
    (concordant - discordant) /
    Math.sqrt((concordant + discordant + tiesA) * (concordant + discordant + tiesB))
  );
}

export interface RankCheckOptions {
  /** The search's settings: dataset, batch size, path batches, learning rate, formats, seed. */
  settings: NasSettings;
  /** Architectures compared. */
  candidates: number;
  /** Training images (the first ones of the set); `settings.validationImages` after them are held out. */
  images: number;
  /** Epochs of the supernet, and of each stand-alone training. */
  epochs: number;
  outDir: string;
  say?: (line: string) => void;
}

export interface RankCheckResult {
  kendall_tau: number;
  candidates: { key: string; supernet_accuracy: number; standalone_accuracy: number }[];
}

/** The run of the header. */
export async function supernetRankCheck(options: RankCheckOptions): Promise<RankCheckResult> {
  const { settings } = options;
  const say = options.say ?? (() => undefined);
  const set = loadDataset(settings.dataset).train;
  const held = settings.validationImages;
  if (options.images + held > set.count)
    throw new RangeError(
      `${settings.dataset} has ${set.count} training images, not ${options.images} + ${held}`,
    );
  const modelOptions = {
    inputShape: [set.height, set.width, set.channels] as const,
    classes: set.classes.length,
    seed: settings.seed,
  };
  const validation = imageInput(set, options.images, held);
  const labels = set.labels.subarray(options.images, options.images + held);
  const calibration = imageInput(set, 0, settings.calibrationImages);
  const supernet = Supernet.create(modelOptions);
  await supernet.train({
    set,
    indices: identity(options.images),
    epochs: options.epochs,
    batchSize: settings.batchSize,
    pathBatches: settings.pathBatches,
    learningRate: settings.learningRate,
    seed: settings.seed,
  });
  const rng = new SeededRandom(settings.seed * 31 + 5);
  const choices = parseFormatChoices(settings);
  const result: RankCheckResult['candidates'] = [];
  for (let i = 0; i < options.candidates; i++) {
    const arch = sampleArch(rng, choices);
    const key = archKey(arch);
    const sub = supernet.subnet(arch, calibration);
    const supernetAccuracy = modelAccuracy(sub, validation, labels);
    sub.dispose();
    const fresh = buildArchModel(arch, modelOptions);
    const from = join(options.outDir, `rank-${i}-init`);
    mkdirSync(from, { recursive: true });
    await fresh.save(fileHandler(from));
    fresh.dispose();
    const out = join(options.outDir, `rank-${i}`);
    await train({
      config: {
        ...DEFAULT_TRAIN_CONFIG,
        model: 'nas',
        dataset: settings.dataset,
        epochs: options.epochs,
        batchSize: settings.batchSize,
        learningRate: settings.learningRate,
        patience: 0,
        seed: settings.seed,
        trainLimit: options.images,
        testLimit: 1,
      },
      outDir: out,
      from,
      resume: false,
    });
    const trained = await tf.loadLayersModel(fileHandler(out));
    projectArchWeights(trained, archLayers(arch, trained));
    // As the supernet's candidates are scored: a short training leaves the moving statistics near their
    // start (a model at 86 % training accuracy scored 12 % with them, 82 % recalibrated).
    recalibrateBatchNorm(trained, calibration);
    const standalone = modelAccuracy(trained, validation, labels);
    trained.dispose();
    say(
      `rank check ${i + 1}/${options.candidates}: ${key} supernet ${supernetAccuracy.toFixed(3)}, stand-alone ${standalone.toFixed(3)}`,
    );
    result.push({ key, supernet_accuracy: supernetAccuracy, standalone_accuracy: standalone });
  }
  return {
    kendall_tau: kendallTau(
      result.map((c) => c.supernet_accuracy),
      result.map((c) => c.standalone_accuracy),
    ),
    candidates: result,
  };
}
