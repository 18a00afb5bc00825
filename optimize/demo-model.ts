// The walking skeleton's model: a 784-128-10 ReLU MLP for Fashion-MNIST, trained in plain TypeScript
// (Float32Array math, Adam, fixed seed) and quantized after training to the whittle-int8-mlp format:
//   input   pixel / 255 as int8 with scale 1/255, zero point -128 (so q = pixel - 128, exact)
//   weights int8 symmetric per output channel, bias int32 in units of inputScale * weightScale
//   outputs int8 asymmetric per tensor, ranges calibrated on training images; ReLU fused into the clamp.
// Training stays small on purpose: it only has to produce a real model for the runtime, within ~2 minutes
// on one core. The full trainer lives elsewhere.
import { Int8MlpModel } from '../agent/runtime/int8-mlp.js';
import {
  encodeInt8Base64,
  encodeInt32LeBase64,
  INT8_MLP_FORMAT,
  INT8_MLP_VERSION,
  type Int8MlpFile,
  Int8MlpFileSchema,
} from '../agent/runtime/int8-mlp-format.js';
import { quantizeMultiplier } from '../agent/runtime/number/requantization.js';
import { INT8_MAX } from '../agent/runtime/number/saturation.js';
import { FASHION_MNIST_LABELS, type GrayImageSet } from './datasets/fashion-mnist.js';
import { activationQuantizationFromRange, quantizeBias, quantizeWeightsPerChannel } from './quantize/int8.js';
import { SeededRandom } from './seeded-random.js';

const PIXELS = 28 * 28;
const HIDDEN = 128;
const CLASSES = 10;

/** Float weights of the MLP. Layouts are [in][out] so the inner loops of training run over contiguous
 * outputs; quantization transposes to the kernel's [out][in]. */
export interface FloatMlp {
  /** [PIXELS][HIDDEN] */
  w1: Float32Array;
  /** [HIDDEN] */
  b1: Float32Array;
  /** [HIDDEN][CLASSES] */
  w2: Float32Array;
  /** [CLASSES] */
  b2: Float32Array;
}

export interface TrainingProgress {
  epoch: number;
  epochs: number;
  /** Mean cross-entropy of the epoch's batches, nats. */
  loss: number;
  /** Fraction of the epoch's training images classified correctly while training. */
  trainAccuracy: number;
  seconds: number;
}

export interface TrainOptions {
  epochs?: number;
  batchSize?: number;
  /** Adam step size; halved for the last third of the epochs. */
  learningRate?: number;
  seed?: number;
  signal?: AbortSignal;
  onProgress?: (progress: TrainingProgress) => void;
}

/** Scratch buffers of one forward/backward pass over one image. */
interface Scratch {
  /** [PIXELS] indices of the image's nonzero pixels (about half of Fashion-MNIST is background). */
  active: Int32Array;
  /** [PIXELS] pixel / 255 */
  x: Float32Array;
  /** [HIDDEN] ReLU output */
  hidden: Float32Array;
  /** [CLASSES] */
  logits: Float32Array;
}

function newScratch(): Scratch {
  return {
    active: new Int32Array(PIXELS),
    x: new Float32Array(PIXELS),
    hidden: new Float32Array(HIDDEN),
    logits: new Float32Array(CLASSES),
  };
}

/** Forward pass of image n; returns the number of active pixels (in s.active). */
function forward(mlp: FloatMlp, pixels: Uint8Array, n: number, s: Scratch): number {
  let count = 0;
  for (let i = 0; i < PIXELS; i++) {
    const p = pixels[n * PIXELS + i]!;
    if (p !== 0) {
      s.active[count++] = i;
      s.x[i] = p / 255;
    }
  }
  const { hidden, logits } = s;
  hidden.set(mlp.b1);
  for (let k = 0; k < count; k++) {
    const i = s.active[k]!;
    const xi = s.x[i]!;
    const row = i * HIDDEN;
    for (let j = 0; j < HIDDEN; j++) hidden[j]! += xi * mlp.w1[row + j]!;
  }
  for (let j = 0; j < HIDDEN; j++) if (hidden[j]! < 0) hidden[j] = 0;
  logits.set(mlp.b2);
  for (let j = 0; j < HIDDEN; j++) {
    const hj = hidden[j]!;
    if (hj === 0) continue;
    const row = j * CLASSES;
    for (let c = 0; c < CLASSES; c++) logits[c]! += hj * mlp.w2[row + c]!;
  }
  return count;
}

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Trains the MLP with mini-batch Adam on softmax cross-entropy. Deterministic for a given seed. */
export function trainFloatMlp(train: GrayImageSet, options: TrainOptions = {}): FloatMlp {
  const { epochs = 6, batchSize = 64, learningRate = 1e-3, seed = 1, signal, onProgress } = options;
  const random = new SeededRandom(seed);
  // He initialization for ReLU layers.
  const mlp: FloatMlp = {
    w1: Float32Array.from({ length: PIXELS * HIDDEN }, () => random.normal() * Math.sqrt(2 / PIXELS)),
    b1: new Float32Array(HIDDEN),
    w2: Float32Array.from({ length: HIDDEN * CLASSES }, () => random.normal() * Math.sqrt(2 / HIDDEN)),
    b2: new Float32Array(CLASSES),
  };
  const params = [mlp.w1, mlp.b1, mlp.w2, mlp.b2];
  const grads = params.map((p) => new Float32Array(p.length));
  const moment1 = params.map((p) => new Float32Array(p.length));
  const moment2 = params.map((p) => new Float32Array(p.length));
  const [gw1, gb1, gw2, gb2] = grads as [Float32Array, Float32Array, Float32Array, Float32Array];
  const beta1 = 0.9;
  const beta2 = 0.999;
  const epsilon = 1e-8;
  let step = 0;

  const s = newScratch();
  const dLogits = new Float32Array(CLASSES);
  const dHidden = new Float32Array(HIDDEN);
  const order = Int32Array.from({ length: train.count }, (_, i) => i);

  for (let epoch = 0; epoch < epochs; epoch++) {
    const started = performance.now();
    const rate = epoch >= Math.ceil((epochs * 2) / 3) ? learningRate / 2 : learningRate;
    random.shuffle(order);
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < train.count; start += batchSize) {
      signal?.throwIfAborted();
      const end = Math.min(train.count, start + batchSize);
      for (const g of grads) g.fill(0);
      for (let b = start; b < end; b++) {
        const n = order[b]!;
        const active = forward(mlp, train.pixels, n, s);
        const label = train.labels[n]!;
        // Softmax cross-entropy: dLoss/dLogits = softmax - onehot.
        const top = s.logits[argmax(s.logits)]!;
        let sum = 0;
        for (let c = 0; c < CLASSES; c++) sum += dLogits[c] = Math.exp(s.logits[c]! - top);
        for (let c = 0; c < CLASSES; c++) dLogits[c]! /= sum;
        lossSum -= Math.log(Math.max(dLogits[label]!, 1e-12));
        if (argmax(s.logits) === label) correct++;
        dLogits[label]! -= 1;

        for (let c = 0; c < CLASSES; c++) gb2[c]! += dLogits[c]!;
        for (let j = 0; j < HIDDEN; j++) {
          const hj = s.hidden[j]!;
          if (hj === 0) {
            dHidden[j] = 0; // ReLU gradient
            continue;
          }
          const row = j * CLASSES;
          let d = 0;
          for (let c = 0; c < CLASSES; c++) {
            gw2[row + c]! += hj * dLogits[c]!;
            d += mlp.w2[row + c]! * dLogits[c]!;
          }
          dHidden[j] = d;
        }
        for (let j = 0; j < HIDDEN; j++) gb1[j]! += dHidden[j]!;
        for (let k = 0; k < active; k++) {
          const i = s.active[k]!;
          const xi = s.x[i]!;
          const row = i * HIDDEN;
          for (let j = 0; j < HIDDEN; j++) gw1[row + j]! += xi * dHidden[j]!;
        }
      }
      // Adam, with the mean gradient over the batch.
      step++;
      const scale = 1 / (end - start);
      const correction1 = 1 - beta1 ** step;
      const correction2 = 1 - beta2 ** step;
      params.forEach((p, k) => {
        const g = grads[k]!;
        const m = moment1[k]!;
        const v = moment2[k]!;
        for (let i = 0; i < p.length; i++) {
          const gi = g[i]! * scale;
          const mi = (m[i] = beta1 * m[i]! + (1 - beta1) * gi);
          const vi = (v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi);
          p[i]! -= (rate * (mi / correction1)) / (Math.sqrt(vi / correction2) + epsilon);
        }
      });
    }
    onProgress?.({
      epoch: epoch + 1,
      epochs,
      loss: lossSum / train.count,
      trainAccuracy: correct / train.count,
      seconds: (performance.now() - started) / 1000,
    });
  }
  return mlp;
}

/** Top-1 accuracy of the float model on the first `count` images of `set`. */
export function evaluateFloatMlp(mlp: FloatMlp, set: GrayImageSet, count: number = set.count): number {
  const s = newScratch();
  let correct = 0;
  for (let n = 0; n < count; n++) {
    forward(mlp, set.pixels, n, s);
    if (argmax(s.logits) === set.labels[n]) correct++;
  }
  return correct / count;
}

/** Top-1 accuracy of a quantized model (through the native kernel) on the first `count` images. */
export function evaluateInt8Mlp(model: Int8MlpModel, set: GrayImageSet, count: number = set.count): number {
  const frameBytes = set.width * set.height;
  let correct = 0;
  for (let n = 0; n < count; n++) {
    const frame = set.pixels.subarray(n * frameBytes, (n + 1) * frameBytes);
    if (model.infer(frame).classIndex === set.labels[n]) correct++;
  }
  return correct / count;
}

/** [in][out] -> [out][in] */
function transpose(values: Float32Array, rows: number, columns: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + c]!;
  return out;
}

/** Post-training quantization. Activation ranges are the min/max of the float model's ReLU outputs and
 * logits over the first `calibrationImages` images of `calibration`. */
export function quantizeMlp(mlp: FloatMlp, calibration: GrayImageSet, calibrationImages = 3000): Int8MlpFile {
  const s = newScratch();
  let hiddenMax = 0;
  let logitMin = Infinity;
  let logitMax = -Infinity;
  for (let n = 0; n < Math.min(calibrationImages, calibration.count); n++) {
    forward(mlp, calibration.pixels, n, s);
    for (const h of s.hidden) hiddenMax = Math.max(hiddenMax, h);
    for (const l of s.logits) {
      logitMin = Math.min(logitMin, l);
      logitMax = Math.max(logitMax, l);
    }
  }
  const input = { scale: 1 / 255, zeroPoint: -128 };
  const hidden = activationQuantizationFromRange(0, hiddenMax);
  const logits = activationQuantizationFromRange(logitMin, logitMax);

  const layer = (
    weightsInOut: Float32Array,
    bias: Float32Array,
    inChannels: number,
    outChannels: number,
    inputQuantization: { scale: number; zeroPoint: number },
    outputQuantization: { scale: number; zeroPoint: number },
    relu: boolean,
  ): Int8MlpFile['layers'][number] => {
    const weights = quantizeWeightsPerChannel(
      transpose(weightsInOut, inChannels, outChannels),
      outChannels,
      inChannels,
    );
    const multipliers = Array.from(weights.scales, (scale) =>
      quantizeMultiplier((inputQuantization.scale * scale) / outputQuantization.scale, 'refuse'),
    );
    return {
      inChannels,
      outChannels,
      weights: encodeInt8Base64(weights.values),
      bias: encodeInt32LeBase64(quantizeBias(bias, inputQuantization.scale, weights.scales)),
      multipliers: multipliers.map((m) => m.multiplier),
      shifts: multipliers.map((m) => m.shift),
      inputZeroPoint: inputQuantization.zeroPoint,
      outputZeroPoint: outputQuantization.zeroPoint,
      outputScale: outputQuantization.scale,
      // ReLU fused: real 0 is exactly the zero point, so clamping below it is max(0, x).
      outputMin: relu ? outputQuantization.zeroPoint : -128,
      outputMax: INT8_MAX,
    };
  };

  return {
    format: INT8_MLP_FORMAT,
    version: INT8_MLP_VERSION,
    id: 'fashion-mlp-int8',
    name: 'Fashion-MNIST MLP 784-128-10 (int8)',
    labels: [...FASHION_MNIST_LABELS],
    input: { width: 28, height: 28, channels: 1, ...input },
    layers: [
      layer(mlp.w1, mlp.b1, PIXELS, HIDDEN, input, hidden, true),
      layer(mlp.w2, mlp.b2, HIDDEN, CLASSES, hidden, logits, false),
    ],
  };
}

export interface DemoModelResult {
  file: Int8MlpFile;
  floatAccuracy: number;
  int8Accuracy: number;
  trainSeconds: number;
}

/** Trains, quantizes and measures the demo model on the full test set. */
export function buildDemoModel(
  train: GrayImageSet,
  test: GrayImageSet,
  options: TrainOptions & { calibrationImages?: number } = {},
): DemoModelResult {
  const started = performance.now();
  const mlp = trainFloatMlp(train, options);
  const trainSeconds = (performance.now() - started) / 1000;
  const quantized = quantizeMlp(mlp, train, options.calibrationImages);
  const floatAccuracy = evaluateFloatMlp(mlp, test);
  const int8Accuracy = evaluateInt8Mlp(Int8MlpModel.fromFile(quantized), test);
  const file = Int8MlpFileSchema.parse({
    ...quantized,
    accuracy: { dataset: 'fashion-mnist test', images: test.count, float: floatAccuracy, int8: int8Accuracy },
  });
  return { file, floatAccuracy, int8Accuracy, trainSeconds };
}
