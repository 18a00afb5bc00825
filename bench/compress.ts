// `npm run bench -- compress [--json] [--quick]`: the compressor's figures on Fashion-MNIST. Each model is
// trained (`whittle train`'s trainer; kept in --dir and reused when it is there), then compressed by
// `whittle compress`'s runner: deep-compression (prune -> k-means -> Huffman) on LeNet-300-100 and LeNet-5,
// filter-prune (Li et al. 2017, 40 % fewer MACs, fine-tuned) on the small VGG, hashednets on LeNet-300-100,
// int8 / fixed16 / fixed8 post-training, int8 quantization-aware training and fixed16 / fixed8 fine-tuning
// (int8-qat, fixed16-ft, fixed8-ft presets) on every trained model, and distillation: the `distill` preset's
// half-width student from its teacher against the same student on the labels alone (distill-labels:
// alpha 0, same epochs, seed and images). Accuracy is the package's on the
// runtime (the whole test set, or --quick's first 1,000 images), latency at batch 1 interleaved with the
// fp32 package, sizes the signed files'. --quick trains and retrains on 5,000 images, one epoch per phase
// at a learning rate of 1e-3 (two pruning rounds).
// The straight-through methods (binaryconnect, ternary, xnor) run on the conv models (LeNet-5, the small
// VGG), their presets' epochs in a full run, one under --quick; an xnor row also carries its latency
// against the same model's int8 package (`vs_int8`: int8 median / xnor median, batch 1, the two packages
// interleaved), the "2x faster than int8" figure. --methods picks a subset of the methods.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readPackage } from '../agent/package/reader.js';
import { PRESETS, STRAIGHT_THROUGH_METHODS } from '../optimize/compress/pipeline.js';
import { runCompress, trainedModelLayers } from '../optimize/compress/runner.js';
import { firstImages, loadDataset } from '../optimize/datasets/dataset-spec.js';
import { compareLatency } from '../optimize/evaluate-package.js';
import { bundledSigningKey } from '../optimize/package/writer.js';
import { selectTrainingBackend } from '../optimize/train/backend-select.js';
import { DEFAULT_TRAIN_CONFIG, train } from '../optimize/train/trainer.js';
import { BenchArgumentError, benchOptions, positiveInteger, stringOptions } from './kernels.js';

export const COMPRESS_HELP =
  'compress options: --quick (5,000 training images, 1 epoch per phase at rate 1e-3, 1,000 test images), --models ' +
  'lenet-300-100,lenet5,vgg-small, --methods (default: all that apply: deep-compression, filter-prune, ' +
  'hashednets, binaryconnect, ternary, xnor, int8, fixed16, fixed8, int8-qat, fixed16-ft, fixed8-ft, distill, ' +
  'distill-labels), --epochs N (the ' +
  "retraining epochs of the QAT, fine-tuning, distill and straight-through phases; default: their presets'), " +
  '--dir DIR (trained models and runs; reused), --latency-runs 200, --json';

const POST_TRAINING = ['int8', 'fixed16', 'fixed8'];
/** Quantization-aware training and fixed-point fine-tuning: each beside its post-training twin. */
const QUANTIZATION_AWARE = ['int8-qat', 'fixed16-ft', 'fixed8-ft'];
/** Distillation's figure: the half-width student of the `distill` preset trained from its teacher, and the
 * same student (same epochs, seed and data) on the labels alone (alpha 0). */
const DISTILLATION = ['distill', 'distill-labels'];
/** The retraining presets and the models the issue asks them of; the methods above run on every model. */
const RETRAINING_MODELS: Record<string, ReadonlySet<string>> = {
  'deep-compression': new Set(['lenet-300-100', 'lenet5']),
  'filter-prune': new Set(['vgg-small']),
  hashednets: new Set(['lenet-300-100']),
  ...Object.fromEntries(STRAIGHT_THROUGH_METHODS.map((m) => [m, new Set(['lenet5', 'vgg-small'])])),
};
const METHOD_NAMES = [
  ...Object.keys(RETRAINING_MODELS),
  ...POST_TRAINING,
  ...QUANTIZATION_AWARE,
  ...DISTILLATION,
];

/** LeNet-5's Deep Compression, the issue's >= 35x within 0.5 points (docs/benchmarks.md, "LeNet-5 Deep
 * Compression at 35x, met"). Han et al. set each layer's rate per network from a sensitivity analysis; LeNet-5's
 * do not follow the `deep-compression` preset's size rule (its 120x84 layer is pruned harder than its 400x120
 * one, where the rule prunes the larger harder: LeNet-300-100's figure rests on it), so this spec gives them by
 * the layer's place: conv1 50 %, conv2 75 %, fc1 93 %, fc2 97 %, output 70 %, a cubic schedule of 6 rounds of
 * 2 epochs and 16 at the target, then k-means to 3 bits (conv1 4, conv2 5, fc1 4: the 3-bit fc1 cost 0.6 points
 * before fine-tuning) with 8 epochs of centroid fine-tuning at 1e-3, then Huffman. Every retraining phase also
 * learns (T 2, alpha 0.5) from `teacher`: a LeNet-5 trained 40 epochs with random crops and flips
 * (LENET5_TEACHER), a better-trained copy of the compressed model (the model as its own teacher stays 0.6 to
 * 0.8 points short at 35x). Under --quick the same steps at one epoch per phase. */
function lenet5DeepCompression(
  model: string,
  teacher: string,
  quick: boolean,
): { method: string; [param: string]: unknown }[] {
  const layers = trainedModelLayers(model).filter((l) => l.weights > 0);
  const kinds = layers.map((l) => l.kind).join(',');
  if (kinds !== 'Conv2D,Conv2D,Dense,Dense,Dense')
    throw new Error(`${model}: expected LeNet-5's two convolutions and three dense layers, found ${kinds}`);
  const [conv1, conv2, fc1] = layers.map((l) => l.name);
  const epochs = (full: number): number => (quick ? 1 : full);
  const teaching = { distill: true, teacher, temperature: 2, alpha: 0.5 };
  return [
    {
      method: 'prune',
      sparsity: 0.97,
      convSparsity: 0.75,
      outputSparsity: 0.7,
      layers: { [conv1!]: 0.5, [fc1!]: 0.93 },
      iterations: quick ? 2 : 6,
      schedule: 'cubic',
      epochs: epochs(2),
      finalEpochs: epochs(16),
      learningRate: 1e-3,
      ...teaching,
    },
    {
      method: 'kmeans',
      bits: 3,
      layers: { [conv1!]: 4, [conv2!]: 5, [fc1!]: 4 },
      epochs: epochs(8),
      learningRate: 1e-3,
      ...teaching,
    },
    { method: 'huffman' },
  ];
}

/** The teacher of LeNet-5's Deep Compression: LeNet-5 trained 40 epochs with random crops of 2 pixels and
 * flips (the `distill` preset's stronger teacher, docs/benchmarks.md branch kd: 0.9118). */
const LENET5_TEACHER = { epochs: 40, cropPadding: 2, flip: true, patience: 0 } as const;

export async function compressBenchCommand(args: string[], machine: string): Promise<number> {
  const values = benchOptions(
    args,
    {
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      ...stringOptions('models', 'methods', 'epochs', 'dir', 'latency-runs'),
    },
    COMPRESS_HELP,
  );
  if (values === undefined) return 0;
  const quick = values.quick === true;
  const models = (values.models ?? 'lenet-300-100,lenet5,vgg-small').split(',');
  const asked = values.methods?.split(',') ?? METHOD_NAMES;
  const unknown = asked.filter((m) => !METHOD_NAMES.includes(m));
  if (unknown.length > 0)
    throw new BenchArgumentError(
      `--methods: unknown ${unknown.join(', ')}; the methods are ${METHOD_NAMES.join(', ')}`,
    );
  const dir = values.dir ?? join(tmpdir(), `whittle-bench-compress${quick ? '-quick' : ''}`);
  const latencyRuns = positiveInteger(values['latency-runs'], 200, '--latency-runs');
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  say(`compress: ${quick ? 'quick' : 'full'} run in ${dir}; machine: ${machine}`);
  await selectTrainingBackend('whittle-native');
  const key = bundledSigningKey();
  const limits = quick ? { trainLimit: 5000, testImages: 1000 } : {};
  mkdirSync(dir, { recursive: true });
  // The specs of the retraining methods: Han / Li / Chen's presets, or under --quick the same steps with one
  // retraining epoch at rate 1e-3 (and two pruning rounds); the straight-through, QAT, fine-tuning and
  // distill presets at --epochs when given (under --quick: 1 epoch, distill 3), the distill one also on the
  // labels alone.
  const epochs = values.epochs === undefined ? undefined : positiveInteger(values.epochs, 1, '--epochs');
  const withEpochs = (preset: string, quickEpochs?: number): { method: string }[] =>
    PRESETS[preset]!.map((s) => {
      const e = epochs ?? (quick ? quickEpochs : undefined);
      return e === undefined ? s : { ...s, epochs: e };
    });
  const distill = withEpochs('distill', 3);
  const specs: Record<string, string> = {};
  for (const [method, steps] of [
    ...['deep-compression', 'filter-prune', 'hashednets'].map(
      (m) =>
        [
          m,
          PRESETS[m]!.map((s) =>
            !quick || s.method === 'huffman'
              ? s
              : {
                  ...s,
                  epochs: 1,
                  learningRate: 1e-3,
                  ...(s.method === 'prune' ? { iterations: 2, finalEpochs: 1 } : {}),
                },
          ),
        ] as const,
    ),
    ...STRAIGHT_THROUGH_METHODS.map((m) => [m, withEpochs(m, 1)] as const),
    ...QUANTIZATION_AWARE.map((m) => [m, withEpochs(m)] as const),
    ['distill', distill] as const,
    ['distill-labels', distill.map((s) => ({ ...s, alpha: 0 }))] as const,
  ]) {
    specs[method] = join(dir, `${method}.json`);
    writeFileSync(specs[method], JSON.stringify({ steps }));
  }
  const results: Record<string, unknown>[] = [];
  for (const model of models) {
    const trained = join(dir, model);
    if (!existsSync(join(trained, 'evaluation.json'))) {
      say(`${model}: training`);
      await train({
        config: {
          ...DEFAULT_TRAIN_CONFIG,
          model,
          dataset: 'fashion-mnist',
          epochs: quick ? 2 : 15,
          patience: quick ? 0 : DEFAULT_TRAIN_CONFIG.patience,
          ...(quick ? { trainLimit: 5000 } : {}),
        },
        outDir: trained,
      });
    }
    const teacher = join(dir, `${model}-teacher`);
    if (model === 'lenet5' && asked.includes('deep-compression')) {
      if (!existsSync(join(teacher, 'evaluation.json'))) {
        say(`${model}: training the Deep Compression teacher`);
        await train({
          config: {
            ...DEFAULT_TRAIN_CONFIG,
            model,
            dataset: 'fashion-mnist',
            ...LENET5_TEACHER,
            ...(quick ? { epochs: 2, trainLimit: 5000 } : {}),
          },
          outDir: teacher,
        });
      }
      specs['deep-compression-lenet5'] = join(dir, 'deep-compression-lenet5.json');
      writeFileSync(
        specs['deep-compression-lenet5'],
        JSON.stringify({ steps: lenet5DeepCompression(trained, teacher, quick) }),
      );
    }
    // The post-training packages first: xnor's vs_int8 needs the model's int8 package.
    const methods = [
      ...POST_TRAINING,
      ...Object.keys(RETRAINING_MODELS).filter((m) => RETRAINING_MODELS[m]!.has(model)),
      ...QUANTIZATION_AWARE,
      ...DISTILLATION,
    ].filter((m) => asked.includes(m));
    for (const method of methods) {
      const out = join(dir, `${model}-${method}.whittle`);
      const run = join(dir, `${model}-${method}.run`);
      const resume = existsSync(join(run, 'spec.json'));
      say(`${model}: ${method}${resume ? ' (resuming)' : ''}`);
      const result = await runCompress({
        model: trained,
        dataset: 'fashion-mnist',
        pipeline: specs[`${method}-${model}`] ?? specs[method] ?? method,
        out,
        runDir: run,
        resume,
        key,
        latencyRuns,
        ...limits,
        onStep: (e) =>
          say(
            `  step ${e.step} ${e.method}: ${e.bytes} bytes (${e.compression_ratio.toFixed(1)}x), ` +
              `accuracy ${(100 * e.accuracy).toFixed(2)}%, ${e.latency_ms?.toFixed(3) ?? '-'} ms`,
          ),
      });
      if (result.interrupted) return 130;
      const r = result.report;
      const int8 = join(dir, `${model}-int8.whittle`);
      let vsInt8: number | undefined;
      if (method === 'xnor' && existsSync(int8) && latencyRuns > 0) {
        const read = (path: string) =>
          readPackage(readFileSync(path), { allowUnsigned: true, cpuFamily: null });
        const test = loadDataset('fashion-mnist').test!;
        const [a, b] = compareLatency([read(int8), read(out)], firstImages(test, 100), latencyRuns);
        vsInt8 = a!.medianMs / b!.medianMs;
        say(
          `  xnor vs int8 at batch 1: ${a!.medianMs.toFixed(3)} / ${b!.medianMs.toFixed(3)} ms = ${vsInt8.toFixed(2)}x`,
        );
      }
      results.push({
        model,
        method,
        compression_ratio: r.compression_ratio,
        accuracy: r.accuracy,
        baseline_accuracy: r.baseline_accuracy,
        latency_ms: r.latency_ms,
        baseline_latency_ms: r.baseline_latency_ms,
        bytes: r.bytes,
        baseline_bytes: r.baseline_bytes,
        macs: r.macs,
        baseline_macs: r.baseline_macs,
        images: r.images,
        ...(vsInt8 !== undefined ? { vs_int8: vsInt8 } : {}),
        epochs: r.pipeline.map((s) => s.params.epochs ?? null),
        layers: r.layers.map((l) => ({
          name: l.name,
          format: l.format,
          weights: l.weights,
          bytes: l.bytes,
          baseline_bytes: l.baseline_bytes,
          channels: l.channels,
          baseline_channels: l.baseline_channels,
          macs: l.macs,
          baseline_macs: l.baseline_macs,
        })),
      });
      say(
        `${model} ${method}: ${r.compression_ratio.toFixed(1)}x, accuracy ${(100 * r.baseline_accuracy).toFixed(2)}% -> ` +
          `${(100 * r.accuracy).toFixed(2)}%, ${r.baseline_latency_ms?.toFixed(3)} -> ${r.latency_ms?.toFixed(3)} ms`,
      );
    }
  }
  if (values.json) console.log(JSON.stringify({ machine, quick, results }));
  return 0;
}
