// ShuffleNet-style (ShuffleNet v2 units, Ma et al. 2018): each unit splits the channels in two, runs one
// half through 1x1 conv -> 3x3 depthwise -> 1x1 conv, concatenates it with the other half and shuffles the
// channels between the two groups; a downsampling unit runs both halves through strided branches instead.
// The split and the shuffle are small custom layers, registered for tfjs serialization so a saved model
// loads again.
import * as tf from '@tensorflow/tfjs';

import { checkOptions, Initializers, type ZooModelOptions } from './model-options.js';

type LayerArgs = ConstructorParameters<typeof tf.layers.Layer>[0];
type Shape = (number | null)[];

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0]! : inputs;
}

function singleShape(shape: Shape | Shape[]): Shape {
  return Array.isArray(shape[0]) ? shape[0] : (shape as Shape);
}

/** Interleaves the channels of `groups` groups: [g][c/g] -> [c/g][g] along the last axis. */
export class ChannelShuffle extends tf.layers.Layer {
  static readonly className = 'WhittleChannelShuffle';
  readonly groups: number;
  constructor(args: LayerArgs & { groups: number }) {
    super(args);
    this.groups = args.groups;
  }
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return singleShape(inputShape);
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      const [n, h, w, c] = x.shape as [number, number, number, number];
      return x
        .reshape([n, h, w, this.groups, c / this.groups])
        .transpose([0, 1, 2, 4, 3])
        .reshape([n, h, w, c]);
    });
  }
  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), groups: this.groups };
  }
}

/** One half of the channels: part 0 the first half, part 1 the second. */
export class ChannelSplit extends tf.layers.Layer {
  static readonly className = 'WhittleChannelSplit';
  readonly part: number;
  constructor(args: LayerArgs & { part: number }) {
    super(args);
    this.part = args.part;
  }
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = [...singleShape(inputShape)];
    const c = shape[shape.length - 1];
    shape[shape.length - 1] = c === null || c === undefined ? null : c / 2;
    return shape;
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      const half = x.shape[3]! / 2;
      return x.slice([0, 0, 0, this.part * half], [-1, -1, -1, half]);
    });
  }
  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), part: this.part };
  }
}

tf.serialization.registerClass(ChannelShuffle);
tf.serialization.registerClass(ChannelSplit);

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
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor =>
    layer.apply(x) as tf.SymbolicTensor;
  const conv1x1 = (x: tf.SymbolicTensor, filters: number, relu: boolean): tf.SymbolicTensor => {
    let y = apply(
      tf.layers.conv2d({ filters, kernelSize: 1, useBias: false, kernelInitializer: init.kernel() }),
      x,
    );
    y = apply(tf.layers.batchNormalization(), y);
    return relu ? apply(tf.layers.reLU(), y) : y;
  };
  const depthwise = (x: tf.SymbolicTensor, strides: number): tf.SymbolicTensor =>
    apply(
      tf.layers.batchNormalization(),
      apply(
        tf.layers.depthwiseConv2d({
          kernelSize: 3,
          strides,
          padding: 'same',
          useBias: false,
          depthwiseInitializer: init.kernel(),
        }),
        x,
      ),
    );
  const input = tf.input({ shape: [options.height, options.width, options.channels] });
  let x = apply(
    tf.layers.conv2d({
      filters: 24,
      kernelSize: 3,
      strides: small ? 1 : 2,
      padding: 'same',
      useBias: false,
      kernelInitializer: init.kernel(),
    }),
    input,
  );
  x = apply(tf.layers.reLU(), apply(tf.layers.batchNormalization(), x));
  if (!small) x = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), x);
  for (const [stageChannels, units] of STAGES) {
    const out = even(stageChannels);
    const half = out / 2;
    // Downsampling unit: both halves strided.
    const left = conv1x1(depthwise(x, 2), half, true);
    const right = conv1x1(depthwise(conv1x1(x, half, true), 2), half, true);
    x = apply(new ChannelShuffle({ groups: 2 }), apply(tf.layers.concatenate({ axis: -1 }), [left, right]));
    for (let u = 1; u < units; u++) {
      const keep = apply(new ChannelSplit({ part: 0 }), x);
      const branch = apply(new ChannelSplit({ part: 1 }), x);
      const y = conv1x1(depthwise(conv1x1(branch, half, true), 1), half, true);
      x = apply(new ChannelShuffle({ groups: 2 }), apply(tf.layers.concatenate({ axis: -1 }), [keep, y]));
    }
  }
  x = conv1x1(x, even(512), true);
  x = apply(tf.layers.globalAveragePooling2d({}), x);
  const output = apply(
    tf.layers.dense({ units: options.classes, activation: 'softmax', kernelInitializer: init.dense() }),
    x,
  );
  return tf.model({ inputs: input, outputs: output, name: 'shufflenet' });
}
