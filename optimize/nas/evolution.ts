// Regularized evolution (Real et al. 2019, "aging evolution") under hard budgets: a population of
// architectures; each cycle samples a few, mutates the fittest of the sample (space.ts mutateArch), scores
// the child and adds it, and removes the oldest member (not the worst: aging keeps the search exploring).
// Budgets are hard constraints: a candidate over any budget ranks below every candidate within them, and
// among those over budget the one missing by less (the sum of its relative misses) ranks higher, so an
// impossible budget still ends with the closest candidates and by how much each misses.
import { SeededRandom } from '../seeded-random.js';
import { archKey, type ArchSpec, type FormatChoices, mutateArch, sampleArch, SEARCH_SPACE } from './space.js';

export interface Budgets {
  latencyMs?: number;
  ramBytes?: number;
  sizeBytes?: number;
}

export interface Candidate {
  arch: ArchSpec;
  key: string;
  /** Supernet accuracy (validation images), a fraction. */
  accuracy: number;
  latencyMs: number;
  /** Peak RAM of the package on the runtime: its memory plan's arena plus its weights. */
  ramBytes: number;
  packageBytes: number;
  /** By how much each budget is exceeded (absent: within it). */
  misses: { latencyMs?: number; ramBytes?: number; sizeBytes?: number };
  /** Evolution cycle that produced it (-1: the initial population). */
  cycle: number;
}

/** The misses of a candidate's figures against `budgets`. */
export function budgetMisses(
  figures: Pick<Candidate, 'latencyMs' | 'ramBytes' | 'packageBytes'>,
  budgets: Budgets,
): Candidate['misses'] {
  const misses: Candidate['misses'] = {};
  if (budgets.latencyMs !== undefined && figures.latencyMs > budgets.latencyMs)
    misses.latencyMs = figures.latencyMs - budgets.latencyMs;
  if (budgets.ramBytes !== undefined && figures.ramBytes > budgets.ramBytes)
    misses.ramBytes = figures.ramBytes - budgets.ramBytes;
  if (budgets.sizeBytes !== undefined && figures.packageBytes > budgets.sizeBytes)
    misses.sizeBytes = figures.packageBytes - budgets.sizeBytes;
  return misses;
}

export const feasible = (c: Candidate): boolean => Object.keys(c.misses).length === 0;

/** Sum of the relative misses (0 within budget). */
export function relativeMiss(c: Candidate, budgets: Budgets): number {
  const m = c.misses;
  return (
    (m.latencyMs ?? 0) / (budgets.latencyMs ?? 1) +
    (m.ramBytes ?? 0) / (budgets.ramBytes ?? 1) +
    (m.sizeBytes ?? 0) / (budgets.sizeBytes ?? 1)
  );
}

/** Fitness: accuracy within the budgets; below any of those, minus the relative miss. */
export function fitness(c: Candidate, budgets: Budgets): number {
  return feasible(c) ? c.accuracy : -1 - relativeMiss(c, budgets);
}

/** The candidates no other candidate beats on accuracy, latency and package size at once. */
export function paretoFront(candidates: readonly Candidate[]): Candidate[] {
  const dominates = (a: Candidate, b: Candidate): boolean =>
    a.accuracy >= b.accuracy &&
    a.latencyMs <= b.latencyMs &&
    a.packageBytes <= b.packageBytes &&
    (a.accuracy > b.accuracy || a.latencyMs < b.latencyMs || a.packageBytes < b.packageBytes);
  return candidates
    .filter((c) => !candidates.some((d) => dominates(d, c)))
    .sort((a, b) => b.accuracy - a.accuracy);
}

export interface EvolutionState {
  /** Every candidate scored so far, in order. */
  history: Candidate[];
  /** Keys of the population, oldest first. */
  population: string[];
  /** Cycles done (after the initial population). */
  cycles: number;
}

export interface EvolutionOptions {
  populationSize: number;
  sampleSize: number;
  cycles: number;
  seed: number;
  budgets: Budgets;
  /** The formats and pruning ratios candidates draw from (default: all of SEARCH_SPACE's). */
  choices?: FormatChoices;
  /** Architectures the initial population starts with; random draws fill the rest. */
  seeds?: readonly ArchSpec[];
  score: (arch: ArchSpec, cycle: number) => Promise<Candidate>;
  /** Resume from this state (a checkpoint). */
  state?: EvolutionState;
  /** After every candidate (the caller checkpoints and reports). */
  onCandidate?: (candidate: Candidate, state: EvolutionState) => Promise<void> | void;
  signal?: AbortSignal;
}

/** Runs (or resumes) the evolution; returns the state, `interrupted` when the signal stopped it. */
export async function evolve(options: EvolutionOptions): Promise<EvolutionState & { interrupted: boolean }> {
  const state: EvolutionState = options.state ?? { history: [], population: [], cycles: 0 };
  const byKey = new Map(state.history.map((c) => [c.key, c]));
  const add = (c: Candidate): void => {
    state.history.push(c);
    byKey.set(c.key, c);
  };
  // A known architecture is not scored twice (the supernet gives it the same accuracy).
  const scored = async (arch: ArchSpec, cycle: number): Promise<Candidate> =>
    byKey.get(archKey(arch)) ?? options.score(arch, cycle);
  const initial = new SeededRandom(options.seed);
  // The initial population: seeded, so a resumed run draws the same ones and skips those already scored.
  const choices = options.choices ?? SEARCH_SPACE;
  const drawn = Array.from({ length: options.populationSize }, () => sampleArch(initial, choices));
  const seeds = [...(options.seeds ?? []), ...drawn].slice(0, options.populationSize);
  for (let i = state.population.length; i < options.populationSize && state.cycles === 0; i++) {
    if (options.signal?.aborted === true) return { ...state, interrupted: true };
    const c = await scored(seeds[i]!, -1);
    if (!byKey.has(c.key)) add(c);
    state.population.push(c.key);
    await options.onCandidate?.(c, state);
  }
  while (state.cycles < options.cycles) {
    if (options.signal?.aborted === true) return { ...state, interrupted: true };
    const rng = new SeededRandom(options.seed * 104729 + state.cycles);
    const sample = Array.from({ length: Math.min(options.sampleSize, state.population.length) }, () =>
      byKey.get(state.population[rng.int(0, state.population.length - 1)]!)!,
    );
    const parent = sample.reduce((best, c) =>
      fitness(c, options.budgets) > fitness(best, options.budgets) ? c : best,
    );
    const child = await scored(mutateArch(parent.arch, rng, choices), state.cycles);
    state.cycles++;
    if (!byKey.has(child.key)) add(child);
    state.population.push(child.key);
    state.population.shift();
    await options.onCandidate?.(child, state);
  }
  return { ...state, interrupted: false };
}
