// `whittle optimize (--device ID | --profile FILE | --class NAME) --dataset DATA (--model ZOO|MODEL_DIR|PKG |
// --search) --latency-ms X --ram-kb Y --size-kb Z --out DIR [--deploy] [--json]`: the model made to fit the
// device's budgets, each step kept only where it pays there (optimize/plan/), verified end to end, written
// to OUT/model.whittle with its report (a terminal table, or --json); with --device, the fp32 baseline and
// the final package are then timed on the device itself, and each kept step with and without it (a step the
// device runs faster without is dropped: ledger reason slower-on-device), report.device_measured the last
// figures; a device that times the final package slower than the baseline exits 3, as an unmet budget; with --deploy (and --device) deployed
// through the signed deployment of `whittle deploy`. Ctrl-C stops between layers (or saves the training
// checkpoint of a zoo model); --resume continues. Exit 0 when every budget is met, 3 when not.
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { BUDGET_OPTIONS, parseBudgets } from './budgets.js';
import { CommandUsageError } from './command-error.js';
import { deployCommand } from './deploy.js';
import { deviceVerifier, resolveDeviceTarget, TARGET_OPTIONS } from './device-target.js';
import { checkSigningOptions, SIGNING_OPTIONS, signingKeyOption } from './signing-key.js';
import { abortOnInterrupt, numberOption, progressPrinter } from './train.js';

export const OPTIMIZE_HELP = `  optimize (--device ID | --profile FILE | --class NAME) --dataset DATA (--model ZOO|DIR|PKG | --search)
                        --latency-ms X --ram-kb Y --size-kb Z --out DIR  fit a model to a device's budgets
                        (--search: from the architecture whittle nas finds under them):
                        per-layer formats and pruning kept only where they pay (measured), verified end to end;
                        --max-accuracy-drop P (top-1 points the compression may lose; no limit when absent),
                        --deploy (with --device), --force LAYER=CHOICE,..., --images N (500), --epochs N,
                        --limit N, --runs N, --resume, --key KEY | --bundled-key, --json
`;

const USAGE =
  'usage: whittle optimize (--device ID | --profile FILE | --class NAME) --dataset DATA (--model ZOO|DIR|PKG | ' +
  '--search) [--latency-ms X] [--ram-kb Y] [--size-kb Z] [--max-accuracy-drop P] --out DIR [--deploy] [--force LAYER=CHOICE,...] ' +
  '[--images N] [--epochs N] [--limit N] [--runs N] [--resume] [--key KEY | --bundled-key] [--json]';

export async function optimizeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...TARGET_OPTIONS,
      ...BUDGET_OPTIONS,
      ...SIGNING_OPTIONS,
      dataset: { type: 'string' },
      model: { type: 'string' },
      search: { type: 'boolean' },
      out: { type: 'string', short: 'o' },
      deploy: { type: 'boolean' },
      force: { type: 'string' },
      images: { type: 'string' },
      epochs: { type: 'string' },
      limit: { type: 'string' },
      runs: { type: 'string' },
      resume: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  if (positionals.length > 0) throw new CommandUsageError(`unexpected ${positionals.join(' ')}; ${USAGE}`);
  for (const flag of ['dataset', 'out'] as const)
    if (values[flag] === undefined) throw new CommandUsageError(`--${flag} is required; ${USAGE}`);
  if ((values.model === undefined) === (values.search !== true))
    throw new CommandUsageError(`one of --model and --search; ${USAGE}`);
  if (values.deploy && values.device === undefined)
    throw new CommandUsageError('--deploy sends the package to the --device it was optimized for; name it');
  checkSigningOptions(values);
  const budgets = parseBudgets(values, USAGE);
  const images = numberOption(values.images, '--images', true, 1);
  const epochs = numberOption(values.epochs, '--epochs', true, 1);
  const trainLimit = numberOption(values.limit, '--limit', true, 1);
  const runs = numberOption(values.runs, '--runs', true, 1);

  const { parseChoice } = await import('../../optimize/plan/apply.js');
  const force = new Map(
    (values.force ?? '')
      .split(',')
      .filter((s) => s.trim() !== '')
      .map((pair) => {
        const [layer, choice] = pair.split('=');
        if (!layer || !choice) throw new CommandUsageError(`--force: expected LAYER=CHOICE, got "${pair}"`);
        return [layer.trim(), parseChoice(choice.trim())] as const;
      }),
  );

  const { runOptimize, formatOptimizeReport } = await import('../../optimize/plan/optimize.js');
  const { measuredEstimator, tableEstimator } = await import('../../optimize/plan/estimator.js');
  const { firstImages, loadDataset } = await import('../../optimize/datasets/dataset-spec.js');
  const { selectTrainingBackend } = await import('../../optimize/train/backend-select.js');

  const target = (await resolveDeviceTarget('optimize', values, true))!;
  for (const note of target.notes) console.error(`whittle optimize: ${note}`);
  const choice = await selectTrainingBackend('auto');
  for (const note of choice.notes) console.error(`whittle optimize: ${note}`);
  const { key, created } = signingKeyOption(values);
  if (created) console.error(`whittle optimize: created the package signing key ${created}`);
  const test = loadDataset(values.dataset!);
  const estimator =
    target.table !== undefined
      ? tableEstimator(target.table.table, target.table.source)
      : measuredEstimator(firstImages(test.test ?? test.train, 10));

  const verifyOnTarget = deviceVerifier(values, runs);

  const controller = new AbortController();
  const stopListening = abortOnInterrupt('whittle optimize', controller);
  const progress = progressPrinter();
  const tty = progress.tty;
  try {
    const result = await runOptimize({
      model: values.model ?? 'nas',
      search: values.search === true,
      dataset: values.dataset!,
      out: values.out!,
      budgets,
      estimator,
      target: target.name,
      key,
      ...(force.size > 0 ? { force } : {}),
      ...(images !== undefined ? { images } : {}),
      ...(epochs !== undefined ? { epochs } : {}),
      ...(trainLimit !== undefined ? { trainLimit } : {}),
      ...(runs !== undefined ? { runs } : {}),
      resume: values.resume === true,
      ...(verifyOnTarget ? { verifyOnTarget } : {}),
      signal: controller.signal,
      onTrainProgress: (p) => progress.print(p, 'train'),
      onSearchProgress: (p) => {
        progress.restart();
        process.stderr.write(
          `${tty ? '\r\x1b[K' : ''}nas ${p.phase}: ${p.message}` +
            (p.etaSeconds !== undefined ? ` (ETA ${Math.round(p.etaSeconds)} s)` : '') +
            '\n',
        );
      },
      onLayer: (layer, done, total) => {
        progress.restart();
        process.stderr.write(`${tty ? '\r\x1b[K' : ''}sensitivity ${done + 1}/${total}: ${layer}\n`);
      },
      onStep: (s) =>
        process.stderr.write(
          `${tty ? '\r\x1b[K' : ''}step ${s.step} ${s.layer} ${s.from} -> ${s.to}: ${s.reason} ` +
            `(${s.measured.ms_before.toFixed(3)} -> ${s.measured.ms_after.toFixed(3)} ms, ` +
            `${s.measured.bytes_before} -> ${s.measured.bytes_after} bytes)\n`,
        ),
    });
    if (result.interrupted) {
      console.error(`whittle optimize: stopped; continue with the same command and --resume`);
      return 130;
    }
    const report = { ...result.report, notes: [...target.notes, ...result.report.notes] };
    if (values.json) console.log(JSON.stringify(report));
    else console.log(formatOptimizeReport(report));
    if (values.deploy) {
      const code = await deployCommand(
        [
          join(values.out!, 'model.whittle'),
          '--device',
          values.device!,
          '--wait',
          ...(values['data-dir'] !== undefined ? ['--data-dir', values['data-dir']] : []),
        ],
        values.json ? (line) => console.error(line) : console.log,
      );
      if (code !== 0) return code;
    }
    // A device that times the final package slower than the baseline did not confirm the plan: as a budget
    // not met, exit 3 (the report says which steps it kept).
    const slower =
      report.device_measured !== undefined &&
      'slower' in report.device_measured &&
      report.device_measured.slower;
    return report.met && !slower ? 0 : 3;
  } finally {
    if (tty) process.stderr.write('\r\x1b[K');
    stopListening();
  }
}
