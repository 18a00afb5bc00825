// MobileNet-v1-style (Howard et al. 2017): a 3x3 conv, then depthwise-separable blocks (3x3 depthwise +
// batch norm + ReLU6, 1x1 pointwise + batch norm + ReLU6), global average pooling and a classifier.
// The width multiplier alpha scales every block's channels. Small inputs (< 64 px) skip the stem's stride
// and one downsampling so that 28x28 keeps a 4x4 map at the end.
import * as tf from '@tensorflow/tfjs';

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
  // ReLU6 as an Activation layer rather than ReLU({maxValue: 6}): the same function, but tfjs trains the
  // ReLU layer through clipByValue, whose gradient is five JavaScript kernels (compare, compare, and,
  // select, zeros) per activation, while the relu6 activation is min(relu(x), 6), whose forward kernels and
  // gradients (one fused mask pass each) are native on the whittle-native backend.
  const bnRelu6 = (x: tf.SymbolicTensor): tf.SymbolicTensor =>
    tf.layers
      .activation({ activation: 'relu6' })
      .apply(tf.layers.batchNormalization().apply(x)) as tf.SymbolicTensor;
  let x = tf.layers
    .conv2d({
      filters: channels(32),
      kernelSize: 3,
      strides: small ? 1 : 2,
      padding: 'same',
      useBias: false,
      kernelInitializer: init.kernel(),
    })
    .apply(input) as tf.SymbolicTensor;
  x = bnRelu6(x);
  const blocks = small ? BLOCKS.slice(0, SMALL_INPUT_BLOCKS) : BLOCKS;
  for (const [filters, stride] of blocks) {
    x = tf.layers
      .depthwiseConv2d({
        kernelSize: 3,
        strides: stride,
        padding: 'same',
        useBias: false,
        depthwiseInitializer: init.kernel(),
      })
      .apply(x) as tf.SymbolicTensor;
    x = bnRelu6(x);
    x = tf.layers
      .conv2d({ filters: channels(filters), kernelSize: 1, useBias: false, kernelInitializer: init.kernel() })
      .apply(x) as tf.SymbolicTensor;
    x = bnRelu6(x);
  }
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dropout({ rate: 0.2, seed: options.seed ?? 1 }).apply(x) as tf.SymbolicTensor;
  const output = tf.layers
    .dense({ units: options.classes, activation: 'softmax', kernelInitializer: init.dense() })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: `mobilenet_v1_${alpha}` });
}
