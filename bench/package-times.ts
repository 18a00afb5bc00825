// `node dist/bench/package-times.js FILE.onnx...`: each ONNX file imported (`whittle import`'s code path) and
// quantized to int8 (`whittle quantize`'s, on 4 seeded random images), then the whole fp32 and int8 packages
// timed on one thread: Model.run on one seeded image, 3 warm-up calls, then calls for about 2 s, the median.
// Prints the machine, the kernel path, the commit and one JSON line per file (with how many steps of each
// package run on the TypeScript reference). To compare two builds, run the same script from each build's dist/
// (copy the compiled file into an older one: it uses only long-standing modules), alternating, as
// docs/benchmarks.md's "Native resize" section did.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { readPackage } from '../agent/package/reader.js';
import { Model } from '../agent/runtime/model.js';
import { activeIsa } from '../native/index.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../optimize/package/writer.js';
import { quantizePackage } from '../optimize/quantize/ptq.js';
import { inPackageLayout, randomImages } from './conformance.js';

const read = (content: PackageContent) =>
  readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Median milliseconds of model.run([input]) over about 2 s (at least 5 calls) after 3 warm-up calls. */
function time(model: Model, input: Float32Array): number {
  for (let i = 0; i < 3; i++) model.run([input]);
  const times: number[] = [];
  const end = performance.now() + 2000;
  while (performance.now() < end || times.length < 5) {
    const start = performance.now();
    model.run([input]);
    times.push(performance.now() - start);
  }
  return median(times);
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: dirname(fileURLToPath(import.meta.url)),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown (not a checkout)';
  }
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node dist/bench/package-times.js FILE.onnx...');
  process.exit(2);
}
console.log(
  `# ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} threads), ${process.platform}/${process.arch}, node ${process.version}, isa ${activeIsa()}, 1 thread, commit ${commit()}, ${fileURLToPath(import.meta.url)}`,
);
for (const file of files) {
  const fp32 = read(importOnnx(readFileSync(file), { source: file, modelId: 'bench' }));
  const shape = fp32.manifest.tensors[fp32.manifest.inputs[0]!.tensor]!.shape;
  const size = shape[1] === 3 ? shape[2]! : shape[1]!;
  const input = inPackageLayout(fp32, randomImages(1, size, 3), 1, size);
  const calibration = inPackageLayout(fp32, randomImages(4, size, 9), 4, size);
  const int8 = read(quantizePackage(fp32, { count: 4, data: calibration }).content);
  const f = Model.fromPackage(fp32, { threads: 1 });
  const q = Model.fromPackage(int8, { threads: 1 });
  console.log(
    JSON.stringify({
      model: file.split('/').pop(),
      fp32_ms: Number(time(f, input).toFixed(3)),
      int8_ms: Number(time(q, input).toFixed(3)),
      typescript_steps_fp32: f.execution.typescriptNodes.length,
      typescript_steps_int8: q.execution.typescriptNodes.length,
    }),
  );
}
