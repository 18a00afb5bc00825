// Before / after the compile pass, per model: the zoo model exported to ONNX (NCHW input, as from PyTorch)
// and imported without the pass (layout transposes, ReLUs unfused: what `whittle import` stored before) and
// with it; fp32 and int8 (post-training quantized from each); and the old package compiled at load. Runs
// alternate in blocks, in one process, and the medians' ratios are printed (before / after: > 1 is faster).
//   node dist/bench/compile-ab.js [--rounds N] [--models lenet5,mobilenet,vgg-small]
import { parseArgs } from 'node:util';

import type { Package } from '../agent/package/reader.js';
import { Model } from '../agent/runtime/model.js';
import {
  importBoth,
  nchwToNhwc,
  quantized,
  randomImages,
  ZOO_CASES,
  zooOnnx,
} from '../test/agent/runtime/compile-fixtures.js';

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

/** Milliseconds per run of `model` on `input`, `runs` runs timed together. */
function block(model: Model, input: Float32Array, runs: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) model.run([input]);
  return Number(process.hrtime.bigint() - start) / 1e6 / runs;
}

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    models: { type: 'string', default: 'lenet5,mobilenet,vgg-small' },
  },
});
const rounds = Number(values.rounds);
const results = [];
for (const name of values.models.split(',')) {
  const zoo = ZOO_CASES.find((z) => z.name === name);
  if (zoo === undefined) throw new Error(`unknown model ${name}`);
  const { stored, compiled } = importBoth(await zooOnnx(zoo), `${name}.onnx`);
  const [, c, h, w] = stored.manifest.tensors[stored.manifest.inputs[0]!.tensor]!.shape;
  const nchw = randomImages(c! * h! * w!, 1, 3);
  const nhwc = nchwToNhwc(nchw, 1, c!, h!, w!);
  const pairs: [string, Package, Package][] = [
    ['f32', stored, compiled],
    ['int8', quantized(stored), quantized(compiled)],
  ];
  for (const [format, before, after] of pairs) {
    const a = Model.fromPackage(before, { compile: false });
    const b = Model.fromPackage(after);
    // The old package compiled at load: NCHW input kept, so one transpose stays at the input.
    const l = Model.fromPackage(before);
    // Runs per block: about 20 ms of work.
    const runs = Math.max(5, Math.round(20 / Math.max(block(a, nchw, 3), 0.01)));
    const timesA: number[] = [];
    const timesB: number[] = [];
    const timesL: number[] = [];
    for (let r = 0; r < rounds; r++) {
      timesA.push(block(a, nchw, runs));
      timesB.push(block(b, nhwc, runs));
      timesL.push(block(l, nchw, runs));
    }
    const [beforeMs, afterMs, loadedMs] = [median(timesA), median(timesB), median(timesL)];
    results.push({
      model: name,
      format,
      before_ms: Number(beforeMs.toFixed(4)),
      after_ms: Number(afterMs.toFixed(4)),
      ratio: Number((beforeMs / afterMs).toFixed(2)),
      loaded_ms: Number(loadedMs.toFixed(4)),
      ratio_loaded: Number((beforeMs / loadedMs).toFixed(2)),
      transposes_before: a.manifest.nodes.filter((n) => n.op === 'transpose').length,
      transposes_after: b.manifest.nodes.filter((n) => n.op === 'transpose').length,
    });
  }
}
console.log(JSON.stringify({ results }, null, 1));
