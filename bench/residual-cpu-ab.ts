// `node dist/bench/residual-cpu-ab.js MODEL [ROUNDS]`: a model of `bench models` with its residual adds fused
// (the default) against the same package loaded with fuseResidual: false, 1 thread, timed in CPU time
// (process.cpuUsage, user + system), which a machine shared with other jobs disturbs far less than wall
// time. Each round times one batch of runs of each (about 30 ms of CPU), the order alternated; it prints the
// median CPU milliseconds per run and the median and quartiles of the per-round ratios unfused / fused.
// The two must agree bit for bit first.
import { Model } from '../agent/runtime/model.js';
import { median } from './kernels.js';
import { benchPackages } from './models.js';

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const quantile = (values: number[], f: number): number =>
  [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * f)]!;

const name = process.argv[2] ?? 'resnet18';
const rounds = Number(process.argv[3] ?? 41);
const packages = await benchPackages(name, 1);
for (const format of ['fp32', 'int8'] as const) {
  const pkg = format === 'fp32' ? packages.fp32 : packages.int8;
  const input = packages.inputs(1, 3);
  const models = [true, false].map((fuseResidual) => Model.fromPackage(pkg, { threads: 1, fuseResidual }));
  const [fused, unfused] = models.map((m) => m.run([input])[0]!.data);
  if (fused!.some((v, i) => v !== unfused![i]))
    throw new Error(`${name} ${format}: fused and unfused differ`);
  const start = cpuUs();
  let reps = 0;
  while (cpuUs() - start < 30_000) {
    models[0]!.run([input]);
    reps++;
  }
  const samples: [number[], number[]] = [[], []];
  for (let round = 0; round < rounds; round++)
    for (let k = 0; k < 2; k++) {
      const i = (round + k) % 2;
      const t = cpuUs();
      for (let r = 0; r < reps; r++) models[i]!.run([input]);
      samples[i]!.push((cpuUs() - t) / reps / 1000);
    }
  const ratios = samples[0].map((f, r) => samples[1][r]! / f);
  console.log(
    `${name} ${format}: fused ${median(samples[0]).toFixed(3)} ms, unfused ${median(samples[1]).toFixed(3)} ms ` +
      `CPU per run (${reps} runs x ${rounds} rounds); unfused / fused per round: median ` +
      `${quantile(ratios, 0.5).toFixed(3)}, quartiles ${quantile(ratios, 0.25).toFixed(3)}-${quantile(ratios, 0.75).toFixed(3)}`,
  );
}
