// `npm run bench -- latency [--json] [--count 100] [--seed 1]`: the latency predictor against measurement.
// Random architectures of the NAS search space (optimize/nas/space.ts) in their mixed per-layer formats, with
// random weights, are packaged through the real importer / quantizer / encoders; this machine's latency table
// is measured with the packages' whole runs timed in the same rounds (interleaved, so the machine's drift is
// the same for both); each package's batch-1 latency is then predicted from the table and compared with its
// measured median. Also prints the table's measurement time here and the Raspberry Pi 4 class's estimate of it.
// Each package is built twice (two runtimes, timed in the same rounds): its measured time is the median of
// both runtimes' samples, and the two runtimes' medians are compared (repeat_*): how far the measurement
// itself moves between two runs of the same package, the floor of any predictor's error.
// The table's networks (the predictor's per-model term, reported apart as per_model_term) are the agent's own
// seeded ones (latency-graphs.ts), not these architectures, and nothing is fitted to these measurements. `--table-out FILE` saves the table.
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import {
  defaultGrid,
  measureLatencyTable,
  median,
  SAMPLE_MS,
  type TimedRun,
  timedRun,
} from '../agent/profile/latency-table.js';
import { Model } from '../agent/runtime/model.js';
import { DEVICE_CLASS_CATALOG, estimateMeasurementSeconds } from '../optimize/latency/device-classes.js';
import { predictLatency } from '../optimize/latency/predictor.js';
import { archKey, archPackage, buildArchModel, sampleArch } from '../optimize/nas/space.js';
import { SeededRandom } from '../optimize/seeded-random.js';
import { benchOptions, positiveInteger, stringOptions } from './kernels.js';

export const LATENCY_HELP =
  'latency options: --count 100 (random architectures), --seed 1, --quick (the small grid), --table-out FILE, --json';

/** The input the architectures take: Fashion-MNIST's. */
const INPUT: [number, number, number] = [28, 28, 1];

export interface LatencyBenchRow {
  arch: string;
  measured_ms: number;
  /** The two runtimes' medians, apart: |a - b| / mean, in %. */
  repeat_diff_pct: number;
  predicted_ms: number;
  /** Through the per-model term fitted on the table's networks. */
  predicted_per_model_ms: number;
  error_pct: number;
}

/** The p-quantile (nearest rank) of sorted values. */
const quantile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;

export async function latencyBenchCommand(args: string[], machine: string): Promise<number> {
  const values = benchOptions(
    args,
    { json: { type: 'boolean' }, quick: { type: 'boolean' }, ...stringOptions('count', 'seed', 'table-out') },
    LATENCY_HELP,
  );
  if (values === undefined) return 0;
  const count = positiveInteger(values.count, 100, '--count');
  const seed = positiveInteger(values.seed, 1, '--seed');
  const say =
    values.json === true ? (l: string) => process.stderr.write(`${l}\n`) : (l: string) => console.log(l);
  say(`machine: ${machine}`);

  const rng = new SeededRandom(seed);
  const calibration = {
    count: 4,
    data: Float32Array.from({ length: 4 * INPUT[0] * INPUT[1] * INPUT[2] }, () => rng.next()),
  };
  const packages: { arch: string; pkg: Awaited<ReturnType<typeof archPackage>>; timed: TimedRun[] }[] = [];
  const built = performance.now();
  for (let i = 0; i < count; i++) {
    const arch = sampleArch(rng);
    const model = buildArchModel(arch, { inputShape: INPUT, classes: 10, seed: seed + i });
    const pkg = await archPackage(arch, model, { calibration });
    model.dispose();
    const timed = [0, 1].map(() => {
      const runtime = Model.fromPackage(pkg, { batch: 1 });
      const input = runtime.inputView(0);
      for (let j = 0; j < input.length; j++) input[j] = rng.next();
      return timedRun(runtime.inPlaceRunner(0), SAMPLE_MS);
    });
    packages.push({ arch: archKey(arch), pkg, timed });
    if ((i + 1) % 10 === 0) process.stderr.write(`  ${i + 1} / ${count} packages built\n`);
  }
  say(`${count} packages built in ${((performance.now() - built) / 1000).toFixed(1)} s`);

  const started = performance.now();
  const cpu = process.cpuUsage();
  const grid = defaultGrid(values.quick === true);
  const table = await measureLatencyTable({ grid, alongside: packages.flatMap((p) => p.timed) });
  if (values['table-out'] !== undefined) writeFileSync(values['table-out'], JSON.stringify(table));
  const wallSeconds = (performance.now() - started) / 1000;
  const { user, system } = process.cpuUsage(cpu);
  // The packages' runs took part of that (each at about its fastest sample's CPU time; slower samples were
  // waiting on a busy machine): the table's own CPU time is the rest (a quiet machine's wall time).
  const packageSeconds = packages
    .flatMap((p) => p.timed)
    .reduce((s, t) => s + (t.samples.length * t.reps * Math.min(...t.samples)) / 1000, 0);
  const cpuSeconds = (user + system) / 1e6 - packageSeconds;
  const pi4Seconds = estimateMeasurementSeconds(table, DEVICE_CLASS_CATALOG['raspberry-pi-4b'], cpuSeconds);
  say(
    `table: ${table.entries.length} entries (grid ${table.grid_id}), ${cpuSeconds.toFixed(1)} s of CPU ` +
      `(${wallSeconds.toFixed(1)} s wall, with the packages' runs); Raspberry Pi 4 estimate ${pi4Seconds.toFixed(0)} s`,
  );

  const rows: LatencyBenchRow[] = packages.map((p) => {
    const measured = median(p.timed.flatMap((t) => t.samples));
    const [a, b] = p.timed.map((t) => median(t.samples)) as [number, number];
    const predicted = predictLatency(p.pkg, table).ms;
    const perModel = predictLatency(p.pkg, table, { perModel: true }).ms;
    return {
      arch: p.arch,
      measured_ms: measured,
      repeat_diff_pct: (Math.abs(a - b) / ((a + b) / 2)) * 100,
      predicted_ms: predicted,
      predicted_per_model_ms: perModel,
      error_pct: ((predicted - measured) / measured) * 100,
    };
  });
  const errors = rows.map((r) => Math.abs(r.error_pct)).sort((a, b) => a - b);
  const perModelErrors = rows
    .map((r) => (Math.abs(r.predicted_per_model_ms - r.measured_ms) / r.measured_ms) * 100)
    .sort((a, b) => a - b);
  const repeats = rows.map((r) => r.repeat_diff_pct).sort((a, b) => a - b);
  const report = {
    machine,
    isa: table.isa,
    threads: table.threads,
    count,
    seed,
    grid_entries: table.entries.length,
    table_cpu_seconds: cpuSeconds,
    table_wall_seconds: wallSeconds,
    pi4_table_seconds_estimate: pi4Seconds,
    within_10pct: errors.filter((e) => e <= 10).length / errors.length,
    median_abs_error_pct: quantile(errors, 0.5),
    p90_abs_error_pct: quantile(errors, 0.9),
    mean_signed_error_pct: rows.reduce((s, r) => s + r.error_pct, 0) / rows.length,
    per_model_term: {
      within_10pct: perModelErrors.filter((e) => e <= 10).length / perModelErrors.length,
      median_abs_error_pct: quantile(perModelErrors, 0.5),
      p90_abs_error_pct: quantile(perModelErrors, 0.9),
    },
    repeat_within_10pct: repeats.filter((d) => d <= 10).length / repeats.length,
    repeat_median_diff_pct: quantile(repeats, 0.5),
    repeat_p90_diff_pct: quantile(repeats, 0.9),
    rows,
  };
  if (values.json === true) {
    console.log(JSON.stringify(report));
  } else {
    for (const r of rows)
      say(
        `${r.measured_ms.toFixed(4)} ms measured, ${r.predicted_ms.toFixed(4)} predicted (${r.error_pct.toFixed(1)} %): ${r.arch}`,
      );
    say(
      `within_10pct ${report.within_10pct.toFixed(2)}, median_abs_error_pct ${report.median_abs_error_pct.toFixed(1)}, ` +
        `p90_abs_error_pct ${report.p90_abs_error_pct.toFixed(1)}; two runtimes of each package: within 10 % ` +
        `${report.repeat_within_10pct.toFixed(2)}, median ${report.repeat_median_diff_pct.toFixed(1)} %, ` +
        `p90 ${report.repeat_p90_diff_pct.toFixed(1)} %`,
    );
  }
  return 0;
}
