// SqueezeNet-style (Iandola et al. 2016): fire modules (a 1x1 squeeze conv feeding parallel 1x1 and 3x3
// expand convs, concatenated), max pooling between groups, a 1x1 conv to the classes and global average
// pooling instead of fully-connected layers.
import * as tf from '@tensorflow/tfjs';

import { fireModule } from './blocks.js';
import { checkOptions, Initializers, type ZooModelOptions } from './model-options.js';

export function squeezenet(options: ZooModelOptions): tf.LayersModel {
  checkOptions('squeezenet', options, 16);
  const init = new Initializers(options.seed);
  const small = Math.min(options.height, options.width) < 64;
  const input = tf.input({ shape: [options.height, options.width, options.channels] });
  let x = tf.layers
    .conv2d({
      filters: 64,
      kernelSize: 3,
      strides: small ? 1 : 2,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init.kernel(),
    })
    .apply(input) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2 }).apply(x) as tf.SymbolicTensor;
  x = fireModule(x, 16, 64, init);
  x = fireModule(x, 16, 64, init);
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2 }).apply(x) as tf.SymbolicTensor;
  x = fireModule(x, 32, 128, init);
  x = fireModule(x, 32, 128, init);
  if (!small) x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2 }).apply(x) as tf.SymbolicTensor;
  x = fireModule(x, 48, 192, init);
  x = fireModule(x, 64, 256, init);
  x = tf.layers.dropout({ rate: 0.5, seed: options.seed ?? 1 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .conv2d({ filters: options.classes, kernelSize: 1, activation: 'relu', kernelInitializer: init.kernel() })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const output = tf.layers.activation({ activation: 'softmax' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'squeezenet' });
}
