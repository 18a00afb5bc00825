// `whittle train`: trains a zoo model on a dataset with a progress bar, checkpoints, resume, early stopping,
// and writes the model (tfjs Layers format) and its test-set evaluation to --out. Ctrl-C saves a checkpoint
// that --resume continues from. TensorFlow.js loads only when this command runs.
import { parseArgs } from 'node:util';

import type { LrSchedule, Selection, TrainProgress } from '../../optimize/train/trainer.js';
import { CommandUsageError } from './command-error.js';

export const TRAIN_HELP = `  train --model NAME --dataset DATA --out DIR  train a zoo model (lenet-300-100, lenet5, vgg-small,
                        mobilenet, squeezenet, shufflenet) on fashion-mnist, idx:TRAIN_IMAGES,TRAIN_LABELS
                        [,TEST_IMAGES,TEST_LABELS] or folder:PATH; --epochs N (10), --batch-size N (64),
                        --learning-rate X, --lr-schedule cosine|step|constant (cosine), --select
                        accuracy|loss (accuracy: keep the epoch of best validation accuracy), --patience N,
                        --crop N, --flip, --limit N, --adam fused|tfjs (fused native Adam on the native
                        backend), --resume, --json
`;

const USAGE =
  'usage: whittle train --model NAME --dataset DATA --out DIR [--epochs N] [--batch-size N] [--learning-rate X] ' +
  '[--lr-schedule cosine|step|constant] [--select accuracy|loss] [--validation F] [--patience N] [--seed N] [--crop N] [--flip] [--limit N] [--test-limit N] [--image-size N] ' +
  '[--channels 1|3] [--width-multiplier A] [--backend auto|whittle-native|cpu|tensorflow] [--threads N] [--adam fused|tfjs] ' +
  '[--resume] [--json]';

/** A numeric option's value (undefined when absent): a number, an integer if `integer`, at least `min` if
 * given; anything else is a CommandUsageError naming the flag. */
export function numberOption(
  value: string | undefined,
  flag: string,
  integer: boolean,
  min?: number,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (
    value.trim() === '' ||
    !Number.isFinite(n) ||
    (integer && !Number.isInteger(n)) ||
    (min !== undefined && n < min)
  )
    throw new CommandUsageError(
      `${flag}: expected ${integer ? 'an integer' : 'a number'}${min !== undefined ? ` >= ${min}` : ''} but received "${value}"`,
    );
  return n;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/** One progress-bar line: epoch, bar, batch, loss, accuracy, images/s, ETA. */
export function formatProgress(p: TrainProgress, width = 20): string {
  const filled = Math.round((p.batch / Math.max(p.batches, 1)) * width);
  const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
  const head = `epoch ${p.epoch}/${p.epochs} [${bar}] ${p.batch}/${p.batches}`;
  if (p.phase !== 'train') return `${head} ${p.phase === 'validate' ? 'validating' : 'testing'}`;
  return (
    `${head} loss ${p.loss.toFixed(4)} acc ${(p.accuracy * 100).toFixed(1)}% ` +
    `${Math.round(p.imagesPerSecond)} img/s ETA ${formatDuration(p.etaSeconds)}`
  );
}

/** Ctrl-C (or SIGTERM) aborts `controller` once, saying that a checkpoint is being saved. Returns the
 * function that stops listening. */
export function abortOnInterrupt(command: string, controller: AbortController): () => void {
  const onSigint = (): void => {
    if (controller.signal.aborted) return;
    process.stderr.write(`\n${command}: interrupted, saving a checkpoint...\n`);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  return () => {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  };
}

/** A training run's progress on stderr: one line redrawn at most 10 times a second on a terminal, else a
 * line per tenth of an epoch; `label` (a retraining phase's name) prefixes the line. `restart` at each new
 * epoch. */
export function progressPrinter(): {
  tty: boolean;
  print: (p: TrainProgress, label?: string) => void;
  restart: () => void;
} {
  const tty = process.stderr.isTTY === true;
  let lastLine = 0;
  let lastDecile = -1;
  return {
    tty,
    print(p, label) {
      const line = label === undefined ? formatProgress(p) : `${label}: ${formatProgress(p)}`;
      const now = Date.now();
      if (tty) {
        if (now - lastLine < 100 && p.batch !== p.batches) return;
        lastLine = now;
        process.stderr.write(`\r${line}\x1b[K`);
      } else if (p.phase === 'train') {
        const decile = Math.floor((p.batch / p.batches) * 10);
        if (decile !== lastDecile || p.batch === p.batches) {
          lastDecile = decile;
          process.stderr.write(`${line}\n`);
        }
      }
    },
    restart() {
      lastDecile = -1;
    },
  };
}

export async function trainCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      dataset: { type: 'string' },
      out: { type: 'string' },
      epochs: { type: 'string' },
      'batch-size': { type: 'string' },
      'learning-rate': { type: 'string' },
      'lr-schedule': { type: 'string' },
      adam: { type: 'string' },
      select: { type: 'string' },
      validation: { type: 'string' },
      patience: { type: 'string' },
      seed: { type: 'string' },
      crop: { type: 'string' },
      flip: { type: 'boolean' },
      limit: { type: 'string' },
      'test-limit': { type: 'string' },
      'image-size': { type: 'string' },
      channels: { type: 'string' },
      'width-multiplier': { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      resume: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  if (positionals.length > 0)
    throw new CommandUsageError(`unexpected argument "${positionals[0]}"; ${USAGE}`);
  const out = values.out;
  if (out === undefined) throw new CommandUsageError(`--out DIR is required; ${USAGE}`);
  if (!values.resume && (values.model === undefined || values.dataset === undefined))
    throw new CommandUsageError(`--model and --dataset are required (or --resume); ${USAGE}`);
  const channelCount = numberOption(values.channels, '--channels', true);
  if (channelCount !== undefined && channelCount !== 1 && channelCount !== 3)
    throw new CommandUsageError(`--channels: expected 1 or 3 but received ${channelCount}`);
  const channels: 1 | 3 | undefined = channelCount === 1 ? 1 : channelCount === 3 ? 3 : undefined;
  const backendName = values.backend ?? 'auto';
  if (!['auto', 'whittle-native', 'cpu', 'tensorflow'].includes(backendName))
    throw new CommandUsageError(
      `--backend: expected auto, whittle-native, cpu or tensorflow but received "${backendName}"`,
    );
  const threads = numberOption(values.threads, '--threads', true);
  const adam = values.adam;
  if (adam !== undefined && adam !== 'fused' && adam !== 'tfjs')
    throw new CommandUsageError(`--adam: expected fused or tfjs but received "${adam}"`);
  if (adam === 'fused' && backendName !== 'auto' && backendName !== 'whittle-native')
    throw new CommandUsageError(`--adam fused needs the whittle-native backend (not ${backendName})`);

  const { DEFAULT_TRAIN_CONFIG, train } = await import('../../optimize/train/trainer.js');
  const { selectTrainingBackend } = await import('../../optimize/train/backend-select.js');

  const choice = await selectTrainingBackend(backendName as 'auto');
  for (const note of choice.notes) console.error(`whittle train: ${note}`);
  if (threads !== undefined && choice.backend === 'whittle-native') {
    const { loadTrainBinding } = await import('../../native/train-kernels.js');
    try {
      loadTrainBinding().setThreads(threads);
    } catch (error) {
      throw new CommandUsageError(`--threads: ${(error as Error).message}`);
    }
  }
  const d = DEFAULT_TRAIN_CONFIG;
  const config = {
    model: values.model ?? '',
    dataset: values.dataset ?? '',
    epochs: numberOption(values.epochs, '--epochs', true) ?? d.epochs,
    batchSize: numberOption(values['batch-size'], '--batch-size', true) ?? d.batchSize,
    learningRate: numberOption(values['learning-rate'], '--learning-rate', false) ?? d.learningRate,
    // Checked by checkTrainConfig, whose TrainConfigError names the option.
    lrSchedule: (values['lr-schedule'] ?? d.lrSchedule) as LrSchedule,
    select: (values.select ?? d.select) as Selection,
    validationFraction: numberOption(values.validation, '--validation', false) ?? d.validationFraction,
    patience: numberOption(values.patience, '--patience', true) ?? d.patience,
    seed: numberOption(values.seed, '--seed', true) ?? d.seed,
    cropPadding: numberOption(values.crop, '--crop', true) ?? d.cropPadding,
    flip: values.flip ?? d.flip,
    ...(values.limit !== undefined ? { trainLimit: numberOption(values.limit, '--limit', true)! } : {}),
    ...(values['test-limit'] !== undefined
      ? { testLimit: numberOption(values['test-limit'], '--test-limit', true)! }
      : {}),
    ...(values['image-size'] !== undefined
      ? { imageSize: numberOption(values['image-size'], '--image-size', true)! }
      : {}),
    ...(channels !== undefined ? { channels } : {}),
    ...(values['width-multiplier'] !== undefined
      ? { widthMultiplier: numberOption(values['width-multiplier'], '--width-multiplier', false)! }
      : {}),
  };

  const controller = new AbortController();
  const stopListening = abortOnInterrupt('whittle train', controller);
  const progress = progressPrinter();
  const tty = progress.tty;
  try {
    const result = await train({
      config,
      outDir: out,
      resume: values.resume === true,
      signal: controller.signal,
      backend: choice.backend,
      ...(adam !== undefined ? { adam } : {}),
      onProgress: (p) => progress.print(p),
      onEpoch: (r) => {
        progress.restart();
        const validation =
          r.validationLoss !== undefined
            ? ` val_loss ${r.validationLoss.toFixed(4)} val_acc ${((r.validationAccuracy ?? 0) * 100).toFixed(2)}%`
            : '';
        process.stderr.write(
          `${tty ? '\r\x1b[K' : ''}epoch ${r.epoch}: loss ${r.loss.toFixed(4)} acc ${(r.accuracy * 100).toFixed(2)}%` +
            `${validation} ${Math.round(r.imagesPerSecond)} img/s ${r.seconds.toFixed(1)} s\n`,
        );
      },
    });
    if (tty) process.stderr.write('\r\x1b[K');
    if (result.interrupted) {
      console.error(
        `whittle train: checkpoint saved in ${out}/checkpoint; continue with --resume --out ${out}`,
      );
      return 130;
    }
    if (values.json) console.log(JSON.stringify(result));
    else {
      const e = result.evaluation;
      console.log(
        `whittle train: model saved to ${out}/model.json` +
          (e
            ? `; ${e.on} accuracy ${(e.accuracy * 100).toFixed(2)}% (${e.count} images), loss ${e.loss.toFixed(4)}`
            : '') +
          (result.stoppedEarly ? ` (stopped early after ${result.epochsRun} epochs)` : '') +
          (result.bestEpoch !== undefined ? `; kept epoch ${result.bestEpoch}` : ''),
      );
    }
    return 0;
  } catch (error) {
    // Finish the progress line; the CLI reports the error (electron/commands/command-error.ts).
    if (tty) process.stderr.write('\n');
    throw error;
  } finally {
    stopListening();
  }
}
