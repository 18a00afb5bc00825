// Calibration for post-training quantization: run the fp32 package on the runtime over a set of inputs and
// record the range of every activation tensor. The runtime only hands back graph outputs, so the package's
// manifest is copied with every node output listed as a graph output; the memory planner then keeps each of
// them alive and Model.run returns a copy of each. Nothing here re-implements an operator.
import type { Package } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
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

/** Min/max of the graph input and of every node output over the calibration set, by tensor index. */
export function collectRanges(pkg: Package, calibration: CalibrationSet): Map<number, TensorRange> {
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
  const probe: Package = {
    ...pkg,
    manifest: {
      ...manifest,
      outputs: watched.map((t) => ({ name: manifest.tensors[t]!.name, tensor: t })),
    },
  };
  const batch = Math.min(CALIBRATION_BATCH, calibration.count);
  // As stored: every node output is watched, so nothing may be fused away or moved to another layout.
  const model = Model.fromPackage(probe, { batch, compile: false });
  const ranges = new Map<number, TensorRange>();
  const widen = (t: number, values: ArrayLike<number>, length: number): void => {
    const range = ranges.get(t) ?? { min: Infinity, max: -Infinity };
    for (let i = 0; i < length; i++) {
      const v = values[i]!;
      if (v < range.min) range.min = v;
      if (v > range.max) range.max = v;
    }
    ranges.set(t, range);
  };
  const input = new Float32Array(batch * perInput);
  for (let start = 0; start < calibration.count; start += batch) {
    const n = Math.min(batch, calibration.count - start);
    input.set(calibration.data.subarray(start * perInput, (start + n) * perInput));
    // A short last batch is padded with copies of its first input: a copy cannot move any min or max.
    for (let k = n; k < batch; k++) input.copyWithin(k * perInput, 0, perInput);
    widen(inputTensor, input, n * perInput);
    const results = model.run([input]);
    results.forEach((result, k) => widen(watched[k]!, result.data, (result.data.length / batch) * n));
  }
  for (const [t, range] of ranges) {
    if (!Number.isFinite(range.min) || !Number.isFinite(range.max))
      throw new QuantizationError(
        `tensor ${manifest.tensors[t]!.name} is not finite on the calibration set ([${range.min}, ${range.max}])`,
        manifest.nodes.find((n) => n.outputs.includes(t))?.name,
      );
  }
  return ranges;
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
