// `node dist/bench/onnx-file-time.js FILE.onnx SIZE [ROUNDS] [THREADS]`: one ONNX image classifier (input
// [1, 3, SIZE, SIZE]) as `whittle import` makes its fp32 package and `whittle quantize` its int8 one
// (calibrated on 8 seeded random images, bench/conformance.ts randomImages), each timed with Model.run at
// batch 1 (outputs copied out: what a user pays), and ONNX Runtime's session.run of the same file (fp32, as
// `bench models` opens it). Each contender is warmed up and calibrated to batches of calls lasting about
// 200 ms; every round times one batch of each, the order rotated; the figures are medians over ROUNDS rounds
// (default 7) on THREADS threads (default 1). Prints one JSON line: the ISA, the threads, milliseconds per run
// and each package's TypeScript nodes (those not on the native plan).
//
// Made for A/B runs of two builds (issue 14's DenseNet / Inception ops): the compiled script has no imports
// outside agent/, optimize/ and bench/conformance, so it can be copied into another build's dist/bench/ and
// run there; alternate the two builds' processes, at least three times each (the A/B section of
// docs/benchmarks.md shows the loop).
import { readFileSync } from 'node:fs';

import * as ort from 'onnxruntime-node';

import { Model } from '../agent/runtime/model.js';
import { activeIsa } from '../native/index.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { quantizePackage } from '../optimize/quantize/ptq.js';
import { inPackageLayout, randomImages } from './conformance.js';
import { read } from './models.js';
import { ortSessionOptions } from './onnx-layers.js';

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
const image = randomImages(1, size, 95);
const input = inPackageLayout(fp32, image, 1, size);

const session = await ort.InferenceSession.create(readFileSync(file), ortSessionOptions(threads));
const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', image, [1, 3, size, size]) };

/** Each contender: `reps` calls, milliseconds per call. */
type Timed = [id: string, time: (reps: number) => Promise<number>];
const modelTime =
  (model: Model) =>
  (reps: number): Promise<number> => {
    const start = performance.now();
    for (let i = 0; i < reps; i++) model.run([input]);
    return Promise.resolve((performance.now() - start) / reps);
  };
const models = [Model.fromPackage(fp32, { threads }), Model.fromPackage(int8, { threads })] as const;
const contenders: Timed[] = [
  ['fp32', modelTime(models[0])],
  ['int8', modelTime(models[1])],
  [
    'ort_fp32',
    async (reps) => {
      const start = performance.now();
      for (let i = 0; i < reps; i++) await session.run(feeds);
      return (performance.now() - start) / reps;
    },
  ],
];

const reps: number[] = [];
for (const [, time] of contenders) {
  await time(3);
  reps.push(Math.max(1, Math.round(200 / (await time(3)))));
}
const samples: number[][] = contenders.map(() => []);
for (let r = 0; r < rounds; r++) {
  // Rotate which goes first, so a drift within a round weighs on each alike.
  for (let j = 0; j < contenders.length; j++) {
    const k = (r + j) % contenders.length;
    samples[k]!.push(await contenders[k]![1](reps[k]!));
  }
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
    ...Object.fromEntries(contenders.map(([id], k) => [`${id}_ms`, Number(median(samples[k]!).toFixed(3))])),
    fp32_typescript_nodes: models[0].execution.typescriptNodes.length,
    int8_typescript_nodes: models[1].execution.typescriptNodes.length,
  }),
);
