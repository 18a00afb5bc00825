// `npm run bench -- <subcommand> [options]`: benchmark and fuzz scripts. Each subcommand prints the machine,
// the commit and its figures. Others add `kernels`, `train`, `agent` as new cases.
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';

import { AGENT_HELP, agentBenchCommand } from './agent.js';
import { armBitExactCommand } from './arm-bit-exact.js';
import { COMPILE_AB_HELP, compileAbCommand } from './compile-ab.js';
import { COMPRESS_HELP, compressBenchCommand } from './compress.js';
import { FUZZ_READERS, runFuzz } from './fuzz.js';
import { HASHED_FC_HELP, hashedFcCommand } from './hashed-fc.js';
import { INT8_LAYERS_HELP, int8LayersCommand } from './int8-layers.js';
import { ShapesFileError } from './kernel-shapes.js';
import {
  BenchArgumentError,
  benchOptions,
  KERNELS_HELP,
  kernelsCommand,
  positiveInteger,
  stringOptions,
} from './kernels.js';
import { LATENCY_HELP, latencyBenchCommand } from './latency.js';
import { MODELS_HELP, modelsCommand } from './models.js';
import { NAS_HELP, nasBenchCommand } from './nas.js';
import { measureOnnxAgreement } from './onnx-agreement.js';
import { PLAN_HELP, planBenchCommand } from './plan.js';
import { benchTrain } from './train.js';

function machine(): string {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // Not a checkout: the commit stays unknown.
  }
  return `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} threads), ${process.platform}/${process.arch}, node ${process.version}, commit ${commit}`;
}

const FUZZ_HELP = `fuzz options: --reader ${Object.keys(FUZZ_READERS).join(',')} (default: all), --iterations 200000 (per reader), --seed 1, --json`;
const ONNX_AGREEMENT_HELP =
  'onnx-agreement options: --images N (default: the whole Fashion-MNIST test set), --json';
const TRAIN_HELP =
  'train options: --models lenet5,vgg-small, --batch 64, --threads 2, --seconds 10, --python /usr/bin/python3, --json';

/** Where a subcommand's human-readable lines go: stdout, or stderr when stdout carries one JSON object. */
function humanLines(json: boolean | undefined): (line: string) => void {
  return json ? (line) => process.stderr.write(`${line}\n`) : (line) => console.log(line);
}

function fuzz(args: string[]): number {
  const values = benchOptions(
    args,
    { json: { type: 'boolean' }, ...stringOptions('reader', 'iterations', 'seed') },
    FUZZ_HELP,
  );
  if (values === undefined) return 0;
  const iterations = positiveInteger(values.iterations, 200000, '--iterations');
  const seed = positiveInteger(values.seed, 1, '--seed');
  const readers = values.reader?.split(',') ?? Object.keys(FUZZ_READERS);
  const unknown = readers.filter((r) => !Object.hasOwn(FUZZ_READERS, r));
  if (unknown.length > 0) {
    console.error(`bench fuzz: unknown reader ${unknown.join(', ')}; ${FUZZ_HELP}`);
    return 2;
  }
  const say = humanLines(values.json);
  say(`machine: ${machine()}`);
  const results: (Record<'iterations' | 'crashes' | 'hangs', number> & Record<string, unknown>)[] = [];
  for (const reader of readers) {
    say(`fuzz: ${reader} reader, ${iterations} inputs, seed ${seed}`);
    const report = runFuzz(reader, {
      iterations,
      seed,
      onProgress: (done, failures) =>
        process.stderr.write(
          `  ${done} / ${iterations} (${failures} failures, ${Math.round(performance.now() / 1000)} s)\n`,
        ),
    });
    const crashes = report.failures.filter((f) => f.kind === 'crash').length;
    const hangs = report.failures.filter((f) => f.kind === 'hang').length;
    say(
      `inputs: ${report.iterations} in ${(report.elapsedMs / 1000).toFixed(1)} s (${Math.round(report.iterations / (report.elapsedMs / 1000))}/s, CPU ${(report.cpuMs / 1000).toFixed(1)} s), slowest ${report.slowestMs.toFixed(1)} ms`,
    );
    say(`strategies: ${JSON.stringify(report.byStrategy)}`);
    say(`accepted: ${report.accepted}; refused by code: ${JSON.stringify(report.refused)}`);
    say(`crashes: ${crashes}, hangs: ${hangs}`);
    for (const failure of report.failures.slice(0, 10))
      say(`  #${failure.iteration} ${failure.strategy} ${failure.kind}: ${failure.message}`);
    results.push({
      reader,
      seed,
      iterations: report.iterations,
      crashes,
      hangs,
      accepted: report.accepted,
      refused: report.refused,
      by_strategy: report.byStrategy,
      slowest_ms: report.slowestMs,
      elapsed_ms: report.elapsedMs,
      cpu_ms: report.cpuMs,
      failures: report.failures,
    });
  }
  const sum = (key: 'iterations' | 'crashes' | 'hangs'): number => results.reduce((n, r) => n + r[key], 0);
  if (values.json)
    console.log(
      JSON.stringify({
        machine: machine(),
        iterations: sum('iterations'),
        crashes: sum('crashes'),
        hangs: sum('hangs'),
        results,
      }),
    );
  return results.some((r) => r.crashes + r.hangs > 0) ? 1 : 0;
}

async function onnxAgreement(args: string[]): Promise<number> {
  const values = benchOptions(
    args,
    { images: { type: 'string' }, json: { type: 'boolean' } },
    ONNX_AGREEMENT_HELP,
  );
  if (values === undefined) return 0;
  const limit = values.images === undefined ? undefined : positiveInteger(values.images, 10000, '--images');
  const say = humanLines(values.json);
  say('onnx-agreement: int8 Fashion-MNIST MLP, Whittle runtime vs ONNX Runtime on the QDQ export');
  say(`machine: ${machine()}`);
  const r = await measureOnnxAgreement(limit);
  const pct = (n: number): string => `${((100 * n) / r.images).toFixed(2)}%`;
  say(`images: ${r.images}`);
  say(`top-1 agreement: ${r.agree}/${r.images} (${pct(r.agree)})`);
  say(`accuracy: runtime ${pct(r.runtimeCorrect)}, ONNX Runtime ${pct(r.ortCorrect)}`);
  say(
    `time per image: runtime ${(r.runtimeMs / r.images).toFixed(3)} ms, ONNX Runtime ${(r.ortMs / r.images).toFixed(3)} ms (batch 1)`,
  );
  if (values.json)
    console.log(
      JSON.stringify({
        machine: machine(),
        images: r.images,
        top1_agreement: r.agree / r.images,
        runtime_accuracy: r.runtimeCorrect / r.images,
        ort_accuracy: r.ortCorrect / r.images,
        runtime_ms_per_image: r.runtimeMs / r.images,
        ort_ms_per_image: r.ortMs / r.images,
      }),
    );
  return r.agree / r.images >= 0.995 ? 0 : 1;
}

async function train(args: string[]): Promise<number> {
  const values = benchOptions(
    args,
    { json: { type: 'boolean' }, ...stringOptions('models', 'batch', 'threads', 'seconds', 'python') },
    TRAIN_HELP,
  );
  if (values === undefined) return 0;
  const options = {
    models: (values.models ?? 'lenet5,vgg-small').split(','),
    batch: positiveInteger(values.batch, 64, '--batch'),
    threads: positiveInteger(values.threads, 2, '--threads'),
    seconds: positiveInteger(values.seconds, 10, '--seconds'),
    minSteps: 3,
    python: values.python ?? '/usr/bin/python3',
  };
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  log(`train: images/s per Adam step, batch ${options.batch}, ${options.threads} threads`);
  log(`machine: ${machine()}`);
  const report = await benchTrain(options, log);
  if (values.json) console.log(JSON.stringify({ machine: machine(), ...report }));
  else
    for (const r of report.rows)
      console.log(
        `${r.model}: ${r.images_per_s.toFixed(1)} images/s (${r.vs_tfjs_cpu.toFixed(1)}x tfjs cpu ` +
          `${r.tfjs_cpu_images_per_s.toFixed(2)}, ${r.vs_pytorch === null ? 'no PyTorch' : `${r.vs_pytorch.toFixed(2)}x PyTorch ${r.pytorch_images_per_s?.toFixed(1)}`})`,
      );
  return 0;
}

/** The benchmarks by subcommand: each takes its options and returns the exit code. */
const BENCHMARKS = new Map<string, (args: string[]) => number | Promise<number>>([
  ['fuzz', fuzz],
  ['onnx-agreement', onnxAgreement],
  ['agent', (args) => agentBenchCommand(args, machine())],
  ['train', train],
  ['kernels', kernelsCommand],
  ['models', (args) => modelsCommand(args, machine())],
  ['compile-ab', (args) => compileAbCommand(args, machine())],
  ['arm-bit-exact', (args) => armBitExactCommand(args, machine())],
  ['compress', (args) => compressBenchCommand(args, machine())],
  ['hashed-fc', (args) => hashedFcCommand(args, machine())],
  ['int8-layers', (args) => int8LayersCommand(args, machine())],
  ['plan', (args) => planBenchCommand(args, machine())],
  ['latency', (args) => latencyBenchCommand(args, machine())],
  ['nas', (args) => nasBenchCommand(args, machine())],
]);

async function main(command: string | undefined, rest: string[]): Promise<void> {
  if (command === '--help' || command === '-h' || command === 'help') {
    console.log(`Usage: npm run bench -- <benchmark> [--json] [options]

Benchmarks (scripts, not tests; each prints the machine, ISA, threads and commit):
  kernels          our kernels in every number format vs ONNX Runtime fp32 and int8, per shape and thread count
  models           whole zoo models (LeNet-5, MobileNet 0.5, VGG-small, SqueezeNet, ShuffleNet) vs ONNX Runtime,
                   fp32 and int8, per batch and thread count
  compile-ab       the same zoo models imported from an NCHW ONNX export before / after the compile pass
  train            training images/s vs TensorFlow.js's cpu backend and PyTorch CPU
  agent            the agent's RSS, bundle size, fps and CPU on the camera
  fuzz             the package, ONNX and TFLite readers on mutated, truncated and random inputs (--reader, --iterations N)
  onnx-agreement   top-1 agreement of Whittle's runtime and ONNX Runtime on Fashion-MNIST
  compress         whittle compress on Fashion-MNIST: deep compression of the LeNets, filter pruning of the small
                   VGG, hashednets of LeNet-300-100, binaryconnect / ternary / xnor of the conv models, int8 /
                   fixed16 / fixed8 of the trained models (--quick: subsets)
  plan             whittle optimize's planner on the zoo models under a tight budget: no kept step may make the
                   end-to-end latency, peak RAM or package bytes worse (steps_worse 0)
  nas              hardware-aware NAS vs the best zoo model within the same latency budget on Fashion-MNIST
  hashed-fc        the hashed fully-connected kernel (expanded at load, on the fly) vs the dense fp32 layer
  int8-layers      where an int8 package departs from its fp32 one: the error accumulated at each layer, and
                   the logits' error beside the fp32 top-two gap
  latency          the latency predictor: 100 random NAS architectures in mixed formats, predicted from this
                   machine's latency table and measured end to end (within_10pct, median / p90 error)
  arm-bit-exact    the same int8 package here and on emulated ARM devices: top-1 and raw int8 scores
                   (--images 1000, --classes rpi4,armv7; needs scripts/arm-sysroot.sh arm64 armhf)

${KERNELS_HELP}
${MODELS_HELP}
${COMPILE_AB_HELP}
${TRAIN_HELP}
${AGENT_HELP}
${FUZZ_HELP}
${ONNX_AGREEMENT_HELP}
${COMPRESS_HELP}
${PLAN_HELP}
${HASHED_FC_HELP}
${INT8_LAYERS_HELP}
${LATENCY_HELP}
${NAS_HELP}`);
    process.exitCode = 0;
    return;
  }
  const run = BENCHMARKS.get(command ?? '');
  if (run === undefined) {
    console.error(
      `bench: unknown subcommand "${command ?? ''}"; available: ${[...BENCHMARKS.keys()].join(', ')}`,
    );
    process.exitCode = 1;
    return;
  }
  process.exitCode = await run(rest);
}

const [command, ...rest] = process.argv.slice(2);
try {
  await main(command, rest);
} catch (error) {
  // A mistyped option or value, or an unreadable shapes file, gets one line and the usage hint, not a stack
  // trace.
  const code = (error as { code?: unknown }).code;
  const usage =
    error instanceof BenchArgumentError ||
    error instanceof ShapesFileError ||
    (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'));
  if (!usage) throw error;
  console.error(`bench ${command ?? ''}: ${(error as Error).message}; see npm run bench -- --help`);
  process.exitCode = 2;
}
