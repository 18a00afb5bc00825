// `whittle nas`'s search, end to end: the supernet trained once (supernet.ts), regularized evolution under
// hard budgets (evolution.ts; its initial population seeded with each block type's largest architecture that
// fits the budgets) scoring each architecture by its supernet accuracy (after `adaptBatches` batches of
// training from its supernet weights), its latency (latencyOf: the device's predictor when given, else its
// package measured end to end on this runtime), its peak RAM (the runtime's memory plan: arena + weights) and
// its package size; then the finalists (pickFinalists: the fittest of each family within the budgets) scored
// again after `finalistBatches` batches and timed again side by side, and the best of those fine-tuned from
// the weights those batches trained (its ternary / binary layers through the straight-through estimator, its
// pruned layers masked: the compressor's hooks), its batch norms recalibrated, packaged in its formats, and
// verified: its accuracy on the test set and its latency measured on this runtime. Every phase checkpoints in
// OUT (the supernet after each epoch, the evolution after each candidate, the finalists, the fine-tuning as
// `whittle train` does), so an interrupted search resumes where it stopped; a checkpoint of another search is
// refused.
import type { KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import type { Package } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
import { magnitudeMasks, projectionHooks, readKernel } from '../compress/projection.js';
import { BINARY_QUANTIZER, steHooks, ternaryQuantizer } from '../compress/ste.js';
import { identity } from '../datasets/batches.js';
import { loadDataset } from '../datasets/dataset-spec.js';
import type { ImageSet } from '../datasets/image-set.js';
import { compareLatency, evaluatePackage, imageInput } from '../evaluate-package.js';
import { bundledSigningKey, packageContent, writePackage } from '../package/writer.js';
import { fileHandler, MODEL_FILE, writeAtomic } from '../train/file-io.js';
import { combineHooks, DEFAULT_TRAIN_CONFIG, train } from '../train/trainer.js';
import {
  budgetMisses,
  type Budgets,
  type Candidate,
  type EvolutionState,
  evolve,
  feasible,
  fitness,
  paretoFront,
  relativeMiss,
} from './evolution.js';
import type { NasSettings } from './settings.js';
import {
  archFamily,
  archKey,
  archLayers,
  archPackage,
  type ArchSpec,
  BLOCK_TYPES,
  floatArch,
  type FormatChoices,
  parseArch,
  parseFormatChoices,
  SEARCH_SPACE,
  shrinkArch,
} from './space.js';
import {
  extremeArch,
  modelAccuracy,
  NasCheckpointError,
  recalibrateBatchNorm,
  Supernet,
} from './supernet.js';

export { type Budgets, type Candidate } from './evolution.js';
export { DEFAULT_NAS_SETTINGS, type NasSettings } from './settings.js';
export { NasCheckpointError } from './supernet.js';

export type NasPhase = 'supernet' | 'evolution' | 'finetune' | 'package';

export interface NasProgress {
  phase: NasPhase;
  message: string;
  /** Estimated seconds to the end of the phase. */
  etaSeconds?: number;
  best?: Candidate;
}

export interface NasRun {
  settings: NasSettings;
  outDir: string;
  /** The device's latency predictor; default: the package measured on this runtime (median of
   * settings.latencyRuns runs at batch 1). */
  latencyOf?: (arch: ArchSpec, pkg: Package) => number | Promise<number>;
  signingKey?: KeyObject;
  signal?: AbortSignal;
  onProgress?: (progress: NasProgress) => void;
}

export interface CandidateReport {
  key: string;
  arch: ArchSpec;
  supernet_accuracy: number;
  latency_ms: number;
  ram_bytes: number;
  package_bytes: number;
  misses?: { latency_ms?: number; ram_bytes?: number; package_bytes?: number };
}

export interface NasReport {
  budgets: { latency_ms?: number; ram_bytes?: number; package_bytes?: number };
  feasible: boolean;
  candidates_evaluated: number;
  generations: number;
  pareto_front: CandidateReport[];
  /** The initial population's architectures shrunk to fit the budgets (settings.budgetSeeds). */
  budget_seeds: string[];
  /** The best candidates scored again with longer training; the first is the one fine-tuned. */
  finalists: FinalistReport[];
  /** Impossible budget: the closest candidates and by how much each misses. */
  closest?: CandidateReport[];
  /** What the candidates' latency_ms are: "measured on this machine's runtime" or the device's table. */
  latency_source: string;
  best?: CandidateReport & {
    accuracy: number;
    test_images: number;
    /** Measured on this machine's runtime (the device's own, from its table, is latency_ms). */
    measured_latency_ms: number;
    measured_ram_bytes: number;
    measured_package_bytes: number;
    meets_budgets: boolean;
    package: string;
  };
  supernet_seconds: number;
  search_seconds: number;
  finetune_seconds: number;
  total_seconds: number;
  settings: NasSettings;
}

export type NasResult = { interrupted: true } | { interrupted: false; report: NasReport };

const SEARCH_FILE = 'search.json';
/** Each finalist's model after its `finalistBatches` batches, in a directory named by its key. */
const FINALISTS_DIR = 'finalists';
/** 4: finalists timed again (their latency and fitness in the checkpoint); 3: budget seeds and finalists
 * (settings.ts); 2: shortcuts in the space (space.ts) and candidates adapted
 * before scoring (settings.ts adaptBatches). */
const SEARCH_VERSION = 4;
export const NAS_REPORT_FILE = 'nas-report.json';
export const NAS_PACKAGE_FILE = 'model.whittle';

interface SearchCheckpoint {
  version: number;
  settings: NasSettings;
  state: EvolutionState;
  seconds: { supernet: number; search: number; finetune: number };
  /** The keys of the budget seeds (settings.budgetSeeds) the initial population started with. */
  seeds?: string[];
  /** The finalists scored again (settings.finalists), once the evolution ended: the fine-tuned model is the
   * best of them, also when the search resumes. */
  finalists?: FinalistReport[];
}

function loadCheckpoint(file: string, settings: NasSettings): SearchCheckpoint | undefined {
  if (!existsSync(file)) return undefined;
  const fail = (why: string): never => {
    throw new NasCheckpointError(`${file}: ${why}; delete the output directory to start afresh`);
  };
  let saved: Partial<SearchCheckpoint>;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<SearchCheckpoint>;
  } catch (error) {
    return fail(`unreadable search checkpoint (${(error as Error).message})`);
  }
  if (saved.version !== SEARCH_VERSION)
    fail(`search checkpoint version ${String(saved.version)}, this build reads ${SEARCH_VERSION}`);
  if (JSON.stringify(saved.settings) !== JSON.stringify(settings))
    fail(`the checkpoint is of a search with other settings (${JSON.stringify(saved.settings)})`);
  const state = saved.state;
  if (
    state === undefined ||
    !Array.isArray(state.history) ||
    !Array.isArray(state.population) ||
    !Number.isInteger(state.cycles) ||
    saved.seconds === undefined ||
    (saved.seeds !== undefined && !Array.isArray(saved.seeds)) ||
    (saved.finalists !== undefined && !Array.isArray(saved.finalists))
  )
    return fail('malformed search checkpoint');
  for (const c of state.history) {
    if (c === null || typeof c !== 'object' || archKey(parseArch(c.arch)) !== c.key)
      fail('a candidate of the checkpoint is malformed');
  }
  return saved as SearchCheckpoint;
}

/** A finalist: its candidate report, its accuracy after `finalistBatches` batches from its supernet
 * weights, its latency timed again beside the other finalists, and its fitness from those two (evolution.ts
 * fitness: the accuracy within the budgets, below 0 by its relative miss over them). */
export type FinalistReport = CandidateReport & {
  finalist_accuracy: number;
  finalist_latency_ms: number;
  finalist_fitness: number;
};

function candidateReport(c: Candidate): CandidateReport {
  const misses = {
    ...(c.misses.latencyMs === undefined ? {} : { latency_ms: c.misses.latencyMs }),
    ...(c.misses.ramBytes === undefined ? {} : { ram_bytes: c.misses.ramBytes }),
    ...(c.misses.sizeBytes === undefined ? {} : { package_bytes: c.misses.sizeBytes }),
  };
  return {
    key: c.key,
    arch: c.arch,
    supernet_accuracy: c.accuracy,
    latency_ms: c.latencyMs,
    ram_bytes: c.ramBytes,
    package_bytes: c.packageBytes,
    ...(Object.keys(misses).length > 0 ? { misses } : {}),
  };
}

/** Median per-image latency of `pkg` at batch 1 on this runtime. */
function measuredLatency(pkg: Package, set: ImageSet, runs: number): number {
  return compareLatency([pkg], set, runs)[0]!.medianMs;
}

/** The finalists among the candidates within the budgets, fittest first: one per float architecture
 * (candidates that differ only in formats train the same weights; the fittest stands for them), and first
 * the fittest of each family (space.ts archFamily), then the next fittest. The short training that scores
 * candidates tells families apart by what they learn first, not by what they reach: in a full run
 * (docs/benchmarks.md, NAS fourth pass) the fittest of three families scored 0.7505 (depthwise-separable),
 * 0.7495 (mixed) and 0.7455 (plain conv) after 20 batches, and the three fittest float architectures were
 * all depthwise-separable; in the run before, the plain conv finalist fine-tuned 1.9 points above the
 * depthwise-separable one chosen. None when fewer than two float architectures fit. */
export function pickFinalists(within: readonly Candidate[], budgets: Budgets, count: number): Candidate[] {
  const float = (c: Candidate): string => archKey(floatArch(c.arch));
  const ranked = [...within]
    .sort((a, b) => fitness(b, budgets) - fitness(a, budgets))
    .filter((c, i, all) => all.findIndex((d) => float(d) === float(c)) === i);
  if (ranked.length < 2) return [];
  const firstOfFamily = ranked.filter(
    (c, i, all) => all.findIndex((d) => archFamily(d.arch) === archFamily(c.arch)) === i,
  );
  const picks = firstOfFamily.slice(0, count);
  for (const c of ranked) if (picks.length < count && !picks.includes(c)) picks.push(c);
  return picks.sort((a, b) => fitness(b, budgets) - fitness(a, budgets));
}

/** How many times a candidate's runs (settings.latencyRuns) a finalist is timed. */
const LATENCY_RUNS_AGAIN = 5;

/** Finalists' latencies at batch 1: the device's predictor's where given (`predicted`), else their packages
 * timed here interleaved run by run, so that the machine's load at that moment hits each alike
 * (LATENCY_RUNS_AGAIN times a candidate's runs). */
async function finalistLatencies(
  packages: readonly Package[],
  predicted: ((index: number) => number | Promise<number>) | undefined,
  set: ImageSet,
  runs: number,
): Promise<number[]> {
  if (predicted !== undefined) {
    const latencies: number[] = [];
    for (let i = 0; i < packages.length; i++) latencies.push(await predicted(i));
    return latencies;
  }
  if (packages.length === 0) return [];
  return compareLatency(packages, set, runs * LATENCY_RUNS_AGAIN).map((l) => l.medianMs);
}

/** Peak RAM of `pkg` on the runtime at batch 1: its memory plan's arena plus its weights. */
function peakRam(pkg: Package): number {
  const model = Model.fromPackage(pkg, { batch: 1 });
  return model.plan.arenaBytes + model.weightBytes;
}

/** The budget seeds (settings.budgetSeeds): for each stem stride and block type, the largest architecture
 * (extremeArch) in the search's fastest format (int8 where it may draw it) shrunk one choice at a time
 * (shrinkArch) until its package fits the budgets, as `figuresOf` measures it (the supernet's weights: the
 * figures do not depend on them), at most `count` of them. None without budgets, or where even the smallest
 * does not fit. */
async function budgetSeeds(
  choices: FormatChoices,
  budgets: Budgets,
  figuresOf: (arch: ArchSpec, model: tf.LayersModel) => Promise<Parameters<typeof budgetMisses>[0]>,
  supernet: Supernet,
  log: (progress: NasProgress) => void,
  count: number,
): Promise<ArchSpec[]> {
  if (Object.values(budgets).every((b) => b === undefined)) return [];
  const format = choices.formats.includes('int8') ? 'int8' : choices.formats[0]!;
  // Pruning applies to fp32 layers only; a search without 0 among its ratios prunes them.
  const prune = format === 'fp32' && !choices.prunes.includes(0) ? choices.prunes[0]! : 0;
  const seeds: ArchSpec[] = [];
  for (const stride of SEARCH_SPACE.stemStrides)
    for (const block of BLOCK_TYPES) {
      if (seeds.length === count) return seeds;
      const layer = { block, width: 0, depth: 0, kernel: 0, format, prune };
      const start: ArchSpec = {
        stem: { width: 0, format, ...(stride === 2 ? { stride } : {}) },
        stages: SEARCH_SPACE.stageWidths.map(() => layer),
        head: { format },
      };
      for (let arch: ArchSpec | undefined = extremeArch(start, 'largest'); arch; arch = shrinkArch(arch)) {
        const model = supernet.model(arch);
        const figures = await figuresOf(arch, model).finally(() => model.dispose());
        if (Object.keys(budgetMisses(figures, budgets)).length > 0) continue;
        log({
          phase: 'evolution',
          message: `budget seed ${archKey(arch)} ${figures.latencyMs.toFixed(3)} ms`,
        });
        seeds.push(arch);
        break;
      }
    }
  return seeds;
}

/** Runs (or resumes) the search; see the header. */
export async function runNas(run: NasRun): Promise<NasResult> {
  const { settings, outDir } = run;
  const log = run.onProgress ?? (() => undefined);
  mkdirSync(outDir, { recursive: true });
  const choices = parseFormatChoices(settings);
  const data = loadDataset(settings.dataset);
  const trainSet = data.train;
  const test = data.test ?? trainSet;
  const used = Math.min(trainSet.count, settings.trainLimit ?? trainSet.count);
  if (used <= settings.validationImages)
    throw new NasCheckpointError(
      `${settings.dataset}: ${used} training images cannot hold out ${settings.validationImages} for validation`,
    );
  const options = {
    inputShape: [trainSet.height, trainSet.width, trainSet.channels] as const,
    classes: trainSet.classes.length,
    seed: settings.seed,
  };
  const validationStart = used - settings.validationImages;
  const validation = {
    x: imageInput(trainSet, validationStart, settings.validationImages),
    labels: trainSet.labels.subarray(validationStart, used),
  };
  const calibration = imageInput(trainSet, 0, Math.min(settings.calibrationImages, validationStart));
  const calibrationSet = {
    count: calibration.length / (trainSet.height * trainSet.width * trainSet.channels),
    data: calibration,
  };

  // Phase 1: the supernet.
  const searchFile = join(outDir, SEARCH_FILE);
  const checkpoint = loadCheckpoint(searchFile, settings);
  const seconds = checkpoint?.seconds ?? { supernet: 0, search: 0, finetune: 0 };
  const supernet = existsSync(join(outDir, 'supernet.json'))
    ? Supernet.load(outDir, options)
    : Supernet.create(options);
  if (supernet.epochsDone < settings.supernetEpochs) {
    const phaseStart = performance.now();
    const done0 = supernet.epochsDone;
    const result = await supernet.train({
      set: trainSet,
      indices: identity(validationStart),
      epochs: settings.supernetEpochs,
      batchSize: settings.batchSize,
      pathBatches: settings.pathBatches,
      learningRate: settings.learningRate,
      seed: settings.seed,
      ...(run.signal ? { signal: run.signal } : {}),
      onPath: (epoch, batch, batches, loss) => {
        const fraction = (epoch - done0 + batch / batches) / (settings.supernetEpochs - done0);
        const elapsed = (performance.now() - phaseStart) / 1000;
        log({
          phase: 'supernet',
          message: `supernet epoch ${epoch + 1}/${settings.supernetEpochs} batch ${batch}/${batches} loss ${loss.toFixed(3)}`,
          etaSeconds: fraction > 0 ? (elapsed / fraction) * (1 - fraction) : Infinity,
        });
      },
      onEpoch: () => {
        supernet.save(outDir);
      },
    });
    seconds.supernet += (performance.now() - phaseStart) / 1000;
    if (result.interrupted) {
      supernet.save(outDir);
      return { interrupted: true };
    }
  }

  // Phase 2: regularized evolution.
  const latencyOf =
    run.latencyOf ?? ((_arch: ArchSpec, pkg: Package) => measuredLatency(pkg, test, settings.latencyRuns));
  /** The accuracy of `arch` after `batches` batches from its supernet weights, and its package's figures.
   * A finalist's epoch starts Adam afresh: run 3 of the fourth pass (docs/benchmarks.md) resumed at its
   * finalists, so without the supernet's moments, scored all three 0.6-1.3 points higher, put the conv
   * finalist first by 0.3 point where the shared moments had it tied, and fine-tuned it to 0.9267 (0.9199). */
  const adapted = async (arch: ArchSpec, batches: number, freshOptimizer = false) => {
    const model = await supernet.adaptedSubnet(arch, calibration, {
      set: trainSet,
      indices: identity(validationStart),
      batchSize: settings.batchSize,
      batches,
      learningRate: settings.learningRate,
      seed: settings.seed + 1,
      freshOptimizer,
    });
    try {
      return { model, accuracy: modelAccuracy(model, validation.x, validation.labels) };
    } catch (error) {
      model.dispose();
      throw error;
    }
  };
  const figuresOf = async (arch: ArchSpec, model: tf.LayersModel) => {
    const pkg = await archPackage(arch, model, { calibration: calibrationSet });
    return { latencyMs: await latencyOf(arch, pkg), ramBytes: peakRam(pkg), packageBytes: pkg.fileBytes };
  };
  const score = async (arch: ArchSpec, cycle: number): Promise<Candidate> => {
    const { model, accuracy } = await adapted(arch, settings.adaptBatches);
    try {
      const figures = await figuresOf(arch, model);
      return {
        arch,
        key: archKey(arch),
        accuracy,
        ...figures,
        misses: budgetMisses(figures, settings.budgets),
        cycle,
      };
    } finally {
      model.dispose();
    }
  };
  const searchStart = performance.now();
  const seconds0 = seconds.search;
  const total = settings.populationSize + settings.cycles;
  const best = (history: readonly Candidate[]): Candidate | undefined =>
    history.reduce<Candidate | undefined>(
      (b, c) => (b === undefined || fitness(c, settings.budgets) > fitness(b, settings.budgets) ? c : b),
      undefined,
    );
  let scoredHere = 0;
  const startPopulation =
    settings.budgetSeeds &&
    (checkpoint === undefined || checkpoint.state.population.length < settings.populationSize);
  const seeds = startPopulation
    ? await budgetSeeds(choices, settings.budgets, figuresOf, supernet, log, settings.populationSize)
    : [];
  const seedKeys = startPopulation ? seeds.map(archKey) : (checkpoint?.seeds ?? []);
  let finalists = checkpoint?.finalists;
  const saveSearch = (state: EvolutionState): void =>
    writeAtomic(
      searchFile,
      JSON.stringify({ version: SEARCH_VERSION, settings, state, seconds, seeds: seedKeys, finalists }),
    );
  const evolved = await evolve({
    seeds,
    populationSize: settings.populationSize,
    sampleSize: settings.sampleSize,
    cycles: settings.cycles,
    seed: settings.seed,
    budgets: settings.budgets,
    choices,
    score: async (arch, cycle) => {
      scoredHere++;
      return score(arch, cycle);
    },
    ...(checkpoint ? { state: checkpoint.state } : {}),
    ...(run.signal ? { signal: run.signal } : {}),
    onCandidate: (c, state) => {
      seconds.search = seconds0 + (performance.now() - searchStart) / 1000;
      saveSearch(state);
      const done = Math.min(total, state.population.length + state.cycles);
      const perCandidate = (performance.now() - searchStart) / 1000 / Math.max(1, scoredHere);
      const top = best(state.history);
      log({
        phase: 'evolution',
        message:
          `generation ${state.cycles}/${settings.cycles}: ${c.key} accuracy ${(100 * c.accuracy).toFixed(1)}% ` +
          `${c.latencyMs.toFixed(3)} ms ${c.packageBytes} B${feasible(c) ? '' : ' (over budget)'}`,
        etaSeconds: perCandidate * (total - done),
        ...(top ? { best: top } : {}),
      });
    },
  });
  if (evolved.interrupted) return { interrupted: true };
  const history = evolved.history;
  const within = history.filter(feasible);
  const report: NasReport = {
    budgets: {
      ...(settings.budgets.latencyMs === undefined ? {} : { latency_ms: settings.budgets.latencyMs }),
      ...(settings.budgets.ramBytes === undefined ? {} : { ram_bytes: settings.budgets.ramBytes }),
      ...(settings.budgets.sizeBytes === undefined ? {} : { package_bytes: settings.budgets.sizeBytes }),
    },
    feasible: within.length > 0,
    latency_source: settings.latencySource ?? "measured on this machine's runtime",
    candidates_evaluated: history.length,
    generations: evolved.cycles,
    pareto_front: paretoFront(history).map(candidateReport),
    budget_seeds: seedKeys,
    finalists: [],
    supernet_seconds: seconds.supernet,
    search_seconds: seconds.search,
    finetune_seconds: seconds.finetune,
    total_seconds: 0,
    settings,
  };
  if (within.length === 0) {
    report.closest = [...history]
      .sort((a, b) => relativeMiss(a, settings.budgets) - relativeMiss(b, settings.budgets))
      .slice(0, 5)
      .map(candidateReport);
    report.total_seconds = seconds.supernet + seconds.search;
    writeAtomic(join(outDir, NAS_REPORT_FILE), JSON.stringify(report, null, 2));
    return { interrupted: false, report };
  }

  // The finalists: the best few within the budgets scored again after longer training (20 batches rank a
  // small fast learner and the largest model that fits within their noise; settings.ts), and timed again
  // side by side (finalistLatencies): the search measured each candidate alone, each at its own moment of
  // the machine's load.
  if (finalists === undefined) {
    const scored: { candidate: Candidate; accuracy: number; pkg: Package }[] = [];
    for (const c of pickFinalists(within, settings.budgets, settings.finalists)) {
      if (run.signal?.aborted === true) return { interrupted: true };
      log({ phase: 'evolution', message: `finalist ${c.key}: ${settings.finalistBatches} batches` });
      const { model, accuracy } = await adapted(c.arch, settings.finalistBatches, true);
      let pkg: Package;
      try {
        pkg = await archPackage(c.arch, model, { calibration: calibrationSet });
        // Kept: the one fine-tuned starts from what its epoch trained.
        mkdirSync(join(outDir, FINALISTS_DIR, c.key), { recursive: true });
        await model.save(fileHandler(join(outDir, FINALISTS_DIR, c.key)));
      } finally {
        model.dispose();
      }
      scored.push({ candidate: c, accuracy, pkg });
    }
    const latencies = await finalistLatencies(
      scored.map((f) => f.pkg),
      run.latencyOf === undefined
        ? undefined
        : (i) => run.latencyOf!(scored[i]!.candidate.arch, scored[i]!.pkg),
      test,
      settings.latencyRuns,
    );
    finalists = scored.map(({ candidate, accuracy }, i) => {
      const figures = { ...candidate, latencyMs: latencies[i]! };
      const again = { ...figures, accuracy, misses: budgetMisses(figures, settings.budgets) };
      log({
        phase: 'evolution',
        message:
          `finalist ${candidate.key}: accuracy ${(100 * accuracy).toFixed(1)}% ` +
          `${again.latencyMs.toFixed(3)} ms${feasible(again) ? '' : ' (over budget)'}`,
      });
      return {
        ...candidateReport(candidate),
        finalist_accuracy: accuracy,
        finalist_latency_ms: again.latencyMs,
        finalist_fitness: fitness(again, settings.budgets),
      };
    });
    finalists.sort((a, b) => b.finalist_fitness - a.finalist_fitness);
    seconds.search = seconds0 + (performance.now() - searchStart) / 1000;
    saveSearch(evolved);
  }
  report.finalists = finalists;
  report.search_seconds = seconds.search;

  // Phase 3: fine-tune the best within the budgets from the weights its finalist's epoch trained (without
  // finalists, or theirs lost, from its supernet weights).
  const chosen = within.find((c) => c.key === finalists[0]?.key) ?? best(within)!;
  const finetuneStart = performance.now();
  const trainedDir = join(outDir, FINALISTS_DIR, chosen.key);
  const subnetDir = existsSync(join(trainedDir, MODEL_FILE)) ? trainedDir : join(outDir, 'subnet');
  const finetuneDir = join(outDir, 'finetune');
  if (!existsSync(join(subnetDir, MODEL_FILE))) {
    const start = supernet.model(chosen.arch);
    recalibrateBatchNorm(start, calibration);
    mkdirSync(subnetDir, { recursive: true });
    await start.save(fileHandler(subnetDir));
    start.dispose();
  }
  const layers = archLayers(chosen.arch, await tf.loadLayersModel(fileHandler(subnetDir)));
  const pruned = layers.filter((l) => l.prune > 0);
  const startModel = await tf.loadLayersModel(fileHandler(subnetDir));
  const masks = magnitudeMasks(
    new Map(pruned.map((l) => [l.name, readKernel(startModel, l.name)])),
    new Map(pruned.map((l) => [l.name, l.prune])),
    false,
  );
  startModel.dispose();
  const hooks = combineHooks(
    steHooks(
      layers.flatMap((l) =>
        l.format === 'ternary'
          ? [{ layer: l.name, quantizer: ternaryQuantizer(true) }]
          : l.format === 'binary'
            ? [{ layer: l.name, quantizer: BINARY_QUANTIZER }]
            : [],
      ),
    ),
    projectionHooks(pruned.map((l) => ({ layer: l.name, mask: masks.get(l.name)! }))),
  );
  log({ phase: 'finetune', message: `fine-tuning ${chosen.key} for ${settings.finetuneEpochs} epochs` });
  const tuned = await train({
    config: {
      ...DEFAULT_TRAIN_CONFIG,
      model: 'nas',
      dataset: settings.dataset,
      epochs: settings.finetuneEpochs,
      batchSize: settings.batchSize,
      learningRate: settings.learningRate / 2,
      patience: 0,
      seed: settings.seed,
      trainLimit: used,
      ...(settings.testLimit === undefined ? {} : { testLimit: settings.testLimit }),
    },
    outDir: finetuneDir,
    from: subnetDir,
    resume: existsSync(join(finetuneDir, 'checkpoint')),
    hooks,
    ...(run.signal ? { signal: run.signal } : {}),
    onProgress: (p) =>
      log({
        phase: 'finetune',
        message: `fine-tune epoch ${p.epoch}/${p.epochs} batch ${p.batch}/${p.batches} ${p.phase}`,
        etaSeconds: p.etaSeconds,
      }),
  });
  seconds.finetune += (performance.now() - finetuneStart) / 1000;
  saveSearch(evolved);
  if (tuned.interrupted) return { interrupted: true };

  // Phase 4: package in the architecture's formats and verify on this runtime.
  log({ phase: 'package', message: `packaging ${chosen.key} and measuring it` });
  const model = await tf.loadLayersModel(fileHandler(finetuneDir));
  // A few fine-tuning steps leave the batch norms' moving statistics near their start (momentum 0.99):
  // recalibrated on the calibration images, as the candidates were scored.
  recalibrateBatchNorm(model, calibration);
  const pkg = await archPackage(chosen.arch, model, {
    calibration: calibrationSet,
    modelId: 'nas',
    labels: trainSet.classes,
    preprocessingOf: trainSet,
  });
  model.dispose();
  const bytes = writePackage(packageContent(pkg), run.signingKey ?? bundledSigningKey());
  writeFileSync(join(outDir, NAS_PACKAGE_FILE), bytes);
  const testSet =
    settings.testLimit === undefined ? test : { ...test, count: Math.min(test.count, settings.testLimit) };
  const evaluation = evaluatePackage(pkg, testSet);
  const measured = {
    latencyMs: measuredLatency(pkg, test, Math.max(settings.latencyRuns, 100)),
    ramBytes: peakRam(pkg),
    packageBytes: bytes.length,
  };
  // A device priced from its table is judged by the table's time for the fine-tuned package.
  const onDevice =
    run.latencyOf === undefined
      ? measured
      : { ...measured, latencyMs: await run.latencyOf(chosen.arch, pkg) };
  report.best = {
    ...candidateReport(chosen),
    ...(run.latencyOf === undefined ? {} : { latency_ms: onDevice.latencyMs }),
    accuracy: evaluation.top1,
    test_images: evaluation.images,
    measured_latency_ms: measured.latencyMs,
    measured_ram_bytes: measured.ramBytes,
    measured_package_bytes: measured.packageBytes,
    meets_budgets: Object.keys(budgetMisses(onDevice, settings.budgets)).length === 0,
    package: join(outDir, NAS_PACKAGE_FILE),
  };
  report.finetune_seconds = seconds.finetune;
  report.total_seconds = seconds.supernet + seconds.search + seconds.finetune;
  writeAtomic(join(outDir, NAS_REPORT_FILE), JSON.stringify(report, null, 2));
  return { interrupted: false, report };
}
