// `npm run bench -- plan [--json]`: "nothing kept that does not pay" (issue 16). Each zoo model is trained
// briefly (kept in --dir and reused), then `whittle optimize`'s run fits it to a tight budget on this
// machine (--size 0.25 of the fp32 file, --latency 0.8 of its measured time per frame, both relative).
// Every step the planner keeps was measured end to end against the package before it; this benchmark then
// measures each kept step once more, independently (its two packages rebuilt and timed interleaved with
// --runs more runs), and the final package against fp32, and counts the kept steps that made the
// end-to-end latency (beyond the planner's tolerance), peak RAM or package bytes worse: `steps_worse`
// must be 0.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type Package, readPackage, readPackageFile } from '../agent/package/reader.js';
import { compressedPackage } from '../optimize/compress/encode.js';
import { firstImages, loadDataset } from '../optimize/datasets/dataset-spec.js';
import { compareLatency, packageImageInput, withTrainedPreprocessing } from '../optimize/evaluate-package.js';
import { bundledSigningKey, writePackage } from '../optimize/package/writer.js';
import { type LayerChoice, parseChoice, peakRamBytes, planPackage } from '../optimize/plan/apply.js';
import { measuredEstimator } from '../optimize/plan/estimator.js';
import { runOptimize } from '../optimize/plan/optimize.js';
import { DEFAULT_TOLERANCE } from '../optimize/plan/planner.js';
import { calibrationFromImages } from '../optimize/quantize/calibrate.js';
import { trainTinyModel } from '../test/support/tiny-model.js';
import { benchOptions, positiveInteger, stringOptions } from './kernels.js';

export const PLAN_HELP =
  'plan options: --models lenet-300-100,lenet5,vgg-small,mobilenet (trained 1 epoch on --limit 3000 images), ' +
  '--size 0.25 --latency 0.8 (budgets relative to the fp32 package), --max-accuracy-drop 2 (top-1 points; ' +
  '100: no limit), --images 300, --runs 200, ' +
  '--dir DIR (trained models and runs; reused), --json';

export async function planBenchCommand(args: string[], machine: string): Promise<number> {
  const values = benchOptions(
    args,
    {
      json: { type: 'boolean' },
      ...stringOptions('models', 'size', 'latency', 'max-accuracy-drop', 'images', 'runs', 'dir', 'limit'),
    },
    PLAN_HELP,
  );
  if (values === undefined) return 0;
  const models = (values.models ?? 'lenet-300-100,lenet5,vgg-small,mobilenet').split(',');
  const size = Number(values.size ?? 0.25);
  const latency = Number(values.latency ?? 0.8);
  const dropPoints = Number(values['max-accuracy-drop'] ?? 2);
  if (!(dropPoints >= 0 && dropPoints <= 100))
    throw new Error(
      `--max-accuracy-drop: expected top-1 points in 0-100, got "${values['max-accuracy-drop']}"`,
    );
  const images = positiveInteger(values.images, 300, '--images');
  const runs = positiveInteger(values.runs, 200, '--runs');
  const limit = positiveInteger(values.limit, 3000, '--limit');
  const dir = values.dir ?? join(tmpdir(), 'whittle-bench-plan');
  const data = loadDataset('fashion-mnist');
  const set = firstImages(data.test!, images);
  const key = bundledSigningKey();
  const results = [];
  for (const model of models) {
    const trained = join(dir, model);
    if (!existsSync(join(trained, 'model.json'))) await trainTinyModel(model, trained, { trainLimit: limit });
    const out = join(dir, `${model}.optimized-${Date.now()}`);
    // The budgets from the fp32 package: its file and its time per frame here.
    const content = compressedPackage(trained, new Map(), { modelId: model });
    content.manifest = withTrainedPreprocessing(content.manifest, data.train);
    const fp32 = readPackage(writePackage(content, key), { allowUnsigned: true, cpuFamily: null });
    const fp32Ms = compareLatency([fp32], set, runs)[0]!.medianMs;
    const started = Date.now();
    const result = await runOptimize({
      model: trained,
      dataset: 'fashion-mnist',
      out,
      budgets: {
        packageBytes: Math.round(size * fp32.fileBytes),
        latencyMs: latency * fp32Ms,
        accuracyDrop: dropPoints / 100,
      },
      estimator: measuredEstimator(set),
      target: 'this machine',
      key,
      images,
      runs,
    });
    if (result.interrupted) return 130;
    const r = result.report;
    // Each kept step measured again, independently.
    const calibration = calibrationFromImages(data.train, 100, packageImageInput(fp32, data.train));
    const plan = new Map<string, LayerChoice>();
    let before: Package = fp32;
    let worse = 0;
    const steps = [];
    for (const step of r.ledger.filter((l) => l.kept)) {
      plan.set(step.layer, parseChoice(step.to));
      const after = planPackage(fp32, plan, calibration, key);
      const [a, b] = compareLatency([before, after], set, runs);
      const ramBefore = peakRamBytes(before);
      const ramAfter = peakRamBytes(after);
      const bad =
        b!.medianMs > a!.medianMs * (1 + DEFAULT_TOLERANCE) ||
        ramAfter > ramBefore ||
        after.fileBytes > before.fileBytes;
      if (bad) worse++;
      steps.push({
        layer: step.layer,
        to: step.to,
        ms_before: a!.medianMs,
        ms_after: b!.medianMs,
        ram_before: ramBefore,
        ram_after: ramAfter,
        bytes_before: before.fileBytes,
        bytes_after: after.fileBytes,
        worse: bad,
      });
      before = after;
    }
    const final = readPackageFile(join(out, 'model.whittle'), { allowUnsigned: true, cpuFamily: null });
    const [f0, f1] = compareLatency([fp32, final], set, runs);
    results.push({
      model,
      budget_bytes: Math.round(size * fp32.fileBytes),
      budget_ms: latency * fp32Ms,
      met: r.met,
      plan: r.plan,
      steps_kept: r.steps_kept,
      steps_dropped_slower: r.steps_dropped_slower,
      steps_dropped_more_memory:
        r.screened.filter((s) => s.reason === 'more-memory').length +
        r.ledger.filter((l) => l.reason === 'more-memory').length,
      steps_worse: worse,
      baseline_accuracy: r.baseline.accuracy,
      accuracy: r.final.accuracy,
      baseline_bytes: fp32.fileBytes,
      bytes: final.fileBytes,
      baseline_ram_bytes: peakRamBytes(fp32),
      ram_bytes: peakRamBytes(final),
      final_vs_fp32_latency: f1!.medianMs / f0!.medianMs,
      minutes: (Date.now() - started) / 60_000,
      kept: steps,
    });
    if (!values.json) console.log(JSON.stringify(results[results.length - 1]));
  }
  const summary = { machine, steps_worse: results.reduce((n, x) => n + x.steps_worse, 0), results };
  if (values.json) console.log(JSON.stringify(summary));
  else console.log(`steps_worse over ${results.length} models: ${summary.steps_worse}`);
  return summary.steps_worse === 0 ? 0 : 1;
}
