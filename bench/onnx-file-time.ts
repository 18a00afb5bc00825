// `node dist/bench/onnx-file-time.js FILE.onnx SIZE [ROUNDS] [THREADS]`: one ONNX image classifier (input
// [1, 3, SIZE, SIZE]) as `whittle import` makes its fp32 package and `whittle quantize` its int8 one
// (calibrated on 8 seeded random images, bench/conformance.ts randomImages), each timed with Model.run at
// batch 1 (outputs copied out: what a user pays). Each package is warmed up and calibrated to batches of
// calls lasting about 200 ms; every round times one batch of each, fp32 and int8 alternated; the figures are
// medians over ROUNDS rounds (default 7) on THREADS threads (default 1). Prints one JSON line: the ISA, the
// threads, each package's TypeScript nodes (those not on the native plan) and milliseconds per run.
//
// Made for A/B runs of two builds (issue 14's DenseNet / Inception ops): the compiled script has no imports
// outside agent/, optimize/ and bench/conformance, so it can be copied into another build's dist/bench/ and
// run there; alternate the two builds' processes, at least three times each (the A/B section of
// docs/benchmarks.md shows the loop).
import { readFileSync } from 'node:fs';

import { Model } from '../agent/runtime/model.js';
import { activeIsa } from '../native/index.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { quantizePackage } from '../optimize/quantize/ptq.js';
import { inPackageLayout, randomImages } from './conformance.js';
import { read } from './models.js';

const [file, sizeArg, roundsArg, threadsArg] = process.argv.slice(2);
if (file === undefined || sizeArg === undefined) {
  console.error('usage: node dist/bench/onnx-file-time.js FILE.onnx SIZE [ROUNDS] [THREADS]');
  process.exit(2);
}
const size = Number(sizeArg);
const rounds = Number(roundsArg ?? 7);
const threads = Number(threadsArg ?? 1);

const fp32 = read(importOnnx(readFileSync(file), { source: file, modelId: 'bench' }));
const calibration = inPackageLayout(fp32, randomImages(8, size, 90), 8, size);
const int8 = read(quantizePackage(fp32, { count: 8, data: calibration }).content);
const input = inPackageLayout(fp32, randomImages(1, size, 95), 1, size);

const contenders = [
  ['fp32', Model.fromPackage(fp32, { threads })],
  ['int8', Model.fromPackage(int8, { threads })],
] as const;

/** Milliseconds per call of `reps` calls. */
function timeCalls(model: Model, reps: number): number {
  const start = performance.now();
  for (let i = 0; i < reps; i++) model.run([input]);
  return (performance.now() - start) / reps;
}

const reps = contenders.map(([, model]) => {
  for (let i = 0; i < 3; i++) model.run([input]);
  return Math.max(1, Math.round(200 / timeCalls(model, 3)));
});
const samples: number[][] = contenders.map(() => []);
for (let r = 0; r < rounds; r++) {
  // Alternate which goes first, so a drift within a round weighs on both alike.
  const order = r % 2 === 0 ? [0, 1] : [1, 0];
  for (const k of order) samples[k]!.push(timeCalls(contenders[k]![1], reps[k]!));
}
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
console.log(
  JSON.stringify({
    file,
    isa: activeIsa(),
    threads,
    rounds,
    ...Object.fromEntries(
      contenders.flatMap(([format, model], k) => [
        [`${format}_ms`, Number(median(samples[k]!).toFixed(3))],
        [`${format}_typescript_nodes`, model.execution.typescriptNodes.length],
      ]),
    ),
  }),
);
