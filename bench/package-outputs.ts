// What a package computes for a batch of inputs, in the two forms bit-exactness is judged on: the top-1
// class of the package as shipped (the agent's answer) and the raw int8 scores of its last integer layer
// (the tensor the final dequantize reads), before any floating point. Runs on this machine, or bundled
// into an emulated ARM device by bench/arm-bit-exact.ts (package-outputs-main.ts is that entry).
import type { Package } from '../agent/package/reader.js';
import { Model } from '../agent/runtime/model.js';
import { cpuFeatures } from '../native/index.js';

export interface PackageOutputs {
  /** process.arch and the addon's kernel path that computed them. */
  arch: string;
  isa: string;
  /** [images] predicted class (the first of equal top scores). */
  top1: Uint8Array;
  /** [images][classes] raw int8 scores of the last integer layer. */
  raw: Int8Array;
  /** Wall time of both passes, ms. */
  ms: number;
}

/** The package with its graph cut after the last int8 layer: that layer's output becomes the graph's. */
export function int8ScoresOf(pkg: Package): Package {
  const nodes = pkg.manifest.nodes;
  const last = nodes.map((n) => n.op).lastIndexOf('dequantize_linear');
  const scores = last >= 0 ? nodes[last]!.inputs[0] : undefined;
  if (scores === undefined || pkg.manifest.tensors[scores]?.dtype !== 'i8')
    throw new RangeError(`package ${pkg.manifest.model.id} has no int8 scores dequantized at its end`);
  const manifest = {
    ...pkg.manifest,
    nodes: nodes.slice(0, last),
    outputs: [{ ...pkg.manifest.outputs[0]!, name: 'int8-scores', tensor: scores }],
  };
  return { ...pkg, manifest };
}

/** Runs `pkg` on `count` images of `input` (the model's fp32 input, [count][...input shape]). */
export function packageOutputs(pkg: Package, input: Float32Array, count: number, batch = 50): PackageOutputs {
  const started = performance.now();
  const whole = Model.fromPackage(pkg, { batch });
  const cut = Model.fromPackage(int8ScoresOf(pkg), { batch });
  const per = input.length / count;
  const top1 = new Uint8Array(count);
  let raw = new Int8Array(0);
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    // A short last batch is zero-padded; the padding rows are not read.
    const x = new Float32Array(batch * per);
    x.set(input.subarray(start * per, (start + n) * per));
    const probabilities = whole.run([x])[0]!.data;
    const scores = cut.run([x])[0]!.data;
    const classes = scores.length / batch;
    if (raw.length === 0) raw = new Int8Array(count * classes);
    raw.set(Int8Array.from(scores.subarray(0, n * classes)), start * classes);
    for (let k = 0; k < n; k++) {
      let best = 0;
      for (let c = 1; c < classes; c++)
        if (probabilities[k * classes + c]! > probabilities[k * classes + best]!) best = c;
      top1[start + k] = best;
    }
  }
  return { arch: process.arch, isa: cpuFeatures().selected, top1, raw, ms: performance.now() - started };
}
