// The model zoo, trainable by name: each builder takes the input size, channels and classes.
import type * as tf from '@tensorflow/tfjs';

import { lenet5, lenet300100 } from './lenet.js';
import { mobilenetV1 } from './mobilenet-v1.js';
import { type ZooModelOptions, ZooOptionsError } from './model-options.js';
import { shufflenet } from './shufflenet.js';
import { squeezenet } from './squeezenet.js';
import { vggSmall } from './vgg-small.js';

export { type ZooModelOptions, ZooOptionsError } from './model-options.js';

export const ZOO = {
  'lenet-300-100': lenet300100,
  lenet5,
  'vgg-small': vggSmall,
  mobilenet: mobilenetV1,
  squeezenet,
  shufflenet,
} as const satisfies Record<string, (options: ZooModelOptions) => tf.LayersModel>;

export type ZooModelName = keyof typeof ZOO;

export const ZOO_MODEL_NAMES = Object.keys(ZOO) as ZooModelName[];

/** Other spellings users type. */
const ALIASES: Record<string, ZooModelName> = {
  lenet300100: 'lenet-300-100',
  'lenet-5': 'lenet5',
  vgg: 'vgg-small',
  vggsmall: 'vgg-small',
  'mobilenet-v1': 'mobilenet',
  mobilenetv1: 'mobilenet',
};

export function isZooModelName(name: string): name is ZooModelName {
  return Object.hasOwn(ZOO, name);
}

/** Builds a zoo model by name (or alias). Throws ZooOptionsError for an unknown name or bad options. */
export function buildZooModel(name: string, options: ZooModelOptions): tf.LayersModel {
  const key = isZooModelName(name) ? name : ALIASES[name.toLowerCase()];
  if (key === undefined)
    throw new ZooOptionsError(`unknown model "${name}"; the zoo has ${ZOO_MODEL_NAMES.join(', ')}`);
  return ZOO[key](options);
}
