// The planner: per layer, the format and pruning ratio that bring a package within a device's budgets
// (latency per frame, peak RAM, package bytes) at the least accuracy cost, and the ledger of what each kept
// step bought on that device.
//
// 1. Screening (the table): a choice whose estimated latency is higher than the fp32 layer's (beyond
//    `tolerance` of the frame time) is dropped and reported as slower with its figures; one that raises
//    peak RAM or package bytes (a codebook layer expanded to dense weights at load) as more-memory; one
//    that lowers none of them as paying nothing. Forced choices are the exception.
// 2. Selection, on the sensitivity figures added up layer by layer: every combination of the remaining
//    choices when there are few (the plan within budget at the least accuracy drop, exactly), else greedy
//    from the fp32 package, each move the one layer change with the largest cut of the budgets' excess per
//    point of accuracy it costs, until every budget is met. An impossible budget is reported with the
//    closest plans found and by how much each misses each budget.
// 3. Verification (end to end): the chosen steps applied one by one, each package measured against the one
//    before it (latency interleaved on the runtime, or from the device's table when the target is priced
//    from one; RAM from its memory plan, bytes of the file); a step that is slower, raises RAM or bytes, or
//    saves nothing, is dropped and reported; so is one whose package, evaluated, loses more top-1 than the
//    budgets' accuracy limit (Budgets.accuracyDrop, which also bounds the plans chosen in step 2).
import type { KeyObject } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';

import type { Package } from '../../agent/package/reader.js';
import type { ImageSet } from '../datasets/image-set.js';
import { compareLatency, evaluatePackage } from '../evaluate-package.js';
import type { CalibrationSet } from '../quantize/calibrate.js';
import {
  BASELINE_CHOICE,
  choiceKey,
  type LayerChoice,
  peakRamBytes,
  PlanError,
  planPackage,
} from './apply.js';
import type { LatencyEstimator } from './estimator.js';
import type { PackageFigures, Sensitivity, SensitivityEntry } from './sensitivity.js';

export interface Budgets {
  /** Milliseconds per frame (batch 1). */
  latencyMs?: number;
  /** Peak RAM bytes (arena + weights + executor buffers). */
  ramBytes?: number;
  /** Bytes of the package file. */
  packageBytes?: number;
  /** The most top-1 accuracy (a fraction) the plan may lose against the fp32 baseline: a hard limit, not a
   * budget to get close to. Plans estimated to lose more are not chosen, and a step that measures more lost
   * end to end is dropped (ledger reason `accuracy`). Absent: no limit. */
  accuracyDrop?: number;
}

type Budget = 'latency_ms' | 'ram_bytes' | 'package_bytes';

export interface BudgetMiss {
  budget: Budget;
  limit: number;
  value: number;
  /** By how much it misses (value - limit, in the budget's unit) and as a fraction of the limit. */
  over: number;
  over_fraction: number;
}

export interface PlanCandidate {
  plan: Record<string, string>;
  estimated: { ms: number; ram_bytes: number; bytes: number; accuracy_drop: number };
  misses: BudgetMiss[];
}

export interface ScreenedStep {
  layer: string;
  choice: string;
  reason: 'slower' | 'more-memory' | 'pays-nothing' | 'not-applicable';
  /** The figures it was judged on (the table's). */
  delta_ms?: number;
  layer_ms?: number;
  baseline_layer_ms?: number;
  delta_ram_bytes?: number;
  delta_bytes?: number;
  error?: string;
}

export interface PlanChoice {
  /** The steps in the order chosen (forced ones first). */
  steps: { layer: string; choice: LayerChoice; forced: boolean }[];
  met: boolean;
  estimated: PlanCandidate['estimated'];
  misses: BudgetMiss[];
  /** When the budgets cannot be met: the closest plans found, closest first. */
  closest: PlanCandidate[];
  screened: ScreenedStep[];
}

export interface PlanOptions {
  budgets: Budgets;
  /** Layer choices applied whatever they measure (the exception to "kept only where it pays"). */
  force?: ReadonlyMap<string, LayerChoice>;
  /** Latency noise allowed before a step counts as slower, as a fraction of the frame time (0.05). */
  tolerance?: number;
}

const EPS_ACCURACY = 1e-4;

/** Latency noise allowed before a step counts as slower: a fraction of the frame time. */
export const DEFAULT_TOLERANCE = 0.05;

/** How far figures are over each budget (none: every budget met). */
export function misses(budgets: Budgets, e: { ms: number; ram_bytes: number; bytes: number }): BudgetMiss[] {
  const out: BudgetMiss[] = [];
  const check = (budget: Budget, limit: number | undefined, value: number): void => {
    if (limit !== undefined && value > limit)
      out.push({ budget, limit, value, over: value - limit, over_fraction: (value - limit) / limit });
  };
  check('latency_ms', budgets.latencyMs, e.ms);
  check('ram_bytes', budgets.ramBytes, e.ram_bytes);
  check('package_bytes', budgets.packageBytes, e.bytes);
  return out;
}

const excess = (m: BudgetMiss[]): number => m.reduce((sum, x) => sum + x.over_fraction, 0);

/** Chooses the plan from the sensitivity table (steps 1 and 2 of the header). */
export function choosePlan(sensitivity: Sensitivity, options: PlanOptions): PlanChoice {
  const tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
  const base = sensitivity.baseline;
  const slack = tolerance * base.ms;
  const screened: ScreenedStep[] = [];
  const allowed: SensitivityEntry[] = [];
  for (const e of sensitivity.entries) {
    const forced = options.force?.get(e.layer);
    if (forced && choiceKey(forced) === e.key) continue;
    if (e.error !== undefined || e.figures === undefined) {
      screened.push({
        layer: e.layer,
        choice: e.key,
        reason: 'not-applicable',
        error: e.error ?? 'not measured',
      });
      continue;
    }
    const figures = {
      delta_ms: e.delta_ms!,
      layer_ms: e.layer_ms!,
      baseline_layer_ms: e.baseline_layer_ms!,
      delta_ram_bytes: e.delta_ram_bytes!,
      delta_bytes: e.delta_bytes!,
    };
    if (e.delta_ms! > slack) screened.push({ layer: e.layer, choice: e.key, reason: 'slower', ...figures });
    else if (e.delta_ram_bytes! > 0 || e.delta_bytes! > 0)
      screened.push({ layer: e.layer, choice: e.key, reason: 'more-memory', ...figures });
    else if (e.delta_ms! >= 0 && e.delta_ram_bytes! >= 0 && e.delta_bytes! >= 0)
      screened.push({ layer: e.layer, choice: e.key, reason: 'pays-nothing', ...figures });
    else allowed.push(e);
  }
  const entryOf = (layer: string, key: string): SensitivityEntry | undefined =>
    sensitivity.entries.find((e) => e.layer === layer && e.key === key);

  // The state: each layer's entry (undefined: fp32). Estimates add the layers' deltas to the baseline.
  const current = new Map<string, SensitivityEntry>();
  const steps: PlanChoice['steps'] = [];
  for (const [layer, choice] of options.force ?? []) {
    const e = entryOf(layer, choiceKey(choice));
    if (e?.figures === undefined)
      throw new PlanError(
        `forced ${layer} ${choiceKey(choice)} has no sensitivity figures${e?.error ? `: ${e.error}` : ''}`,
      );
    current.set(layer, e);
    steps.push({ layer, choice, forced: true });
  }
  const estimate = (state: ReadonlyMap<string, SensitivityEntry>): PlanCandidate['estimated'] => {
    let ms = base.ms;
    let ram = base.ram_bytes;
    let bytes = base.bytes;
    let drop = 0;
    for (const e of state.values()) {
      ms += e.delta_ms!;
      ram += e.delta_ram_bytes!;
      bytes += e.delta_bytes!;
      drop += Math.max(0, -e.delta_accuracy!);
    }
    return { ms, ram_bytes: ram, bytes, accuracy_drop: drop };
  };
  const candidate = (state: ReadonlyMap<string, SensitivityEntry>): PlanCandidate => {
    const estimated = estimate(state);
    return {
      plan: Object.fromEntries([...state].map(([l, e]) => [l, e.key])),
      estimated,
      misses: misses(options.budgets, estimated),
    };
  };
  const forcedLayers = new Set(options.force?.keys() ?? []);
  const free = [...new Set(allowed.map((e) => e.layer))].filter((l) => !forcedLayers.has(l));
  const options_ = free.map((l) => allowed.filter((e) => e.layer === l));
  const combinations = options_.reduce((n, o) => n * (o.length + 1), 1);
  // Forced steps count against the accuracy limit too, but are taken whatever they cost.
  const accuracyDrop = Math.max(options.budgets.accuracyDrop ?? Infinity, estimate(current).accuracy_drop);
  const found =
    combinations <= EXHAUSTIVE_LIMIT
      ? exhaustive(current, free, options_, candidate, accuracyDrop)
      : greedy(current, allowed, forcedLayers, candidate, accuracyDrop);
  for (const [layer, e] of [...found.state].sort((a, b) => a[1].delta_ms! - b[1].delta_ms!))
    if (!forcedLayers.has(layer)) steps.push({ layer, choice: e.choice, forced: false });
  const last = found.best;
  const met = last.misses.length === 0;
  return {
    steps,
    met,
    estimated: last.estimated,
    misses: last.misses,
    closest: met ? [] : found.closest,
    screened,
  };
}

/** Plans enumerated whole when there are at most this many (a few layers): the least accuracy cost exactly. */
const EXHAUSTIVE_LIMIT = 50_000;

type State = Map<string, SensitivityEntry>;
interface Found {
  state: State;
  best: PlanCandidate;
  closest: PlanCandidate[];
}

const byExcess = (a: PlanCandidate, b: PlanCandidate): number =>
  excess(a.misses) - excess(b.misses) || a.estimated.accuracy_drop - b.estimated.accuracy_drop;

/** Every combination of the layers' choices: the one within budget at the least accuracy drop (then the
 * fastest); when none is, the closest three. */
function exhaustive(
  start: State,
  layers: string[],
  choices: SensitivityEntry[][],
  candidate: (state: State) => PlanCandidate,
  accuracyDrop: number,
): Found {
  let best: { state: State; c: PlanCandidate } | undefined;
  const closest: { state: State; c: PlanCandidate }[] = [];
  const state = new Map(start);
  const visit = (i: number): void => {
    if (i === layers.length) {
      const c = candidate(state);
      if (c.estimated.accuracy_drop > accuracyDrop) return;
      if (c.misses.length === 0) {
        if (
          !best ||
          c.estimated.accuracy_drop < best.c.estimated.accuracy_drop - 1e-12 ||
          (Math.abs(c.estimated.accuracy_drop - best.c.estimated.accuracy_drop) <= 1e-12 &&
            c.estimated.ms < best.c.estimated.ms)
        )
          best = { state: new Map(state), c };
      } else if (!best) {
        closest.push({ state: new Map(state), c });
        closest.sort((a, b) => byExcess(a.c, b.c));
        closest.length = Math.min(closest.length, 3);
      }
      return;
    }
    const layer = layers[i]!;
    state.delete(layer);
    visit(i + 1);
    for (const e of choices[i]!) {
      state.set(layer, e);
      visit(i + 1);
    }
    state.delete(layer);
  };
  visit(0);
  if (best) return { state: best.state, best: best.c, closest: [] };
  return { state: closest[0]!.state, best: closest[0]!.c, closest: closest.map((x) => x.c) };
}

/** Greedy from `start`: each move the layer change with the largest cut of the budgets' excess per point of
 * accuracy it costs, until every budget is met or no move helps (then the closest plans on the way). */
function greedy(
  start: State,
  allowed: SensitivityEntry[],
  fixed: ReadonlySet<string>,
  candidate: (state: State) => PlanCandidate,
  accuracyDrop: number,
): Found {
  const current = new Map(start);
  const path: PlanCandidate[] = [candidate(current)];
  for (;;) {
    const now = path[path.length - 1]!;
    const over = excess(now.misses);
    if (over === 0) break;
    let best: { entry: SensitivityEntry; score: number; after: PlanCandidate } | undefined;
    for (const e of allowed) {
      if (fixed.has(e.layer) || current.get(e.layer) === e) continue;
      const after = candidate(new Map(current).set(e.layer, e));
      if (after.estimated.accuracy_drop > accuracyDrop) continue;
      const gain = over - excess(after.misses);
      if (gain <= 1e-12) continue;
      const cost = Math.max(0, after.estimated.accuracy_drop - now.estimated.accuracy_drop) + EPS_ACCURACY;
      const score = gain / cost;
      if (!best || score > best.score) best = { entry: e, score, after };
    }
    if (!best) break;
    current.set(best.entry.layer, best.entry);
    path.push(best.after);
  }
  const last = path[path.length - 1]!;
  return { state: current, best: last, closest: [...path].sort(byExcess).slice(0, 3) };
}

export interface LedgerStep {
  step: number;
  layer: string;
  from: string;
  to: string;
  forced: boolean;
  kept: boolean;
  /** kept; dropped: slower (measured end to end), more-memory (peak RAM or package bytes up), pays-nothing,
   * accuracy (the package with it loses more than the budgets' accuracyDrop against fp32, measured),
   * slower-on-device (kept by the table, then the device timed the package faster without it). */
  reason: 'kept' | 'forced' | 'slower' | 'more-memory' | 'pays-nothing' | 'accuracy' | 'slower-on-device';
  estimated: { delta_ms: number; delta_ram_bytes: number; delta_bytes: number; delta_accuracy: number };
  /** ms_*: the target's time per frame, measured on this machine's runtime or, for a target priced from a
   * table (the estimator is `predicted`), the table's; then host_ms_* is this machine's measurement, kept
   * for the record but not what the step is judged by (it is not the device's). */
  measured: {
    ms_before: number;
    ms_after: number;
    host_ms_before?: number;
    host_ms_after?: number;
    ram_before: number;
    ram_after: number;
    bytes_before: number;
    bytes_after: number;
    /** With an accuracy limit: the top-1 of the package with this step (on the planner's images). */
    accuracy_after?: number;
  };
  /** whittle optimize --device, when the device timed the final package slower than the baseline: the package
   * with and without this step, timed there interleaved (ms per frame, medians). */
  device?: { ms_with: number; ms_without: number; source: string };
}

export interface VerifiedPlan {
  package: Package;
  plan: Record<string, string>;
  ledger: LedgerStep[];
  baseline: PackageFigures;
  final: PackageFigures;
  met: boolean;
  misses: BudgetMiss[];
}

export interface VerifyOptions {
  budgets: Budgets;
  /** Accuracy is measured on these images, latency on their first ones. */
  set: ImageSet;
  calibration: CalibrationSet;
  /** Timed batch-1 runs per comparison (interleaved). */
  runs?: number;
  tolerance?: number;
  key?: KeyObject;
  threads?: number;
  /** The target's latencies when they come from a table (`predicted`): each step's time is judged by it;
   * otherwise (absent, or measuring here) by this machine's runtime. */
  estimator?: LatencyEstimator;
  onStep?: (step: LedgerStep) => void;
}

/** Step 3 of the header: applies the chosen steps one at a time, keeping each only where the measurement
 * shows it lowers latency, RAM or bytes without making the frame slower: the frame time measured on this
 * machine's runtime, or the target's table's when it is priced from one (a device class's, or a device's
 * own table: this machine's time is not the device's, and a step faster there can be slower here). */
export async function verifyPlan(
  fp32: Package,
  chosen: PlanChoice,
  sensitivity: Sensitivity,
  options: VerifyOptions,
): Promise<VerifiedPlan> {
  const runs = options.runs ?? 100;
  const tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
  const limit = options.budgets.accuracyDrop;
  const table = options.estimator?.predicted === true ? options.estimator : undefined;
  const plan = new Map<string, LayerChoice>();
  let current = fp32;
  let ram = peakRamBytes(fp32);
  const ledger: LedgerStep[] = [];
  const baselineMs = compareLatency([fp32], options.set, runs, options.threads)[0]!.medianMs;
  for (const [i, step] of chosen.steps.entries()) {
    const next = new Map(plan).set(step.layer, step.choice);
    const pkg = planPackage(fp32, next, options.calibration, options.key);
    const [before, after] = compareLatency([current, pkg], options.set, runs, options.threads);
    const nextRam = peakRamBytes(pkg);
    const e = sensitivity.entries.find((x) => x.layer === step.layer && x.key === choiceKey(step.choice))!;
    const [tableBefore, tableAfter] = table?.estimate([current, pkg]) ?? [];
    const measured: LedgerStep['measured'] = {
      ms_before: tableBefore?.ms ?? before!.medianMs,
      ms_after: tableAfter?.ms ?? after!.medianMs,
      ...(table ? { host_ms_before: before!.medianMs, host_ms_after: after!.medianMs } : {}),
      ram_before: ram,
      ram_after: nextRam,
      bytes_before: current.fileBytes,
      bytes_after: pkg.fileBytes,
    };
    const slower = measured.ms_after > measured.ms_before * (1 + tolerance);
    const more = measured.ram_after > measured.ram_before || measured.bytes_after > measured.bytes_before;
    const pays =
      measured.ms_after < measured.ms_before ||
      measured.ram_after < measured.ram_before ||
      measured.bytes_after < measured.bytes_before;
    // The accuracy limit is checked on the package itself: the sensitivity figures add up layer by layer,
    // and several layers pruned or quantized together can lose far more than their sum.
    let lost = false;
    if (limit !== undefined && !step.forced && !slower && !more && pays) {
      const accuracy = evaluatePackage(pkg, options.set).top1;
      measured.accuracy_after = accuracy;
      lost = sensitivity.baseline.accuracy - accuracy > limit;
    }
    const kept = step.forced || (!slower && !more && pays && !lost);
    const entry: LedgerStep = {
      step: i + 1,
      layer: step.layer,
      from: choiceKey(plan.get(step.layer) ?? BASELINE_CHOICE),
      to: choiceKey(step.choice),
      forced: step.forced,
      kept,
      reason: step.forced
        ? 'forced'
        : slower
          ? 'slower'
          : more
            ? 'more-memory'
            : !pays
              ? 'pays-nothing'
              : lost
                ? 'accuracy'
                : 'kept',
      estimated: {
        delta_ms: e.delta_ms!,
        delta_ram_bytes: e.delta_ram_bytes!,
        delta_bytes: e.delta_bytes!,
        delta_accuracy: e.delta_accuracy!,
      },
      measured,
    };
    ledger.push(entry);
    options.onStep?.(entry);
    // The runtimes of this step are dropped: the event loop frees them (analyzeSensitivity says why).
    await setImmediate();
    if (!kept) continue;
    plan.set(step.layer, step.choice);
    current = pkg;
    ram = nextRam;
  }
  const finalMs = compareLatency([fp32, current], options.set, runs, options.threads)[1]!.medianMs;
  const final: PackageFigures = {
    accuracy: evaluatePackage(current, options.set).top1,
    bytes: current.fileBytes,
    ram_bytes: ram,
    ms: finalMs,
  };
  const m = misses(options.budgets, final);
  return {
    package: current,
    plan: Object.fromEntries([...plan].map(([l, c]) => [l, choiceKey(c)])),
    ledger,
    baseline: { ...sensitivity.baseline, ms: baselineMs },
    final,
    met: m.length === 0,
    misses: m,
  };
}

/** The ledger as a terminal table. */
export function formatLedger(v: Pick<VerifiedPlan, 'ledger' | 'baseline' | 'final' | 'misses'>): string {
  const row = (cells: (string | number)[], widths: number[]): string =>
    cells.map((c, i) => (i < 2 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join('  ');
  const w = [22, 20, 14, 18, 18, 16, 9];
  const lines = [
    'ledger (each step end to end against the one before, batch 1; ms from the latency source):',
  ];
  lines.push(row(['layer', 'step', 'verdict', 'ms', 'RAM bytes', 'bytes', 'Δacc est'], w));
  for (const s of v.ledger)
    lines.push(
      row(
        [
          s.layer,
          `${s.from} -> ${s.to}`,
          s.reason,
          `${s.measured.ms_before.toFixed(3)}->${s.measured.ms_after.toFixed(3)}`,
          `${s.measured.ram_before}->${s.measured.ram_after}`,
          `${s.measured.bytes_before}->${s.measured.bytes_after}`,
          (100 * s.estimated.delta_accuracy).toFixed(2),
        ],
        w,
      ),
    );
  const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
  lines.push(
    `total: ${v.baseline.ms.toFixed(3)} -> ${v.final.ms.toFixed(3)} ms, RAM ${v.baseline.ram_bytes} -> ${v.final.ram_bytes} ` +
      `bytes, package ${v.baseline.bytes} -> ${v.final.bytes} bytes, accuracy ${pct(v.baseline.accuracy)} -> ${pct(v.final.accuracy)}`,
  );
  for (const m of v.misses)
    lines.push(
      `budget ${m.budget} ${m.limit}: NOT MET (${m.value.toFixed(3)}, over by ${(100 * m.over_fraction).toFixed(1)}%)`,
    );
  return lines.join('\n');
}
