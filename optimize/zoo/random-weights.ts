// Realistic random weights for a zoo (or any tfjs) model, seeded: what the import and quantization tests and
// `bench models` run when no trained weights are at hand.
import * as tf from '@tensorflow/tfjs';

/**
 * Replaces the batch-norm parameters (zero or one at initialization, which would hide a wrong fold) and the
 * biases with seeded random values. The moving mean and variance are each layer's actual statistics on a
 * random batch, perturbed: statistics unrelated to the activations would saturate a deep net's ReLU6s and
 * make its output the same for every input, a comparison that proves little.
 */
export function randomizeWeights(model: tf.LayersModel, seed: number): void {
  let s = seed;
  const calibration = model.inputs.map((input) =>
    tf.randomNormal([8, ...(input.shape.slice(1) as number[])], 0, 1, 'float32', s++),
  );
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const values = tf.tidy(() => {
      let moments: { mean: tf.Tensor; variance: tf.Tensor } | undefined;
      if (layer.getClassName() === 'BatchNormalization') {
        // The first call's input (a shared batch norm would have several).
        const input = Array.isArray(layer.input) ? layer.input[0]! : layer.input;
        const probe = tf.model({ inputs: model.inputs, outputs: input });
        const x = probe.predict(calibration) as tf.Tensor;
        moments = tf.moments(x, [...Array(x.rank - 1).keys()]);
      }
      return layer.weights.map((w) => {
        const shape = w.shape as number[];
        const name = w.originalName;
        if (name.endsWith('/gamma')) return tf.randomUniform(shape, 0.6, 1.4, 'float32', s++);
        if (name.endsWith('/beta')) return tf.randomNormal(shape, 0, 0.3, 'float32', s++);
        if (moments && name.endsWith('/moving_mean'))
          return moments.mean.add(
            tf.randomNormal(shape, 0, 0.2, 'float32', s++).mul(moments.variance.sqrt()),
          );
        if (moments && name.endsWith('/moving_variance'))
          return moments.variance.mul(tf.randomUniform(shape, 0.7, 1.3, 'float32', s++)).add(1e-3);
        if (name.endsWith('/bias')) return tf.randomNormal(shape, 0, 0.1, 'float32', s++);
        return w.read().clone();
      });
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
  tf.dispose(calibration);
}
