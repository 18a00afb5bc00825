// `whittle nas`'s settings and their defaults, apart from the search (search.ts) so that the command line's
// help names the defaults without loading the training stack.
import type { Budgets } from './evolution.js';
import type { LayerFormat } from './space.js';

export interface NasSettings {
  dataset: string;
  budgets: Budgets;
  supernetEpochs: number;
  batchSize: number;
  /** Batches each sampled supernet path trains on. */
  pathBatches: number;
  /** Batches each candidate trains on from its supernet weights before it is scored (Supernet.adaptedSubnet;
   * 0: scored as the supernet holds it). */
  adaptBatches: number;
  learningRate: number;
  /** Training images used (the first N; all by default); the last `validationImages` of them are held out
   * to score architectures. */
  trainLimit?: number;
  validationImages: number;
  /** Images each candidate's batch norms are recalibrated on. */
  calibrationImages: number;
  testLimit?: number;
  /** The per-layer formats and pruning ratios candidates draw from. The supernet trains float weights
   * only: an int8 layer costs it little accuracy, but ternary / binary / pruned layers projected from them
   * score near chance untrained (a reduced run ranked noise), so the default searches fp32 and int8 and
   * leaves the fp32 layers to the planner (`whittle optimize --search`: each measured format kept where it
   * pays). */
  formats: LayerFormat[];
  prunes: number[];
  populationSize: number;
  /** Seed the initial population with the largest architecture of each block type and stem stride shrunk
   * until it fits the budgets (space.ts shrinkArch): random draws and one-choice mutations rarely reach the
   * budget's corner of the space, where the largest model that fits is. */
  budgetSeeds: boolean;
  sampleSize: number;
  cycles: number;
  /** The best candidates within the budgets trained `finalistBatches` batches from their supernet weights
   * (at most one pass over the training images) and scored again, their latencies measured again side by
   * side; the best of them is fine-tuned (0: the best candidate as scored). */
  finalists: number;
  finalistBatches: number;
  finetuneEpochs: number;
  /** Timed runs of each candidate's package (batch 1). */
  latencyRuns: number;
  seed: number;
  /** Where candidates' latencies come from when not measured on this runtime (NasRun.latencyOf): a device's
   * table, named, so that a search resumed for another device is refused. */
  latencySource?: string;
}

/** Sized for the 30 minutes on this 2-core machine, Fashion-MNIST (measured quiet: a supernet epoch
 * ~80 s, a candidate ~1-5 s with its adaptation, a fine-tuning epoch ~45 s). A supernet's paths that mix
 * widths, depths and kernels score near chance as it holds them even after 3 epochs (docs/benchmarks.md), so
 * each candidate trains 20 batches from its weights before it is scored. 20 batches tell a small fast
 * learner from the largest model that fits by less than their noise, and so do 300: in a full run they put
 * two depthwise-separable models 1.1-1.5 points above a plain conv one that fine-tuned 1.9 points better
 * (0.9235 against 0.9049). An epoch (~50 s each) ranked them as fine-tuning did, so the three best are
 * scored again after one. */
export const DEFAULT_NAS_SETTINGS: Omit<NasSettings, 'dataset' | 'budgets'> = {
  supernetEpochs: 4,
  batchSize: 64,
  pathBatches: 8,
  adaptBatches: 20,
  learningRate: 2e-3,
  validationImages: 2000,
  calibrationImages: 256,
  formats: ['fp32', 'int8'],
  prunes: [0],
  populationSize: 12,
  budgetSeeds: true,
  sampleSize: 4,
  cycles: 36,
  finalists: 3,
  finalistBatches: 900,
  finetuneEpochs: 5,
  latencyRuns: 40,
  seed: 1,
};
