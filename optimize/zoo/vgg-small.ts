// A small VGG (Simonyan & Zisserman's pattern at Fashion-MNIST scale): two blocks of two 3x3 convs
// (32 then 64 filters) each followed by 2x2 max pooling, then 256 -> dropout 0.5 -> classes; a width
// multiplier scales the filters and the 256 units.
import * as tf from '@tensorflow/tfjs';

import { checkOptions, Initializers, scaledWidth, type ZooModelOptions } from './model-options.js';

export function vggSmall(options: ZooModelOptions): tf.LayersModel {
  checkOptions('vgg-small', options, 8);
  const init = new Initializers(options.seed);
  const conv = (filters: number, first = false): tf.layers.Layer =>
    tf.layers.conv2d({
      ...(first ? { inputShape: [options.height, options.width, options.channels] } : {}),
      filters: scaledWidth(options, filters),
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init.kernel(),
    });
  return tf.sequential({
    name: 'vgg_small',
    layers: [
      conv(32, true),
      conv(32),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      conv(64),
      conv(64),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({
        units: scaledWidth(options, 256),
        activation: 'relu',
        kernelInitializer: init.kernel(),
      }),
      tf.layers.dropout({ rate: 0.5, seed: options.seed ?? 1 }),
      tf.layers.dense({ units: options.classes, activation: 'softmax', kernelInitializer: init.dense() }),
    ],
  });
}
