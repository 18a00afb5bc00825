// Train/validation splits, per-epoch shuffling, augmentation and float32 batches drawn from an ImageSet's
// bytes. A split is a list of indices into the one copy of the bytes; a batch is converted when asked for.
import { SeededRandom } from '../seeded-random.js';
import { DatasetError, imageBytes, type ImageSet } from './image-set.js';

export interface Augmentation {
  /** Random crop: shift each image by up to this many pixels (zero fill), as padding + crop does. */
  cropPadding?: number;
  /** Mirror left-right with probability 1/2. */
  flip?: boolean;
}

export interface Batch {
  /** [size][height][width][channels] in [0, 1]. */
  x: Float32Array;
  /** [size] class indices. */
  labels: Uint8Array;
  size: number;
}

/** Splits [0, count) into a shuffled training part and the last `validationFraction` as validation. */
export function splitTrainValidation(
  count: number,
  validationFraction: number,
  seed: number,
): { train: Uint32Array; validation: Uint32Array } {
  if (!(validationFraction >= 0 && validationFraction < 1))
    throw new DatasetError(`validation fraction must be in [0, 1) but is ${validationFraction}`);
  const order = shuffled(identity(count), new SeededRandom(seed));
  const validationCount = Math.floor(count * validationFraction);
  return {
    train: order.subarray(0, count - validationCount),
    validation: order.subarray(count - validationCount),
  };
}

export function identity(count: number): Uint32Array {
  const indices = new Uint32Array(count);
  for (let i = 0; i < count; i++) indices[i] = i;
  return indices;
}

/** Fisher-Yates on a copy. */
export function shuffled(indices: Uint32Array, random: SeededRandom): Uint32Array {
  const out = indices.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

export interface BatchStreamOptions {
  batchSize: number;
  /** Shuffle the order every epoch (seeded by seed + epoch, so a resumed epoch sees the same order). */
  shuffle: boolean;
  seed: number;
  augmentation?: Augmentation;
}

/** Batches over a subset of an ImageSet. */
export class BatchStream {
  readonly set: ImageSet;
  readonly indices: Uint32Array;
  readonly options: BatchStreamOptions;

  constructor(set: ImageSet, indices: Uint32Array, options: BatchStreamOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1)
      throw new DatasetError(`batch size must be a positive integer but is ${options.batchSize}`);
    this.set = set;
    this.indices = indices;
    this.options = options;
  }

  get count(): number {
    return this.indices.length;
  }

  batchesPerEpoch(): number {
    return Math.ceil(this.indices.length / this.options.batchSize);
  }

  /** Batches of one epoch from batch `startBatch` on (for a resumed epoch). */
  *epoch(epoch: number, startBatch = 0): Generator<Batch> {
    const order = this.options.shuffle
      ? shuffled(this.indices, new SeededRandom(this.options.seed + 7919 * epoch))
      : this.indices;
    const random = new SeededRandom(this.options.seed * 31 + epoch);
    const { batchSize } = this.options;
    const per = imageBytes(this.set);
    for (let b = startBatch; b * batchSize < order.length; b++) {
      const chosen = order.subarray(b * batchSize, Math.min(order.length, (b + 1) * batchSize));
      const x = new Float32Array(chosen.length * per);
      const labels = new Uint8Array(chosen.length);
      chosen.forEach((index, i) => {
        labels[i] = this.set.labels[index]!;
        this.#writeImage(index, x, i * per, random);
      });
      yield { x, labels, size: chosen.length };
    }
  }

  #writeImage(index: number, out: Float32Array, offset: number, random: SeededRandom): void {
    const { height: h, width: w, channels: c, pixels } = this.set;
    const src = index * h * w * c;
    const aug = this.options.augmentation;
    const pad = aug?.cropPadding ?? 0;
    const dx = pad > 0 ? random.int(-pad, pad) : 0;
    const dy = pad > 0 ? random.int(-pad, pad) : 0;
    const flip = aug?.flip === true && random.next() < 0.5;
    if (dx === 0 && dy === 0 && !flip) {
      for (let i = 0; i < h * w * c; i++) out[offset + i] = pixels[src + i]! / 255;
      return;
    }
    for (let y = 0; y < h; y++) {
      const sy = y + dy;
      for (let x = 0; x < w; x++) {
        const sx = (flip ? w - 1 - x : x) + dx;
        const at = offset + (y * w + x) * c;
        if (sy < 0 || sy >= h || sx < 0 || sx >= w) {
          for (let k = 0; k < c; k++) out[at + k] = 0;
        } else {
          const from = src + (sy * w + sx) * c;
          for (let k = 0; k < c; k++) out[at + k] = pixels[from + k]! / 255;
        }
      }
    }
  }
}
