// Trains a zoo model on a dataset with TensorFlow.js: Adam with a learning-rate schedule (constant, cosine
// decay or step decay), per-epoch validation, early stopping and selection of the weights to keep by
// validation accuracy (default) or loss, checkpoints every epoch and on abort (Ctrl-C), resume from the last checkpoint, and a
// final evaluation on the test set written as JSON next to the model.
//
// OUT/model.json + weights.bin    the model (best validation epoch), tfjs Layers format
// OUT/evaluation.json             test-set loss and accuracy, history, settings
// OUT/checkpoint/                 model, optimizer state and position (epoch, batch) to resume from
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import { loadTrainBinding } from '../../native/train-kernels.js';
import { WhittleError } from '../../native/whittle-error.js';
import { BatchStream, identity, splitTrainValidation } from '../datasets/batches.js';
import { firstImages, loadDataset } from '../datasets/dataset-spec.js';
import type { ImageSet } from '../datasets/image-set.js';
import { buildZooModel } from '../zoo/index.js';
import { fileHandler, loadNamedTensors, MODEL_FILE, saveNamedTensors } from './file-io.js';
import { NativeAdamOptimizer } from './native-adam.js';
import { NATIVE_BACKEND } from './native-backend.js';

/** How the learning rate changes over the run (see scheduledLearningRate). */
export type LrSchedule = 'constant' | 'cosine' | 'step';
export const LR_SCHEDULES: readonly LrSchedule[] = ['constant', 'cosine', 'step'];
/** Which validation figure picks the weights that are kept (and drives early stopping). */
export type Selection = 'accuracy' | 'loss';
export const SELECTIONS: readonly Selection[] = ['accuracy', 'loss'];

export interface TrainConfig {
  model: string;
  dataset: string;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Part of the training images held out for validation and early stopping. */
  validationFraction: number;
  /** Stop after this many epochs without a better validation figure (see `select`; 0 = never stop). */
  patience: number;
  /** Learning-rate schedule over all the run's batches; absent in checkpoints older than it = constant. */
  lrSchedule?: LrSchedule;
  /** Validation figure that picks the kept epoch; absent in older checkpoints = loss (their behaviour). */
  select?: Selection;
  seed: number;
  /** Random crop padding in pixels (0 = none) and left-right flips. */
  cropPadding: number;
  flip: boolean;
  /** Use only the first N training / test images (quick runs, CI). */
  trainLimit?: number;
  testLimit?: number;
  /** Folder datasets: resize every image to this size. */
  imageSize?: number;
  /** Folder datasets: 1 grey or 3 RGB. */
  channels?: 1 | 3;
  widthMultiplier?: number;
}

export const DEFAULT_TRAIN_CONFIG: Omit<TrainConfig, 'model' | 'dataset'> = {
  epochs: 10,
  batchSize: 64,
  learningRate: 1e-3,
  validationFraction: 0.1,
  patience: 3,
  lrSchedule: 'cosine',
  select: 'accuracy',
  seed: 1,
  cropPadding: 0,
  flip: false,
};

export interface TrainProgress {
  phase: 'train' | 'validate' | 'test';
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  /** Running mean over this epoch's batches so far. */
  loss: number;
  accuracy: number;
  imagesPerSecond: number;
  /** Estimated seconds to the end of training. */
  etaSeconds: number;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  accuracy: number;
  validationLoss?: number;
  validationAccuracy?: number;
  seconds: number;
  imagesPerSecond: number;
}

export interface Evaluation {
  loss: number;
  accuracy: number;
  count: number;
}

export interface TrainResult {
  outDir: string;
  interrupted: boolean;
  stoppedEarly: boolean;
  epochsRun: number;
  history: EpochRecord[];
  /** 1-based epoch whose weights were kept (by validation accuracy or loss, see `select`). */
  bestEpoch?: number;
  /** On the test set, or on the validation set when the dataset has no test set. */
  evaluation?: Evaluation & { on: 'test' | 'validation' };
}

/** Training stopped because the loss became NaN/infinite or exploded; no model was written. */
export class TrainingDivergedError extends WhittleError {
  override readonly name = 'TrainingDivergedError';
  readonly code = 'training-diverged';
}

/** A resume was asked for but the checkpoint is missing or does not fit the request. */
export class CheckpointError extends WhittleError {
  override readonly name = 'CheckpointError';
  readonly code = 'bad-checkpoint';
}

/** Bad training settings (the message names the setting). */
export class TrainConfigError extends WhittleError {
  override readonly name = 'TrainConfigError';
  readonly code = 'bad-train-config';
}

interface CheckpointState {
  version: 1;
  config: TrainConfig;
  /** Next batch to run: epoch (0-based) and batch within it. */
  epoch: number;
  batch: number;
  /** Running sums of the interrupted epoch. */
  epochLossSum: number;
  epochCorrect: number;
  epochSeen: number;
  bestValidationLoss: number | null;
  /** Best validation accuracy so far (selection by accuracy); absent in older checkpoints. */
  bestValidationAccuracy?: number | null;
  /** 1-based epoch whose weights are kept. */
  bestEpoch?: number;
  epochsWithoutImprovement: number;
  history: EpochRecord[];
}

const CHECKPOINT_DIR = 'checkpoint';
const STATE_FILE = 'state.json';
const OPTIMIZER_FILE = 'optimizer';
/** A running loss above this many times ln(classes) (a uniform guess) means the training exploded. */
const EXPLODED_LOSS_FACTOR = 4;
const EXPLODED_WINDOW = 20;

export function checkTrainConfig(config: TrainConfig): void {
  const positiveInt = (name: keyof TrainConfig, value: unknown): void => {
    if (!Number.isInteger(value) || (value as number) < 1)
      throw new TrainConfigError(`expected a positive integer for ${name} but received ${String(value)}`);
  };
  positiveInt('epochs', config.epochs);
  positiveInt('batchSize', config.batchSize);
  if (config.trainLimit !== undefined) positiveInt('trainLimit', config.trainLimit);
  if (config.testLimit !== undefined) positiveInt('testLimit', config.testLimit);
  if (!Number.isInteger(config.patience) || config.patience < 0)
    throw new TrainConfigError(
      `expected a non-negative integer for patience but received ${config.patience}`,
    );
  if (!(config.learningRate > 0) || !Number.isFinite(config.learningRate))
    throw new TrainConfigError(`expected a positive learning rate but received ${config.learningRate}`);
  if (!(config.validationFraction >= 0 && config.validationFraction < 1))
    throw new TrainConfigError(
      `expected a validation fraction in [0, 1) but received ${config.validationFraction}`,
    );
  if (!Number.isInteger(config.cropPadding) || config.cropPadding < 0)
    throw new TrainConfigError(
      `expected a non-negative integer crop padding but received ${config.cropPadding}`,
    );
  if (config.lrSchedule !== undefined && !LR_SCHEDULES.includes(config.lrSchedule))
    throw new TrainConfigError(
      `expected lrSchedule (--lr-schedule) to be ${LR_SCHEDULES.join(', ')} but received ${String(config.lrSchedule)}`,
    );
  if (config.select !== undefined && !SELECTIONS.includes(config.select))
    throw new TrainConfigError(
      `expected select (--select) to be ${SELECTIONS.join(' or ')} but received ${String(config.select)}`,
    );
}

/** Step decay: the rate is multiplied by STEP_FACTOR at each of these fractions of the run. */
const STEP_MILESTONES = [0.5, 0.75];
const STEP_FACTOR = 0.1;

/**
 * The learning rate for batch `step` (0-based, counted over the whole run) of `totalSteps`.
 * cosine: from `base` down to 0 along half a cosine, so the last epochs take small careful steps;
 * step: `base`, then ×0.1 from half-way and ×0.01 from three quarters; constant: always `base`.
 */
export function scheduledLearningRate(
  schedule: LrSchedule,
  base: number,
  step: number,
  totalSteps: number,
): number {
  if (schedule === 'constant' || totalSteps <= 0) return base;
  const progress = Math.min(Math.max(step / totalSteps, 0), 1);
  if (schedule === 'cosine') return base * 0.5 * (1 + Math.cos(Math.PI * progress));
  return base * STEP_FACTOR ** STEP_MILESTONES.filter((m) => progress >= m).length;
}

/** Sets the learning rate of a tfjs Adam optimizer between batches (it reads the field on every update). */
function setLearningRate(optimizer: tf.Optimizer, rate: number): void {
  (optimizer as unknown as { learningRate: number }).learningRate = rate;
}

function oneHot(labels: Uint8Array, classes: number): tf.Tensor2D {
  return tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), classes).toFloat() as tf.Tensor2D);
}

/** Which Adam implementation runs the updates (see TrainRun.adam). */
export type AdamImplementation = 'fused' | 'tfjs';

/** The Adam a run uses unless told otherwise: the fused native one on the whittle-native backend. */
export function defaultAdam(): AdamImplementation {
  return tf.getBackend() === NATIVE_BACKEND ? 'fused' : 'tfjs';
}

/** A new Adam optimizer of the given implementation (the trainer's and the training benchmark's). */
export function createAdam(learningRate: number, adam: AdamImplementation): tf.Optimizer {
  return adam === 'fused'
    ? new NativeAdamOptimizer(loadTrainBinding(), learningRate)
    : tf.train.adam(learningRate);
}

/**
 * What a retraining phase (optimize/compress) adds to the loop, each optional:
 * - `start`: once the model is built or loaded (fresh or resumed), before the first batch — e.g. project
 *   the weights onto their masks or centroids;
 * - `beforeBatch`: before each batch's forward pass — a straight-through estimator puts the projected
 *   (binary, ternary, fixed-point) weights in place here and keeps the float copy;
 * - `gradients`: each batch's gradients by variable name, before the optimizer update; returns the ones to
 *   apply — pruning zeroes the pruned weights' gradients, weight sharing gives every weight its cluster's
 *   summed gradient;
 * - `afterUpdate`: after each optimizer update — projection (masks, centroids), or for an STE the update
 *   folded into the float copy (and the float weights restored until the next `beforeBatch`).
 * - `save`: with every checkpoint, the hooks' own state (an STE's float weights) written in the
 *   checkpoint's directory; `restore`: on resume, before `start`, that state read back (throws when it
 *   is missing or unreadable, and the resume is refused as a corrupted checkpoint).
 * Validation, the test evaluation and the checkpoints see the weights as the model holds them after
 * `afterUpdate`.
 */
export interface TrainHooks {
  start?(model: tf.LayersModel): void;
  beforeBatch?(model: tf.LayersModel): void;
  gradients?(gradients: tf.NamedTensorMap): tf.NamedTensorMap;
  afterUpdate?(model: tf.LayersModel): void;
  save?(dir: string): Promise<void>;
  restore?(dir: string): void;
}

/** Several hooks as one, each in turn (the gradients passed down the list). */
export function combineHooks(...list: TrainHooks[]): TrainHooks {
  return {
    start: (model) => list.forEach((h) => h.start?.(model)),
    beforeBatch: (model) => list.forEach((h) => h.beforeBatch?.(model)),
    gradients(gradients) {
      let current = gradients;
      for (const h of list) {
        if (!h.gradients) continue;
        const next = h.gradients(current);
        // A tensor an earlier hook made and this one replaced is nobody's.
        if (current !== gradients)
          tf.dispose(
            Object.values(current).filter(
              (t) => !Object.values(next).includes(t) && !Object.values(gradients).includes(t),
            ),
          );
        current = next;
      }
      return current;
    },
    afterUpdate: (model) => list.forEach((h) => h.afterUpdate?.(model)),
    save: async (dir) => {
      for (const h of list) await h.save?.(dir);
    },
    restore: (dir) => list.forEach((h) => h.restore?.(dir)),
  };
}

function compile(
  model: tf.LayersModel,
  learningRate: number,
  adam: AdamImplementation,
  hooks?: TrainHooks,
): void {
  const optimizer = createAdam(learningRate, adam);
  if (hooks?.gradients || hooks?.afterUpdate) {
    // tfjs's minimize (trainOnBatch) calls applyGradients on the instance: the hooks wrap it there.
    const apply = optimizer.applyGradients.bind(optimizer);
    optimizer.applyGradients = (gradients: Parameters<tf.Optimizer['applyGradients']>[0]) => {
      const named: tf.NamedTensorMap = Array.isArray(gradients)
        ? Object.fromEntries(gradients.map((g) => [g.name, g.tensor]))
        : gradients;
      const applied = hooks.gradients ? hooks.gradients(named) : named;
      apply(Object.entries(applied).map(([name, tensor]) => ({ name, tensor })));
      if (applied !== named)
        tf.dispose(Object.values(applied).filter((t) => !Object.values(named).includes(t)));
      hooks.afterUpdate?.(model);
    };
  }
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
}

/** Loss and accuracy of a model over a stream, without training. */
export async function evaluateModel(
  model: tf.LayersModel,
  stream: BatchStream,
  classes: number,
  onBatch?: (batch: number, batches: number) => void,
): Promise<Evaluation> {
  let lossSum = 0;
  let correct = 0;
  let count = 0;
  let b = 0;
  const [h, w, c] = [stream.set.height, stream.set.width, stream.set.channels];
  for (const batch of stream.epoch(0)) {
    const [loss, right] = tf.tidy(() => {
      const x = tf.tensor4d(batch.x, [batch.size, h, w, c]);
      const y = oneHot(batch.labels, classes);
      const p = model.predict(x) as tf.Tensor2D;
      return [
        tf.metrics.categoricalCrossentropy(y, p).sum().dataSync()[0]!,
        p.argMax(-1).equal(y.argMax(-1)).sum().dataSync()[0]!,
      ];
    });
    lossSum += loss;
    correct += right;
    count += batch.size;
    onBatch?.(++b, stream.batchesPerEpoch());
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { loss: count ? lossSum / count : NaN, accuracy: count ? correct / count : NaN, count };
}

export interface TrainRun {
  config: TrainConfig;
  outDir: string;
  /** Continue from OUT/checkpoint (its settings win over `config`, except epochs). */
  resume?: boolean;
  /** Abort (Ctrl-C): a checkpoint is saved at the current batch and the result says interrupted. */
  signal?: AbortSignal;
  onProgress?: (progress: TrainProgress) => void;
  onEpoch?: (record: EpochRecord) => void;
  /** The backend name recorded in evaluation.json. */
  backend?: string;
  /** 'fused': one native adamUpdate call per variable (default on the whittle-native backend);
   * 'tfjs': tfjs's AdamOptimizer (default elsewhere). Same formula and checkpoint layout. */
  adam?: AdamImplementation;
  /** Start from the model saved in this directory (a `whittle train` output: model.json + weights.bin)
   * instead of a new zoo model; `config.model` then only names it. A resumed run starts from its checkpoint. */
  from?: string;
  /** A retraining phase's additions to the loop (see TrainHooks). */
  hooks?: TrainHooks;
  /** Knowledge distillation: each batch's loss takes the teacher's softened outputs (see Distillation). */
  distill?: Distillation;
}

/**
 * Knowledge distillation (Hinton et al. 2015): the loss of a batch is
 *   α·T²·KL(softmax(z_t / T) ‖ softmax(z_s / T)) + (1 − α)·CE(labels, softmax(z_s)),
 * z_t and z_s the teacher's and the student's logits. The zoo models end in a softmax, so the logits are
 * taken as log p (equal to z up to a per-image constant, which softmax ignores). T² keeps the soft term's
 * gradients at the scale of the hard one's as T changes; α = 0 is training on the labels alone. The teacher
 * is not trained; it runs in inference mode on the same (augmented) batch as the student. Works on every
 * backend (the loss is plain tfjs ops; the batch goes through the optimizer's minimize, so the hooks and the
 * fused Adam apply as with trainOnBatch).
 */
export interface Distillation {
  teacher: tf.LayersModel;
  temperature: number;
  alpha: number;
}

/** The log-probabilities' floor: keeps log p finite where a softmax output underflows to 0. */
const LOG_FLOOR = 1e-30;

/** The distillation loss of a batch (mean over its images) from the student's and the teacher's softmax
 * outputs [batch, classes] and the one-hot labels; and its label term alone, the cross-entropy (what the
 * trainer reports and watches for divergence: the T²-scaled soft term has no fixed scale to compare with). */
export function distillationLoss(
  student: tf.Tensor2D,
  teacher: tf.Tensor2D,
  labels: tf.Tensor2D,
  temperature: number,
  alpha: number,
): { loss: tf.Scalar; crossEntropy: tf.Scalar } {
  return tf.tidy(() => {
    const logStudent = tf.log(tf.clipByValue(student, LOG_FLOOR, 1));
    const hard = tf.neg(tf.sum(tf.mul(labels, logStudent), -1));
    const crossEntropy = tf.mean<tf.Scalar>(hard);
    if (alpha === 0) return { loss: crossEntropy, crossEntropy };
    const softStudent = tf.logSoftmax(tf.div(logStudent, temperature));
    const softTeacher = tf.logSoftmax(tf.div(tf.log(tf.clipByValue(teacher, LOG_FLOOR, 1)), temperature));
    const kl = tf.sum(tf.mul(tf.exp(softTeacher), tf.sub(softTeacher, softStudent)), -1);
    const loss = tf.mean(tf.add(tf.mul(kl, alpha * temperature * temperature), tf.mul(hard, 1 - alpha)));
    return { loss: loss as tf.Scalar, crossEntropy };
  });
}

/** One batch trained on the distillation loss: [loss, accuracy] as trainOnBatch returns them, the loss the
 * label cross-entropy (NaN when the distillation loss is not finite). */
function distillationBatch(
  model: tf.LayersModel,
  x: tf.Tensor4D,
  y: tf.Tensor2D,
  distill: Distillation,
): [number, number] {
  const teacher = tf.tidy(() => distill.teacher.predict(x) as tf.Tensor2D);
  let right: tf.Tensor | undefined;
  let crossEntropy: tf.Tensor | undefined;
  const loss = model.optimizer.minimize(
    () => {
      const p = model.apply(x, { training: true }) as tf.Tensor2D;
      right = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(p, -1), tf.argMax(y, -1)), 'float32')));
      const terms = distillationLoss(p, teacher, y, distill.temperature, distill.alpha);
      crossEntropy = tf.keep(terms.crossEntropy);
      return terms.loss;
    },
    true,
    model.trainableWeights.map((w) => w.read() as tf.Variable),
  )!;
  const total = loss.dataSync()[0]!;
  const out: [number, number] = [
    Number.isFinite(total) ? crossEntropy!.dataSync()[0]! : NaN,
    right!.dataSync()[0]! / x.shape[0],
  ];
  tf.dispose([teacher, loss, right!, crossEntropy!]);
  return out;
}

function checkTeacher(teacher: tf.LayersModel, student: tf.LayersModel): void {
  const shape = (m: tf.LayersModel, which: 'inputs' | 'outputs'): string =>
    JSON.stringify(m[which][0]!.shape.slice(1));
  for (const which of ['inputs', 'outputs'] as const)
    if (shape(teacher, which) !== shape(student, which))
      throw new TrainConfigError(
        `the teacher's ${which} ${shape(teacher, which)} do not match the student's ${shape(student, which)}: ` +
          'a teacher must be trained on the same dataset (image size, channels, classes)',
      );
}

function readCheckpoint(dir: string): CheckpointState {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) throw new CheckpointError(`${path}: no checkpoint to resume from`);
  let state: CheckpointState;
  try {
    state = JSON.parse(readFileSync(path, 'utf8')) as CheckpointState;
  } catch (error) {
    throw new CheckpointError(`${path}: unreadable checkpoint (${(error as Error).message})`);
  }
  if (state.version !== 1 || typeof state.epoch !== 'number' || typeof state.config !== 'object')
    throw new CheckpointError(`${path}: not a Whittle training checkpoint (version 1)`);
  return state;
}

async function saveCheckpoint(
  dir: string,
  model: tf.LayersModel,
  state: CheckpointState,
  hooks: TrainHooks | undefined,
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await model.save(fileHandler(dir));
  await hooks?.save?.(dir);
  if (model.optimizer) {
    const weights = await model.optimizer.getWeights();
    await saveNamedTensors(dir, OPTIMIZER_FILE, weights);
    // The fused Adam hands out copies of its moments (tfjs's Adam, its live variables): free the copies.
    if (model.optimizer instanceof NativeAdamOptimizer) tf.dispose(weights.map((w) => w.tensor));
  }
  writeFileSync(join(dir, STATE_FILE), JSON.stringify(state, null, 1));
}

export async function train(run: TrainRun): Promise<TrainResult> {
  const checkpointDir = join(run.outDir, CHECKPOINT_DIR);
  const resumed = run.resume ? readCheckpoint(checkpointDir) : undefined;
  const config: TrainConfig = resumed ? { ...resumed.config, epochs: run.config.epochs } : run.config;
  checkTrainConfig(config);

  const data = loadDataset(config.dataset, {
    folder: {
      ...(config.channels ? { channels: config.channels } : {}),
      ...(config.imageSize ? { height: config.imageSize, width: config.imageSize } : {}),
    },
  });
  const trainSet: ImageSet = config.trainLimit ? firstImages(data.train, config.trainLimit) : data.train;
  const testSet = data.test && config.testLimit ? firstImages(data.test, config.testLimit) : data.test;
  const classes = trainSet.classes.length;
  const split = splitTrainValidation(trainSet.count, config.validationFraction, config.seed);
  if (split.train.length === 0)
    throw new TrainConfigError(`${trainSet.source}: no training images left after the split`);
  const trainStream = new BatchStream(trainSet, split.train, {
    batchSize: config.batchSize,
    shuffle: true,
    seed: config.seed,
    augmentation: { cropPadding: config.cropPadding, flip: config.flip },
  });
  const evalOptions = { batchSize: 256, shuffle: false, seed: config.seed };
  const validationStream =
    split.validation.length > 0 ? new BatchStream(trainSet, split.validation, evalOptions) : undefined;
  const testStream = testSet ? new BatchStream(testSet, identity(testSet.count), evalOptions) : undefined;

  const adam = run.adam ?? defaultAdam();
  let model: tf.LayersModel;
  if (resumed) {
    // A checkpoint cut short (a full disk, a killed copy) is refused as a whole; nothing is written.
    try {
      model = await tf.loadLayersModel(fileHandler(checkpointDir));
    } catch (error) {
      throw new CheckpointError(
        `${checkpointDir}: the checkpoint is corrupted or truncated (${(error as Error).message}); ` +
          'nothing was changed: start the run again without --resume',
      );
    }
    compile(model, config.learningRate, adam, run.hooks);
    let optimizerWeights;
    try {
      optimizerWeights = loadNamedTensors(checkpointDir, OPTIMIZER_FILE);
      await model.optimizer.setWeights(optimizerWeights);
    } catch (error) {
      model.dispose();
      throw new CheckpointError(
        `${checkpointDir}: the checkpoint's optimizer state is corrupted or truncated ` +
          `(${(error as Error).message}); nothing was changed: start the run again without --resume`,
      );
    }
    // setWeights makes its own variables from these.
    tf.dispose(optimizerWeights.map((w) => w.tensor));
    try {
      run.hooks?.restore?.(checkpointDir);
    } catch (error) {
      model.dispose();
      throw new CheckpointError(
        `${checkpointDir}: the checkpoint's training state is corrupted or truncated ` +
          `(${(error as Error).message}); nothing was changed: start the run again without --resume`,
      );
    }
  } else if (run.from !== undefined) {
    model = await tf.loadLayersModel(fileHandler(run.from));
    compile(model, config.learningRate, adam, run.hooks);
  } else {
    model = buildZooModel(config.model, {
      height: trainSet.height,
      width: trainSet.width,
      channels: trainSet.channels,
      classes,
      seed: config.seed,
      ...(config.widthMultiplier !== undefined ? { widthMultiplier: config.widthMultiplier } : {}),
    });
    compile(model, config.learningRate, adam, run.hooks);
  }
  run.hooks?.start?.(model);
  if (run.distill) checkTeacher(run.distill.teacher, model);

  const state: CheckpointState = resumed ?? {
    version: 1,
    config,
    epoch: 0,
    batch: 0,
    epochLossSum: 0,
    epochCorrect: 0,
    epochSeen: 0,
    bestValidationLoss: null,
    epochsWithoutImprovement: 0,
    history: [],
  };
  state.config = config;
  let bestWeights: tf.Tensor[] | undefined;
  const [h, w, c] = [trainSet.height, trainSet.width, trainSet.channels];
  const batches = trainStream.batchesPerEpoch();
  const schedule = config.lrSchedule ?? 'constant';
  const selection = config.select ?? 'loss';
  const totalSteps = config.epochs * batches;
  const explodedLoss = EXPLODED_LOSS_FACTOR * Math.log(classes);
  const started = performance.now();
  let imagesSinceStart = 0;
  let stoppedEarly = false;

  try {
    for (; state.epoch < config.epochs; state.epoch++, state.batch = 0) {
      const epochStart = performance.now();
      let epochImages = 0;
      const recent: number[] = [];
      for (const batch of trainStream.epoch(state.epoch, state.batch)) {
        if (run.signal?.aborted) {
          await saveCheckpoint(checkpointDir, model, state, run.hooks);
          return {
            outDir: run.outDir,
            interrupted: true,
            stoppedEarly: false,
            epochsRun: state.epoch,
            history: state.history,
          };
        }
        run.hooks?.beforeBatch?.(model);
        const x = tf.tensor4d(batch.x, [batch.size, h, w, c]);
        const y = oneHot(batch.labels, classes);
        setLearningRate(
          model.optimizer,
          scheduledLearningRate(
            schedule,
            config.learningRate,
            state.epoch * batches + state.batch,
            totalSteps,
          ),
        );
        const out = run.distill
          ? distillationBatch(model, x, y, run.distill)
          : ((await model.trainOnBatch(x, y)) as number[]);
        tf.dispose([x, y]);
        const loss = out[0]!;
        const accuracy = out[1]!;
        recent.push(loss);
        if (recent.length > EXPLODED_WINDOW) recent.shift();
        const recentMean = recent.reduce((a, b) => a + b, 0) / recent.length;
        if (!Number.isFinite(loss) || (recent.length === EXPLODED_WINDOW && recentMean > explodedLoss)) {
          throw new TrainingDivergedError(
            `training stopped at epoch ${state.epoch + 1}, batch ${state.batch + 1}: the loss ` +
              (Number.isFinite(loss)
                ? `exploded (mean ${recentMean.toFixed(2)} over ${EXPLODED_WINDOW} batches, a uniform guess is ` +
                  `${Math.log(classes).toFixed(2)})`
                : `became ${loss}`) +
              `; no model was written. Lower the learning rate (now ${config.learningRate}).`,
          );
        }
        state.batch++;
        state.epochLossSum += loss * batch.size;
        state.epochCorrect += accuracy * batch.size;
        state.epochSeen += batch.size;
        epochImages += batch.size;
        imagesSinceStart += batch.size;
        const seconds = (performance.now() - started) / 1000;
        const rate = imagesSinceStart / Math.max(seconds, 1e-6);
        const remainingImages =
          (batches - state.batch) * config.batchSize + (config.epochs - state.epoch - 1) * trainStream.count;
        run.onProgress?.({
          phase: 'train',
          epoch: state.epoch + 1,
          epochs: config.epochs,
          batch: state.batch,
          batches,
          loss: state.epochLossSum / state.epochSeen,
          accuracy: state.epochCorrect / state.epochSeen,
          imagesPerSecond: rate,
          etaSeconds: remainingImages / rate,
        });
        // Let signal handlers (Ctrl-C) run between batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
      const epochSeconds = (performance.now() - epochStart) / 1000;
      const record: EpochRecord = {
        epoch: state.epoch + 1,
        loss: state.epochLossSum / Math.max(state.epochSeen, 1),
        accuracy: state.epochCorrect / Math.max(state.epochSeen, 1),
        seconds: epochSeconds,
        imagesPerSecond: epochImages / Math.max(epochSeconds, 1e-6),
      };
      state.epochLossSum = state.epochCorrect = state.epochSeen = 0;
      if (validationStream) {
        const validation = await evaluateModel(model, validationStream, classes, (b, n) =>
          run.onProgress?.({
            phase: 'validate',
            epoch: state.epoch + 1,
            epochs: config.epochs,
            batch: b,
            batches: n,
            loss: record.loss,
            accuracy: record.accuracy,
            imagesPerSecond: record.imagesPerSecond,
            etaSeconds: 0,
          }),
        );
        record.validationLoss = validation.loss;
        record.validationAccuracy = validation.accuracy;
        // Accuracy ties go to the lower loss: the same count of right answers, given more confidently.
        const bestAccuracy = state.bestValidationAccuracy ?? null;
        const better =
          selection === 'accuracy'
            ? bestAccuracy === null ||
              validation.accuracy > bestAccuracy ||
              (validation.accuracy === bestAccuracy &&
                validation.loss < (state.bestValidationLoss ?? Infinity))
            : state.bestValidationLoss === null || validation.loss < state.bestValidationLoss;
        if (better) {
          state.bestValidationLoss = validation.loss;
          state.bestValidationAccuracy = validation.accuracy;
          state.bestEpoch = state.epoch + 1;
          state.epochsWithoutImprovement = 0;
          tf.dispose(bestWeights ?? []);
          bestWeights = model.getWeights().map((t) => t.clone());
        } else {
          state.epochsWithoutImprovement++;
        }
      }
      state.history.push(record);
      run.onEpoch?.(record);
      const next = { ...state, epoch: state.epoch + 1, batch: 0 };
      await saveCheckpoint(checkpointDir, model, next, run.hooks);
      if (validationStream && state.epochsWithoutImprovement > config.patience - 1 && config.patience > 0) {
        stoppedEarly = state.epoch + 1 < config.epochs;
        state.epoch++;
        break;
      }
    }

    // The best epoch's weights when validation picked one (a resumed run that never improved keeps its own).
    if (bestWeights) model.setWeights(bestWeights);
    await model.save(fileHandler(run.outDir));
    let evaluation: TrainResult['evaluation'];
    const finalStream = testStream ?? validationStream;
    if (finalStream) {
      const result = await evaluateModel(model, finalStream, classes, (b, n) =>
        run.onProgress?.({
          phase: 'test',
          epoch: config.epochs,
          epochs: config.epochs,
          batch: b,
          batches: n,
          loss: 0,
          accuracy: 0,
          imagesPerSecond: 0,
          etaSeconds: 0,
        }),
      );
      evaluation = { ...result, on: testStream ? 'test' : 'validation' };
    }
    const epochsRun = state.history.length;
    writeFileSync(
      join(run.outDir, 'evaluation.json'),
      JSON.stringify(
        {
          model: config.model,
          dataset: config.dataset,
          modelFile: MODEL_FILE,
          backend: run.backend ?? tf.getBackend(),
          adam,
          evaluation,
          classes: trainSet.classes,
          epochsRun,
          stoppedEarly,
          bestEpoch: state.bestEpoch,
          config,
          history: state.history,
        },
        null,
        2,
      ),
    );
    return {
      outDir: run.outDir,
      interrupted: false,
      stoppedEarly,
      epochsRun,
      history: state.history,
      ...(state.bestEpoch !== undefined ? { bestEpoch: state.bestEpoch } : {}),
      ...(evaluation ? { evaluation } : {}),
    };
  } finally {
    tf.dispose(bestWeights ?? []);
    model.optimizer?.dispose();
    model.dispose();
  }
}
