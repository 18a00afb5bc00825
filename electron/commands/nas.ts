// `whittle nas`: hardware-aware architecture search under budgets (optimize/nas/search.ts): the supernet,
// regularized evolution, the best model within the budgets fine-tuned and packaged. Progress (supernet
// epochs, generations, best so far, ETA) on stderr; Ctrl-C saves a checkpoint and the same command resumes.
// TensorFlow.js loads only when this command runs.
import { parseArgs } from 'node:util';

import type { Package } from '../../agent/package/reader.js';
import type { NasProgress, NasReport } from '../../optimize/nas/search.js';
import { DEFAULT_NAS_SETTINGS } from '../../optimize/nas/settings.js';
import type { ArchSpec } from '../../optimize/nas/space.js';
import { BUDGET_OPTIONS, parseBudgets } from './budgets.js';
import { CommandUsageError } from './command-error.js';
import { resolveDeviceTarget, TARGET_OPTIONS } from './device-target.js';
import { loadSigningKey } from './signing-key.js';
import { abortOnInterrupt, numberOption } from './train.js';

export const NAS_HELP = `  nas --dataset DATA --out DIR [--latency-ms X] [--ram-kb Y] [--size-kb Z]  search an architecture
                        (stages of conv / depthwise-separable / fire / ShuffleNet blocks, widths, depths,
                        kernels, per-layer formats and pruning) that fits the budgets on a device: this
                        machine's runtime, or --profile FILE | --class NAME | --device ID (priced from its
                        latency table): a weight-sharing supernet, regularized evolution, the best fine-tuned and
                        packaged (DIR/model.whittle, DIR/nas-report.json); --supernet-epochs N (${DEFAULT_NAS_SETTINGS.supernetEpochs}),
                        --adapt-batches N (${DEFAULT_NAS_SETTINGS.adaptBatches}: each candidate's training batches before it is scored),
                        --cycles N (${DEFAULT_NAS_SETTINGS.cycles}), --population N (${DEFAULT_NAS_SETTINGS.populationSize}), --finetune-epochs N (${DEFAULT_NAS_SETTINGS.finetuneEpochs}), --limit N,
                        --test-limit N, --seed N, --key PRIVATE_KEY.pem, --json; rerun to resume after Ctrl-C
`;

const USAGE =
  'usage: whittle nas --dataset DATA --out DIR [--latency-ms X] [--ram-kb Y] [--size-kb Z] ' +
  '[--supernet-epochs N] [--adapt-batches N] [--cycles N] [--population N] [--finetune-epochs N] [--limit N] [--test-limit N] ' +
  '[--seed N] [--key PRIVATE_KEY.pem] [--profile FILE | --class NAME | --device ID] [--json]';

function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  return ` ETA ${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function progressLine(p: NasProgress): string {
  const best =
    p.best === undefined
      ? ''
      : ` | best ${(100 * p.best.accuracy).toFixed(1)}% ${p.best.latencyMs.toFixed(3)} ms ${p.best.packageBytes} B`;
  return `${p.message}${best}${formatEta(p.etaSeconds)}`;
}

function summary(report: NasReport): string[] {
  const lines = [
    `${report.candidates_evaluated} architectures scored over ${report.generations} generations ` +
      `(supernet ${report.supernet_seconds.toFixed(0)} s, search ${report.search_seconds.toFixed(0)} s, ` +
      `fine-tuning ${report.finetune_seconds.toFixed(0)} s)`,
    `Pareto front (supernet accuracy x latency x size): ${report.pareto_front.length} architectures`,
  ];
  for (const c of report.pareto_front.slice(0, 8))
    lines.push(
      `  ${(100 * c.supernet_accuracy).toFixed(1)}%  ${c.latency_ms.toFixed(3)} ms  ${c.package_bytes} B  ${c.key}`,
    );
  const best = report.best;
  if (best)
    lines.push(
      `best within the budgets: ${best.key}`,
      `  top-1 ${(100 * best.accuracy).toFixed(2)}% on ${best.test_images} test images, ` +
        `${best.measured_latency_ms.toFixed(3)} ms/image measured here, ${best.measured_ram_bytes} B peak RAM, ` +
        `${best.measured_package_bytes} B package${best.meets_budgets ? '' : ' (over a budget when measured)'}`,
      `  package: ${best.package}`,
    );
  return lines;
}

export async function nasCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      dataset: { type: 'string' },
      out: { type: 'string' },
      ...BUDGET_OPTIONS,
      ...TARGET_OPTIONS,
      'supernet-epochs': { type: 'string' },
      'adapt-batches': { type: 'string' },
      cycles: { type: 'string' },
      population: { type: 'string' },
      'finetune-epochs': { type: 'string' },
      limit: { type: 'string' },
      'test-limit': { type: 'string' },
      seed: { type: 'string' },
      key: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (positionals.length > 0)
    throw new CommandUsageError(`unexpected argument "${positionals[0]}"; ${USAGE}`);
  if (values.dataset === undefined || values.out === undefined)
    throw new CommandUsageError(`--dataset and --out are required; ${USAGE}`);
  const { packageBytes, accuracyDrop, ...budgets } = parseBudgets(values, USAGE);
  if (accuracyDrop !== undefined)
    throw new CommandUsageError(
      '--max-accuracy-drop limits the compression of a model: whittle optimize --search takes it, whittle nas does not',
    );
  const { runNas } = await import('../../optimize/nas/search.js');
  const { selectTrainingBackend } = await import('../../optimize/train/backend-select.js');
  const d = DEFAULT_NAS_SETTINGS;
  const limit = numberOption(values.limit, '--limit', true, 1);
  const testLimit = numberOption(values['test-limit'], '--test-limit', true, 1);
  // The device the search is for: its table prices the candidates (through the latency predictor); without
  // one (no target, or this machine's profile), each candidate's package is measured on this runtime.
  const target = await resolveDeviceTarget('nas', values, false);
  for (const note of target?.notes ?? []) console.error(`whittle nas: ${note}`);
  let latencyOf: ((arch: ArchSpec, pkg: Package) => number) | undefined;
  let latencySource: string | undefined;
  if (target?.table !== undefined) {
    const { predictLatency } = await import('../../optimize/latency/predictor.js');
    const { table, source } = target.table;
    latencyOf = (_arch, pkg) => predictLatency(pkg, table).ms;
    latencySource = source;
  }
  const settings = {
    ...d,
    dataset: values.dataset,
    budgets: { ...budgets, ...(packageBytes === undefined ? {} : { sizeBytes: packageBytes }) },
    supernetEpochs: numberOption(values['supernet-epochs'], '--supernet-epochs', true, 1) ?? d.supernetEpochs,
    adaptBatches: numberOption(values['adapt-batches'], '--adapt-batches', true, 0) ?? d.adaptBatches,
    cycles: numberOption(values.cycles, '--cycles', true, 0) ?? d.cycles,
    populationSize: numberOption(values.population, '--population', true, 2) ?? d.populationSize,
    finetuneEpochs: numberOption(values['finetune-epochs'], '--finetune-epochs', true, 1) ?? d.finetuneEpochs,
    seed: numberOption(values.seed, '--seed', true, 0) ?? d.seed,
    ...(limit === undefined ? {} : { trainLimit: limit }),
    ...(testLimit === undefined ? {} : { testLimit }),
    ...(latencySource === undefined ? {} : { latencySource }),
  };
  if (limit !== undefined && limit <= d.validationImages)
    throw new CommandUsageError(`--limit: expected more than the ${d.validationImages} validation images`);
  const signingKey = loadSigningKey(values.key).key;
  const choice = await selectTrainingBackend('auto');
  for (const note of choice.notes) console.error(`whittle nas: ${note}`);
  const controller = new AbortController();
  const stop = abortOnInterrupt('whittle nas', controller);
  const tty = process.stderr.isTTY === true;
  let last = 0;
  try {
    const result = await runNas({
      settings,
      outDir: values.out,
      signingKey,
      ...(latencyOf !== undefined ? { latencyOf } : {}),
      signal: controller.signal,
      onProgress: (p) => {
        const now = Date.now();
        if (p.phase === 'supernet' && now - last < 2000) return;
        last = now;
        process.stderr.write(tty ? `\r${progressLine(p)}\x1b[K` : `${progressLine(p)}\n`);
      },
    });
    if (tty) process.stderr.write('\n');
    if (result.interrupted) {
      console.error(`whittle nas: interrupted; run the same command again to resume from ${values.out}`);
      return 130;
    }
    const { report } = result;
    if (values.json) console.log(JSON.stringify(report, null, 2));
    else for (const line of summary(report)) console.log(line);
    if (!report.feasible) {
      const lines = (report.closest ?? []).map(
        (c) =>
          `  ${c.key}: ${Object.entries(c.misses ?? {})
            .map(([k, v]) => `${k} over by ${Number(v).toFixed(k === 'latency_ms' ? 3 : 0)}`)
            .join(', ')}`,
      );
      console.error(
        `whittle nas: no architecture meets the budgets; the closest candidates and by how much each misses:\n${lines.join('\n')}`,
      );
      return 1;
    }
    return 0;
  } finally {
    stop();
  }
}
