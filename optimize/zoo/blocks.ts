// The zoo's building blocks, shared by its models (mobilenet-v1.ts, squeezenet.ts, shufflenet.ts) and by the
// NAS search space (optimize/nas/space.ts): a plain conv, MobileNet's depthwise-separable block, SqueezeNet's
// fire module and ShuffleNet v2's unit. Each takes its kernel size and stride, draws its initializers in a
// fixed order from `init` (so a zoo model is the same model for the same seed), and, given a `name`, names
// its layers `${name}_${role}` (the NAS supernet shares weights by these names); without one, tfjs names them.
import * as tf from '@tensorflow/tfjs';

import type { Initializers } from './model-options.js';

export type Tensor = tf.SymbolicTensor;

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

export const apply = (layer: tf.layers.Layer, x: Tensor | Tensor[]): Tensor => layer.apply(x) as Tensor;

/** Layer names of a named block; nothing when unnamed. */
const named = (name: string | undefined, role: string): { name?: string } =>
  name === undefined ? {} : { name: `${name}_${role}` };

export interface BlockOptions {
  filters: number;
  kernel: number;
  stride: number;
  init: Initializers;
  name?: string;
}

/** Batch norm, then `activation` ('relu', 'relu6') or nothing. ReLU6 is an Activation layer rather than
 * ReLU({maxValue: 6}): the same function, but tfjs trains the ReLU layer through clipByValue, whose gradient
 * is five JavaScript kernels per activation, while the relu6 activation's forward kernels and gradients are
 * native on the whittle-native backend. */
export function batchNormAct(
  x: Tensor,
  activation: 'relu' | 'relu6' | null,
  name?: string,
  role = 'bn',
): Tensor {
  const y = apply(tf.layers.batchNormalization(named(name, role)), x);
  if (activation === null) return y;
  if (activation === 'relu') return apply(tf.layers.reLU(named(name, `${role}_relu`)), y);
  return apply(tf.layers.activation({ activation: 'relu6', ...named(name, `${role}_relu6`) }), y);
}

/** A conv without bias (a batch norm follows), 'same' padding. */
export function convNoBias(x: Tensor, o: BlockOptions, role = 'conv'): Tensor {
  return apply(
    tf.layers.conv2d({
      filters: o.filters,
      kernelSize: o.kernel,
      strides: o.stride,
      padding: 'same',
      useBias: false,
      kernelInitializer: o.init.kernel(),
      ...named(o.name, role),
    }),
    x,
  );
}

/** A depthwise conv without bias, 'same' padding, then a batch norm. */
export function depthwiseBn(x: Tensor, o: Omit<BlockOptions, 'filters'>, role = 'dw'): Tensor {
  const y = apply(
    tf.layers.depthwiseConv2d({
      kernelSize: o.kernel,
      strides: o.stride,
      padding: 'same',
      useBias: false,
      depthwiseInitializer: o.init.kernel(),
      ...named(o.name, role),
    }),
    x,
  );
  return apply(tf.layers.batchNormalization(named(o.name, `${role}_bn`)), y);
}

/** Plain conv block: conv k x k (stride) -> batch norm -> ReLU. */
export function convBlock(x: Tensor, o: BlockOptions): Tensor {
  return batchNormAct(convNoBias(x, o), 'relu', o.name);
}

/** MobileNet-v1's depthwise-separable block: k x k depthwise (stride) + batch norm + ReLU6, then 1x1
 * pointwise to `filters` + batch norm + ReLU6. */
export function separableBlock(x: Tensor, o: BlockOptions): Tensor {
  let y = apply(
    tf.layers.depthwiseConv2d({
      kernelSize: o.kernel,
      strides: o.stride,
      padding: 'same',
      useBias: false,
      depthwiseInitializer: o.init.kernel(),
      ...named(o.name, 'dw'),
    }),
    x,
  );
  y = batchNormAct(y, 'relu6', o.name, 'dw_bn');
  y = convNoBias(y, { ...o, kernel: 1, stride: 1 }, 'pw');
  return batchNormAct(y, 'relu6', o.name, 'pw_bn');
}

/** SqueezeNet's fire module: a 1x1 squeeze conv feeding parallel 1x1 and k x k expand convs (ReLU, with
 * bias), concatenated: 2 * expand channels. */
export function fireModule(
  x: Tensor,
  squeeze: number,
  expand: number,
  init: Initializers,
  options: { kernel?: number; name?: string } = {},
): Tensor {
  const conv = (input: Tensor, filters: number, kernel: number, role: string): Tensor =>
    apply(
      tf.layers.conv2d({
        filters,
        kernelSize: kernel,
        ...(kernel > 1 ? { padding: 'same' as const } : {}),
        activation: 'relu',
        kernelInitializer: init.kernel(),
        ...named(options.name, role),
      }),
      input,
    );
  const s = conv(x, squeeze, 1, 'squeeze');
  const e1 = conv(s, expand, 1, 'expand1');
  const e3 = conv(s, expand, options.kernel ?? 3, 'expand3');
  return apply(tf.layers.concatenate({ axis: -1, ...named(options.name, 'concat') }), [e1, e3]);
}

/** ShuffleNet v2's unit to `filters` (even) channels: stride 1 splits the channels in two and runs one half
 * through 1x1 conv -> k x k depthwise -> 1x1 conv; stride 2 runs both halves through strided branches
 * (the input's channels need not match). The halves are concatenated and their channels shuffled. */
export function shuffleUnit(x: Tensor, o: BlockOptions): Tensor {
  const half = o.filters / 2;
  const conv1x1 = (input: Tensor, role: string): Tensor =>
    batchNormAct(
      convNoBias(input, { ...o, filters: half, kernel: 1, stride: 1 }, role),
      'relu',
      o.name,
      `${role}_bn`,
    );
  const dw = (input: Tensor, role: string): Tensor => depthwiseBn(input, o, role);
  let y: Tensor;
  if (o.stride !== 1) {
    const left = conv1x1(dw(x, 'left_dw'), 'left_pw');
    const right = conv1x1(dw(conv1x1(x, 'right_pw1'), 'right_dw'), 'right_pw2');
    y = apply(tf.layers.concatenate({ axis: -1, ...named(o.name, 'concat') }), [left, right]);
  } else {
    const keep = apply(new ChannelSplit({ part: 0, ...named(o.name, 'keep') }), x);
    const branch = apply(new ChannelSplit({ part: 1, ...named(o.name, 'branch') }), x);
    const z = conv1x1(dw(conv1x1(branch, 'right_pw1'), 'right_dw'), 'right_pw2');
    y = apply(tf.layers.concatenate({ axis: -1, ...named(o.name, 'concat') }), [keep, z]);
  }
  return apply(new ChannelShuffle({ groups: 2, ...named(o.name, 'shuffle') }), y);
}
