// Training throughput, side by side in one run: images/s of one Adam step at batch 64 on LeNet-5 and the
// small VGG (28x28 grey, 10 classes), with (a) TensorFlow.js's pure-JS cpu backend, (b) the whittle-native
// backend with the Adam `whittle train` uses there (the fused native update), (c) PyTorch CPU from
// Debian's python3-torch (a benchmark peer only, never a dependency) running the same architecture, batch
// size, optimizer and thread count. Inputs are Fashion-MNIST training images.
import { execFileSync } from 'node:child_process';

import * as tf from '@tensorflow/tfjs';

import { loadTrainBinding } from '../native/train-kernels.js';
import { loadFashionMnist } from '../optimize/datasets/fashion-mnist.js';
import { NATIVE_BACKEND, registerNativeBackend } from '../optimize/train/native-backend.js';
import { createAdam, defaultAdam } from '../optimize/train/trainer.js';
import { buildZooModel } from '../optimize/zoo/index.js';

export interface TrainBenchOptions {
  models: string[];
  batch: number;
  threads: number;
  /** Timing runs at least this long and this many steps (the cpu backend: at least one step). */
  seconds: number;
  minSteps: number;
  /** The Python with torch; Debian's is /usr/bin/python3. */
  python: string;
}

export interface TrainBenchRow {
  model: string;
  images_per_s: number;
  tfjs_cpu_images_per_s: number;
  pytorch_images_per_s: number | null;
  vs_tfjs_cpu: number;
  vs_pytorch: number | null;
}

export interface TrainBenchReport {
  benchmark: 'train';
  batch: number;
  threads: number;
  isa: string;
  pytorch: string | null;
  rows: TrainBenchRow[];
}

// The same two networks as optimize/zoo (lenet.ts, vgg-small.ts), in PyTorch; logits + cross_entropy is
// the fused form of tfjs's softmax + categorical cross-entropy.
const PYTORCH_SCRIPT = String.raw`
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

def lenet5(c, h, w, k):
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2), 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, k))

def vgg_small(c, h, w, k):
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, k))

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg['threads'])
torch.manual_seed(1)
out = {}
for name in cfg['models']:
    model = {'lenet5': lenet5, 'vgg-small': vgg_small}[name](1, 28, 28, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(cfg['batch'], 1, 28, 28)
    y = torch.randint(0, 10, (cfg['batch'],))
    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for _ in range(2): step()
    t0 = time.perf_counter(); n = 0
    while n < cfg['min_steps'] or time.perf_counter() - t0 < cfg['seconds']:
        step(); n += 1
    out[name] = n * cfg['batch'] / (time.perf_counter() - t0)
print(json.dumps({'version': torch.__version__, 'threads': torch.get_num_threads(), 'images_per_s': out}))
`;

function batchData(batch: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  let pixels: Float32Array;
  let labels: Int32Array;
  try {
    const set = loadFashionMnist('train');
    pixels = Float32Array.from(set.pixels.subarray(0, batch * 784), (v) => v / 255);
    labels = Int32Array.from(set.labels.subarray(0, batch));
  } catch {
    // No dataset package: timing does not depend on the values.
    pixels = Float32Array.from({ length: batch * 784 }, (_, i) => ((i * 2654435761) % 256) / 255);
    labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  }
  return {
    x: tf.tensor4d(pixels, [batch, 28, 28, 1]),
    y: tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat() as tf.Tensor2D,
  };
}

/** Images/s of model.trainOnBatch on the current backend. */
async function measure(
  name: string,
  batch: number,
  seconds: number,
  minSteps: number,
  warmup: number,
): Promise<number> {
  const model = buildZooModel(name, { height: 28, width: 28, channels: 1, classes: 10, seed: 1 });
  // The Adam `whittle train` runs on this backend (the fused native one on whittle-native).
  model.compile({ optimizer: createAdam(1e-3, defaultAdam()), loss: 'categoricalCrossentropy' });
  const { x, y } = batchData(batch);
  for (let i = 0; i < warmup; i++) await model.trainOnBatch(x, y);
  let steps = 0;
  const start = performance.now();
  while (steps < minSteps || performance.now() - start < seconds * 1000) {
    await model.trainOnBatch(x, y);
    steps++;
  }
  const elapsed = (performance.now() - start) / 1000;
  tf.dispose([x, y]);
  model.optimizer.dispose();
  model.dispose();
  return (steps * batch) / elapsed;
}

function runPytorch(options: TrainBenchOptions): { version: string; rates: Record<string, number> } | null {
  try {
    const stdout = execFileSync(
      options.python,
      [
        '-c',
        PYTORCH_SCRIPT,
        JSON.stringify({
          threads: options.threads,
          models: options.models,
          batch: options.batch,
          min_steps: options.minSteps,
          seconds: options.seconds,
        }),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30 * 60 * 1000 },
    );
    const parsed = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
      version: string;
      images_per_s: Record<string, number>;
    };
    return { version: parsed.version, rates: parsed.images_per_s };
  } catch (error) {
    process.stderr.write(`bench train: PyTorch unavailable (${(error as Error).message.split('\n')[0]})\n`);
    return null;
  }
}

export async function benchTrain(
  options: TrainBenchOptions,
  log: (line: string) => void,
): Promise<TrainBenchReport> {
  tf.enableProdMode();
  registerNativeBackend();
  const native = loadTrainBinding();
  native.setThreads(options.threads);
  const rows: TrainBenchRow[] = [];
  let pytorchVersion: string | null = null;
  for (const model of options.models) {
    // Ours and PyTorch back to back, so load from other processes on the machine hits both alike.
    await tf.setBackend(NATIVE_BACKEND);
    const ours = await measure(model, options.batch, options.seconds, options.minSteps, 2);
    log(`${model}: whittle-native ${ours.toFixed(1)} images/s`);
    const pytorch = runPytorch({ ...options, models: [model] });
    pytorchVersion = pytorch?.version ?? pytorchVersion;
    const torchRate = pytorch?.rates[model] ?? null;
    log(`${model}: PyTorch ${torchRate === null ? 'unavailable' : `${torchRate.toFixed(1)} images/s`}`);
    await tf.setBackend('cpu');
    // The JS backend needs minutes per VGG step: one warm-up step and at least one timed step.
    const cpuRate = await measure(model, options.batch, Math.min(options.seconds, 5), 1, 1);
    log(`${model}: tfjs cpu ${cpuRate.toFixed(2)} images/s`);
    rows.push({
      model,
      images_per_s: ours,
      tfjs_cpu_images_per_s: cpuRate,
      pytorch_images_per_s: torchRate,
      vs_tfjs_cpu: ours / cpuRate,
      vs_pytorch: torchRate === null ? null : ours / torchRate,
    });
  }
  return {
    benchmark: 'train',
    batch: options.batch,
    threads: options.threads,
    isa: native.isa().current,
    pytorch: pytorchVersion,
    rows,
  };
}
