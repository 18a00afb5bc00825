// LeCun et al.'s LeNets in their modern form (ReLU, max pooling, softmax):
//   LeNet-300-100: flatten -> 300 -> 100 -> classes, fully connected.
//   LeNet-5:       conv 6@5x5 (same) -> pool 2 -> conv 16@5x5 -> pool 2 -> 120 -> 84 -> classes.
// A width multiplier scales every hidden layer (the distillation students).
import * as tf from '@tensorflow/tfjs';

import { checkOptions, Initializers, scaledWidth, type ZooModelOptions } from './model-options.js';

export function lenet300100(options: ZooModelOptions): tf.LayersModel {
  checkOptions('lenet-300-100', options, 1);
  const init = new Initializers(options.seed);
  return tf.sequential({
    name: 'lenet_300_100',
    layers: [
      tf.layers.flatten({ inputShape: [options.height, options.width, options.channels] }),
      tf.layers.dense({
        units: scaledWidth(options, 300),
        activation: 'relu',
        kernelInitializer: init.kernel(),
      }),
      tf.layers.dense({
        units: scaledWidth(options, 100),
        activation: 'relu',
        kernelInitializer: init.kernel(),
      }),
      tf.layers.dense({ units: options.classes, activation: 'softmax', kernelInitializer: init.dense() }),
    ],
  });
}

export function lenet5(options: ZooModelOptions): tf.LayersModel {
  checkOptions('lenet5', options, 12);
  const init = new Initializers(options.seed);
  return tf.sequential({
    name: 'lenet5',
    layers: [
      tf.layers.conv2d({
        inputShape: [options.height, options.width, options.channels],
        filters: scaledWidth(options, 6),
        kernelSize: 5,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: init.kernel(),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({
        filters: scaledWidth(options, 16),
        kernelSize: 5,
        activation: 'relu',
        kernelInitializer: init.kernel(),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({
        units: scaledWidth(options, 120),
        activation: 'relu',
        kernelInitializer: init.kernel(),
      }),
      tf.layers.dense({
        units: scaledWidth(options, 84),
        activation: 'relu',
        kernelInitializer: init.kernel(),
      }),
      tf.layers.dense({ units: options.classes, activation: 'softmax', kernelInitializer: init.dense() }),
    ],
  });
}
