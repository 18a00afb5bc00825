// Straight-through-estimator (STE) training of quantized weights, for any weight quantizer Q: binary
// (BinaryConnect, XNOR-Net), ternary (TWN), fixed point / int8 for quantization-aware training, and a k-means
// codebook (weight sharing with trained assignments).
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
// Q(w). A quantizer fitted to the weights (a codebook's centroids) is refitted to the float copy before each
// Q(w). The float copies, and the fitted quantizers' state, are saved beside every checkpoint (`save`) and
// read back on resume (`restore`).
import * as tf from '@tensorflow/tfjs';

import { loadNamedTensors, saveNamedTensors } from '../train/file-io.js';
import type { TrainHooks } from '../train/trainer.js';
import { kernelOf, kmeansLinear, lloyd, mapGradients, readKernel, writeKernel } from './projection.js';

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
  /** A pruned layer's mask (1 kept, 0 pruned, in the kernel's flat order): a pruned weight gets no gradient,
   * so its float copy stays at its 0, and Q must give it 0. */
  readonly mask?: Uint8Array;
  /** A quantizer with parameters fitted to the weights (a codebook's centroids). */
  readonly fitted?: QuantizerFit;
}

/** How a fitted quantizer follows the float weights: `fit` at the phase's start (unless `restore` gave it a
 * saved state) and after every update, before Q(w); its state is saved with the checkpoints. */
export interface QuantizerFit {
  fit(w: Float32Array, shape: readonly number[]): void;
  state(): Float32Array;
  /** Throws when `state` is not one this quantizer saved. */
  restore(state: Float32Array): void;
}

/** A layer trained through a quantizer: the tfjs layer's name (the package node's) and its Q. */
export interface SteLayer {
  layer: string;
  quantizer: WeightQuantizer;
}

/** The file (beside the trainer's checkpoint) that holds the STE layers' float weights. */
export const STE_FLOAT_FILE = 'ste-float';
/** The file (beside it) that holds the fitted quantizers' state, by layer. */
export const STE_FIT_FILE = 'ste-fit';

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
    // Plain loops: TypedArray.from with a map function walks an iterator, ~50x slower on a 1M-weight layer.
    const q = new Float32Array(w.length);
    for (let i = 0; i < w.length; i++) q[i] = w[i]! < 0 ? -alpha[i % channels]! : alpha[i % channels]!;
    return q;
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
      const q = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) {
        const c = i % channels;
        q[i] = Math.abs(w[i]!) > threshold[c]! ? (w[i]! < 0 ? -alpha[c]! : alpha[c]!) : 0;
      }
      return q;
    },
  };
}

/** Weight sharing with trained assignments: Q(w) puts each (kept) weight at its nearest centroid of a
 * codebook of `clusters` values (with a mask, cluster 0 is the pruned weights' fixed zero and the kept weights
 * share the other clusters - 1). The codebook starts as k-means of the kept weights from a linear
 * initialisation (kmeansLinear, what shareWeights gives) and is refitted to the float weights after every
 * update by Lloyd iterations from the current centroids, so a weight the gradients move across a midpoint
 * changes cluster and the centroids follow their weights. Q(w) is the layer shared as kmeans stores it: at
 * most `clusters` values (the zero included), the pruned weights 0. One quantizer per layer (it holds that
 * layer's codebook). */
export function codebookQuantizer(clusters: number, mask?: Uint8Array): WeightQuantizer {
  const k = mask ? clusters - 1 : clusters;
  // The kept weights' positions (plain loops: TypedArray filter / from with a function are slow).
  const positions = mask ? new Int32Array(mask.reduce((n, m) => n + m, 0)) : undefined;
  if (mask && positions) for (let i = 0, j = 0; i < mask.length; i++) if (mask[i] === 1) positions[j++] = i;
  const kept = (w: Float32Array): Float32Array => {
    if (!positions) return w;
    const values = new Float32Array(positions.length);
    for (let j = 0; j < positions.length; j++) values[j] = w[positions[j]!]!;
    return values;
  };
  // Sorted, each exactly an fp32 value (the value Q(w) stores, and the state a checkpoint keeps).
  let centroids: Float64Array | undefined;
  return {
    name: `codebook (${clusters} values)`,
    quantize(w) {
      if (centroids === undefined) throw new RangeError('codebook quantizer: Q(w) before its first fit');
      const values = kept(w);
      const assignments = new Uint8Array(values.length);
      // The nearest centroid, no Lloyd iteration: Q(Q(w)) = Q(w).
      lloyd(values, centroids, assignments, 0);
      const q = new Float32Array(w.length);
      for (let j = 0; j < values.length; j++) q[positions ? positions[j]! : j] = centroids[assignments[j]!]!;
      return q;
    },
    ...(mask ? { mask } : {}),
    fitted: {
      fit(w) {
        const values = kept(w);
        if (centroids === undefined) centroids = Float64Array.from(kmeansLinear(values, k).centroids);
        else lloyd(values, centroids, new Uint8Array(values.length));
        centroids = centroids.map(Math.fround);
      },
      state: () => Float32Array.from(centroids ?? []),
      restore(state) {
        if (state.length === 0 || state.length > k)
          throw new RangeError(`a codebook of ${state.length} centroids, not 1 to ${k}`);
        centroids = Float64Array.from(state);
      },
    },
  };
}

/** The trainer hooks that train `layers` through their quantizers (see the header). */
export function steHooks(layers: readonly SteLayer[]): TrainHooks {
  const float = new Map<string, Float32Array>();
  const fitted = layers.filter((l) => l.quantizer.fitted !== undefined);
  let restored = false;
  let model: tf.LayersModel | undefined;
  let byVariable = new Map<string, SteLayer>();
  // The layers whose variable holds the float copy during this update (set in `gradients`).
  const updating = new Set<SteLayer>();
  const shapeOf = (name: string): number[] => kernelOf(model!.getLayer(name))!.shape as number[];
  const setQuantized = (l: SteLayer): void => {
    const w = float.get(l.layer)!;
    l.quantizer.fitted?.fit(w, shapeOf(l.layer));
    writeKernel(model!, l.layer, l.quantizer.quantize(w, shapeOf(l.layer)));
  };
  return {
    restore(dir) {
      for (const { name, tensor } of loadNamedTensors(dir, STE_FLOAT_FILE)) {
        float.set(name, new Float32Array(tensor.dataSync()));
        tensor.dispose();
      }
      const missing = layers.filter((l) => !float.has(l.layer)).map((l) => l.layer);
      if (missing.length > 0)
        throw new RangeError(`${dir}: no float weights saved for ${missing.join(', ')}`);
      if (fitted.length === 0) return;
      const states = new Map<string, Float32Array>();
      for (const { name, tensor } of loadNamedTensors(dir, STE_FIT_FILE)) {
        states.set(name, new Float32Array(tensor.dataSync()));
        tensor.dispose();
      }
      for (const l of fitted) {
        const state = states.get(l.layer);
        if (state === undefined) throw new RangeError(`${dir}: no ${l.quantizer.name} saved for ${l.layer}`);
        l.quantizer.fitted!.restore(state);
      }
      restored = true;
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
        // A restored fit is the one the checkpoint's Q(w) was made with: not refitted.
        if (restored) writeKernel(m, l.layer, l.quantizer.quantize(float.get(l.layer)!, shapeOf(l.layer)));
        else setQuantized(l);
      }
    },
    gradients(gradients) {
      return mapGradients(gradients, byVariable, (g, l) => {
        const w = float.get(l.layer)!;
        // The optimizer updates the float copy, not Q(w).
        writeKernel(model!, l.layer, w);
        updating.add(l);
        const { gradientClip: clip, mask } = l.quantizer;
        if (clip === undefined && mask === undefined) return undefined;
        const passed = new Float32Array(g.dataSync());
        for (let i = 0; i < passed.length; i++)
          if ((clip !== undefined && Math.abs(w[i]!) > clip) || mask?.[i] === 0) passed[i] = 0;
        return passed;
      });
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
      if (fitted.length === 0) return;
      const states = fitted.map((l) => ({ name: l.layer, tensor: tf.tensor1d(l.quantizer.fitted!.state()) }));
      await saveNamedTensors(dir, STE_FIT_FILE, states);
      tf.dispose(states.map((t) => t.tensor));
    },
  };
}
