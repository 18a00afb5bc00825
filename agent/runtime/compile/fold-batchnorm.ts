// Batch-norm folding: a conv (or fully-connected) layer followed by inference-mode batch normalization is
// one conv with rescaled weights and a shifted bias:
//
//   y = gamma * (conv(x, W) + b - mean) / sqrt(var + eps) + beta
//     = conv(x, W * s) + (b - mean) * s + beta,   s[o] = gamma[o] / sqrt(var[o] + eps)
//
// The kernels never see batch norm. Fold in fp32 BEFORE quantizing: the per-output-channel weight scales
// of the int8 format are then chosen for the folded weights, so the rescaling costs no extra rounding.
// Done once at model compile time, so it favours clarity (and float64 intermediates) over speed.

/** Inference-mode batch-norm parameters, one value per output channel. */
export interface BatchNormParameters {
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  /** Added to the variance, >= 0 (frameworks default to 1e-5 or 1e-3; 0 for a per-channel scale and shift
   * written as a norm of variance 1); variance + epsilon must be > 0. */
  epsilon: number;
}

export interface FoldedLayer {
  /** Same layout as the input weights (OHWI for conv, [out][in] for fully-connected). */
  weights: Float32Array;
  bias: Float32Array;
}

/** Folds batch norm into the weights (output channel major: weights.length = outputChannels * perChannel)
 * and bias (null when the layer had none). Throws RangeError naming the argument on inconsistent sizes. */
export function foldBatchNorm(
  weights: Float32Array,
  bias: Float32Array | null,
  outputChannels: number,
  bn: BatchNormParameters,
): FoldedLayer {
  if (!Number.isInteger(outputChannels) || outputChannels < 1) {
    throw new RangeError(`Expected a positive integer for outputChannels but received ${outputChannels}`);
  }
  if (weights.length === 0 || weights.length % outputChannels !== 0) {
    throw new RangeError(
      `Expected weights.length to be a positive multiple of outputChannels (${outputChannels}) but received ${weights.length}`,
    );
  }
  const vectors: [string, Float32Array | null][] = [
    ['bias', bias],
    ['gamma', bn.gamma],
    ['beta', bn.beta],
    ['mean', bn.mean],
    ['variance', bn.variance],
  ];
  for (const [name, vector] of vectors) {
    if (vector !== null && vector.length !== outputChannels) {
      throw new RangeError(
        `Expected ${name} of length ${outputChannels} (outputChannels) but received length ${vector.length}`,
      );
    }
  }
  if (!(bn.epsilon >= 0)) {
    throw new RangeError(`Expected a non-negative number for epsilon but received ${bn.epsilon}`);
  }
  const perChannel = weights.length / outputChannels;
  const foldedWeights = new Float32Array(weights.length);
  const foldedBias = new Float32Array(outputChannels);
  for (let o = 0; o < outputChannels; o++) {
    const variance = bn.variance[o]!;
    if (!(variance >= 0) || !(variance + bn.epsilon > 0)) {
      throw new RangeError(
        `Expected variance[${o}] >= 0 and variance + epsilon > 0 but received ${variance} (epsilon ${bn.epsilon})`,
      );
    }
    const scale = bn.gamma[o]! / Math.sqrt(variance + bn.epsilon);
    for (let i = 0; i < perChannel; i++) {
      foldedWeights[o * perChannel + i] = weights[o * perChannel + i]! * scale;
    }
    foldedBias[o] = ((bias === null ? 0 : bias[o]!) - bn.mean[o]!) * scale + bn.beta[o]!;
  }
  return { weights: foldedWeights, bias: foldedBias };
}
