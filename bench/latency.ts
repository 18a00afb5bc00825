// `npm run bench -- latency [--json] [--count 100] [--seed 1]`: the latency predictor against measurement.
// Random architectures of the NAS search space (optimize/nas/space.ts) in their mixed per-layer formats, with
// random weights, are packaged through the real importer / quantizer / encoders; this machine's latency table
// is measured (as the agent measures it) and each package is timed end to end at batch 1 as the table's
// points are (latency-table.ts timeBlock, latencyStatistic: a block of its own, warmed up, the lower quartile
// of its samples), its blocks spread among the table's points; its latency is predicted from the table and
// compared with that measurement.
// The measurement's own repeatability is reported beside the figures: each package is timed in two passes
// over all packages, each pass a block of two fresh runtimes of it alternated, and only those two are alive
// while it is timed. repeat_* compares the two runtimes of a block, repeat_pass_* the two passes; the
// measured time is the statistic over all four runtimes' samples. The table's points are timed in PASSES
// blocks each (measureLatencyTable); table_repeat_* compares an entry's first two blocks.
// The predictor is fitted on the table only (its layers, and its whole networks for the per-model term: the
// agent's own seeded networks, latency-graphs.ts), never on these packages; without_per_model_term is the
// layers' sum alone. `--table-out FILE` saves the table.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';

import type { Package } from '../agent/package/reader.js';
import {
  defaultGrid,
  latencyStatistic,
  measureLatencyTable,
  PASSES,
  quantile,
  ROUNDS,
  SAMPLE_MS,
  timeBlock,
  timedRun,
} from '../agent/profile/latency-table.js';
import { Model } from '../agent/runtime/model.js';
import { DEVICE_CLASS_CATALOG, estimateMeasurementSeconds } from '../optimize/latency/device-classes.js';
import { perModelTerm, predictLatency } from '../optimize/latency/predictor.js';
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
  /** The two runtimes of the first pass, apart: |a - b| / mean, in %. */
  repeat_diff_pct: number;
  /** The two passes, apart (each the statistic over its two runtimes), in %. */
  repeat_pass_diff_pct: number;
  /** Through the per-model term fitted on the table's networks (predictLatency's default). */
  predicted_ms: number;
  /** The layers' sum alone (`perModel: false`). */
  predicted_layers_ms: number;
  error_pct: number;
}

/** |a - b| / their mean, in %. */
const apartPct = (a: number, b: number): number => (Math.abs(a - b) / ((a + b) / 2)) * 100;

/** One pass's block of a package: two fresh runtimes of it, alternated (timeBlock); their samples. */
function timePackage(pkg: Package, fill: () => number): [number[], number[]] {
  const timed = [0, 1].map(() => {
    const runtime = Model.fromPackage(pkg, { batch: 1 });
    const input = runtime.inputView(0);
    for (let j = 0; j < input.length; j++) input[j] = fill();
    return timedRun(runtime.inPlaceRunner(0), SAMPLE_MS);
  });
  timeBlock(timed, ROUNDS);
  return [timed[0]!.samples, timed[1]!.samples];
}

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
  const benchStarted = performance.now();
  const packages: { arch: string; pkg: Package }[] = [];
  for (let i = 0; i < count; i++) {
    const arch = sampleArch(rng);
    const model = buildArchModel(arch, { inputShape: INPUT, classes: 10, seed: seed + i });
    const pkg = await archPackage(arch, model, { calibration });
    model.dispose();
    packages.push({ arch: archKey(arch), pkg });
    if ((i + 1) % 10 === 0) process.stderr.write(`  ${i + 1} / ${count} packages built\n`);
  }
  say(`${count} packages built in ${((performance.now() - benchStarted) / 1000).toFixed(1)} s`);

  // The packages' blocks are spread over the table's measurement, two passes of all packages, one block after
  // every few entries: table and packages then see the same machine (the other processes' load drifts over
  // a run by several %). Their CPU time is kept apart from the table's.
  const grid = defaultGrid(values.quick === true);
  const blocks = 2 * count;
  const passes: [number[], number[]][][] = [[], []];
  let packageCpu = 0;
  const timeNextBlock = (): void => {
    const done = passes[0]!.length + passes[1]!.length;
    const pass = passes[done < count ? 0 : 1]!;
    const before = process.cpuUsage();
    pass.push(timePackage(packages[pass.length]!.pkg, () => rng.next()));
    const { user, system } = process.cpuUsage(before);
    packageCpu += (user + system) / 1e6;
  };
  const started = performance.now();
  const cpu = process.cpuUsage();
  const tableBlocks = grid.points.length * PASSES;
  let tableDone = 0;
  const table = await measureLatencyTable({
    grid,
    onBlock: () => {
      tableDone++;
      while (passes[0]!.length + passes[1]!.length < Math.floor((tableDone * blocks) / tableBlocks))
        timeNextBlock();
    },
  });
  while (passes[0]!.length + passes[1]!.length < blocks) timeNextBlock();
  if (values['table-out'] !== undefined) writeFileSync(values['table-out'], JSON.stringify(table));
  const wallSeconds = (performance.now() - started) / 1000;
  const { user, system } = process.cpuUsage(cpu);
  const cpuSeconds = (user + system) / 1e6 - packageCpu;
  const pi4Seconds = estimateMeasurementSeconds(table, DEVICE_CLASS_CATALOG['raspberry-pi-4b'], cpuSeconds);
  say(
    `table: ${table.entries.length} entries (grid ${table.grid_id}), ${cpuSeconds.toFixed(1)} s of CPU ` +
      `(${wallSeconds.toFixed(1)} s wall with the packages' blocks, ${packageCpu.toFixed(1)} s of CPU apart); ` +
      `Raspberry Pi 4 estimate ${pi4Seconds.toFixed(0)} s`,
  );

  const rows: LatencyBenchRow[] = packages.map((p, i) => {
    const [first, second] = passes.map((pass) => pass[i]!) as [[number[], number[]], [number[], number[]]];
    const measured = latencyStatistic([...first[0], ...first[1], ...second[0], ...second[1]]);
    const predicted = predictLatency(p.pkg, table).ms;
    const layersOnly = predictLatency(p.pkg, table, { perModel: false }).ms;
    return {
      arch: p.arch,
      measured_ms: measured,
      repeat_diff_pct: apartPct(latencyStatistic(first[0]), latencyStatistic(first[1])),
      repeat_pass_diff_pct: apartPct(latencyStatistic(first.flat()), latencyStatistic(second.flat())),
      predicted_ms: predicted,
      predicted_layers_ms: layersOnly,
      error_pct: ((predicted - measured) / measured) * 100,
    };
  });
  const errors = rows.map((r) => Math.abs(r.error_pct)).sort((a, b) => a - b);
  const layersErrors = rows
    .map((r) => (Math.abs(r.predicted_layers_ms - r.measured_ms) / r.measured_ms) * 100)
    .sort((a, b) => a - b);
  const repeats = rows.map((r) => r.repeat_diff_pct);
  const passRepeats = rows.map((r) => r.repeat_pass_diff_pct);
  // The table's own repeatability: each entry's first two blocks, apart.
  const tableRepeats = table.entries.flatMap((e) =>
    e.block_ms !== undefined && e.block_ms.length >= 2 ? [apartPct(e.block_ms[0]!, e.block_ms[1]!)] : [],
  );
  const within10 = (values: readonly number[]): number =>
    values.filter((v) => v <= 10).length / values.length;
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
    per_model_scale: perModelTerm(table) ?? null,
    without_per_model_term: {
      within_10pct: layersErrors.filter((e) => e <= 10).length / layersErrors.length,
      median_abs_error_pct: quantile(layersErrors, 0.5),
      p90_abs_error_pct: quantile(layersErrors, 0.9),
    },
    repeat_within_10pct: within10(repeats),
    repeat_median_diff_pct: quantile(repeats, 0.5),
    repeat_p90_diff_pct: quantile(repeats, 0.9),
    repeat_pass_within_10pct: within10(passRepeats),
    repeat_pass_median_diff_pct: quantile(passRepeats, 0.5),
    repeat_pass_p90_diff_pct: quantile(passRepeats, 0.9),
    table_repeat_median_diff_pct: quantile(tableRepeats, 0.5),
    table_repeat_p90_diff_pct: quantile(tableRepeats, 0.9),
    load_average: loadavg(),
    bench_wall_seconds: (performance.now() - benchStarted) / 1000,
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
