// `whittle optimize`: a model made to fit a device's budgets (latency per frame, peak RAM, package bytes),
// keeping only the steps that pay on that device. The run (OUT/):
//   train/            a zoo model trained first (--model ZOO), resumable as `whittle train` is;
//   nas/              --search: the search's run (optimize/nas/search.ts), resumable;
//   baseline.whittle  the fp32 package (--search: the searched package, in its per-layer formats);
//   sensitivity.json  the per-layer analysis (sensitivity.ts), saved after every layer: --resume goes on
//                     from the first layer not measured;
//   model.whittle     the plan's package, signed; report.json the plan, the ledger and what was dropped.
import type { KeyObject } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

import { type Package, readPackage, readPackageFile } from '../../agent/package/reader.js';
import { whittleError } from '../../native/whittle-error.js';
import { compressedPackage } from '../compress/encode.js';
import { firstImages, loadDataset } from '../datasets/dataset-spec.js';
import type { ImageSet } from '../datasets/image-set.js';
import {
  compareLatency,
  evaluatePackage,
  packageImageInput,
  packageImageSize,
  withTrainedPreprocessing,
} from '../evaluate-package.js';
import { DEFAULT_NAS_SETTINGS, NAS_PACKAGE_FILE, type NasProgress, runNas } from '../nas/search.js';
import { probeFromTestSet } from '../package/probe.js';
import { packageContent, writePackage } from '../package/writer.js';
import { calibrationFromImages } from '../quantize/calibrate.js';
import { MODEL_FILE } from '../train/file-io.js';
import { DEFAULT_TRAIN_CONFIG, train, type TrainProgress } from '../train/trainer.js';
import { isZooModelName, ZOO_MODEL_NAMES } from '../zoo/index.js';
import { choiceKey, type LayerChoice, peakRamBytes, plannableLayers, planPackage } from './apply.js';
import type { LatencyEstimator } from './estimator.js';
import {
  type Budgets,
  choosePlan,
  DEFAULT_TOLERANCE,
  formatLedger,
  type LedgerStep,
  misses,
  type PlanChoice,
  type VerifiedPlan,
  verifyPlan,
} from './planner.js';
import { analyzeSensitivity, type Sensitivity, type SensitivityEntry } from './sensitivity.js';

/** A request `whittle optimize` cannot run: no such model, an fp32 package it cannot plan, a run of another
 * request in OUT. */
export class OptimizeError extends whittleError('OptimizeError', 'bad-optimize') {}

export interface OptimizeOptions {
  /** A zoo model name (trained first), a `whittle train` directory, or an fp32 package. */
  model: string;
  /** Start from the architecture `whittle nas` finds under the same budgets (in OUT/nas, fine-tuned)
   * instead of `model`. */
  search?: boolean;
  dataset: string;
  out: string;
  budgets: Budgets;
  /** What the latencies are (a device's table, or this machine's runtime) and what it is for. */
  estimator: LatencyEstimator;
  target: string;
  key: KeyObject;
  force?: ReadonlyMap<string, LayerChoice>;
  /** Sensitivity accuracy on the first N test images (default 500); end to end on the same. */
  images?: number;
  /** A zoo model's training: epochs (default 3) on the first N images (default all). */
  epochs?: number;
  trainLimit?: number;
  /** Timed batch-1 runs per end-to-end comparison (default 100). */
  runs?: number;
  tolerance?: number;
  resume?: boolean;
  signal?: AbortSignal;
  onTrainProgress?: (p: TrainProgress) => void;
  onSearchProgress?: (p: NasProgress) => void;
  onLayer?: (layer: string, done: number, total: number) => void;
  onStep?: (step: LedgerStep) => void;
  /** The final check on the device itself (whittle optimize --device): times the fp32 baseline and the final
   * package there, both files as written. Called once report.json is written; its figures (or its error)
   * are added to the report, which is written again (see checkOnTarget). */
  verifyOnTarget?: (files: { baseline: string; final: string }) => Promise<DeviceMeasured>;
}

/** The fp32 baseline and the final package as the device timed them (interleaved, batch 1, ms per frame). */
export interface DeviceMeasured {
  baseline_ms: number;
  baseline_p90_ms: number;
  final_ms: number;
  final_p90_ms: number;
  /** Timed frames per package. */
  runs: number;
  /** Where they were timed, e.g. "device pi4 (neondot, 4 threads)". */
  source: string;
}

export interface OptimizeReport {
  model: string;
  target: string;
  latency_source: string;
  dataset: string;
  images: number;
  out: string;
  /** accuracy_drop: the limit on top-1 lost (a fraction), not a budget the plan gets close to. */
  budgets: {
    latency_ms: number | null;
    ram_bytes: number | null;
    package_bytes: number | null;
    accuracy_drop: number | null;
  };
  met: boolean;
  plan: Record<string, string>;
  baseline: VerifiedPlan['baseline'];
  final: VerifiedPlan['final'];
  misses: VerifiedPlan['misses'];
  /** When the budgets cannot be met: the closest plans on the table, and how far each misses. */
  closest: PlanChoice['closest'];
  ledger: LedgerStep[];
  steps_kept: number;
  steps_dropped_slower: number;
  /** Choices dropped on the table (slower, paying nothing, not applicable) with their figures. */
  screened: PlanChoice['screened'];
  notes: string[];
  /** Only with verifyOnTarget: the device's own figures, `slower` when it timed the final package slower
   * than the baseline beyond the tolerance; or why they are missing (the device dropped, refused). */
  device_measured?: (DeviceMeasured & { slower: boolean }) | { error: string };
}

export type OptimizeResult = { interrupted: true } | { interrupted: false; report: OptimizeReport };

/** How many times the plan is chosen again without the steps its end-to-end check dropped. */
const REPLANS = 3;
/** Without --max-accuracy-drop, a plan losing more top-1 points than this gets a note saying how to limit it. */
const NOTED_ACCURACY_DROP_POINTS = 2;

const read = (bytes: Buffer): Package => readPackage(bytes, { allowUnsigned: true, cpuFamily: null });

async function optimizeRun(options: OptimizeOptions): Promise<OptimizeResult> {
  const out = options.out;
  mkdirSync(out, { recursive: true });
  const request = JSON.stringify({
    model: options.model,
    dataset: options.dataset,
    images: options.images ?? null,
  });
  const requestFile = join(out, 'request.json');
  if (existsSync(requestFile)) {
    if (!options.resume)
      throw new OptimizeError(
        `${out} holds an earlier run: --resume continues it; remove it (or choose --out) to start over`,
      );
    if (readFileSync(requestFile, 'utf8') !== request)
      throw new OptimizeError(
        `${out} holds a run of another model, dataset or image count (${readFileSync(requestFile, 'utf8')})`,
      );
  }
  writeFileSync(requestFile, request);

  const fp32 = await baselinePackage(options);
  if (fp32 === undefined) return { interrupted: true };
  writeFileSync(join(out, 'baseline.whittle'), writePackage(packageContent(fp32), options.key));
  const dataset = loadDataset(options.dataset, { folder: packageImageSize(fp32) });
  const test = dataset.test ?? dataset.train;
  const set = firstImages(test, options.images ?? 500);
  const calibration = calibrationFromImages(dataset.train, 100, packageImageInput(fp32, dataset.train));

  const sensitivityFile = join(out, 'sensitivity.json');
  const done =
    options.resume && existsSync(sensitivityFile)
      ? (JSON.parse(readFileSync(sensitivityFile, 'utf8')) as { entries: SensitivityEntry[] }).entries
      : [];
  const sensitivity: Sensitivity = await analyzeSensitivity(fp32, {
    set,
    calibration,
    estimator: options.estimator,
    done,
    ...(options.onLayer ? { onLayer: options.onLayer } : {}),
    onLayerDone: (entries) => {
      writeFileSync(sensitivityFile, JSON.stringify({ complete: false, entries }));
      if (options.signal?.aborted) throw new InterruptedRun();
    },
  });
  writeFileSync(sensitivityFile, JSON.stringify({ complete: true, ...sensitivity }, null, 1));

  const tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
  const planOptions = {
    budgets: options.budgets,
    tolerance,
    ...(options.force ? { force: options.force } : {}),
  };
  const verifyOptions = {
    budgets: options.budgets,
    set,
    calibration,
    tolerance,
    key: options.key,
    estimator: options.estimator,
    ...(options.runs !== undefined ? { runs: options.runs } : {}),
    ...(options.onStep ? { onStep: options.onStep } : {}),
  };
  let pool = sensitivity;
  let chosen = choosePlan(pool, planOptions);
  let verified = await verifyPlan(fp32, chosen, pool, verifyOptions);
  // A step the end-to-end check drops (it measured slower, or larger) can leave the budgets unmet where
  // another choice for that layer would meet them: plan again without the dropped choices, a few times. Every
  // dropped step stays in the ledger.
  const droppedBefore: LedgerStep[] = [];
  for (let round = 0; round < REPLANS && !verified.met; round++) {
    const dropped = verified.ledger.filter((l) => !l.kept);
    if (dropped.length === 0) break;
    droppedBefore.push(...dropped);
    const gone = new Set(dropped.map((l) => `${l.layer}\u0000${l.to}`));
    pool = { ...pool, entries: pool.entries.filter((e) => !gone.has(`${e.layer}\u0000${e.key}`)) };
    chosen = choosePlan(pool, planOptions);
    verified = await verifyPlan(fp32, chosen, pool, verifyOptions);
  }
  if (droppedBefore.length > 0)
    verified = {
      ...verified,
      ledger: [...droppedBefore, ...verified.ledger].map((l, i) => ({ ...l, step: i + 1 })),
    };

  const finalize = (pkg: Package, accuracy: number): Buffer => {
    const bytes = finalPackage(pkg, accuracy, fp32, set, dataset.test, options);
    writeFileSync(join(out, 'model.whittle'), bytes);
    return bytes;
  };
  const written = finalize(verified.package, verified.final.accuracy);
  // The budgets judged on the file as written (its accuracy and probe included). A target priced from a
  // table (a device class, or a device's own table) is judged by that table's time for the device: this
  // machine's measurement stays in the ledger and the notes, but it is not the device's.
  const notes: string[] = [];
  let finalFigures = { ...verified.final, bytes: written.length };
  let baseline = verified.baseline;
  if (options.estimator.predicted === true) {
    const [before, after] = options.estimator.estimate([fp32, read(written)]);
    notes.push(
      `latency per frame from ${options.estimator.source}: ${before!.ms.toFixed(4)} -> ${after!.ms.toFixed(4)} ms ` +
        `(measured on this machine: ${baseline.ms.toFixed(4)} -> ${finalFigures.ms.toFixed(4)} ms)`,
    );
    finalFigures = { ...finalFigures, ms: after!.ms };
    baseline = { ...baseline, ms: before!.ms };
  }
  const finalMisses = misses(options.budgets, finalFigures);

  if (!chosen.met) notes.push('no plan on the table meets every budget: the closest are listed');
  const lostPoints = 100 * (baseline.accuracy - finalFigures.accuracy);
  if (options.budgets.accuracyDrop === undefined && lostPoints > NOTED_ACCURACY_DROP_POINTS)
    notes.push(
      `the plan loses ${lostPoints.toFixed(1)} points of top-1; --max-accuracy-drop P keeps it within P points`,
    );
  const report: OptimizeReport = {
    model: options.model,
    target: options.target,
    latency_source: options.estimator.source,
    dataset: options.dataset,
    images: set.count,
    out: join(out, 'model.whittle'),
    budgets: {
      latency_ms: options.budgets.latencyMs ?? null,
      ram_bytes: options.budgets.ramBytes ?? null,
      package_bytes: options.budgets.packageBytes ?? null,
      accuracy_drop: options.budgets.accuracyDrop ?? null,
    },
    met: finalMisses.length === 0,
    plan: verified.plan,
    baseline,
    final: finalFigures,
    misses: finalMisses,
    closest: chosen.closest,
    ledger: verified.ledger,
    steps_kept: verified.ledger.filter((l) => l.kept).length,
    steps_dropped_slower:
      verified.ledger.filter((l) => l.reason === 'slower').length +
      chosen.screened.filter((s) => s.reason === 'slower').length,
    screened: chosen.screened,
    notes,
  };
  writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 1));
  if (options.verifyOnTarget) {
    // The plan's layer choices, for dropping steps the device shows do not pay there (checkOnTarget).
    const choices = new Map(
      chosen.steps
        .filter((st) => verified.plan[st.layer] === choiceKey(st.choice))
        .map((st) => [st.layer, st]),
    );
    const replan: Replan = {
      choices,
      candidate: (plan) => planPackage(fp32, plan, calibration, options.key),
      adopt: (pkg) => {
        const bytes = finalize(pkg, evaluatePackage(pkg, set).top1);
        const file = read(bytes);
        const ms = options.estimator.predicted
          ? options.estimator.estimate([file])[0]!.ms
          : compareLatency([fp32, file], set, options.runs ?? 100)[1]!.medianMs;
        return {
          accuracy: file.manifest.accuracy?.top1 ?? 0,
          bytes: bytes.length,
          ram_bytes: peakRamBytes(file),
          ms,
        };
      },
    };
    await checkOnTarget(report, options.verifyOnTarget, options, tolerance, replan);
  }
  return { interrupted: false, report };
}

/** The plan's package as `whittle optimize` writes it: named for the target, its accuracy (on the planner's
 * images) and its probe (from the test set) in the manifest, signed with the run's key. */
function finalPackage(
  pkg: Package,
  accuracy: number,
  fp32: Package,
  set: ImageSet,
  test: ImageSet | undefined,
  options: OptimizeOptions,
): Buffer {
  const final = packageContent(pkg);
  final.manifest = {
    ...final.manifest,
    model: {
      ...final.manifest.model,
      name: `${fp32.manifest.model.name ?? fp32.manifest.model.id} (optimized for ${options.target})`,
    },
    accuracy: { dataset: set.source, images: set.count, top1: accuracy },
  };
  if (test)
    try {
      final.manifest.probe = probeFromTestSet(writePackage(final, options.key), test);
    } catch {
      // A model that gets no test image right carries no probe (as whittle quantize).
    }
  return writePackage(packageContent(read(writePackage(final, options.key))), options.key);
}

/** What checkOnTarget needs to take back steps the device shows do not pay there. */
interface Replan {
  /** The final plan's layer choices, in the order they were applied. */
  choices: ReadonlyMap<string, PlanChoice['steps'][number]>;
  /** The fp32 package with the layers of `plan` as it says (for timing on the device). */
  candidate: (plan: ReadonlyMap<string, LayerChoice>) => Package;
  /** Writes `pkg` as the run's model.whittle; its figures for the report. */
  adopt: (pkg: Package) => VerifiedPlan['final'];
}

/** The device's own measurement of the baseline and the final package, and of every kept step, into the
 * report (written again). First the final package against the baseline. Then the kept steps one at a time,
 * the last applied first: the package without the step is timed on the device against the package with it,
 * and the step goes (reason slower-on-device, both figures in its ledger entry) when the device runs the
 * package faster without it beyond the tolerance, unless that would break the RAM or size budget (a budget is
 * a hard constraint). Forced steps stay. Every kept step gets the device's figures (`device` in its ledger
 * entry). When steps went, the plan left is written as model.whittle and timed against the baseline again.
 * The last baseline / final figures are `device_measured`; a final package still slower is said so, with both
 * figures, in the notes and `device_measured.slower`; a device-measured latency over the budget is a miss
 * (`met` false). A failure (the device dropped mid-measurement, refused a package) is recorded and thrown:
 * the package and the report are already written, so nothing is lost. */
async function checkOnTarget(
  report: OptimizeReport,
  verify: NonNullable<OptimizeOptions['verifyOnTarget']>,
  options: OptimizeOptions,
  tolerance: number,
  replan: Replan,
): Promise<void> {
  const file = join(options.out, 'report.json');
  const baselineFile = join(options.out, 'baseline.whittle');
  const measure = async (files: { baseline: string; final: string }): Promise<DeviceMeasured> => {
    try {
      return await verify(files);
    } catch (err) {
      report.device_measured = { error: (err as Error).message };
      report.notes.push(`not verified on the device: ${(err as Error).message}`);
      writeFileSync(file, JSON.stringify(report, null, 1));
      throw err;
    }
  };
  let measured = await measure({ baseline: baselineFile, final: report.out });
  const slowerThanBaseline = (m: DeviceMeasured): boolean => m.final_ms > m.baseline_ms * (1 + tolerance);
  const plan = new Map([...replan.choices].map(([layer, st]) => [layer, st.choice]));
  const current = join(options.out, 'device-current.whittle');
  const candidate = join(options.out, 'device-candidate.whittle');
  copyFileSync(report.out, current);
  let dropped = 0;
  for (const [layer, st] of [...replan.choices].reverse()) {
    if (st.forced) continue;
    const without = new Map(plan);
    without.delete(layer);
    const pkg = replan.candidate(without);
    const memory = misses(
      {
        ...(options.budgets.ramBytes !== undefined ? { ramBytes: options.budgets.ramBytes } : {}),
        ...(options.budgets.packageBytes !== undefined ? { packageBytes: options.budgets.packageBytes } : {}),
      },
      { ms: 0, ram_bytes: peakRamBytes(pkg), bytes: pkg.fileBytes },
    );
    if (memory.length > 0) continue;
    writeFileSync(candidate, writePackage(packageContent(pkg), options.key));
    const m = await measure({ baseline: current, final: candidate });
    const entry = [...report.ledger].reverse().find((l) => l.layer === layer && l.kept);
    if (entry) entry.device = { ms_with: m.baseline_ms, ms_without: m.final_ms, source: m.source };
    // Dropped only when the device is faster without it beyond the noise allowed (the tolerance).
    if (!(m.baseline_ms > m.final_ms * (1 + tolerance))) continue;
    plan.delete(layer);
    copyFileSync(candidate, current);
    dropped++;
    if (entry) Object.assign(entry, { kept: false, reason: 'slower-on-device' });
    report.notes.push(
      `the ${m.source} runs the package faster without ${layer} ${choiceKey(st.choice)} ` +
        `(${m.baseline_ms.toFixed(4)} -> ${m.final_ms.toFixed(4)} ms per frame, median of ${m.runs} interleaved runs): dropped`,
    );
  }
  rmSync(candidate, { force: true });
  rmSync(current, { force: true });
  if (dropped > 0) {
    report.final = replan.adopt(replan.candidate(plan));
    report.plan = Object.fromEntries([...plan].map(([l, c]) => [l, choiceKey(c)]));
    report.misses = misses(options.budgets, report.final);
    report.met = report.misses.length === 0;
    report.steps_kept = report.ledger.filter((l) => l.kept).length;
    report.steps_dropped_slower += dropped;
    measured = await measure({ baseline: baselineFile, final: report.out });
  }
  const slower = slowerThanBaseline(measured);
  report.device_measured = { ...measured, slower };
  const figures = `${measured.baseline_ms.toFixed(4)} -> ${measured.final_ms.toFixed(4)} ms per frame, median of ${measured.runs} interleaved runs`;
  report.notes.push(
    slower
      ? `the ${measured.source} timed the final package SLOWER than the fp32 baseline (${figures}): ` +
          `the kept steps (${report.ledger
            .filter((l) => l.kept)
            .map((l) => `${l.layer} ${l.to}`)
            .join(', ')}) do not pay there`
      : `verified on the ${measured.source}: ${figures}`,
  );
  const latency = misses(
    options.budgets.latencyMs !== undefined ? { latencyMs: options.budgets.latencyMs } : {},
    { ms: measured.final_ms, ram_bytes: 0, bytes: 0 },
  );
  if (latency.length > 0) {
    report.misses = [...report.misses.filter((m) => m.budget !== 'latency_ms'), ...latency];
    report.met = false;
    report.notes.push(
      `the ${measured.source} measured ${measured.final_ms.toFixed(4)} ms per frame: over the latency budget`,
    );
  }
  writeFileSync(file, JSON.stringify(report, null, 1));
}

class InterruptedRun extends Error {}

/** The fp32 package of `options.model` (--search: the searched package, its layers in their searched
 * formats); undefined when training it was interrupted. */
async function baselinePackage(options: OptimizeOptions): Promise<Package | undefined> {
  const model = options.model;
  const set = loadDataset(options.dataset).train;
  let dir = model;
  if (options.search) {
    const nas = join(options.out, 'nas');
    const found = await runNas({
      settings: {
        ...DEFAULT_NAS_SETTINGS,
        dataset: options.dataset,
        budgets: {
          ...(options.budgets.latencyMs !== undefined ? { latencyMs: options.budgets.latencyMs } : {}),
          ...(options.budgets.ramBytes !== undefined ? { ramBytes: options.budgets.ramBytes } : {}),
          ...(options.budgets.packageBytes !== undefined ? { sizeBytes: options.budgets.packageBytes } : {}),
        },
        ...(options.trainLimit !== undefined ? { trainLimit: options.trainLimit } : {}),
        // A device priced from its table: the search is priced from it too (and resumes only for it).
        ...(options.estimator.predicted === true ? { latencySource: options.estimator.source } : {}),
      },
      outDir: nas,
      signingKey: options.key,
      ...(options.estimator.predicted === true
        ? { latencyOf: (_arch: unknown, pkg: Package) => options.estimator.estimate([pkg])[0]!.ms }
        : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onSearchProgress ? { onProgress: options.onSearchProgress } : {}),
    });
    if (found.interrupted) return undefined;
  }
  // The search's package keeps its searched per-layer formats: the planner plans the layers it left fp32.
  const file = options.search ? join(options.out, 'nas', NAS_PACKAGE_FILE) : model;
  if (existsSync(file) && statSync(file).isFile()) {
    const pkg = readPackageFile(file, { allowUnsigned: true, cpuFamily: null });
    if (!options.search && plannableLayers(pkg).length === 0)
      throw new OptimizeError(
        `${model} has no f32 conv / fully connected layer to plan: start from an fp32 package`,
      );
    const content = packageContent(pkg);
    content.manifest = withTrainedPreprocessing(content.manifest, set);
    return read(writePackage(content, options.key));
  }
  if (!existsSync(join(model, MODEL_FILE))) {
    if (!isZooModelName(model))
      throw new OptimizeError(
        `--model ${model}: not a whittle train directory, an fp32 package or a zoo model (${ZOO_MODEL_NAMES.join(', ')})`,
      );
    dir = join(options.out, 'train');
    if (!existsSync(join(dir, MODEL_FILE))) {
      const result = await train({
        config: {
          ...DEFAULT_TRAIN_CONFIG,
          model,
          dataset: options.dataset,
          epochs: options.epochs ?? 3,
          ...(options.trainLimit !== undefined ? { trainLimit: options.trainLimit } : {}),
        },
        outDir: dir,
        resume: options.resume === true && existsSync(join(dir, 'checkpoint')),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onTrainProgress ? { onProgress: options.onTrainProgress } : {}),
      });
      if (result.interrupted) return undefined;
    }
  }
  const content = compressedPackage(dir, new Map(), {
    modelId: dir === model ? basename(resolve(model)) : model,
  });
  content.manifest = withTrainedPreprocessing(content.manifest, set);
  return read(writePackage(content, options.key));
}

/** The run of the header; an interruption (options.signal) during training or between sensitivity layers
 * gives `{ interrupted: true }`, and --resume continues from what was saved. */
export async function runOptimize(options: OptimizeOptions): Promise<OptimizeResult> {
  try {
    return await optimizeRun(options);
  } catch (err) {
    if (err instanceof InterruptedRun) return { interrupted: true };
    throw err;
  }
}

/** The report as terminal tables. */
export function formatOptimizeReport(r: OptimizeReport): string {
  const lines = [
    `${r.model} for ${r.target} (latency ${r.latency_source}); ${r.images} images of ${r.dataset}`,
  ];
  lines.push(formatLedger(r));
  for (const s of r.screened.filter((x) => x.reason === 'slower'))
    lines.push(
      `dropped ${s.layer} ${s.choice}: slower (${s.baseline_layer_ms!.toFixed(4)} -> ${s.layer_ms!.toFixed(4)} ms for the layer, ` +
        `${s.delta_ms! >= 0 ? '+' : ''}${s.delta_ms!.toFixed(4)} ms per frame)`,
    );
  for (const c of r.closest)
    lines.push(
      `closest: ${
        Object.entries(c.plan)
          .map(([l, k]) => `${l}=${k}`)
          .join(', ') || 'fp32'
      }: ` +
        c.misses
          .map(
            (m) => `${m.budget} ${m.value.toFixed(3)} > ${m.limit} (+${(100 * m.over_fraction).toFixed(1)}%)`,
          )
          .join(', '),
    );
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(`${r.met ? 'budgets met' : 'budgets NOT met'}; package ${r.out}`);
  return lines.join('\n');
}
