// Top-1 accuracy and per-image latency of packages on a labelled image set, run by the agent's runtime
// exactly as it runs them on a device (native kernels where the addon has them). Inputs are normalized by the
// package's own preprocessing (input = (pixel / 255 - mean) / std), so a package that declares the wrong
// normalization scores badly here too.
//
// As a script, packages side by side:
//   node dist/optimize/evaluate-package.js A.whittle [B.whittle ...] [--dataset fashion-mnist]
//        [--images N] [--latency-runs N] [--threads N] [--json]
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import {
  frameOrder,
  frameWriter,
  type ImagePreprocessing as FramePreprocessing,
  imageShape,
} from '../agent/camera/preprocess.js';
import type { ImagePreprocessing, Manifest } from '../agent/package/manifest.js';
import { type Package, readPackageFile } from '../agent/package/reader.js';
import { AGENT_THREADS, Model, withThreads } from '../agent/runtime/model.js';
import { elements } from '../agent/runtime/tensor.js';
import { firstImages, loadDataset } from './datasets/dataset-spec.js';
import type { ImageFolderOptions } from './datasets/image-folder.js';
import { DatasetError, imageBytes, type ImageSet } from './datasets/image-set.js';

/** How pixels become model input when a package declares no preprocessing: [0, 1], as the trainer feeds. */
const UNIT_SCALE = { mean: [0], std: [1] };

/** How an image set's pixels become a package's input: input = (pixel / 255 - mean[c]) / std[c], each image
 * laid out in `layout` (NHWC, the pixels' own order, by default). */
export type ImageInputPreprocessing = Pick<FramePreprocessing, 'mean' | 'std' | 'layout'>;

/** Images [start, start + count) of `set` as the model's fp32 input, [count][...one image in
 * preprocessing.layout], written by the agent camera's frame writer: a calibration or test image reaches the
 * model exactly as a camera frame does. */
export function imageInput(
  set: ImageSet,
  start: number,
  count: number,
  preprocessing: ImageInputPreprocessing = UNIT_SCALE,
): Float32Array {
  if (set.channels !== 1 && set.channels !== 3)
    throw new DatasetError(`${set.source}: ${set.channels}-channel images; expected 1 (grey) or 3 (RGB)`);
  const per = imageBytes(set);
  const write = frameWriter(
    {
      width: set.width,
      height: set.height,
      channels: set.channels,
      mean: preprocessing.mean,
      std: preprocessing.std,
      layout: preprocessing.layout ?? 'NHWC',
    },
    { dtype: 'f32' },
  );
  const out = new Float32Array(count * per);
  for (let i = 0; i < count; i++)
    write(
      set.pixels.subarray((start + i) * per, (start + i + 1) * per),
      out.subarray(i * per, (i + 1) * per),
    );
  return out;
}

/** How `set`'s images feed the package's first input: the package's normalization ([0, 1] when it declares
 * none) and the memory order of the input's declared layout (NCHW channel planes; NHWC and NC interleaved).
 * Throws DatasetError when the images do not fit the input in that layout. A grey image lies the same way
 * in every layout, so for one channel only the size must match. */
export function packageImageInput(pkg: Package, set: ImageSet): ImageInputPreprocessing {
  const { manifest } = pkg;
  const input = manifest.inputs[0]!;
  const shape = manifest.tensors[input.tensor]!.shape;
  const channels = set.channels === 3 ? 3 : 1;
  const expected = imageShape(input.layout, { width: set.width, height: set.height, channels }, shape[0]);
  const fits =
    set.channels === 1
      ? elements(shape.slice(1)) === imageBytes(set)
      : set.channels === 3 &&
        expected !== undefined &&
        expected.slice(1).join(',') === shape.slice(1).join(',');
  if (!fits)
    throw new DatasetError(
      `${manifest.model.id} takes inputs of shape [${shape.join(', ')}] in layout ${input.layout} but ` +
        `${set.source} images are ${set.height}x${set.width}x${set.channels}` +
        (expected && set.channels === 3 ? ` ([${expected.join(', ')}] in ${input.layout})` : ''),
    );
  const { mean, std } = input.preprocessing ?? UNIT_SCALE;
  return { mean, std, layout: frameOrder(input.layout) };
}

/** `manifest` with labels (the set's classes) and input preprocessing where it declares none: the trainer
 * feeds pixels / 255 (optimize/datasets/batches.ts), so a package without preprocessing of its own (a fresh
 * `whittle import` of a trained model) gets mean 0, std 1 — the normalization its weights were trained on. */
export function withTrainedPreprocessing(manifest: Manifest, set: ImageSet): Manifest {
  const preprocessing: ImagePreprocessing = manifest.inputs[0]!.preprocessing ?? {
    kind: 'image',
    width: set.width,
    height: set.height,
    channels: set.channels === 3 ? 3 : 1,
    mean: [0],
    std: [1],
  };
  return {
    ...manifest,
    labels: manifest.labels ?? set.classes,
    inputs: manifest.inputs.map((input, i) => (i === 0 ? { ...input, preprocessing } : input)),
  };
}

/** The image size and channels the package's first input takes: its preprocessing's, else read off its
 * input shape in its declared layout (NHWC, NCHW); empty when neither tells (NC, other). What an image folder
 * is loaded at for this package. */
export function packageImageSize(pkg: Package): Partial<ImageFolderOptions> {
  const input = pkg.manifest.inputs[0]!;
  const image = input.preprocessing;
  if (image) return { height: image.height, width: image.width, channels: image.channels };
  const shape = pkg.manifest.tensors[input.tensor]!.shape;
  if (shape.length !== 4) return {};
  const [height, width, channels] =
    input.layout === 'NHWC'
      ? [shape[1]!, shape[2]!, shape[3]!]
      : input.layout === 'NCHW'
        ? [shape[2]!, shape[3]!, shape[1]!]
        : [0, 0, 0];
  return channels === 1 || channels === 3 ? { height, width, channels } : {};
}

export interface Evaluation {
  images: number;
  correct: number;
  top1: number;
  /** Predicted class of each image. */
  predictions: Uint16Array;
}

/** Top-1 of the package on the first `limit` images of `set` (all by default), `batch` images per run. */
export function evaluatePackage(
  pkg: Package,
  set: ImageSet,
  options: { limit?: number; batch?: number } = {},
): Evaluation {
  const preprocessing = packageImageInput(pkg, set);
  const count = Math.min(options.limit ?? set.count, set.count);
  if (count < 1) throw new DatasetError(`no images to evaluate on in ${set.source}`);
  const batch = Math.min(options.batch ?? 100, count);
  const model = Model.fromPackage(pkg, { batch });
  const predictions = new Uint16Array(count);
  let correct = 0;
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    const input = new Float32Array(model.inputs[0]!.spec.shape.reduce((p, d) => p * d, 1));
    // A short last batch is zero-padded; the padding rows' predictions are not read.
    input.set(imageInput(set, start, n, preprocessing));
    const scores = model.run([input])[0]!.data;
    const classes = scores.length / batch;
    for (let k = 0; k < n; k++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (scores[k * classes + c]! > scores[k * classes + best]!) best = c;
      predictions[start + k] = best;
      if (best === set.labels[start + k]) correct++;
    }
  }
  return { images: count, correct, top1: correct / count, predictions };
}

export interface Latency {
  runs: number;
  medianMs: number;
  p90Ms: number;
}

/** Per-image latency of each package at batch 1 (one camera frame at a time, as the agent runs it: on
 * `threads`, by default the agent's, AGENT_THREADS; the process's own count is put back after), measured
 * side by side: the packages take turns image by image, so a change in machine load (other processes on a
 * shared CPU) hits all of them alike. `runs` timed runs each over the first images of `set`, after untimed
 * warm-up runs. */
export function compareLatency(
  packages: readonly Package[],
  set: ImageSet,
  runs = 500,
  threads = AGENT_THREADS,
): Latency[] {
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`Expected runs >= 1 but received ${runs}`);
  return withThreads(threads, () => timeSideBySide(packages, set, runs, threads));
}

function timeSideBySide(
  packages: readonly Package[],
  set: ImageSet,
  runs: number,
  threads: number,
): Latency[] {
  const models = packages.map((pkg) => {
    const preprocessing = packageImageInput(pkg, set);
    return {
      model: Model.fromPackage(pkg, { threads }),
      inputs: Array.from({ length: Math.min(set.count, 100) }, (_, i) =>
        imageInput(set, i, 1, preprocessing),
      ),
      times: [] as number[],
    };
  });
  for (let i = 0; i < 20; i++) for (const m of models) m.model.run([m.inputs[i % m.inputs.length]!]);
  for (let i = 0; i < runs; i++) {
    for (const m of models) {
      const input = m.inputs[i % m.inputs.length]!;
      const t0 = performance.now();
      m.model.run([input]);
      m.times.push(performance.now() - t0);
    }
  }
  return models.map(({ times }) => {
    times.sort((p, q) => p - q);
    return { runs, medianMs: times[Math.floor(runs / 2)]!, p90Ms: times[Math.floor(runs * 0.9)]! };
  });
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      dataset: { type: 'string' },
      images: { type: 'string' },
      'latency-runs': { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (positionals.length === 0)
    throw new RangeError(
      'usage: evaluate-package PKG.whittle [PKG.whittle ...] [--dataset fashion-mnist] [--images N] ' +
        '[--latency-runs N] [--threads N] [--json]',
    );
  const packages = positionals.map((path) => readPackageFile(path, { allowUnsigned: true, cpuFamily: null }));
  const dataset = loadDataset(values.dataset ?? 'fashion-mnist', { folder: packageImageSize(packages[0]!) });
  const test = dataset.test ?? dataset.train;
  const limit = values.images === undefined ? test.count : Number(values.images);
  const runs = values['latency-runs'] === undefined ? 500 : Number(values['latency-runs']);
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  const set = firstImages(test, limit);
  const latencies = runs > 0 ? compareLatency(packages, set, runs, threads) : undefined;
  const rows = packages.map((pkg, k) => {
    const evaluation = evaluatePackage(pkg, set);
    const latency = latencies?.[k];
    return {
      path: positionals[k]!,
      bytes: pkg.fileBytes,
      formats: [...new Set(pkg.manifest.nodes.map((n) => n.format))].join('+'),
      images: evaluation.images,
      top1: evaluation.top1,
      ...(latency ? { medianMs: latency.medianMs, p90Ms: latency.p90Ms, runs: latency.runs } : {}),
    };
  });
  if (values.json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  for (const r of rows)
    console.log(
      `${r.path}: ${r.bytes} bytes, ${r.formats}, top-1 ${(100 * r.top1).toFixed(2)}% on ${r.images} ` +
        `${set.source} images` +
        (r.medianMs === undefined
          ? ''
          : `, ${r.medianMs.toFixed(3)} ms/image median (p90 ${r.p90Ms!.toFixed(3)}, ${r.runs} runs, batch 1)`),
    );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main();
  } catch (err) {
    console.error(`evaluate-package: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
