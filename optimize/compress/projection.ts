// The weight projections of the compression methods that retrain, and the trainer hooks that keep a layer on
// them while it retrains (optimize/train/trainer.ts TrainHooks):
// - magnitude pruning (Han et al. 2015): a mask per layer, the smallest |w| pruned to a target sparsity, per
//   layer or over all the pruned layers at once; pruned weights get no gradient and stay exactly 0;
// - weight sharing (Han et al. 2016): k-means over a layer's (kept) weights from a linear initialisation;
//   every weight of a cluster gets the cluster's summed gradient, so the optimizer moves the cluster's
//   weights as one (with zeroed moments at the phase start, Adam's per-weight state stays equal within a
//   cluster, which is Adam on the centroid with the summed gradient); after every update each weight is
//   snapped back to its cluster's mean so the layer holds exactly its codebook.
// A pruned and shared layer keeps cluster 0 as the fixed zero of its pruned weights.
// - HashedNets (Chen et al. 2015): a fully-connected layer's weight W[o][k] is sign * w[bucket] of the index
//   hash (agent/package/encodings.ts hashedSlot, on the package's [outputs][inputs] index); each weight gets
//   sign * (its bucket's sum of signed gradients), which with zeroed moments at the phase start is Adam on
//   the real parameters w: an exact reparametrisation, no straight-through estimate. After each update the
//   weights are snapped to their buckets' signed means (exactly the buckets, up to rounding drift).
import * as tf from '@tensorflow/tfjs';

import { expandHashed, hashedBucketMeans, hashedSlot } from '../../agent/package/encodings.js';
import type { TrainHooks } from '../train/trainer.js';
import type { PruneSchedule } from './pipeline.js';

/** A layer's projection while it retrains. */
export interface LayerProjection {
  /** The tfjs layer's name (the package node's). */
  layer: string;
  /** 1 = kept, 0 = pruned (exactly zero); absent: not pruned. */
  mask?: Uint8Array;
  /** Cluster of each weight; with a mask, cluster 0 is the pruned weights' fixed zero. */
  assignments?: Uint8Array;
  /** HashedNets: the layer's kernel [inputs][outputs] (tfjs Dense order) is a hashed tensor. */
  hashed?: HashedKernel;
}

/** A hashed Dense kernel: `buckets` real values, hashed with `seed` over the package's [outputs][inputs]. */
export interface HashedKernel {
  buckets: number;
  seed: number;
  inputs: number;
  outputs: number;
}

const slotsOf = new WeakMap<HashedKernel, Int32Array>();

/** The hashedSlot of each weight of a hashed kernel, in the tfjs order [inputs][outputs]: weight (k, o) is
 * element o * inputs + k of the package's transposed fully_connected weight. Computed once per kernel. */
export function hashedKernelSlots(h: HashedKernel): Int32Array {
  let slots = slotsOf.get(h);
  if (slots === undefined) {
    slots = new Int32Array(h.inputs * h.outputs);
    for (let k = 0; k < h.inputs; k++)
      for (let o = 0; o < h.outputs; o++)
        slots[k * h.outputs + o] = hashedSlot(o * h.inputs + k, h.seed, h.buckets);
    slotsOf.set(h, slots);
  }
  return slots;
}

/** The kernel variable of a conv / dense layer (tfjs names it kernel or depthwise_kernel). */
export function kernelOf(layer: tf.layers.Layer): tf.LayerVariable | undefined {
  return layer.trainableWeights.find((w) => /(^|\/)(depthwise_)?kernel(_\d+)?$/.test(w.originalName));
}

function kernelByLayer(model: tf.LayersModel, name: string): tf.LayerVariable {
  const kernel = kernelOf(model.getLayer(name));
  if (kernel === undefined) throw new RangeError(`layer ${name} has no kernel`);
  return kernel;
}

export function readKernel(model: tf.LayersModel, name: string): Float32Array {
  // A copy (new Float32Array of a typed array: a memcpy; Float32Array.from iterates).
  return new Float32Array(kernelByLayer(model, name).read().dataSync());
}

export function writeKernel(model: tf.LayersModel, name: string, values: Float32Array): void {
  const kernel = kernelByLayer(model, name);
  const t = tf.tensor(values, kernel.shape as number[], 'float32');
  kernel.write(t);
  t.dispose();
}

/** Masks that prune the smallest |w| of each layer to its sparsity (a fraction in [0, 1)), or with `global`
 * the smallest over all the layers together to the first layer's sparsity. Ties at the threshold are broken
 * by position, so exactly round(sparsity * n) weights are pruned. */
export function magnitudeMasks(
  weights: ReadonlyMap<string, Float32Array>,
  sparsity: ReadonlyMap<string, number>,
  global: boolean,
): Map<string, Uint8Array> {
  const masks = new Map<string, Uint8Array>();
  const prune = (entries: { layer: string; index: number; magnitude: number }[], count: number): void => {
    entries.sort((a, b) => a.magnitude - b.magnitude || a.index - b.index);
    for (let i = 0; i < count; i++) masks.get(entries[i]!.layer)![entries[i]!.index] = 0;
  };
  for (const [layer, w] of weights) masks.set(layer, new Uint8Array(w.length).fill(1));
  if (global) {
    const all: { layer: string; index: number; magnitude: number }[] = [];
    for (const [layer, w] of weights)
      w.forEach((v, index) => all.push({ layer, index, magnitude: Math.abs(v) }));
    const target = sparsity.values().next().value ?? 0;
    prune(all, Math.round(target * all.length));
  } else {
    for (const [layer, w] of weights) {
      const entries = Array.from(w, (v, index) => ({ layer, index, magnitude: Math.abs(v) }));
      prune(entries, Math.round((sparsity.get(layer) ?? 0) * w.length));
    }
  }
  return masks;
}

/** How many of `total` weights (or buckets) layers of `sizes` weights keep: each a share proportional to
 * size^exponent, and at most all its own (the surplus of a layer that would keep more than it has goes to the
 * others in the same proportion). The one place the size scaling lives: pruning's sparsities and HashedNets'
 * buckets both split their total by it. Exponent 1 keeps the same fraction of every layer (until one is full);
 * below 1 the larger layers keep a smaller fraction, Han et al.'s pattern. */
export function sizeScaledShares(sizes: readonly number[], total: number, exponent: number): number[] {
  const kept = new Array<number>(sizes.length).fill(-1);
  let left = total;
  for (;;) {
    const open = sizes.flatMap((n, i) => (kept[i]! < 0 ? [i] : []));
    const weight = open.reduce((sum, i) => sum + sizes[i]! ** exponent, 0);
    const full = open.filter((i) => (left * sizes[i]! ** exponent) / weight >= sizes[i]!);
    if (full.length === 0) {
      for (const i of open) kept[i] = (left * sizes[i]! ** exponent) / weight;
      return kept;
    }
    for (const i of full) {
      kept[i] = sizes[i]!;
      left -= sizes[i]!;
    }
  }
}

/** Per-layer sparsities that prune `sparsity` of the weights of layers of `sizes` weights together, each layer
 * keeping its sizeScaledShares of the kept weights. Exponent 1 gives every layer `sparsity`; below 1 the larger
 * layers are pruned harder (LeNet-300-100: 784×300 pruned to 92 %, 300×100 to 84 %, at exponent 2/3 and 91 %
 * over both). */
export function sizeScaledSparsities(sizes: readonly number[], sparsity: number, exponent: number): number[] {
  const kept = sizeScaledShares(sizes, (1 - sparsity) * sizes.reduce((a, b) => a + b, 0), exponent);
  return sizes.map((n, i) => (n === 0 ? sparsity : Math.max(0, 1 - kept[i]! / n)));
}

/** HashedNets' buckets for layers of `sizes` weights stored `compression` times smaller together: the
 * ⌊Σ sizes / compression⌋ buckets split by sizeScaledShares (below exponent 1 the larger layers are hashed
 * harder, the smallest, the output layer, lightest), rounded down with the remainder to the largest fractions,
 * so the total is exactly that budget and no layer has more buckets than weights. Every layer gets at least
 * one bucket, taken from the layer with the most; only when the budget is below one a layer does the total
 * pass it (the caller reports the target not met). */
export function sizeScaledBuckets(sizes: readonly number[], compression: number, exponent: number): number[] {
  const budget = Math.floor(sizes.reduce((a, b) => a + b, 0) / compression);
  const shares = sizeScaledShares(sizes, budget, exponent);
  const buckets = shares.map(Math.floor);
  const byFraction = shares
    .map((s, i) => i)
    .sort((a, b) => shares[b]! - buckets[b]! - (shares[a]! - buckets[a]!));
  let left = budget - buckets.reduce((a, b) => a + b, 0);
  for (const i of byFraction) {
    if (left <= 0) break;
    if (buckets[i]! < sizes[i]!) {
      buckets[i]!++;
      left--;
    }
  }
  for (let i = 0; i < buckets.length; i++) {
    if (buckets[i]! >= 1 || sizes[i] === 0) continue;
    const most = buckets.reduce((m, b, j) => (b > buckets[m]! ? j : m), 0);
    if (buckets[most]! > 1) buckets[most]!--;
    buckets[i] = 1;
  }
  return buckets;
}

/** The sparsity of iteration `i` (1-based) of `iterations` on the way to `target`. `geometric`: the kept
 * fraction shrinks geometrically, (1 - target)^(i / iterations), as iterative pruning does (Han et al. 2015);
 * `cubic`: target·(1 - (1 - i / iterations)^3), Zhu & Gupta 2017's gradual ramp from dense (steep while the
 * network is redundant, flat near the target). Both reach the target at i = iterations. */
export function iterationSparsity(
  target: number,
  i: number,
  iterations: number,
  schedule: PruneSchedule = 'geometric',
): number {
  return schedule === 'cubic'
    ? target * (1 - (1 - i / iterations) ** 3)
    : 1 - (1 - target) ** (i / iterations);
}

/** Sorted centroids and each value's nearest one (ties to the lower), by binary search on the midpoints. */
function assignNearest(values: ArrayLike<number>, centroids: Float64Array, out: Uint8Array): void {
  const k = centroids.length;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    let lo = 0;
    let hi = k - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v <= (centroids[mid]! + centroids[mid + 1]!) / 2) hi = mid;
      else lo = mid + 1;
    }
    out[i] = lo;
  }
}

/** Lloyd iterations of 1-D k-means from sorted `centroids` (updated in place): each value to its nearest
 * centroid, each centroid to its values' mean, until no assignment changes (at most `iterations`). An empty
 * cluster keeps its centroid. Leaves the centroids sorted and `assignments` (one per value) on them. */
export function lloyd(
  values: Float32Array,
  centroids: Float64Array,
  assignments: Uint8Array,
  iterations = 50,
): void {
  const k = centroids.length;
  const previous = new Uint8Array(values.length).fill(255);
  for (let it = 0; it < iterations; it++) {
    assignNearest(values, centroids, assignments);
    if (assignments.every((a, i) => a === previous[i])) break;
    previous.set(assignments);
    const sums = new Float64Array(k);
    const counts = new Float64Array(k);
    for (let i = 0; i < values.length; i++) {
      sums[assignments[i]!]! += values[i]!;
      counts[assignments[i]!]! += 1;
    }
    for (let j = 0; j < k; j++) if (counts[j]! > 0) centroids[j] = sums[j]! / counts[j]!;
    centroids.sort();
  }
  assignNearest(values, centroids, assignments);
}

/** 1-D k-means of `values` into at most `k` clusters: values that take at most k distinct values are their
 * own clusters (the sorted distinct values, exactly: a layer already shared keeps its codebook); otherwise
 * from a linear initialisation (k points evenly spaced from the minimum to the maximum, Han et al. 2016's
 * best choice for accuracy), Lloyd iterations until no assignment changes (at most `iterations`).
 * Centroids come back sorted, with each value's cluster. */
export function kmeansLinear(
  values: Float32Array,
  k: number,
  iterations = 50,
): { centroids: Float32Array; assignments: Uint8Array } {
  if (!Number.isInteger(k) || k < 1 || k > 256)
    throw new RangeError(`k-means: k must be in [1, 256], not ${k}`);
  const assignments = new Uint8Array(values.length);
  if (values.length === 0) return { centroids: new Float32Array(0), assignments };
  const distinct = new Set<number>();
  for (const v of values) {
    distinct.add(v);
    if (distinct.size > k) break;
  }
  if (distinct.size <= k) {
    const centroids = Float32Array.from(distinct).sort();
    const index = new Map(Array.from(centroids, (c, j) => [c, j]));
    for (let i = 0; i < values.length; i++) assignments[i] = index.get(values[i]!)!;
    return { centroids, assignments };
  }
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const centroids = Float64Array.from({ length: k }, (_, j) =>
    k === 1 ? (min + max) / 2 : min + ((max - min) * j) / (k - 1),
  );
  lloyd(values, centroids, assignments, iterations);
  return { centroids: Float32Array.from(centroids), assignments };
}

/** A layer's weights shared over `clusters` values by k-means: the cluster of every weight (with a mask,
 * cluster 0 is the pruned zero and the kept weights are clustered into the other clusters - 1) and the
 * weights set to their centroids. */
export function shareWeights(
  weights: Float32Array,
  clusters: number,
  mask?: Uint8Array,
): { assignments: Uint8Array; shared: Float32Array } {
  const kept = mask ? weights.filter((_, i) => mask[i] === 1) : weights;
  const { centroids, assignments: keptAssignments } = kmeansLinear(kept, mask ? clusters - 1 : clusters);
  const assignments = new Uint8Array(weights.length);
  const shared = new Float32Array(weights.length);
  let j = 0;
  for (let i = 0; i < weights.length; i++) {
    if (mask && mask[i] === 0) continue;
    const c = keptAssignments[j++]!;
    assignments[i] = mask ? c + 1 : c;
    shared[i] = centroids[c]!;
  }
  return { assignments, shared };
}

/** Each cluster's value: the mean of its weights (exactly their common value when the layer is shared), the
 * pruned cluster 0 of a masked layer fixed at 0. */
function clusterMeans(values: Float32Array, projection: LayerProjection): Float64Array {
  const assignments = projection.assignments!;
  const sums = new Float64Array(256);
  const counts = new Float64Array(256);
  for (let i = 0; i < values.length; i++) {
    sums[assignments[i]!]! += values[i]!;
    counts[assignments[i]!]! += 1;
  }
  const means = sums.map((s, c) => (counts[c]! > 0 ? s / counts[c]! : 0));
  if (projection.mask) means[0] = 0;
  return means;
}

/** `values` on the layer's projection: pruned weights 0, shared weights their cluster's mean. */
export function project(values: Float32Array, projection: LayerProjection): Float32Array {
  const h = projection.hashed;
  if (h) {
    const slots = hashedKernelSlots(h);
    return expandHashed(hashedBucketMeans(values, slots, h.buckets), slots, new Float32Array(values.length));
  }
  const out = Float32Array.from(values);
  if (projection.assignments) {
    const means = clusterMeans(values, projection);
    for (let i = 0; i < out.length; i++) out[i] = means[projection.assignments[i]!]!;
  }
  if (projection.mask) for (let i = 0; i < out.length; i++) if (projection.mask[i] === 0) out[i] = 0;
  return out;
}

/** The gradient a projected weight gets: 0 for a pruned one, its cluster's summed gradient for a shared one. */
export function projectGradient(gradient: Float32Array, projection: LayerProjection): Float32Array {
  const h = projection.hashed;
  if (h) {
    // dL/dw[b] = sum of sign * dL/dW over the bucket's weights; each weight moves by sign * that.
    const slots = hashedKernelSlots(h);
    const sums = new Float64Array(h.buckets);
    for (let i = 0; i < gradient.length; i++) {
      const slot = slots[i]!;
      if (slot < 0) sums[~slot]! -= gradient[i]!;
      else sums[slot]! += gradient[i]!;
    }
    return expandHashed(Float32Array.from(sums), slots, new Float32Array(gradient.length));
  }
  const out = Float32Array.from(gradient);
  if (projection.assignments) {
    const sums = new Float64Array(256);
    for (let i = 0; i < gradient.length; i++) sums[projection.assignments[i]!]! += gradient[i]!;
    for (let i = 0; i < out.length; i++) out[i] = sums[projection.assignments[i]!]!;
  }
  if (projection.mask) for (let i = 0; i < out.length; i++) if (projection.mask[i] === 0) out[i] = 0;
  return out;
}

/** The gradients with those of the variables in `byVariable` (by variable name) replaced by what `f` makes
 * of them (undefined: kept as they are); the trainer disposes the new tensors (TrainHooks.gradients). */
export function mapGradients<T>(
  gradients: tf.NamedTensorMap,
  byVariable: ReadonlyMap<string, T>,
  f: (gradient: tf.Tensor, item: T) => Float32Array | undefined,
): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = { ...gradients };
  for (const [name, g] of Object.entries(gradients)) {
    const item = byVariable.get(name);
    if (item === undefined) continue;
    const values = f(g, item);
    if (values !== undefined) out[name] = tf.tensor(values, g.shape, 'float32');
  }
  return out;
}

/** The trainer hooks that keep `projections` in force while the model retrains. */
export function projectionHooks(projections: readonly LayerProjection[]): TrainHooks {
  let byVariable = new Map<string, LayerProjection>();
  const snap = (model: tf.LayersModel): void => {
    for (const p of projections) writeKernel(model, p.layer, project(readKernel(model, p.layer), p));
  };
  return {
    start(model) {
      byVariable = new Map(projections.map((p) => [kernelByLayer(model, p.layer).name, p]));
      snap(model);
    },
    gradients: (gradients) =>
      mapGradients(gradients, byVariable, (g, p) => projectGradient(g.dataSync() as Float32Array, p)),
    afterUpdate: snap,
  };
}
