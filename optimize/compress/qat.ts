// Quantization-aware training (int8, Jacob et al. 2018) and dynamic fixed-point fine-tuning (Gupta et al.
// 2015): the training-time simulation of what the runtime computes, as trainer hooks.
//
// Weights go through the straight-through-estimator hook (ste.ts): the forward pass runs on Q(w), the
// updates go to a float copy.
// - int8: Q(w) is the runtime's int8 weight encoding, symmetric per output channel (int8.ts
//   quantizeWeightsPerChannel: scale = max |w| / 127, rounded half away from zero);
// - fixed16 / fixed8: Q(w) = q * 2^-FL, FL the layer's largest fractional length that holds max |w|
//   (fixed-point.ts weightFractionalLength), q rounded stochastically during training (quantizeStochastic,
//   the runtime's counter-based stream; a fresh seed per update), so small updates survive in expectation.
//
// Activations are fake-quantized where the runtime quantizes them, with per-tensor ranges tracked by an
// exponential moving average of each training batch's min and max (validation and evaluation use the
// averages without updating them):
// - int8 (ptq.ts): the graph input, and each conv / dense layer's output after its activation (the fused
//   ReLU's range) - before a softmax, the logits; asymmetric, activationQuantizationFromRange (int8.ts);
// - fixed point (package/fixed-point.ts): each layer's input at its input_fl and its output before its
//   activation at output_fl (the FL of the range's magnitude), words saturated at ±limit; rounded
//   stochastically while training, to nearest otherwise.
// The gradient passes straight through inside the representable range and is 0 where the value saturates.
// The tracked ranges are saved with every checkpoint and at the end of the phase (qat-ranges.json), and the
// package is written with them (ptq.ts / fixed-point.ts `ranges`), so the runtime quantizes each tensor
// with the range the model was trained with.
//
// Layers are tfjs Conv2D / Dense; a batch norm the importer folds into a conv after training changes its
// weights, so Q(w) is then requantized by the package writer (the zoo's LeNets and small VGG have none).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import type { Manifest } from '../../agent/package/manifest.js';
import { FIXED_POINT_FL_MAX, FIXED_POINT_FL_MIN } from '../../agent/package/manifest.js';
import {
  type FixedPointBits,
  fixedPointLimit,
  fractionalLength,
  quantizeStochastic,
} from '../../agent/runtime/number/fixed-point.js';
import { INT8_MAX, INT8_MIN } from '../../agent/runtime/number/saturation.js';
import { weightFractionalLength } from '../package/fixed-point.js';
import type { TensorRange } from '../quantize/calibrate.js';
import {
  activationQuantizationFromRange,
  dequantizeWeightsPerChannel,
  quantizeWeightsPerChannel,
} from '../quantize/int8.js';
import { writeAtomic } from '../train/file-io.js';
import type { TrainHooks } from '../train/trainer.js';
import type { WeightQuantizer } from './ste.js';

/** The number formats trained here. */
export type QatFormat = 'int8' | 'fixed16' | 'fixed8';

/** Weight of the running range against a new batch's (TensorFlow's QAT default is 0.999 over far longer
 * runs; a retraining phase here is a few epochs). */
export const RANGE_DECAY = 0.99;

/** The file, in a phase's directory and beside its checkpoints, that holds the tracked ranges. */
export const QAT_RANGES_FILE = 'qat-ranges.json';

/** The int8 package's weight encoding as a quantizer: per output channel (the tfjs kernel's last axis). */
export const INT8_WEIGHT_QUANTIZER: WeightQuantizer = {
  name: 'int8',
  quantize(w, shape) {
    const outChannels = shape[shape.length - 1] ?? 1;
    const inChannels = w.length / outChannels;
    // [in][out] (tfjs) -> [out][in] (the encoder's rows) and back.
    const rows = new Float32Array(w.length);
    for (let i = 0; i < inChannels; i++)
      for (let o = 0; o < outChannels; o++) rows[o * inChannels + i] = w[i * outChannels + o]!;
    const q = dequantizeWeightsPerChannel(quantizeWeightsPerChannel(rows, outChannels, inChannels));
    const out = new Float32Array(w.length);
    for (let i = 0; i < inChannels; i++)
      for (let o = 0; o < outChannels; o++) out[i * outChannels + o] = q[o * inChannels + i]!;
    return out;
  },
};

/** Dynamic fixed point weights, stochastically rounded from a new seed at every call (every update). */
export function fixedPointWeightQuantizer(bits: FixedPointBits, seed: number): WeightQuantizer {
  let calls = 0;
  return {
    name: `fixed${bits}`,
    quantize(w) {
      const fl = weightFractionalLength(w, bits);
      const q = quantizeStochastic(w, fl, bits, (seed + calls++) >>> 0);
      return Float32Array.from(q, (v) => v * 2 ** -fl);
    },
  };
}

/** A tensor's quantization grid: value = q * step, q an integer in [qmin, qmax]. */
interface Grid {
  step: number;
  qmin: number;
  qmax: number;
}

/** The grid the runtime quantizes a tensor of this range on. */
export function activationGrid(format: QatFormat, range: TensorRange): Grid {
  if (format === 'int8') {
    const { scale, zeroPoint } = activationQuantizationFromRange(range.min, range.max);
    return { step: scale, qmin: INT8_MIN - zeroPoint, qmax: INT8_MAX - zeroPoint };
  }
  const limit = fixedPointLimit(format === 'fixed16' ? 16 : 8);
  const magnitude = Math.max(Math.abs(range.min), Math.abs(range.max));
  const fl = fractionalLength(magnitude, limit, FIXED_POINT_FL_MIN, FIXED_POINT_FL_MAX);
  return { step: 2 ** -fl, qmin: -limit, qmax: limit };
}

/** x on the grid (to nearest, ties up; or stochastically, from the seed `stochastic`), saturated; the gradient passes inside the
 * range and is 0 where x saturates. */
export function fakeQuantize(x: tf.Tensor, grid: Grid, stochastic: number | undefined): tf.Tensor {
  const lo = grid.qmin * grid.step;
  const hi = grid.qmax * grid.step;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([input]);
    const value = tf.tidy(() => {
      const scaled = tf.div(input, grid.step);
      const shifted =
        stochastic === undefined
          ? tf.add(scaled, 0.5)
          : tf.add(scaled, tf.randomUniform(input.shape, 0, 1, 'float32', stochastic));
      return tf.mul(tf.clipByValue(tf.floor(shifted), grid.qmin, grid.qmax), grid.step);
    });
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.mul(
          dy,
          tf.cast(tf.logicalAnd(tf.greaterEqual(saved[0]!, lo), tf.lessEqual(saved[0]!, hi)), 'float32'),
        ),
    };
  });
  return op(x);
}

/** Where a layer's tensors are fake-quantized: its input (the first layer's: the graph input), and its
 * output before or after its activation. */
export interface QuantizedPoint {
  layer: string;
  at: 'input' | 'output' | 'activation';
}

/** The points of a format over `layers` (the weight layers in graph order). */
export function quantizedPoints(format: QatFormat, layers: readonly string[]): QuantizedPoint[] {
  return [
    ...(layers.length > 0 ? [{ layer: layers[0]!, at: 'input' as const }] : []),
    ...layers.map((layer) => ({
      layer,
      at: format === 'int8' ? ('activation' as const) : ('output' as const),
    })),
  ];
}

const pointKey = (p: QuantizedPoint): string => `${p.layer}:${p.at}`;

/** What a tfjs Conv2D / Dense layer holds that the hooks wrap. */
interface WrappableLayer {
  activation: { apply(x: tf.Tensor): tf.Tensor; getClassName(): string };
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
}

/** The hooks that fake-quantize the activations at `points` (see the header); `ranges()` gives the tracked
 * ranges by point key. */
export function activationHooks(
  format: QatFormat,
  points: readonly QuantizedPoint[],
  seed = 1,
): TrainHooks & { ranges(): Map<string, TensorRange> } {
  const ranges = new Map<string, TensorRange>();
  let training = false;
  // Fixed point rounds stochastically while training: a new seed for every tensor of every batch.
  let draws = 0;
  const stochastic = (): number | undefined =>
    format !== 'int8' && training ? seed * 1_000_003 + draws++ : undefined;
  const quantize = (key: string, x: tf.Tensor): tf.Tensor => {
    if (training) {
      const [min, max] = [tf.min(x).dataSync()[0]!, tf.max(x).dataSync()[0]!];
      const r = ranges.get(key);
      ranges.set(
        key,
        r === undefined
          ? { min, max }
          : {
              min: RANGE_DECAY * r.min + (1 - RANGE_DECAY) * min,
              max: RANGE_DECAY * r.max + (1 - RANGE_DECAY) * max,
            },
      );
    }
    const range = ranges.get(key);
    // Before the first training batch (a validation of the starting model) there is no range yet.
    return range === undefined ? x : fakeQuantize(x, activationGrid(format, range), stochastic());
  };
  return {
    ranges: () => new Map(ranges),
    restore(dir) {
      const path = join(dir, QAT_RANGES_FILE);
      if (!existsSync(path)) throw new RangeError(`${path}: no activation ranges saved`);
      for (const [key, r] of Object.entries(
        JSON.parse(readFileSync(path, 'utf8')) as Record<string, TensorRange>,
      ))
        ranges.set(key, r);
    },
    start(model) {
      for (const p of points) {
        const layer = model.getLayer(p.layer) as unknown as WrappableLayer;
        const key = pointKey(p);
        if (p.at === 'input') {
          const call = layer.call.bind(layer);
          layer.call = (inputs, kwargs) =>
            call(Array.isArray(inputs) ? inputs : quantize(key, inputs), kwargs);
          continue;
        }
        const activation = layer.activation;
        // Before a softmax the int8 graph quantizes the logits it reads.
        const before = p.at === 'output' || activation.getClassName() === 'softmax';
        layer.activation = Object.create(activation, {
          apply: {
            value: (x: tf.Tensor) =>
              before ? activation.apply(quantize(key, x)) : quantize(key, activation.apply(x)),
          },
        }) as WrappableLayer['activation'];
      }
    },
    beforeBatch() {
      training = true;
    },
    afterUpdate() {
      training = false;
    },
    save(dir) {
      writeAtomic(join(dir, QAT_RANGES_FILE), JSON.stringify(Object.fromEntries(ranges)));
      return Promise.resolve();
    },
  };
}

/** The tracked ranges as the package's tensors (by name): a layer's input is its node's first input, its
 * output the node's output, after its activation the output of the activation node that reads it (named
 * `layer/...` by the importer) unless that is the softmax. */
export function packageRanges(
  manifest: Manifest,
  ranges: ReadonlyMap<string, TensorRange>,
): Map<string, TensorRange> {
  const out = new Map<string, TensorRange>();
  for (const [key, range] of ranges) {
    const cut = key.lastIndexOf(':');
    const [layer, at] = [key.slice(0, cut), key.slice(cut + 1)];
    const node = manifest.nodes.find((n) => n.name === layer);
    if (node === undefined) continue;
    let tensor = at === 'input' ? node.inputs[0]! : node.outputs[0]!;
    if (at === 'activation') {
      const activation = manifest.nodes.find(
        (n) => n.inputs[0] === tensor && n.name.startsWith(`${layer}/`) && n.op !== 'softmax',
      );
      if (activation !== undefined) tensor = activation.outputs[0]!;
    }
    out.set(manifest.tensors[tensor]!.name, range);
  }
  return out;
}
