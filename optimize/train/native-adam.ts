// Adam as one native call per variable: the fused `adamUpdate` kernel of the training addon updates the
// moments and the weights in a single pass, where tfjs's AdamOptimizer runs about a dozen elementwise
// kernels per variable, each allocating a tensor. Same formula, same hyper-parameters and the same
// checkpoint layout as tfjs's optimizer (iteration count, then the first moments, then the second
// moments), so checkpoints move between the two.
//
// The moments live in plain Float32Arrays owned by this optimizer and are updated in place. The weights
// are not: a tfjs tensor's storage can be shared (clone() shares it, and the trainer clones the best
// epoch's weights), so each step writes new values into a copy and assigns that to the variable.
import * as tf from '@tensorflow/tfjs';

import type { TrainBinding } from '../../native/train-kernels.js';

/** tfjs's NamedTensor, which the tfjs package does not re-export. */
interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/** Kept by position, like tfjs's Adam: a resumed model's variables get new names but come in the same order. */
interface Moments {
  name: string;
  shape: number[];
  m: Float32Array;
  v: Float32Array;
}

export class NativeAdamOptimizer extends tf.Optimizer {
  /** The class name tfjs serialization uses; this optimizer saves as an Adam. */
  static get className(): string {
    return 'Adam';
  }
  /** Read on every step, so a learning-rate schedule can change it between batches. */
  learningRate: number;
  private readonly moments: Moments[] = [];
  /** Steps taken so far; the bias corrections use beta^(steps + 1) for the coming step. */
  private steps = 0;

  constructor(
    private readonly binding: TrainBinding,
    learningRate: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = tf.backend().epsilon(),
  ) {
    super();
    this.learningRate = learningRate;
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const entries: [string, tf.Tensor | undefined][] = Array.isArray(variableGradients)
      ? variableGradients.map((g) => [g.name, g.tensor])
      : Object.entries(variableGradients);
    const t = this.steps + 1;
    const bias1 = 1 - this.beta1 ** t;
    const bias2 = 1 - this.beta2 ** t;
    entries.forEach(([name, gradient], i) => {
      const variable = tf.engine().registeredVariables[name];
      if (variable === undefined) throw new Error(`NativeAdamOptimizer: no variable named ${name}`);
      const size = variable.size;
      const moments = (this.moments[i] ??= {
        name,
        shape: variable.shape,
        m: new Float32Array(size),
        v: new Float32Array(size),
      });
      if (moments.m.length !== size)
        throw new Error(
          `NativeAdamOptimizer: ${name} has ${size} values but its moments ${moments.m.length}`,
        );
      moments.name = name;
      if (gradient === undefined || gradient === null) return;
      const grad = gradient.dataSync();
      const param = (variable.dataSync() as Float32Array).slice();
      if (!(grad instanceof Float32Array)) throw new Error(`NativeAdamOptimizer: ${name} is not float32`);
      const { m, v } = moments;
      this.binding.adamUpdate({
        param,
        grad,
        m,
        v,
        learningRate: this.learningRate,
        beta1: this.beta1,
        beta2: this.beta2,
        epsilon: this.epsilon,
        bias1,
        bias2,
      });
      const updated = tf.tensor(param, variable.shape, 'float32');
      variable.assign(updated);
      updated.dispose();
    });
    this.steps++;
    this.incrementIterations();
  }

  override async getWeights(): Promise<NamedTensor[]> {
    return [
      await this.saveIterations(),
      ...this.moments.map((s) => ({ name: `${s.name}/m`, tensor: tf.tensor(s.m.slice(), s.shape) })),
      ...this.moments.map((s) => ({ name: `${s.name}/v`, tensor: tf.tensor(s.v.slice(), s.shape) })),
    ];
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    this.steps = this.iterations;
    const count = rest.length / 2;
    this.moments.length = 0;
    for (let i = 0; i < count; i++) {
      const m = rest[i]!;
      const v = rest[count + i]!;
      this.moments.push({
        name: m.name.replace(/\/m$/, ''),
        shape: m.tensor.shape,
        m: Float32Array.from(m.tensor.dataSync()),
        v: Float32Array.from(v.tensor.dataSync()),
      });
    }
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
    };
  }
}
