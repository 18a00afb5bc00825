// XNOR-Net (Rastegari et al. 2016) as the runtime runs it, and the model rewrite that trains it.
//
// What the runtime computes for an xnor conv / FC node (native/formats.md, agent/runtime native-executors
// xnorArgs): y = clamp(alpha[o] * sum(sign(x) * sign(w)) + bias[o]), sign(v) = -1 for v < 0 else +1 (so
// +0, -0 and NaN are +1), padding 0 (it contributes nothing), alpha[o] = mean |w| of the output channel,
// and no input-scaling plane K (inputScaling false: the batch norm before each binarization and the next
// layer's alpha absorb the scale). The training model computes exactly that: a BinaryActivation layer
// (sign(x), straight-through gradient 1 for |x| <= 1, 0 outside) in front of the layer, and the layer's
// kernel trained through BINARY_QUANTIZER (ste.ts), so its forward pass is on alpha * sign(w).
//
// The block order: a sign after a ReLU is always +1, so the layer that feeds a binary layer loses its
// activation and gets a batch norm right after it (BN -> [pool] -> sign -> binary layer: the paper's
// BN -> BinActiv -> BinConv -> Pool with the pool moved before the sign, which commutes with it since
// max pooling and sign are both monotone). That batch norm directly follows a conv / dense layer, so the
// importer folds it into that layer's weights and bias (a per-row rescale: still binary weights for an
// xnor layer), and the package needs no batch_norm node. In the package the BinaryActivation layer is no
// node: the xnor layer that reads it binarizes its input itself (encode.ts checks that every one is read
// by an xnor layer).
import * as tf from '@tensorflow/tfjs';

import { PipelineError } from './pipeline.js';

type LayerArgs = ConstructorParameters<typeof tf.layers.Layer>[0];
type Shape = (number | null)[];

export const BINARY_ACTIVATION_CLASS = 'WhittleBinaryActivation';

/** sign(x) as the xnor kernels binarize (x < 0 -> -1, else +1, so -0 -> +1); gradient 1 for |x| <= 1 (hard
 * tanh's). Written with Step (step(v, alpha) = 1 for v > 0, else alpha; NaN stays NaN), Neg, Abs and
 * same-shape or scalar arithmetic, which the whittle-native training backend runs natively: Less / LessEqual /
 * Where against a scalar take the cpu backend's per-element broadcast path, and were most of an XNOR
 * training step (small VGG: ~10 of 14 s per 1,280 images). */
export function binarize(x: tf.Tensor): tf.Tensor {
  return tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([input]);
    return {
      // -step(-x, -1): -x > 0 (x < 0) gives -1; -x <= 0 (x >= 0, -0 included) gives +1.
      value: tf.tidy(() => tf.neg(tf.step(tf.neg(input), -1))),
      // 1 - step(|x| - 1): 1 where |x| <= 1, else 0.
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => tf.mul(dy, tf.sub(1, tf.step(tf.sub(tf.abs(saved[0]!), 1))))),
    };
  })(x);
}

/** XNOR-Net's binary activation (see the header). */
export class BinaryActivation extends tf.layers.Layer {
  static readonly className = BINARY_ACTIVATION_CLASS;
  constructor(args: LayerArgs = {}) {
    super(args);
  }
  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return binarize(Array.isArray(inputs) ? inputs[0]! : inputs);
  }
}
tf.serialization.registerClass(BinaryActivation);

/** Layers that may sit between a binary layer and the conv / dense layer that feeds it. */
const PASSIVE_LAYERS = ['MaxPooling2D', 'Flatten', 'Dropout', 'BatchNormalization'];
const WEIGHT_LAYERS = ['Conv2D', 'Dense'];

interface LayerSpec {
  className: string;
  config: tf.serialization.ConfigDict;
  /** The trained layer whose weights it takes. */
  from?: tf.layers.Layer;
}

/** The sequential `model` rewritten for XNOR-Net training with `binary` (layer names) as binary layers:
 * each gets a BinaryActivation in front of it, and the conv / dense layer that feeds it a linear
 * activation and a batch norm after it (unless one follows it already). The trained weights are carried
 * over; each new batch norm starts with gamma 1, beta 0 and its moving statistics measured on `images`
 * (a batch of training inputs, NHWC), so that from the first batch its inference form (what validation
 * and the package's folded weights use) normalizes, rather than waiting ~1 / (1 - momentum) batches for
 * its moving averages to leave their 0 / 1 start. */
export function xnorModel(
  model: tf.LayersModel,
  binary: ReadonlySet<string>,
  images: tf.Tensor4D,
): tf.LayersModel {
  if (!(model instanceof tf.Sequential))
    throw new PipelineError(
      `xnor: ${model.name} is not a sequential model; the XNOR-Net rewrite (a batch norm and a binary ` +
        'activation before each binary layer) takes the sequential zoo models (lenet5, vgg-small, ...)',
    );
  const layers = model.layers;
  const specs: LayerSpec[] = layers.map((l) => ({
    className: l.getClassName(),
    config: { ...l.getConfig() },
    from: l,
  }));
  const batchNormAfter = new Set<number>();
  const signBefore = new Set<number>();
  layers.forEach((l, i) => {
    if (!binary.has(l.name)) return;
    signBefore.add(i);
    let j = i - 1;
    while (j >= 0 && PASSIVE_LAYERS.includes(layers[j]!.getClassName())) j--;
    if (j < 0 || !WEIGHT_LAYERS.includes(layers[j]!.getClassName())) return;
    specs[j]!.config.activation = 'linear';
    if (layers[j + 1]?.getClassName() !== 'BatchNormalization') batchNormAfter.add(j);
  });
  const out: LayerSpec[] = [];
  specs.forEach((spec, i) => {
    if (signBefore.has(i))
      out.push({
        className: BINARY_ACTIVATION_CLASS,
        config: { name: `${spec.config.name as string}_sign` },
      });
    out.push(spec);
    if (batchNormAfter.has(i))
      out.push({
        className: 'BatchNormalization',
        config: { name: `${spec.config.name as string}_bn`, axis: -1 },
      });
  });
  const inputShape = model.inputs[0]!.shape.slice(1) as number[];
  const rewritten = tf.sequential({ name: model.name });
  out.forEach((spec, k) => {
    const config = k === 0 ? { ...spec.config, batchInputShape: [null, ...inputShape] } : spec.config;
    const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap[spec.className]!;
    const layer = fromConfig(cls, config) as tf.layers.Layer;
    rewritten.add(layer);
    if (spec.from) layer.setWeights(spec.from.getWeights());
  });
  // In order: each batch norm's statistics are those of its input with the ones before it in place.
  for (const layer of rewritten.layers) {
    const spec = out.find((o) => o.config.name === layer.name)!;
    if (spec.className !== 'BatchNormalization' || spec.from !== undefined) continue;
    const upTo = tf.model({ inputs: rewritten.inputs, outputs: layer.input });
    const [mean, variance] = tf.tidy(() => {
      const x = upTo.predict(images) as tf.Tensor;
      const { mean, variance } = tf.moments(x, [...Array(x.rank - 1).keys()]);
      return [mean, variance];
    });
    const [gamma, beta] = [tf.onesLike(mean), tf.zerosLike(mean)];
    layer.setWeights([gamma, beta, mean, variance]);
    tf.dispose([gamma, beta, mean, variance]);
  }
  return rewritten;
}
