// The weight-sharing supernet (single-path one-shot, Guo et al. 2020): one weight tensor per layer name of
// the search space at its largest shape (widest channels, largest kernel), trained once by sampling a path
// (an architecture of the space, float form) every few batches by the sandwich rule (Yu & Huang 2019,
// slimmable networks / BigNAS: a random draw, then the largest and the smallest architecture with its
// block types, so the extremes that bound every candidate train as often as the middle); the path's model takes its weights as slices
// of the shared tensors (the first channels, the centre of the kernel: the layout OFA's elastic width and
// kernel use), trains on those batches on the training backend, and writes them back. Any architecture of
// the space is then evaluated from its slices, after a few batches of training of its own when asked
// (adaptedSubnet), its formats applied (space.ts projectArchWeights), and its batch norms recalibrated on a
// few batches (the shared moving statistics fit no single path). One Adam state spans the paths (its moments kept as slices of shared tensors, like the
// weights, and its step count), as one optimizer over the supernet's parameters does in SPOS: a fresh Adam
// per path made every path's first steps sign-sized (lr per weight, whatever the gradient) and its moment
// estimates a few batches long. The moments are not checkpointed: a resumed search starts them afresh.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import { whittleError } from '../../native/whittle-error.js';
import { type Batch, BatchStream } from '../datasets/batches.js';
import type { ImageSet } from '../datasets/image-set.js';
import { SeededRandom } from '../seeded-random.js';
import { writeAtomic } from '../train/file-io.js';
import { createAdam, defaultAdam } from '../train/trainer.js';
import {
  archLayers,
  type ArchModelOptions,
  type ArchSpec,
  BLOCK_TYPES,
  buildArchModel,
  floatArch,
  projectArchWeights,
  sampleArch,
  SEARCH_SPACE,
} from './space.js';

/** A supernet checkpoint that cannot be used: the message names the file and what is wrong with it. */
export class NasCheckpointError extends whittleError('NasCheckpointError', 'bad-nas-checkpoint') {}

export const SUPERNET_FILE = 'supernet.json';
export const SUPERNET_WEIGHTS = 'supernet.bin';
/** 2: the blocks after a stage's first have shortcuts (space.ts); a version-1 supernet trained without. */
const SUPERNET_VERSION = 2;

interface Shared {
  shape: number[];
  values: Float32Array;
}

/** Offset of a slice of `small` in `big` along each axis: a conv kernel's spatial axes (the first two of
 * four) centred, every other axis from 0. */
function offsets(big: readonly number[], small: readonly number[]): number[] {
  return big.map((b, axis) => (big.length === 4 && axis < 2 ? (b - small[axis]!) / 2 : 0));
}

/** Copies between the box `small` (dense, its own shape) and its slice of `big`. */
function copyBox(big: Shared, small: Float32Array, shape: readonly number[], toBig: boolean): void {
  const rank = shape.length;
  if (rank !== big.shape.length || shape.some((d, i) => d > big.shape[i]!))
    throw new RangeError(`slice [${shape.join(',')}] does not fit the shared [${big.shape.join(',')}]`);
  const start = offsets(big.shape, shape);
  const strides = big.shape.map((_, i) => big.shape.slice(i + 1).reduce((p, d) => p * d, 1));
  const inner = shape[rank - 1] ?? 1;
  const rows = small.length / Math.max(inner, 1);
  const index = new Array<number>(rank).fill(0);
  for (let r = 0; r < rows; r++) {
    // index of row r over the leading axes of `shape`
    let rest = r;
    for (let a = rank - 2; a >= 0; a--) {
      index[a] = rest % shape[a]!;
      rest = Math.floor(rest / shape[a]!);
    }
    let at = start[rank - 1] ?? 0;
    for (let a = 0; a < rank - 1; a++) at += (index[a]! + start[a]!) * strides[a]!;
    if (toBig) big.values.set(small.subarray(r * inner, (r + 1) * inner), at);
    else small.set(big.values.subarray(at, at + inner), r * inner);
  }
}

/** `arch` (float form) with every stage, and the stem, at its largest or smallest width, depth and kernel. */
export function extremeArch(arch: ArchSpec, side: 'largest' | 'smallest'): ArchSpec {
  const at = (values: readonly number[]): number =>
    side === 'largest' ? Math.max(...values) : Math.min(...values);
  return {
    stem: { ...arch.stem, width: at(SEARCH_SPACE.stemWidths) },
    stages: arch.stages.map((s, i) => ({
      ...s,
      width: at(SEARCH_SPACE.stageWidths[i]!),
      depth: at(SEARCH_SPACE.depths),
      kernel: at(SEARCH_SPACE.kernels),
    })),
    head: arch.head,
  };
}

/** The largest architecture built of each block type: together they hold every layer name of the space at
 * its largest shape. */
function largestArchs(): ArchSpec[] {
  const max = (values: readonly number[]): number => Math.max(...values);
  return BLOCK_TYPES.map((block) => ({
    stem: { width: max(SEARCH_SPACE.stemWidths), format: 'fp32' },
    stages: SEARCH_SPACE.stageWidths.map((widths) => ({
      block,
      width: max(widths),
      depth: max(SEARCH_SPACE.depths),
      kernel: max(SEARCH_SPACE.kernels),
      format: 'fp32',
      prune: 0,
    })),
    head: { format: 'fp32' },
  }));
}

export interface SupernetTrainOptions {
  set: ImageSet;
  indices: Uint32Array;
  epochs: number;
  batchSize: number;
  /** Batches each sampled path trains on before the next is drawn. */
  pathBatches: number;
  learningRate: number;
  seed: number;
  signal?: AbortSignal;
  /** After every path: epoch (0-based), batches done in it, of how many, the path's mean loss. */
  onPath?: (epoch: number, batch: number, batches: number, loss: number) => void;
  /** After every whole epoch (the caller checkpoints). */
  onEpoch?: (epochsDone: number) => Promise<void> | void;
}

/** A candidate's few batches of training from its slices before it is scored (Supernet.adaptedSubnet). */
export interface AdaptOptions {
  set: ImageSet;
  indices: Uint32Array;
  batchSize: number;
  /** Batches trained (the same first batches of one shuffled order for every candidate); 0: none. */
  batches: number;
  learningRate: number;
  seed: number;
  /** Start Adam afresh instead of from the supernet's moments: an architecture trained alone for long
   * (a finalist's epoch) rather than a few batches. A resumed search's supernet has none to give either. */
  freshOptimizer?: boolean;
}

export class Supernet {
  readonly options: ArchModelOptions;
  readonly shared: Map<string, Shared>;
  /** Whole epochs trained. */
  epochsDone = 0;
  /** Adam's first and second moments of each shared weight (zeros until trained), and its steps taken. */
  readonly #moments = new Map<string, { m: Shared; v: Shared }>();
  #adamSteps = 0;

  /** Adam steps taken over all paths since this supernet was created or loaded. */
  get adamSteps(): number {
    return this.#adamSteps;
  }

  private constructor(options: ArchModelOptions, shared: Map<string, Shared>) {
    this.options = options;
    this.shared = shared;
  }

  /** A new supernet, its shared weights the largest models' seeded initial weights. */
  static create(options: ArchModelOptions): Supernet {
    const shared = new Map<string, Shared>();
    for (const arch of largestArchs()) {
      const model = buildArchModel(arch, options);
      for (const w of model.weights) {
        const known = shared.get(w.originalName);
        const size = w.shape.reduce((p: number, d) => p * d!, 1);
        if (known === undefined || known.values.length < size)
          shared.set(w.originalName, {
            shape: w.shape as number[],
            values: new Float32Array(w.read().dataSync()),
          });
      }
      model.dispose();
    }
    return new Supernet(options, shared);
  }

  /** The model of `arch` with its slices of the shared weights (formats not applied). */
  model(arch: ArchSpec): tf.LayersModel {
    const model = buildArchModel(arch, this.options);
    for (const w of model.weights) {
      const big = this.#sharedOf(w.originalName);
      const values = new Float32Array(w.shape.reduce((p: number, d) => p * d!, 1));
      copyBox(big, values, w.shape as number[], false);
      const t = tf.tensor(values, w.shape as number[], 'float32');
      w.write(t);
      t.dispose();
    }
    return model;
  }

  /** Writes `model`'s weights back into their slices. */
  store(model: tf.LayersModel): void {
    for (const w of model.weights)
      copyBox(this.#sharedOf(w.originalName), w.read().dataSync() as Float32Array, w.shape as number[], true);
  }

  #momentsOf(name: string): { m: Shared; v: Shared } {
    let moments = this.#moments.get(name);
    if (moments === undefined) {
      const { shape, values } = this.#sharedOf(name);
      moments = {
        m: { shape, values: new Float32Array(values.length) },
        v: { shape, values: new Float32Array(values.length) },
      };
      this.#moments.set(name, moments);
    }
    return moments;
  }

  /** Gives `optimizer` (fresh, of `model`) the slices of the shared moments of the model's trainable weights
   * and the shared step count (Adam's state is by position: the trainable weights' order). */
  async #loadMoments(model: tf.LayersModel, optimizer: tf.Optimizer): Promise<void> {
    const trainable = model.trainableWeights;
    const slices = (which: 'm' | 'v'): { name: string; tensor: tf.Tensor }[] =>
      trainable.map((w) => {
        const values = new Float32Array(w.shape.reduce((p: number, d) => p * d!, 1));
        copyBox(this.#momentsOf(w.originalName)[which], values, w.shape as number[], false);
        return { name: `${w.name}/${which}`, tensor: tf.tensor(values, w.shape as number[], 'float32') };
      });
    const state = [
      { name: 'iter', tensor: tf.scalar(this.#adamSteps, 'int32') },
      ...slices('m'),
      ...slices('v'),
    ];
    await optimizer.setWeights(state);
    tf.dispose(state.map((s) => s.tensor));
  }

  /** Writes `optimizer`'s moments back into the shared slices (nothing when it took no step). */
  async #storeMoments(model: tf.LayersModel, optimizer: tf.Optimizer): Promise<void> {
    const [iterations, ...rest] = await optimizer.getWeights();
    const trainable = model.trainableWeights;
    if (rest.length === 2 * trainable.length) {
      this.#adamSteps = (await iterations!.tensor.data())[0]!;
      trainable.forEach((w, i) => {
        const moments = this.#momentsOf(w.originalName);
        for (const [which, at] of [['m', i] as const, ['v', trainable.length + i] as const])
          copyBox(moments[which], rest[at]!.tensor.dataSync() as Float32Array, w.shape as number[], true);
      });
    }
    tf.dispose([iterations, ...rest].map((s) => s!.tensor));
  }

  #sharedOf(name: string): Shared {
    const big = this.shared.get(name);
    if (big === undefined) throw new RangeError(`the supernet has no weight ${name}`);
    return big;
  }

  /** Trains the shared weights from epoch `epochsDone` to `options.epochs` (see the header). Returns early,
   * the interrupted path's training kept, when the signal aborts. */
  async train(options: SupernetTrainOptions): Promise<{ interrupted: boolean }> {
    const stream = new BatchStream(options.set, options.indices, {
      batchSize: options.batchSize,
      shuffle: true,
      seed: options.seed,
    });
    const batches = stream.batchesPerEpoch();
    for (let epoch = this.epochsDone; epoch < options.epochs; epoch++) {
      const rng = new SeededRandom(options.seed * 7919 + epoch);
      const sandwich: ArchSpec[] = [];
      const nextPath = (): ArchSpec => {
        if (sandwich.length === 0) {
          const draw = floatArch(sampleArch(rng));
          sandwich.push(draw, extremeArch(draw, 'largest'), extremeArch(draw, 'smallest'));
        }
        return sandwich.shift()!;
      };
      let model: tf.LayersModel | undefined;
      let optimizer: tf.Optimizer | undefined;
      let done = 0;
      let losses: number[] = [];
      const finish = async (): Promise<void> => {
        if (model === undefined) return;
        await this.#storeMoments(model, optimizer!);
        optimizer!.dispose();
        this.store(model);
        model.dispose();
        model = undefined;
        options.onPath?.(epoch, done, batches, losses.reduce((a, b) => a + b, 0) / losses.length);
        losses = [];
      };
      for (const batch of stream.epoch(epoch)) {
        if (options.signal?.aborted === true) {
          await finish();
          return { interrupted: true };
        }
        if (model === undefined) {
          model = this.model(nextPath());
          optimizer = createAdam(options.learningRate, defaultAdam());
          model.compile({ optimizer, loss: 'categoricalCrossentropy' });
          await this.#loadMoments(model, optimizer);
        }
        losses.push(await this.#trainStep(model, batch));
        done++;
        if (done % options.pathBatches === 0) await finish();
        await new Promise((resolve) => setImmediate(resolve));
      }
      await finish();
      this.epochsDone = epoch + 1;
      await options.onEpoch?.(this.epochsDone);
    }
    return { interrupted: false };
  }

  /** One batch of training of `model` (compiled); its loss. */
  async #trainStep(model: tf.LayersModel, batch: Batch): Promise<number> {
    const [h, w, c] = this.options.inputShape;
    const x = tf.tensor4d(batch.x, [batch.size, h, w, c]);
    const y = tf.oneHot(tf.tensor1d(batch.labels, 'int32'), this.options.classes);
    const loss = await model.trainOnBatch(x, y);
    tf.dispose([x, y]);
    return Array.isArray(loss) ? loss[0]! : loss;
  }

  /** `subnet(arch)` after `adapt.batches` batches of training from its slices, with the supernet's Adam state
   * (a few-shot proxy: the shared weights of a stage fit the block types and widths they trained with, and a
   * path drawn rarely scores near chance as it is; a few steps adapt it). The supernet is not changed. */
  async adaptedSubnet(
    arch: ArchSpec,
    calibration: Float32Array,
    adapt: AdaptOptions | undefined,
  ): Promise<tf.LayersModel> {
    if (adapt === undefined || adapt.batches === 0) return this.subnet(arch, calibration);
    const model = this.model(arch);
    const optimizer = createAdam(adapt.learningRate, defaultAdam());
    model.compile({ optimizer, loss: 'categoricalCrossentropy' });
    if (adapt.freshOptimizer !== true) await this.#loadMoments(model, optimizer);
    const stream = new BatchStream(adapt.set, adapt.indices, {
      batchSize: adapt.batchSize,
      shuffle: true,
      seed: adapt.seed,
    });
    let done = 0;
    for (const batch of stream.epoch(0)) {
      if (done++ === adapt.batches) break;
      await this.#trainStep(model, batch);
    }
    optimizer.dispose();
    projectArchWeights(model, archLayers(arch, model));
    recalibrateBatchNorm(model, calibration);
    return model;
  }

  /** The model of `arch` evaluated as its package will run: slices, formats applied, batch norms
   * recalibrated on `calibration` ([n][h][w][c] images as the model takes them). The caller disposes it. */
  subnet(arch: ArchSpec, calibration: Float32Array): tf.LayersModel {
    const model = this.model(arch);
    projectArchWeights(model, archLayers(arch, model));
    recalibrateBatchNorm(model, calibration);
    return model;
  }

  /** Writes the shared weights and their names, shapes and settings to `dir` (atomically). */
  save(dir: string): void {
    const names = [...this.shared.keys()];
    const total = names.reduce((n, k) => n + this.shared.get(k)!.values.length, 0);
    const all = new Float32Array(total);
    let at = 0;
    for (const k of names) {
      all.set(this.shared.get(k)!.values, at);
      at += this.shared.get(k)!.values.length;
    }
    writeAtomic(join(dir, SUPERNET_WEIGHTS), new Uint8Array(all.buffer));
    writeAtomic(
      join(dir, SUPERNET_FILE),
      JSON.stringify({
        version: SUPERNET_VERSION,
        options: this.options,
        epochsDone: this.epochsDone,
        weights: names.map((name) => ({ name, shape: this.shared.get(name)!.shape })),
      }),
    );
  }

  /** The supernet saved in `dir` by save(); refuses (NasCheckpointError) a missing, malformed or truncated
   * checkpoint, another version, or one for other inputs, classes or search space. */
  static load(dir: string, expect: ArchModelOptions): Supernet {
    const file = join(dir, SUPERNET_FILE);
    const fail = (why: string): never => {
      throw new NasCheckpointError(`${file}: ${why}; delete ${dir} to start the search afresh`);
    };
    let meta: {
      version?: unknown;
      options?: ArchModelOptions;
      epochsDone?: unknown;
      weights?: { name: string; shape: number[] }[];
    };
    let bytes: Buffer;
    try {
      meta = JSON.parse(readFileSync(file, 'utf8')) as typeof meta;
      bytes = readFileSync(join(dir, SUPERNET_WEIGHTS));
    } catch (error) {
      return fail(`unreadable supernet checkpoint (${(error as Error).message})`);
    }
    if (meta.version !== SUPERNET_VERSION)
      fail(`supernet checkpoint version ${String(meta.version)}, this build reads ${SUPERNET_VERSION}`);
    if (JSON.stringify(meta.options) !== JSON.stringify(expect))
      fail(`the checkpoint is for ${JSON.stringify(meta.options)}, not ${JSON.stringify(expect)}`);
    if (!Number.isInteger(meta.epochsDone) || !Array.isArray(meta.weights)) fail('malformed checkpoint');
    const fresh = Supernet.create(expect);
    const shared = new Map<string, Shared>();
    let at = 0;
    for (const { name, shape } of meta.weights!) {
      const want = fresh.shared.get(name);
      if (want === undefined || JSON.stringify(want.shape) !== JSON.stringify(shape))
        fail(`weight ${name} [${String(shape)}] is not in this search space`);
      const n = want!.values.length;
      if ((at + n) * 4 > bytes.length) fail(`${SUPERNET_WEIGHTS} is truncated`);
      shared.set(name, {
        shape,
        values: new Float32Array(
          bytes.buffer.slice(bytes.byteOffset + at * 4, bytes.byteOffset + (at + n) * 4),
        ),
      });
      at += n;
    }
    if (at * 4 !== bytes.length || shared.size !== fresh.shared.size)
      fail(`${SUPERNET_WEIGHTS} holds ${bytes.length} bytes, not the ${at * 4} its weights take`);
    const net = new Supernet(expect, shared);
    net.epochsDone = meta.epochsDone as number;
    return net;
  }
}

/** Sets every batch norm's moving mean and variance to the statistics of its input over `images` (all at
 * once, the network in training mode: each batch norm normalizes with the batch's own statistics, as the
 * recalibrated network will on average). */
export function recalibrateBatchNorm(model: tf.LayersModel, images: Float32Array): void {
  const norms = model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
  if (norms.length === 0) return;
  const [h, w, c] = model.inputs[0]!.shape.slice(1) as number[];
  tf.tidy(() => {
    const probe = tf.model({
      inputs: model.inputs,
      outputs: norms.map((l) => l.input as tf.SymbolicTensor),
    });
    const x = tf.tensor4d(images, [images.length / (h! * w! * c!), h!, w!, c!]);
    // A model of one output applies to a tensor, not a list (an all-fire architecture has one batch norm).
    const applied = probe.apply(x, { training: true }) as tf.Tensor | tf.Tensor[];
    const inputs = Array.isArray(applied) ? applied : [applied];
    norms.forEach((layer, k) => {
      const { mean, variance } = tf.moments(inputs[k]!, [0, 1, 2]);
      for (const v of layer.weights) {
        if (v.originalName.endsWith('/moving_mean')) v.write(mean);
        else if (v.originalName.endsWith('/moving_variance')) v.write(variance);
      }
    });
  });
}

/** Top-1 accuracy of `model` on `count` images ([n][h][w][c]) with their labels, `batch` at a time. */
export function modelAccuracy(
  model: tf.LayersModel,
  images: Float32Array,
  labels: Uint8Array,
  batch = 250,
): number {
  const [h, w, c] = model.inputs[0]!.shape.slice(1) as number[];
  const per = h! * w! * c!;
  let correct = 0;
  for (let start = 0; start < labels.length; start += batch) {
    const n = Math.min(batch, labels.length - start);
    const predicted = tf.tidy(() => {
      const x = tf.tensor4d(images.subarray(start * per, (start + n) * per), [n, h!, w!, c!]);
      return (model.predict(x) as tf.Tensor).argMax(-1).dataSync();
    });
    for (let i = 0; i < n; i++) if (predicted[i] === labels[start + i]) correct++;
  }
  return correct / labels.length;
}
