// What every zoo model takes: the input size and channels (28x28 grey for Fashion-MNIST, larger colour
// frames from cameras) and the number of classes.
import * as tf from '@tensorflow/tfjs';

import { WhittleError } from '../../native/whittle-error.js';

export interface ZooModelOptions {
  /** Input height and width in pixels. */
  height: number;
  width: number;
  /** 1 for grey, 3 for colour. */
  channels: number;
  classes: number;
  /** Seed of the weight initializers, so a run can be repeated exactly. */
  seed?: number;
  /** The width multiplier (MobileNet's alpha): scales every hidden layer's channels or units; 1 by default.
   * A half-width model (0.5) is the usual student of a distillation. */
  widthMultiplier?: number;
}

/** `n` channels (or units) at the model's width multiplier, rounded, at least `min`. */
export function scaledWidth(options: ZooModelOptions, n: number, min = 1): number {
  return Math.max(min, Math.round(n * (options.widthMultiplier ?? 1)));
}

/** A zoo model was asked for with options it cannot take. */
export class ZooOptionsError extends WhittleError {
  override readonly name = 'ZooOptionsError';
  readonly code = 'bad-zoo-options';
}

export function checkOptions(name: string, options: ZooModelOptions, minSize: number): void {
  const { height, width, channels, classes } = options;
  for (const [key, value] of Object.entries({ height, width, channels, classes })) {
    if (!Number.isInteger(value) || value < 1)
      throw new ZooOptionsError(`${name}: expected a positive integer for ${key} but received ${value}`);
  }
  if (height < minSize || width < minSize)
    throw new ZooOptionsError(
      `${name}: input must be at least ${minSize}x${minSize} but is ${height}x${width}`,
    );
  if (classes < 2) throw new ZooOptionsError(`${name}: expected at least 2 classes but received ${classes}`);
  const alpha = options.widthMultiplier;
  if (alpha !== undefined && !(alpha > 0 && alpha <= 4))
    throw new ZooOptionsError(`${name}: expected a width multiplier in (0, 4] but received ${alpha}`);
}

/** Deterministic initializers: each call gets the next seed. */
export class Initializers {
  #seed: number;
  constructor(seed = 1) {
    this.#seed = seed;
  }
  kernel(): ReturnType<typeof tf.initializers.heNormal> {
    return tf.initializers.heNormal({ seed: this.#seed++ });
  }
  dense(): ReturnType<typeof tf.initializers.heNormal> {
    return tf.initializers.glorotUniform({ seed: this.#seed++ });
  }
}
