// `node dist/bench/model-time.js MODEL.onnx [ROUNDS] [THREADS]`: one ONNX model (an NCHW image input, as
// PyTorch exports it) imported with `whittle import`'s code path, its fp32 package run at batch 1 on seeded
// random images; and when this build can quantize it, its int8 package (`whittle quantize`'s code path,
// calibrated on 32 such images). Prints one JSON line per format: the median over ROUNDS (default 21) of the
// milliseconds per run (each round a batch of runs lasting about 30 ms), wall and CPU (process.cpuUsage, which a
// machine shared with other jobs disturbs less), and the nodes left to the TypeScript executors. It imports
// only modules every build since the compile pass has, so a copy of its compiled file in another checkout's
// dist/bench/ times that build: alternating the two processes compares two builds on one machine
// (docs/benchmarks.md, "ConvNeXt-Tiny").
import { readFileSync } from 'node:fs';

import { type Package, readPackage } from '../agent/package/reader.js';
import { Model } from '../agent/runtime/model.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../optimize/package/writer.js';
import { quantizePackage } from '../optimize/quantize/ptq.js';
import { inPackageLayout, randomImages } from './conformance.js';
import { median } from './kernels.js';

const [file, roundsArg, threadsArg] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: node dist/bench/model-time.js MODEL.onnx [ROUNDS] [THREADS]');
const rounds = Number(roundsArg ?? 21);
const threads = Number(threadsArg ?? 1);

const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const fp32 = read(importOnnx(readFileSync(file), { source: file, modelId: 'model' }));
const input = fp32.manifest.tensors[fp32.manifest.inputs[0]!.tensor]!.shape;
const size = input[1] === 3 ? input[2]! : input[1]!;
const packages: [string, Package][] = [['fp32', fp32]];
try {
  const calibration = inPackageLayout(fp32, randomImages(32, size, 2), 32, size);
  packages.push(['int8', read(quantizePackage(fp32, { count: 32, data: calibration }).content)]);
} catch (error) {
  console.log(JSON.stringify({ format: 'int8', error: String((error as Error).message).slice(0, 160) }));
}
for (const [format, pkg] of packages) {
  const model = Model.fromPackage(pkg, { threads });
  const x = inPackageLayout(fp32, randomImages(1, size, 3), 1, size);
  const start = performance.now();
  let reps = 0;
  while (performance.now() - start < 30 || reps < 2) {
    model.run([x]);
    reps++;
  }
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const [t, c] = [performance.now(), cpuMs()];
    for (let i = 0; i < reps; i++) model.run([x]);
    wall.push((performance.now() - t) / reps);
    cpu.push((cpuMs() - c) / reps);
  }
  const typescript = model.execution.typescriptNodes.length;
  console.log(
    JSON.stringify({ format, threads, rounds, reps, wall_ms: median(wall), cpu_ms: median(cpu), typescript }),
  );
}
