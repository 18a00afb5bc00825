// `npm run bench -- nas [--json]`: hardware-aware NAS against the zoo on Fashion-MNIST, on this machine.
//
// The budget: --latency-ms, else the measured latency of the zoo's MobileNet at width 0.5 (int8) on this
// runtime (a mid-sized budget: the LeNets and the small VGGs fit under it, the larger models do not). The NAS side is `whittle nas`'s search
// (optimize/nas/search.ts) under that budget, supernet training included in search_minutes. The baseline is
// the best zoo model that fits the same budget: every zoo model at widths --widths (default 0.25, 0.5, 1),
// compressed by the toolkit (int8 post-training quantization, `whittle quantize`'s path) — its int8 package
// (random weights: latency does not depend on them) measured first, and only those within the budget
// trained (--baseline-epochs, `whittle train`'s trainer) and evaluated; baseline_accuracy is the best of
// them on the test set. The NAS package and the baseline package are then timed interleaved image by image
// (evaluate-package.ts compareLatency), so the machine's load hits both alike: latency_ratio is NAS /
// baseline. The searched package (its per-layer formats kept) is then compressed as `whittle optimize
// --search` does (optimize/plan: the layers the search left fp32 planned, each format or pruning step kept
// only where an end-to-end measurement here shows it pays) under the same budget: steps_kept /
// steps_dropped_slower are that planner's, and the NAS figures are its package's. Baselines trained to the
// end by an earlier run in the same --dir with the same settings are reused.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import { type Package, readPackageFile } from '../agent/package/reader.js';
import { firstImages, loadDataset } from '../optimize/datasets/dataset-spec.js';
import { compareLatency, evaluatePackage, withTrainedPreprocessing } from '../optimize/evaluate-package.js';
import { supernetRankCheck } from '../optimize/nas/rank-check.js';
import { DEFAULT_NAS_SETTINGS, NAS_PACKAGE_FILE, runNas } from '../optimize/nas/search.js';
import { readContent } from '../optimize/nas/space.js';
import { bundledSigningKey } from '../optimize/package/writer.js';
import { plannableLayers } from '../optimize/plan/apply.js';
import { measuredEstimator } from '../optimize/plan/estimator.js';
import { runOptimize } from '../optimize/plan/optimize.js';
import { calibrationFromImages } from '../optimize/quantize/calibrate.js';
import { quantizePackage } from '../optimize/quantize/ptq.js';
import { importTfjsLayers } from '../optimize/tfjs/import.js';
import { selectTrainingBackend } from '../optimize/train/backend-select.js';
import { fileHandler, MODEL_FILE } from '../optimize/train/file-io.js';
import { DEFAULT_TRAIN_CONFIG, train } from '../optimize/train/trainer.js';
import { buildZooModel, ZOO_MODEL_NAMES } from '../optimize/zoo/index.js';
import { BenchArgumentError, benchOptions, positiveInteger, stringOptions } from './kernels.js';

const BASELINE_EPOCHS = 5;
const d = DEFAULT_NAS_SETTINGS;

export const NAS_HELP = `nas options: --latency-ms X (default: MobileNet-0.5 int8's latency here), --widths 0.25,0.5,1,
  --baseline-epochs ${BASELINE_EPOCHS}, --supernet-epochs ${d.supernetEpochs}, --adapt-batches ${d.adaptBatches}, --cycles ${d.cycles}, --population ${d.populationSize},
  --finetune-epochs N (default: as --baseline-epochs, the zoo models' training), --limit N (training images),
  --test-limit N, --dir DIR, --json;
  --rank-check N: only the supernet's ranking check (N architectures, --limit images, default 10000,
  --supernet-epochs epochs, default 1): Kendall's tau of supernet vs stand-alone accuracy`;

const LATENCY_RUNS = 200;

/** The int8 package (`whittle quantize`'s path) of the tfjs model saved in `dir`. */
function int8Package(dir: string, name: string, set: ReturnType<typeof loadDataset>['train']): Package {
  const content = importTfjsLayers(join(dir, MODEL_FILE), { modelId: name });
  content.manifest = withTrainedPreprocessing(content.manifest, set);
  const fp32 = readContent(content);
  return readContent(quantizePackage(fp32, calibrationFromImages(set, 256)).content);
}

/** The training config (JSON) of the run that finished in `dir` (its evaluation.json), if any. */
function trainedWith(dir: string): string | undefined {
  const file = join(dir, 'evaluation.json');
  if (!existsSync(file)) return undefined;
  return JSON.stringify((JSON.parse(readFileSync(file, 'utf8')) as { config?: unknown }).config);
}

export async function nasBenchCommand(args: string[], machine: string): Promise<number> {
  const values = benchOptions(
    args,
    {
      json: { type: 'boolean' },
      ...stringOptions(
        'latency-ms',
        'widths',
        'baseline-epochs',
        'supernet-epochs',
        'adapt-batches',
        'cycles',
        'population',
        'finetune-epochs',
        'limit',
        'test-limit',
        'dir',
        'rank-check',
      ),
    },
    NAS_HELP,
  );
  if (values === undefined) return 0;
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  const dir = values.dir ?? join(tmpdir(), 'whittle-bench-nas');
  mkdirSync(dir, { recursive: true });
  const widths = (values.widths ?? '0.25,0.5,1').split(',').map(Number);
  if (widths.some((w) => !(w > 0 && w <= 4)))
    throw new BenchArgumentError(`--widths: expected multipliers in (0, 4] but received "${values.widths}"`);
  const trainLimit = values.limit === undefined ? undefined : positiveInteger(values.limit, 0, '--limit');
  const testLimit =
    values['test-limit'] === undefined ? undefined : positiveInteger(values['test-limit'], 0, '--test-limit');
  await selectTrainingBackend('whittle-native');
  say(`nas: machine ${machine}; in ${dir}`);
  if (values['rank-check'] !== undefined) {
    const check = await supernetRankCheck({
      settings: { ...DEFAULT_NAS_SETTINGS, dataset: 'fashion-mnist', budgets: {} },
      candidates: positiveInteger(values['rank-check'], 0, '--rank-check'),
      images: trainLimit ?? 10000,
      epochs: positiveInteger(values['supernet-epochs'], 1, '--supernet-epochs'),
      outDir: dir,
      say,
    });
    console.log(JSON.stringify({ machine, ...check }));
    return 0;
  }
  const data = loadDataset('fashion-mnist');
  const test = testLimit === undefined ? data.test! : firstImages(data.test!, testLimit);
  const zooOptions = (width: number): Parameters<typeof buildZooModel>[1] => ({
    height: 28,
    width: 28,
    channels: 1,
    classes: 10,
    seed: 1,
    widthMultiplier: width,
  });
  const saved = async (model: tf.LayersModel, at: string): Promise<string> => {
    mkdirSync(at, { recursive: true });
    await model.save(fileHandler(at));
    model.dispose();
    return at;
  };

  // The budget.
  let budgetMs: number;
  if (values['latency-ms'] !== undefined) {
    budgetMs = Number(values['latency-ms']);
    if (!(budgetMs > 0)) throw new BenchArgumentError(`--latency-ms: expected a positive number`);
  } else {
    const reference = int8Package(
      await saved(buildZooModel('mobilenet', zooOptions(0.5)), join(dir, 'budget-mobilenet')),
      'mobilenet@0.5',
      data.train,
    );
    budgetMs = compareLatency([reference], test, LATENCY_RUNS)[0]!.medianMs;
  }
  say(`nas: budget ${budgetMs.toFixed(3)} ms/image`);

  // The search (before the baselines: a run that reuses baselines trained meanwhile in --dir finds them).
  // The searched model is fine-tuned for as many epochs as each zoo baseline is trained (unless told).
  const baselineEpochs = positiveInteger(values['baseline-epochs'], BASELINE_EPOCHS, '--baseline-epochs');
  const started = performance.now();
  const result = await runNas({
    settings: {
      ...d,
      dataset: 'fashion-mnist',
      budgets: { latencyMs: budgetMs },
      supernetEpochs: positiveInteger(values['supernet-epochs'], d.supernetEpochs, '--supernet-epochs'),
      adaptBatches: positiveInteger(values['adapt-batches'], d.adaptBatches, '--adapt-batches', 100_000, 0),
      cycles: positiveInteger(values.cycles, d.cycles, '--cycles'),
      populationSize: positiveInteger(values.population, d.populationSize, '--population'),
      finetuneEpochs: positiveInteger(values['finetune-epochs'], baselineEpochs, '--finetune-epochs'),
      ...(trainLimit === undefined ? {} : { trainLimit }),
      ...(testLimit === undefined ? {} : { testLimit }),
    },
    outDir: join(dir, 'search'),
    onProgress: (p) => {
      if (p.phase !== 'supernet' || /batch \d*00\//.test(p.message)) say(`nas: ${p.message}`);
    },
  });
  if (result.interrupted) return 130;
  // A search resumed from its checkpoints (--dir) ran partly in earlier processes: their phases' seconds
  // are in the report, this process's wall time is not all of it.
  const searchMinutes = Math.max((performance.now() - started) / 60000, result.report.total_seconds / 60);
  const best = result.report.best;
  if (best === undefined) {
    say(
      `nas: no architecture meets ${budgetMs.toFixed(3)} ms; closest: ${JSON.stringify(result.report.closest)}`,
    );
    return 1;
  }
  // The baseline: every zoo model and width whose int8 package fits, trained and evaluated.
  let baseline: { name: string; accuracy: number; pkg: Package } | undefined;
  for (const name of ZOO_MODEL_NAMES)
    for (const width of widths) {
      const label = `${name}@${width}`;
      const random = int8Package(
        await saved(buildZooModel(name, zooOptions(width)), join(dir, `random-${label}`)),
        label,
        data.train,
      );
      const ms = compareLatency([random], test, 50)[0]!.medianMs;
      if (ms > budgetMs) {
        say(`nas: baseline ${label}: ${ms.toFixed(3)} ms > budget, skipped`);
        continue;
      }
      const out = join(dir, `zoo-${label}`);
      const config = {
        ...DEFAULT_TRAIN_CONFIG,
        model: name,
        dataset: 'fashion-mnist',
        epochs: baselineEpochs,
        widthMultiplier: width,
        ...(trainLimit === undefined ? {} : { trainLimit }),
        ...(testLimit === undefined ? {} : { testLimit }),
      };
      // A baseline trained to the end by an earlier run in --dir with the same settings is reused.
      if (trainedWith(out) !== JSON.stringify(config)) await train({ config, outDir: out, resume: false });
      else say(`nas: baseline ${label}: reusing the model trained in ${out}`);
      const pkg = int8Package(out, label, data.train);
      const accuracy = evaluatePackage(pkg, test).top1;
      say(`nas: baseline ${label}: ${ms.toFixed(3)} ms, int8 top-1 ${(100 * accuracy).toFixed(2)}%`);
      if (baseline === undefined || accuracy > baseline.accuracy) baseline = { name: label, accuracy, pkg };
    }

  // Compressed as `whittle optimize --search` does: the searched package, its layers in their searched
  // formats, and the planner for the layers the search left fp32 (none: nothing to plan).
  const searchedFile = join(dir, 'search', NAS_PACKAGE_FILE);
  const searched = readPackageFile(searchedFile, { allowUnsigned: true, cpuFamily: null });
  const planDir = join(dir, 'plan');
  const planned =
    plannableLayers(searched).length === 0
      ? undefined
      : await runOptimize({
          model: searchedFile,
          dataset: 'fashion-mnist',
          out: planDir,
          budgets: { latencyMs: budgetMs },
          estimator: measuredEstimator(firstImages(test, 10)),
          target: "this machine's runtime",
          key: bundledSigningKey(),
          resume: existsSync(planDir),
          onStep: (step) => say(`nas: plan ${step.layer} ${step.from} -> ${step.to}: ${step.reason}`),
        });
  if (planned?.interrupted === true) return 130;
  const plan = planned?.report;
  const nasPkg = plan ? readPackageFile(plan.out, { allowUnsigned: true, cpuFamily: null }) : searched;
  const nasAccuracy = evaluatePackage(nasPkg, test).top1;
  const [nasLatency, baseLatency] = compareLatency(
    baseline ? [nasPkg, baseline.pkg] : [nasPkg],
    test,
    LATENCY_RUNS,
  );
  const row = {
    machine,
    model: best.key,
    model_accuracy: nasAccuracy,
    // The searched package (its own per-stage formats), before the planner: measured alone, not interleaved.
    searched_accuracy: best.accuracy,
    searched_latency_ms: best.measured_latency_ms,
    baseline: baseline?.name ?? null,
    baseline_accuracy: baseline?.accuracy ?? null,
    measured_latency_ms: nasLatency!.medianMs,
    baseline_latency_ms: baseLatency?.medianMs ?? null,
    latency_ratio: baseLatency ? nasLatency!.medianMs / baseLatency.medianMs : null,
    budget_ms: budgetMs,
    search_minutes: searchMinutes,
    supernet_minutes: result.report.supernet_seconds / 60,
    candidates_evaluated: result.report.candidates_evaluated,
    package_bytes: nasPkg.fileBytes,
    plan: plan?.plan ?? {},
    steps_kept: plan?.steps_kept ?? 0,
    steps_dropped_slower: plan?.steps_dropped_slower ?? 0,
  };
  if (values.json) console.log(JSON.stringify(row));
  else
    console.log(
      Object.entries(row)
        .map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
        .join('\n'),
    );
  return 0;
}
