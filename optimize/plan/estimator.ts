// Where the planner's latencies come from. A LatencyEstimator gives a whole package's time per frame and
// each layer's share, in the shape of the latency predictor's answer (optimize/latency, from a device's
// table): the predictor of a device plugs in as one. Until a device has a table, `measuredEstimator` times
// the packages on this machine's runtime: each node alone (Model.profile), the packages taking turns round
// by round so that a change in machine load hits all of them alike, medians over the rounds.
import type { Package } from '../../agent/package/reader.js';
import type { LatencyTable } from '../../agent/profile/latency-table.js';
import { AGENT_THREADS, Model, withThreads } from '../../agent/runtime/model.js';
import type { ImageSet } from '../datasets/image-set.js';
import { imageInput, packageImageInput } from '../evaluate-package.js';
import { predictLatency } from '../latency/predictor.js';

export interface LayerLatency {
  name: string;
  op: string;
  format: string;
  ms: number;
}

export interface LatencyEstimate {
  /** Milliseconds per frame (batch 1). */
  ms: number;
  layers: LayerLatency[];
}

export interface LatencyEstimator {
  /** What the figures are: `measured on this machine's runtime`, `table of DEVICE (build …)`. */
  readonly source: string;
  /** Priced from a table rather than run here: the device's figures, which this machine cannot check. */
  readonly predicted?: true;
  /** Each package's estimate, in order (a measuring estimator interleaves them). */
  estimate(packages: readonly Package[]): LatencyEstimate[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Times packages on this machine's runtime, on the first image of `set` as the package takes it: the frame
 * time is the median of `rounds` × `runs` whole runs, the packages taking turns run by run; each layer's
 * share is its profiled median (`rounds` rounds of `runs` profiled runs, in turn), scaled so the layers add
 * up to the frame. The frame is timed whole because a layer's profiled time carries the timer's overhead
 * and the machine's noise (microseconds each), which at small layers swamp the difference a choice makes:
 * a sum of profiled layers can double the frame and turn a faster package slower. On `threads`, by default
 * the agent's (AGENT_THREADS), as compareLatency times. */
export function measuredEstimator(
  set: ImageSet,
  options: { rounds?: number; runs?: number; threads?: number } = {},
): LatencyEstimator {
  const rounds = options.rounds ?? 5;
  const runs = options.runs ?? 5;
  const threads = options.threads ?? AGENT_THREADS;
  return {
    source: "measured on this machine's runtime",
    estimate: (packages) => withThreads(threads, () => timeLayers(packages, set, rounds, runs, threads)),
  };
}

function timeLayers(
  packages: readonly Package[],
  set: ImageSet,
  rounds: number,
  runs: number,
  threads: number,
): LatencyEstimate[] {
  const models = packages.map((pkg) => {
    const model = Model.fromPackage(pkg, { batch: 1, threads });
    const input = imageInput(set, 0, 1, packageImageInput(pkg, set));
    model.run([input]);
    return { model, input, frames: [] as number[], times: model.layers.map((): number[] => []) };
  });
  for (const m of models) m.model.profile(2);
  for (let r = 0; r < rounds; r++)
    for (const m of models) m.model.profile(runs).forEach((p, i) => m.times[i]!.push(p.ms));
  for (let i = 0; i < rounds * runs; i++)
    for (const m of models) {
      const t0 = performance.now();
      m.model.run([m.input]);
      m.frames.push(performance.now() - t0);
    }
  return models.map(({ model, times, frames }) => {
    const profiled = times.map(median);
    const sum = profiled.reduce((a, b) => a + b, 0);
    const ms = median(frames);
    const layers = model.layers.map((l, i) => ({
      name: l.name,
      op: l.op,
      format: l.format,
      ms: sum > 0 ? (profiled[i]! * ms) / sum : 0,
    }));
    return { ms, layers };
  });
}

/** Prices packages from a device's latency table (measured on the device, or a class's estimate) with the
 * latency predictor: nothing is run, so it also serves a device this machine is not. */
export function tableEstimator(table: LatencyTable, source: string): LatencyEstimator {
  return {
    source,
    predicted: true,
    estimate: (packages) =>
      packages.map((pkg) => {
        const p = predictLatency(pkg, table);
        return { ms: p.ms, layers: p.layers.map(({ name, op, format, ms }) => ({ name, op, format, ms })) };
      }),
  };
}
