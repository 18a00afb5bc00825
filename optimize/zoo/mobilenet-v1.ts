// MobileNet-v1-style (Howard et al. 2017): a 3x3 conv, then depthwise-separable blocks (3x3 depthwise +
// batch norm + ReLU6, 1x1 pointwise + batch norm + ReLU6), global average pooling and a classifier.
// The width multiplier alpha scales every block's channels. Small inputs (< 64 px) skip the stem's stride
// and one downsampling so that 28x28 keeps a 4x4 map at the end.
import * as tf from '@tensorflow/tfjs';

import { batchNormAct, convNoBias, separableBlock } from './blocks.js';
import { checkOptions, Initializers, scaledWidth, type ZooModelOptions } from './model-options.js';

/** [pointwise filters, depthwise stride] of each separable block, as in the paper up to 512 channels. */
const BLOCKS: readonly (readonly [number, number])[] = [
  [64, 1],
  [128, 2],
  [128, 1],
  [256, 2],
  [256, 1],
  [512, 2],
  [512, 1],
  [512, 1],
  [1024, 2],
  [1024, 1],
];

/** The small-input variant keeps the first 8 blocks. */
const SMALL_INPUT_BLOCKS = 8;

export function mobilenetV1(options: ZooModelOptions): tf.LayersModel {
  checkOptions('mobilenet-v1', options, 16);
  const alpha = options.widthMultiplier ?? 1;
  const init = new Initializers(options.seed);
  const small = Math.min(options.height, options.width) < 64;
  const channels = (n: number): number => scaledWidth(options, n, 8);
  const input = tf.input({ shape: [options.height, options.width, options.channels] });
  let x = convNoBias(input, { filters: channels(32), kernel: 3, stride: small ? 1 : 2, init });
  x = batchNormAct(x, 'relu6');
  const blocks = small ? BLOCKS.slice(0, SMALL_INPUT_BLOCKS) : BLOCKS;
  for (const [filters, stride] of blocks)
    x = separableBlock(x, { filters: channels(filters), kernel: 3, stride, init });
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dropout({ rate: 0.2, seed: options.seed ?? 1 }).apply(x) as tf.SymbolicTensor;
  const output = tf.layers
    .dense({ units: options.classes, activation: 'softmax', kernelInitializer: init.dense() })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: `mobilenet_v1_${alpha}` });
}
