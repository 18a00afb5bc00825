// `npm run bench -- compile-ab [--json]`: whole models before / after the compile pass. Each zoo model of
// `bench models` is exported to ONNX with an NCHW input (as from PyTorch) and imported without the pass
// (layout transposes, ReLUs unfused: what `whittle import` stored before) and with it; fp32 and int8 (post-
// training quantized from each); and the old package compiled at load (its NCHW input kept, so one
// transpose stays at the input). Timed as `bench kernels` times: contenders calibrated to batches of calls,
// rotated each round, medians; ratios are before / after (above 1, the pass made it faster).
import { Model } from '../agent/runtime/model.js';
import { transpose } from '../agent/runtime/reference-ops/layout.js';
import { exportOnnx } from '../optimize/onnx/export.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { withNchwInput } from '../optimize/onnx/nchw-input.js';
import { SeededRandom } from '../optimize/seeded-random.js';
import { benchOptions, calibrate, type Contender, jsContender, median, timeBatch } from './kernels.js';
import { BENCH_MODELS, benchInt8, benchSource, read, ZOO_BENCH_OPTIONS, zooBenchOptions } from './models.js';

export interface CompileAbRow {
  model: string;
  format: 'fp32' | 'int8';
  /** Median milliseconds per run: imported without the pass, with it, and the old package compiled at load. */
  before_ms: number;
  after_ms: number;
  loaded_ms: number;
  /** before_ms / after_ms and before_ms / loaded_ms. */
  ratio: number;
  ratio_loaded: number;
  transposes_before: number;
  transposes_after: number;
}

export interface CompileAbOptions {
  models: string[];
  rounds: number;
  batchMs: number;
  seed: number;
  onProgress?: (line: string) => void;
}

export async function runCompileAb(options: CompileAbOptions): Promise<{ results: CompileAbRow[] }> {
  const results: CompileAbRow[] = [];
  for (const name of options.models) {
    const source = await benchSource(name, options.seed);
    const onnxBytes = withNchwInput(exportOnnx(source));
    const imported = (compile: boolean) =>
      read(importOnnx(onnxBytes, { source: `${name}.onnx`, modelId: name, compile }));
    const [stored, compiled] = [imported(false), imported(true)];
    const [n, c, h, w] = stored.manifest.tensors[stored.manifest.inputs[0]!.tensor]!.shape;
    const random = new SeededRandom(options.seed + 2);
    const nchw = Float32Array.from({ length: n! * c! * h! * w! }, () => random.next());
    const nhwc = new Float32Array(nchw.length);
    transpose([n!, c!, h!, w!], [0, 2, 3, 1], nchw, nhwc);
    const formats = [
      ['fp32', stored, compiled],
      ['int8', benchInt8(stored, options.seed), benchInt8(compiled, options.seed)],
    ] as const;
    for (const [format, before, after] of formats) {
      const models = {
        before: Model.fromPackage(before, { compile: false }),
        after: Model.fromPackage(after),
        loaded: Model.fromPackage(before),
      };
      const contenders: Contender[] = [
        jsContender('before', () => void models.before.run([nchw])),
        jsContender('after', () => void models.after.run([nhwc])),
        jsContender('loaded', () => void models.loaded.run([nchw])),
      ];
      for (const contender of contenders) await calibrate(contender, options.batchMs);
      for (let round = 0; round < options.rounds; round++)
        for (let k = 0; k < contenders.length; k++) {
          const contender = contenders[(round + k) % contenders.length]!;
          contender.samplesUs.push(await timeBatch(contender));
        }
      const ms = (id: string): number => median(contenders.find((x) => x.id === id)!.samplesUs) / 1000;
      const transposes = (model: Model): number =>
        model.manifest.nodes.filter((node) => node.op === 'transpose').length;
      results.push({
        model: name,
        format,
        before_ms: ms('before'),
        after_ms: ms('after'),
        loaded_ms: ms('loaded'),
        ratio: ms('before') / ms('after'),
        ratio_loaded: ms('before') / ms('loaded'),
        transposes_before: transposes(models.before),
        transposes_after: transposes(models.after),
      });
      options.onProgress?.(`${name} ${format}: done`);
    }
  }
  return { results };
}

export function formatCompileAbTable(report: { results: CompileAbRow[] }): string {
  const header = 'model          format   before ms  after ms  ratio  loaded ms  ratio  transposes';
  const lines = report.results.map(
    (r) =>
      `${r.model.padEnd(14)} ${r.format.padEnd(7)} ${r.before_ms.toFixed(3).padStart(10)} ` +
      `${r.after_ms.toFixed(3).padStart(9)} ${r.ratio.toFixed(2).padStart(6)} ${r.loaded_ms.toFixed(3).padStart(10)} ` +
      `${r.ratio_loaded.toFixed(2).padStart(6)}  ${r.transposes_before} -> ${r.transposes_after}`,
  );
  return [header, ...lines].join('\n');
}

export const COMPILE_AB_HELP = `compile-ab options: --models ${Object.keys(BENCH_MODELS).join(',')} (all by default),
  --rounds 15, --batch-ms 20, --seed 1, --json`;

/** `bench compile-ab [--json] [--models a,b] [--rounds n] [--batch-ms n] [--seed n]`. Returns the exit code. */
export async function compileAbCommand(args: string[], machine: string): Promise<number> {
  const values = benchOptions(args, ZOO_BENCH_OPTIONS, COMPILE_AB_HELP);
  if (values === undefined) return 0;
  const options: CompileAbOptions = zooBenchOptions(values, 15);
  process.stderr.write(`compile-ab: before / after the compile pass, ${options.rounds} rounds\n`);
  process.stderr.write(`machine: ${machine}\n`);
  const report = await runCompileAb(options);
  console.log(values.json ? JSON.stringify(report, null, 2) : formatCompileAbTable(report));
  return 0;
}
