// `whittle compress MODEL --dataset DATA --pipeline PIPELINE --out PKG [--json]`: runs a compression
// pipeline (optimize/compress/) on a `whittle train` directory (or, for methods that do not retrain, an fp32
// package) and writes the compressed package and its measured report (a terminal table, or --json). Each
// retraining phase prints its progress with an ETA as `whittle train` does; Ctrl-C saves a checkpoint that
// --resume continues from (same --out / --run). TensorFlow.js loads only when this command runs.
import { parseArgs } from 'node:util';

import { CommandUsageError } from './command-error.js';
import { checkSigningOptions, SIGNING_OPTIONS, signingKeyOption } from './signing-key.js';
import { abortOnInterrupt, numberOption, progressPrinter } from './train.js';

export const COMPRESS_HELP = `  compress MODEL --dataset DATA --pipeline PIPELINE --out PKG  compress a trained model (a whittle train
                        directory, or an fp32 package for int8 / fixed16 / fixed8); PIPELINE a preset
                        (deep-compression, filter-prune, hashednets, int8, fixed16, fixed8, int8-qat,
                        fixed16-ft, fixed8-ft, binaryconnect, ternary, xnor, distill) or a JSON spec file of
                        steps; --run DIR
                        (OUT.run), --resume, --limit N training images, --test-images N, --batch-size N,
                        --latency-runs N (200), --target-ratio X, --max-accuracy-drop POINTS, --key KEY |
                        --bundled-key, --json
`;

const USAGE =
  'usage: whittle compress MODEL --dataset DATA --pipeline PRESET|SPEC.json --out PKG [--run DIR] [--resume] ' +
  '[--limit N] [--test-images N] [--batch-size N] [--seed N] [--latency-runs N] [--target-ratio X] ' +
  '[--max-accuracy-drop POINTS] [--key KEY | --bundled-key] [--json]';

export async function compressCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      dataset: { type: 'string' },
      pipeline: { type: 'string' },
      out: { type: 'string', short: 'o' },
      run: { type: 'string' },
      resume: { type: 'boolean' },
      limit: { type: 'string' },
      'test-images': { type: 'string' },
      'batch-size': { type: 'string' },
      seed: { type: 'string' },
      'latency-runs': { type: 'string' },
      'target-ratio': { type: 'string' },
      'max-accuracy-drop': { type: 'string' },
      ...SIGNING_OPTIONS,
      json: { type: 'boolean' },
    },
  });
  const model = positionals[0];
  if (model === undefined || positionals.length > 1)
    throw new CommandUsageError(`expected one model to compress; ${USAGE}`);
  for (const flag of ['dataset', 'pipeline', 'out'] as const)
    if (values[flag] === undefined) throw new CommandUsageError(`--${flag} is required; ${USAGE}`);
  checkSigningOptions(values);
  const trainLimit = numberOption(values.limit, '--limit', true, 1);
  const testImages = numberOption(values['test-images'], '--test-images', true, 1);
  const batchSize = numberOption(values['batch-size'], '--batch-size', true, 1);
  const seed = numberOption(values.seed, '--seed', true, 0);
  const latencyRuns = numberOption(values['latency-runs'], '--latency-runs', true, 0);
  const targetRatio = numberOption(values['target-ratio'], '--target-ratio', false, 0);
  const maxAccuracyDrop = numberOption(values['max-accuracy-drop'], '--max-accuracy-drop', false, 0);

  const { runCompress, formatReport } = await import('../../optimize/compress/runner.js');
  const { selectTrainingBackend } = await import('../../optimize/train/backend-select.js');
  const choice = await selectTrainingBackend('auto');
  for (const note of choice.notes) console.error(`whittle compress: ${note}`);
  const { key, created } = signingKeyOption(values);
  if (created) console.error(`whittle compress: created the package signing key ${created}`);

  const controller = new AbortController();
  const stopListening = abortOnInterrupt('whittle compress', controller);
  const progress = progressPrinter();
  const tty = progress.tty;
  try {
    const result = await runCompress({
      model,
      dataset: values.dataset!,
      pipeline: values.pipeline!,
      out: values.out!,
      ...(values.run !== undefined ? { runDir: values.run } : {}),
      resume: values.resume === true,
      key,
      ...(trainLimit !== undefined ? { trainLimit } : {}),
      ...(testImages !== undefined ? { testImages } : {}),
      ...(batchSize !== undefined ? { batchSize } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(latencyRuns !== undefined ? { latencyRuns } : {}),
      ...(targetRatio !== undefined ? { targetRatio } : {}),
      ...(maxAccuracyDrop !== undefined ? { maxAccuracyDrop } : {}),
      signal: controller.signal,
      onProgress: (phase, p) => progress.print(p, phase),
      onStep: (e) => {
        progress.restart();
        process.stderr.write(
          `${tty ? '\r\x1b[K' : ''}step ${e.step} ${e.method}: ${e.bytes} bytes (${e.compression_ratio.toFixed(1)}x), ` +
            `accuracy ${(100 * e.accuracy).toFixed(2)}%` +
            (e.latency_ms === null ? '' : `, ${e.latency_ms.toFixed(3)} ms`) +
            '\n',
        );
      },
    });
    if (result.interrupted) {
      console.error(
        `whittle compress: checkpoint saved in ${result.runDir}; continue with the same command and --resume`,
      );
      return 130;
    }
    if (values.json) console.log(JSON.stringify(result.report));
    else console.log(formatReport(result.report));
    return result.report.targets.every((t) => t.met) ? 0 : 3;
  } finally {
    if (tty) process.stderr.write('\r\x1b[K');
    stopListening();
  }
}
