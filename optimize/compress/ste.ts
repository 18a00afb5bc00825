// Straight-through-estimator (STE) training of quantized weights, for any weight quantizer Q: binary
// (BinaryConnect, XNOR-Net), ternary (TWN), and fixed point / int8 for quantization-aware training.
//
// While a phase retrains, each STE layer has a float copy w of its kernel, kept by the hooks; the model's
// kernel variable holds Q(w) between batches, so the forward pass, the validation, the best-epoch
// selection, the checkpoints' model and the phase's output are all on Q(w). Per batch (trainer.ts
// TrainHooks):
//   forward / backward on Q(w) -> gradients: g' = g where |w| <= gradientClip (the STE of sign is
//   hard-tanh's: gradient 1 inside, 0 outside; no clip = identity), and the variable is set to the float
//   copy w -> the optimizer updates w with g' -> afterUpdate: w := clip(updated, ±weightClip), the variable
//   set to Q(w) again.
// So the optimizer (and its moments) only ever see the float weights; the layer ends the phase holding
// Q(w). The float copies are saved beside every checkpoint (`save`) and read back on resume (`restore`).
import * as tf from '@tensorflow/tfjs';

import { loadNamedTensors, saveNamedTensors } from '../train/file-io.js';
import type { TrainHooks } from '../train/trainer.js';
import { kernelOf, readKernel, writeKernel } from './projection.js';

/**
 * A weight quantizer Q for straight-through training. Weights come in the tfjs kernel layout, output
 * channels on the last axis (Conv2D [kh][kw][cin][O], Dense [in][O]), as `shape` says.
 */
export interface WeightQuantizer {
  /** Named in messages and reports. */
  readonly name: string;
  /** Q(w): the values the forward pass runs on (and the package stores). Must not modify `w`. Q(Q(w))
   * must be Q(w): a phase resumed or continued from Q(w) starts where it stopped. */
  quantize(w: Float32Array, shape: readonly number[]): Float32Array;
  /** The STE's gradient window: a float weight with |w| > gradientClip gets no gradient (sign's hard-tanh
   * estimator). Absent: every gradient passes (identity STE). */
  readonly gradientClip?: number;
  /** The float copy is clipped to [-weightClip, weightClip] after each update (BinaryConnect). Absent:
   * unclipped. */
  readonly weightClip?: number;
}

/** A layer trained through a quantizer: the tfjs layer's name (the package node's) and its Q. */
export interface SteLayer {
  layer: string;
  quantizer: WeightQuantizer;
}

/** The file (beside the trainer's checkpoint) that holds the STE layers' float weights. */
export const STE_FLOAT_FILE = 'ste-float';

/** Per output channel (the last axis) of a tfjs kernel: `channels` and the channel of flat index i. */
function lastAxis(shape: readonly number[]): number {
  return shape[shape.length - 1] ?? 1;
}

/** The mean |w| of each output channel (the last axis), in double, rounded once to fp32 (the package
 * encoders' alpha: encodeBinary / encodeXnor compute it per row of the transposed weights). */
export function channelMeanAbs(w: Float32Array, shape: readonly number[]): Float32Array {
  const channels = lastAxis(shape);
  const sums = new Float64Array(channels);
  for (let i = 0; i < w.length; i++) sums[i % channels]! += Math.abs(w[i]!);
  const perChannel = w.length / channels;
  return Float32Array.from(sums, (s) => (perChannel === 0 ? 0 : s / perChannel));
}

/** Binary weights as BWN / XNOR-Net store them: alpha[o] * sign(w), alpha = mean |w| of the output channel,
 * sign(0) = +1 (the encoders' bit is w < 0). The gradient passes for |w| <= 1 and the float copy is clipped
 * to [-1, 1] (BinaryConnect, Courbariaux et al. 2015). */
export const BINARY_QUANTIZER: WeightQuantizer = {
  name: 'binary',
  quantize(w, shape) {
    const alpha = channelMeanAbs(w, shape);
    const channels = lastAxis(shape);
    return Float32Array.from(w, (v, i) => (v < 0 ? -alpha[i % channels]! : alpha[i % channels]!));
  },
  gradientClip: 1,
  weightClip: 1,
};

/** TWN (Li & Liu 2016): per output channel (or over the whole layer), threshold = 0.7 mean |w|, weights with
 * |w| <= threshold are 0, the rest alpha * sign(w), alpha = mean |w| of those above the threshold. Per
 * channel is what the package's ternary format stores (encodeTernary: one alpha per row, the same 0.7
 * threshold, so the encoder gives Q(w) back exactly); a per-layer Q(w) is one alpha shared by every row. */
export function ternaryQuantizer(perChannel: boolean, thresholdFactor = 0.7): WeightQuantizer {
  return {
    name: perChannel ? 'ternary' : 'ternary (per layer)',
    quantize(w, shape) {
      const channels = perChannel ? lastAxis(shape) : 1;
      const meanAbs = channelMeanAbs(w, [w.length / channels, channels]);
      const threshold = meanAbs.map((m) => thresholdFactor * m);
      const sums = new Float64Array(channels);
      const counts = new Float64Array(channels);
      for (let i = 0; i < w.length; i++) {
        const c = i % channels;
        if (Math.abs(w[i]!) > threshold[c]!) {
          sums[c]! += Math.abs(w[i]!);
          counts[c]! += 1;
        }
      }
      const alpha = Float32Array.from(sums, (s, c) => (counts[c]! > 0 ? s / counts[c]! : 0));
      return Float32Array.from(w, (v, i) => {
        const c = i % channels;
        return Math.abs(v) > threshold[c]! ? (v < 0 ? -alpha[c]! : alpha[c]!) : 0;
      });
    },
  };
}

/** The trainer hooks that train `layers` through their quantizers (see the header). */
export function steHooks(layers: readonly SteLayer[]): TrainHooks {
  const float = new Map<string, Float32Array>();
  let model: tf.LayersModel | undefined;
  let byVariable = new Map<string, SteLayer>();
  // The layers whose variable holds the float copy during this update (set in `gradients`).
  const updating = new Set<SteLayer>();
  const shapeOf = (name: string): number[] => kernelOf(model!.getLayer(name))!.shape as number[];
  const setQuantized = (l: SteLayer): void =>
    writeKernel(model!, l.layer, l.quantizer.quantize(float.get(l.layer)!, shapeOf(l.layer)));
  return {
    restore(dir) {
      for (const { name, tensor } of loadNamedTensors(dir, STE_FLOAT_FILE)) {
        float.set(name, Float32Array.from(tensor.dataSync()));
        tensor.dispose();
      }
      const missing = layers.filter((l) => !float.has(l.layer)).map((l) => l.layer);
      if (missing.length > 0)
        throw new RangeError(`${dir}: no float weights saved for ${missing.join(', ')}`);
    },
    start(m) {
      model = m;
      byVariable = new Map(
        layers.map((l) => {
          const kernel = kernelOf(m.getLayer(l.layer));
          if (kernel === undefined) throw new RangeError(`layer ${l.layer} has no kernel`);
          return [kernel.name, l];
        }),
      );
      for (const l of layers) {
        if (!float.has(l.layer)) float.set(l.layer, readKernel(m, l.layer));
        setQuantized(l);
      }
    },
    gradients(gradients) {
      const out: tf.NamedTensorMap = { ...gradients };
      for (const [name, g] of Object.entries(gradients)) {
        const l = byVariable.get(name);
        if (l === undefined) continue;
        const w = float.get(l.layer)!;
        const clip = l.quantizer.gradientClip;
        if (clip !== undefined) {
          const passed = Float32Array.from(g.dataSync() as Float32Array, (v, i) =>
            Math.abs(w[i]!) <= clip ? v : 0,
          );
          out[name] = tf.tensor(passed, g.shape, 'float32');
        }
        // The optimizer updates the float copy, not Q(w).
        writeKernel(model!, l.layer, w);
        updating.add(l);
      }
      return out;
    },
    afterUpdate(m) {
      for (const l of updating) {
        const w = readKernel(m, l.layer);
        const bound = l.quantizer.weightClip;
        if (bound !== undefined)
          for (let i = 0; i < w.length; i++) w[i] = Math.min(bound, Math.max(-bound, w[i]!));
        float.set(l.layer, w);
        setQuantized(l);
      }
      updating.clear();
    },
    async save(dir) {
      const tensors = layers.map((l) => ({ name: l.layer, tensor: tf.tensor1d(float.get(l.layer)!) }));
      await saveNamedTensors(dir, STE_FLOAT_FILE, tensors);
      tf.dispose(tensors.map((t) => t.tensor));
    },
  };
}
