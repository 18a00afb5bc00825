// ShuffleNet-style (ShuffleNet v2 units, Ma et al. 2018): each unit splits the channels in two, runs one
// half through 1x1 conv -> 3x3 depthwise -> 1x1 conv, concatenates it with the other half and shuffles the
// channels between the two groups; a downsampling unit runs both halves through strided branches instead.
// The split and the shuffle are small custom layers, registered for tfjs serialization so a saved model
// loads again.
import * as tf from '@tensorflow/tfjs';

import { apply, batchNormAct, convNoBias, shuffleUnit } from './blocks.js';
import { checkOptions, Initializers, type ZooModelOptions } from './model-options.js';

export { ChannelShuffle, ChannelSplit } from './blocks.js';

/** Output channels of stages 2-4 (the paper's 0.5x) and units per stage. */
const STAGES: readonly (readonly [number, number])[] = [
  [48, 2],
  [96, 4],
  [192, 2],
];

export function shufflenet(options: ZooModelOptions): tf.LayersModel {
  checkOptions('shufflenet', options, 16);
  const alpha = options.widthMultiplier ?? 1;
  const init = new Initializers(options.seed);
  const small = Math.min(options.height, options.width) < 64;
  const even = (n: number): number => Math.max(8, 2 * Math.round((n * alpha) / 2));
  const conv1x1 = (x: tf.SymbolicTensor, filters: number): tf.SymbolicTensor =>
    batchNormAct(convNoBias(x, { filters, kernel: 1, stride: 1, init }), 'relu');
  const input = tf.input({ shape: [options.height, options.width, options.channels] });
  let x = batchNormAct(convNoBias(input, { filters: 24, kernel: 3, stride: small ? 1 : 2, init }), 'relu');
  if (!small) x = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), x);
  for (const [stageChannels, units] of STAGES)
    for (let u = 0; u < units; u++)
      x = shuffleUnit(x, { filters: even(stageChannels), kernel: 3, stride: u === 0 ? 2 : 1, init });
  x = conv1x1(x, even(512));
  x = apply(tf.layers.globalAveragePooling2d({}), x);
  const output = apply(
    tf.layers.dense({ units: options.classes, activation: 'softmax', kernelInitializer: init.dense() }),
    x,
  );
  return tf.model({ inputs: input, outputs: output, name: 'shufflenet' });
}
