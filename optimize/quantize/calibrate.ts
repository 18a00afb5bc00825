// Calibration for post-training quantization: run the fp32 package on the runtime over a set of inputs and
// record the range of every activation tensor. The runtime only hands back graph outputs, so the package's
// manifest is copied with every node output listed as a graph output; the memory planner then keeps each of
// them alive and Model.run returns a copy of each. Nothing here re-implements an operator.
import type { Manifest, ManifestNode } from '../../agent/package/manifest.js';
import type { Package } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
import { INT8_MAX, INT8_MIN } from '../../agent/runtime/number/saturation.js';
import { elements } from '../../agent/runtime/tensor.js';
import { WhittleError } from '../../native/whittle-error.js';
import type { ImageSet } from '../datasets/image-set.js';
import { imageInput, type ImageInputPreprocessing } from '../evaluate-package.js';

/** Inputs for the package's (single) input tensor, already preprocessed: [count][...input shape without
 * the batch dimension], as the fp32 model takes them. */
export interface CalibrationSet {
  count: number;
  data: Float32Array;
}

export interface TensorRange {
  min: number;
  max: number;
}

/** Quantization cannot proceed; `node` names the manifest node at fault when there is one. */
export class QuantizationError extends WhittleError {
  override readonly name = 'QuantizationError';
  readonly code = 'cannot-quantize';
  constructor(
    message: string,
    readonly node?: string,
  ) {
    super(node === undefined ? message : `node ${node}: ${message}`);
  }
}

/** Images per runtime call: large enough that per-call overhead vanishes, small enough for a device. */
const CALIBRATION_BATCH = 64;

/** How an activation's int8 range is chosen from what the calibration set shows (`whittle quantize
 * --calibration-method`):
 * - `minmax`: the observed minimum and maximum, so nothing saturates;
 * - `percentile`: the `CALIBRATION_PERCENTILE` percentile at each end, so rare outliers saturate and every
 *   other value gets finer steps;
 * - `mse`: the range that minimizes the mean squared error of quantizing the observed values (rounding inside
 *   the range, saturation outside), searched over a histogram of each tensor.
 * The graph input and the tensors the graph outputs come from (the logits a softmax reads) always keep min/max:
 * an image's own range is exact, and a clipped top logit would tie with the next. */
export const CALIBRATION_METHODS = ['minmax', 'percentile', 'mse'] as const;
export type CalibrationMethod = (typeof CALIBRATION_METHODS)[number];

/** The share of values a `percentile` range keeps inside at each end, in percent. */
export const CALIBRATION_PERCENTILE = 99.99;

/** Histogram bins over each tensor's min/max, for the percentile and mse methods. */
const HISTOGRAM_BINS = 2048;

/** The package as a model whose outputs are the tensors `watched` (by index), run as stored: every watched
 * tensor must stay what the package names, so nothing is fused away or moved to another layout. Model.run
 * returns a copy of each, in `watched`'s order. */
export function watchingModel(pkg: Package, watched: readonly number[], batch: number): Model {
  const { manifest } = pkg;
  const probe: Package = {
    ...pkg,
    manifest: {
      ...manifest,
      outputs: watched.map((t) => ({ name: manifest.tensors[t]!.name, tensor: t })),
    },
  };
  return Model.fromPackage(probe, { batch, compile: false });
}

/** Runs the package over the calibration set with every f32 node output (and the graph input) watched, and
 * hands `visit` each watched tensor's values for each batch (`length` of them belong to real inputs). */
function observeActivations(
  pkg: Package,
  calibration: CalibrationSet,
): (visit: (t: number, values: ArrayLike<number>, length: number) => void) => void {
  const { manifest } = pkg;
  if (manifest.inputs.length !== 1)
    throw new QuantizationError(`expected a package with one input, this one has ${manifest.inputs.length}`);
  if (!Number.isInteger(calibration.count) || calibration.count < 1)
    throw new QuantizationError(`the calibration set is empty (${calibration.count} inputs)`);
  const inputTensor = manifest.inputs[0]!.tensor;
  const perInput = elements(manifest.tensors[inputTensor]!.shape.slice(1));
  if (calibration.data.length !== calibration.count * perInput)
    throw new QuantizationError(
      `calibration data holds ${calibration.data.length} values, expected ${calibration.count} inputs of ` +
        `${perInput} (input "${manifest.inputs[0]!.name}")`,
    );
  const watched = manifest.nodes
    .flatMap((n) => n.outputs)
    .filter((t) => manifest.tensors[t]!.dtype === 'f32');
  const batch = Math.min(CALIBRATION_BATCH, calibration.count);
  const model = watchingModel(pkg, watched, batch);
  return (visit) => {
    const input = new Float32Array(batch * perInput);
    for (let start = 0; start < calibration.count; start += batch) {
      const n = Math.min(batch, calibration.count - start);
      input.set(calibration.data.subarray(start * perInput, (start + n) * perInput));
      // A short last batch is padded with copies of its first input; only the first n inputs are visited.
      for (let k = n; k < batch; k++) input.copyWithin(k * perInput, 0, perInput);
      visit(inputTensor, input, n * perInput);
      const results = model.run([input]);
      results.forEach((result, k) => visit(watched[k]!, result.data, (result.data.length / batch) * n));
    }
  };
}

/** Range of every activation over the calibration set, by tensor index: the graph input and every node
 * output, chosen by `method` (min/max by default). */
export function collectRanges(
  pkg: Package,
  calibration: CalibrationSet,
  method: CalibrationMethod = 'minmax',
): Map<number, TensorRange> {
  const { manifest } = pkg;
  const observe = observeActivations(pkg, calibration);
  const ranges = new Map<number, TensorRange>();
  observe((t, values, length) => {
    const range = ranges.get(t) ?? { min: Infinity, max: -Infinity };
    for (let i = 0; i < length; i++) {
      const v = values[i]!;
      if (v < range.min) range.min = v;
      if (v > range.max) range.max = v;
    }
    ranges.set(t, range);
  });
  for (const [t, range] of ranges) {
    if (!Number.isFinite(range.min) || !Number.isFinite(range.max))
      throw new QuantizationError(
        `tensor ${manifest.tensors[t]!.name} is not finite on the calibration set ([${range.min}, ${range.max}])`,
        manifest.nodes.find((n) => n.outputs.includes(t))?.name,
      );
  }
  if (method === 'minmax') return ranges;

  const exact = exactRangeTensors(manifest);
  const histograms = new Map<number, Float64Array>();
  for (const [t, range] of ranges)
    if (!exact.has(t) && range.max > range.min) histograms.set(t, new Float64Array(HISTOGRAM_BINS));
  observe((t, values, length) => {
    const bins = histograms.get(t);
    if (bins === undefined) return;
    const { min, max } = ranges.get(t)!;
    const perUnit = HISTOGRAM_BINS / (max - min);
    for (let i = 0; i < length; i++)
      bins[Math.min(HISTOGRAM_BINS - 1, Math.floor((values[i]! - min) * perUnit))]!++;
  });
  for (const [t, bins] of histograms) {
    const histogram = { ...ranges.get(t)!, bins };
    ranges.set(t, method === 'percentile' ? percentileRange(histogram) : mseRange(histogram));
  }
  return ranges;
}

/** `calibrated` (by tensor index) with the ranges `given` by tensor name in their place (quantization-aware
 * training's tracked ranges); a name the manifest does not have is refused. */
export function withRanges(
  manifest: Manifest,
  calibrated: Map<number, TensorRange>,
  given: ReadonlyMap<string, TensorRange> | undefined,
): Map<number, TensorRange> {
  for (const [name, range] of given ?? []) {
    const t = manifest.tensors.findIndex((tensor) => tensor.name === name);
    if (t < 0) throw new QuantizationError(`no tensor ${name} to give a range to`);
    calibrated.set(t, range);
  }
  return calibrated;
}

/** Ops that hand the logits on unchanged in rank or order: the tensor they read keeps min/max too. */
const LOGIT_PASSING_OPS = new Set(['softmax', 'reshape', 'identity']);

/** The tensors whose min/max is kept whatever the method: the graph input, the graph outputs, and the tensors
 * that reach an output through softmax / reshape / identity only (the logits). */
export function exactRangeTensors(manifest: Manifest): Set<number> {
  const exact = new Set<number>(manifest.inputs.map((i) => i.tensor));
  const producer = new Map<number, ManifestNode>();
  for (const node of manifest.nodes) for (const o of node.outputs) producer.set(o, node);
  const pending = manifest.outputs.map((o) => o.tensor);
  while (pending.length > 0) {
    const t = pending.pop()!;
    if (exact.has(t)) continue;
    exact.add(t);
    const node = producer.get(t);
    if (node !== undefined && LOGIT_PASSING_OPS.has(node.op)) pending.push(node.inputs[0]!);
  }
  return exact;
}

/** Value counts over [min, max] in equal bins. */
interface Histogram extends TensorRange {
  bins: Float64Array;
}

/** The range that leaves out at most (100 - CALIBRATION_PERCENTILE) % of the values at each end, at bin
 * edges (the observed extreme when the tail is a single bin). */
function percentileRange({ min, max, bins }: Histogram): TensorRange {
  const total = bins.reduce((s, c) => s + c, 0);
  const tail = (total * (100 - CALIBRATION_PERCENTILE)) / 100;
  const width = (max - min) / bins.length;
  let lo = 0;
  for (let below = 0; lo < bins.length - 1 && below + bins[lo]! <= tail; lo++) below += bins[lo]!;
  let hi = bins.length - 1;
  for (let above = 0; hi > lo && above + bins[hi]! <= tail; hi--) above += bins[hi]!;
  return {
    min: lo === 0 ? min : min + lo * width,
    max: hi === bins.length - 1 ? max : min + (hi + 1) * width,
  };
}

/** Candidate range ends per side searched by the mse method (bin edges, evenly spaced). */
const MSE_CANDIDATES = 128;

/** The range [lo, hi] over bin edges (0 included, as the int8 parameters include it) with the least expected
 * squared quantization error of the histogram's values: each value inside is off by a rounding error of
 * step² / 12 on average (step = (hi - lo) / 255, the int8 steps), each value outside by its distance to the nearer end. Prefix
 * sums of count, count·v and count·v² (v a bin's centre) make each candidate O(1). */
function mseRange({ min, max, bins }: Histogram): TensorRange {
  const n = bins.length;
  const width = (max - min) / n;
  const [c0, c1, c2] = [new Float64Array(n + 1), new Float64Array(n + 1), new Float64Array(n + 1)];
  for (let i = 0; i < n; i++) {
    const v = min + (i + 0.5) * width;
    c0[i + 1] = c0[i]! + bins[i]!;
    c1[i + 1] = c1[i]! + bins[i]! * v;
    c2[i + 1] = c2[i]! + bins[i]! * v * v;
  }
  const edge = (i: number): number => min + i * width;
  // Edges at or below 0 for the low end, at or above 0 for the high end (the range always holds 0).
  const zero = Math.min(n, Math.max(0, Math.round(-min / width)));
  const candidates = (from: number, to: number): number[] => {
    const count = Math.min(MSE_CANDIDATES, to - from + 1);
    return Array.from({ length: count }, (_, k) =>
      count === 1 ? from : from + Math.round((k * (to - from)) / (count - 1)),
    );
  };
  let best = { error: Infinity, lo: 0, hi: n };
  for (const i of candidates(0, zero))
    for (const j of candidates(Math.max(zero, i + 1), n)) {
      const [lo, hi] = [Math.min(edge(i), 0), Math.max(edge(j), 0)];
      const step = (hi - lo) / (INT8_MAX - INT8_MIN);
      const below = lo * lo * c0[i]! - 2 * lo * c1[i]! + c2[i]!;
      const above = hi * hi * (c0[n]! - c0[j]!) - 2 * hi * (c1[n]! - c1[j]!) + (c2[n]! - c2[j]!);
      const error = below + above + ((c0[j]! - c0[i]!) * step * step) / 12;
      if (error < best.error) best = { error, lo: i, hi: j };
    }
  return { min: best.lo === 0 ? min : edge(best.lo), max: best.hi === n ? max : edge(best.hi) };
}

/** `count` images spread evenly over `set` (every (set.count / count)-th), normalized and laid out as the
 * model takes them (packageImageInput says how): a calibration set that sees every part of a set sorted by
 * class, and the same one every run. */
export function calibrationFromImages(
  set: ImageSet,
  count: number,
  preprocessing?: ImageInputPreprocessing,
): CalibrationSet {
  const n = Math.min(count, set.count);
  if (!Number.isInteger(n) || n < 1)
    throw new QuantizationError(`the calibration set is empty (${count} of ${set.count} images asked for)`);
  const per = set.height * set.width * set.channels;
  const data = new Float32Array(n * per);
  for (let k = 0; k < n; k++) {
    const i = Math.floor((k * set.count) / n);
    data.set(imageInput(set, i, 1, preprocessing), k * per);
  }
  return { count: n, data };
}
