// A zoo model with random weights gives nearly every Fashion-MNIST image the same class (its random last
// layer's biases outweigh the small differences between the images' features), and a quantized copy that
// agrees with it proves nothing. Training the whole net in a test takes minutes on tfjs's CPU backend, so
// only the classifier is fitted: random convolutional features, a least-squares linear readout on a few
// hundred training images (an "extreme learning machine"). The model then tells the classes apart the way a
// trained one does (well above chance, every class predicted), in about a second.
import * as tf from '@tensorflow/tfjs';

/** Solves (A + lambda I) x = b in place for symmetric positive definite A ([n][n], row major) by Cholesky,
 * for each of the `columns` right-hand sides in b ([n][columns]). */
function solveRidge(a: Float64Array, b: Float64Array, n: number, columns: number, lambda: number): void {
  for (let i = 0; i < n; i++) a[i * n + i]! += lambda;
  // A = L L^T, L stored in the lower triangle of a.
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j]!;
    for (let k = 0; k < j; k++) d -= a[j * n + k]! ** 2;
    const l = Math.sqrt(d);
    a[j * n + j] = l;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= a[i * n + k]! * a[j * n + k]!;
      a[i * n + j] = s / l;
    }
  }
  for (let c = 0; c < columns; c++) {
    for (let i = 0; i < n; i++) {
      let s = b[i * columns + c]!;
      for (let k = 0; k < i; k++) s -= a[i * n + k]! * b[k * columns + c]!;
      b[i * columns + c] = s / a[i * n + i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = b[i * columns + c]!;
      for (let k = i + 1; k < n; k++) s -= a[k * n + i]! * b[k * columns + c]!;
      b[i * columns + c] = s / a[i * n + i]!;
    }
  }
}

/**
 * Fits the weights of `net`'s last layer (a dense layer, or SqueezeNet's 1x1 conv to the classes ahead of
 * its global average pool) by ridge regression of one-hot labels on that layer's input features.
 * `images` are [count][h][w][c] as the model takes them.
 */
export function fitReadout(net: tf.LayersModel, images: tf.Tensor4D, labels: ArrayLike<number>): void {
  const layer = [...net.layers].reverse().find((l) => l.getWeights().length > 0)!;
  const kind = layer.getClassName();
  if (kind !== 'Dense' && kind !== 'Conv2D') throw new Error(`cannot fit a ${kind} readout`);
  const probe = tf.model({ inputs: net.inputs, outputs: layer.input });
  const [kernel, bias] = layer.getWeights() as [tf.Tensor, tf.Tensor];
  const classes = bias.shape[0];
  const count = images.shape[0];
  const maps = probe.predict(images) as tf.Tensor;
  // A 1x1 conv followed by a global average pool acts on the pooled features (while its ReLU stays off).
  const features = tf.tidy(() => (maps.rank === 4 ? maps.mean([1, 2]) : maps));
  const d = features.shape[1]!;
  const f = features.dataSync();
  // Normal equations with a bias column: [F 1]^T [F 1] w = [F 1]^T Y.
  const n = d + 1;
  const gram = new Float64Array(n * n);
  const rhs = new Float64Array(n * classes);
  const row = new Float64Array(n);
  for (let s = 0; s < count; s++) {
    for (let i = 0; i < d; i++) row[i] = f[s * d + i]!;
    row[d] = 1;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) gram[i * n + j]! += row[i]! * row[j]!;
      rhs[i * classes + labels[s]!]! += row[i]!;
    }
  }
  let trace = 0;
  for (let i = 0; i < d; i++) trace += gram[i * n + i]!;
  solveRidge(gram, rhs, n, classes, (1e-2 * trace) / d + 1e-6);
  const w = Float32Array.from(rhs.subarray(0, d * classes));
  const b = Float32Array.from(rhs.subarray(d * classes));
  if (kind === 'Conv2D') {
    // The conv's ReLU acts on each pixel before the pool: one offset for every class (which leaves the
    // argmax alone) keeps each pixel's pre-activation positive on these images, so the ReLU stays off.
    const lowest = tf.tidy(
      () =>
        tf
          .conv2d(maps as tf.Tensor4D, tf.tensor4d(w, [1, 1, d, classes]), 1, 'valid')
          .add(b)
          .min()
          .dataSync()[0]!,
    );
    const offset = Math.max(0, -lowest) * 1.5 + 0.1;
    layer.setWeights([tf.tensor(w, kernel.shape), tf.tensor1d(b.map((v) => v + offset))]);
  } else {
    layer.setWeights([tf.tensor2d(w, [d, classes]), tf.tensor1d(b)]);
  }
  // Not the probe model: it shares the net's layers and their weights.
  tf.dispose([maps, features]);
}
