// `whittle compress`: runs a pipeline (pipeline.ts) of steps (steps.ts) on a trained model and writes the
// compressed package and its report. Every figure of the report is measured on the package itself, run by
// the agent's runtime on this machine's native kernels: accuracy (evaluatePackage), bytes on disk (the
// signed file), latency at batch 1 (compareLatency, interleaved with the fp32 package), and per layer its
// number format, parameters, stored bytes and MACs (the runtime's own layer table).
//
// RUN (default OUT.run/) holds the run: spec.json (what was asked), baseline.whittle, one directory per step
// (NN-method/: its retraining phases, step.whittle, done.json with its ledger entry and layer states).
// --resume continues an interrupted run: finished steps and phases are read back, the interrupted phase
// continues from its checkpoint. Nothing of an earlier run is deleted.
import type { KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ManifestEncoding } from '../../agent/package/layout.js';
import type { NumberFormat } from '../../agent/package/manifest.js';
import { type Package, readPackage, readPackageFile } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
import { elements } from '../../agent/runtime/tensor.js';
import { whittleError } from '../../native/whittle-error.js';
import { firstImages, loadDataset } from '../datasets/dataset-spec.js';
import type { ImageSet } from '../datasets/image-set.js';
import {
  compareLatency,
  evaluatePackage,
  packageImageSize,
  withTrainedPreprocessing,
} from '../evaluate-package.js';
import { probeFromTestSet } from '../package/probe.js';
import { type PackageContent, packageContent, writePackage } from '../package/writer.js';
import { MODEL_FILE } from '../train/file-io.js';
import type { TrainProgress } from '../train/trainer.js';
import { compressedPackage, type LayerCompression } from './encode.js';
import { loadPipeline, type ModelLayer, type PipelineStep } from './pipeline.js';
import { type StepContext, STEPS } from './steps.js';

/** A run directory that does not fit the request (an earlier run without --resume, a resume of another run). */
export class CompressRunError extends whittleError('CompressRunError', 'bad-compress-run') {}

export interface CompressOptions {
  /** A `whittle train` directory, or an fp32 package (.whittle) for methods that do not retrain. */
  model: string;
  dataset: string;
  /** A preset name or a spec file. */
  pipeline: string;
  out: string;
  /** The run directory (default OUT.run). */
  runDir?: string;
  resume?: boolean;
  /** Signs the output package. */
  key: KeyObject;
  /** Retraining on the first N training images; accuracy on the first N test images. */
  trainLimit?: number;
  testImages?: number;
  batchSize?: number;
  seed?: number;
  /** Timed batch-1 runs per package (0: no latency). */
  latencyRuns?: number;
  /** Targets: the whole package at least this many times smaller than fp32; at most this many points of
   * accuracy lost. */
  targetRatio?: number;
  maxAccuracyDrop?: number;
  signal?: AbortSignal;
  onProgress?: (phase: string, progress: TrainProgress) => void;
  onStep?: (entry: LedgerEntry) => void;
}

/** One row of the ledger: the package after a step (or the fp32 baseline), measured. */
export interface LedgerEntry {
  step: number;
  method: string;
  params: Record<string, unknown>;
  bytes: number;
  accuracy: number;
  latency_ms: number | null;
  compression_ratio: number;
  /** What this step bought against the one before it. */
  delta_bytes: number;
  delta_accuracy: number;
  delta_latency_ms: number | null;
  /** What the step has to say (layers it left alone and why, a target of its own not met). */
  notes?: string[];
}

export interface LayerReport {
  name: string;
  op: string;
  format: NumberFormat;
  /** How its weight tensor is stored (the encoding kind: raw, sparse-codebook, ...; an int8 layer's may be
   * binary or ternary bit planes). */
  weights: string;
  parameters: number;
  bytes: number;
  baseline_bytes: number;
  macs: number;
  baseline_macs: number;
  /** Output channels (the last dimension of its output), here and in the fp32 baseline. */
  channels: number;
  baseline_channels: number;
}

export interface TargetReport {
  target: 'compression_ratio' | 'accuracy_drop_points';
  wanted: number;
  reached: number;
  met: boolean;
  /** When not met: the ledger step that came closest (the best result), with its figure. */
  best?: { step: number; method: string; value: number };
}

export interface CompressReport {
  model: string;
  dataset: string;
  pipeline: PipelineStep[];
  out: string;
  images: number;
  bytes: number;
  baseline_bytes: number;
  compression_ratio: number;
  accuracy: number;
  baseline_accuracy: number;
  latency_ms: number | null;
  baseline_latency_ms: number | null;
  macs_by_format: Partial<Record<NumberFormat, number>>;
  /** Multiply-accumulates of one inference, the whole model, here and in the fp32 baseline. */
  macs: number;
  baseline_macs: number;
  layers: LayerReport[];
  steps: LedgerEntry[];
  targets: TargetReport[];
}

export type CompressResult =
  { interrupted: true; runDir: string } | { interrupted: false; report: CompressReport };

const read = (bytes: Buffer): Package => readPackage(bytes, { allowUnsigned: true, cpuFamily: null });

/** The model's weight layers as the pipeline names them: a train directory's tfjs layers (class, weights). */
function modelLayersOf(model: string, pkg: Package, fromPackage: boolean): ModelLayer[] {
  if (fromPackage)
    return pkg.manifest.nodes.map((n) => ({
      name: n.name,
      kind: n.op,
      weights:
        n.inputs[1] !== undefined && n.inputs[1] >= 0
          ? elements(pkg.manifest.tensors[n.inputs[1]]!.shape)
          : 0,
    }));
  return trainedModelLayers(model);
}

/** The layers of a `whittle train` directory's model, in order: each tfjs layer's name, class and kernel size. */
export function trainedModelLayers(model: string): ModelLayer[] {
  const json = JSON.parse(readFileSync(join(model, MODEL_FILE), 'utf8')) as {
    modelTopology: { config: { layers: { class_name: string; config: { name: string } }[] } };
    weightsManifest: { weights: { name: string; shape: number[] }[] }[];
  };
  const weights = json.weightsManifest.flatMap((g) => g.weights);
  return json.modelTopology.config.layers.map((l) => {
    const kernel = weights.find(
      (w) =>
        /^(depthwise_)?kernel$/.test(w.name.slice(l.config.name.length + 1)) &&
        w.name.startsWith(`${l.config.name}/`),
    );
    return { name: l.config.name, kind: l.class_name, weights: kernel ? elements(kernel.shape) : 0 };
  });
}

/** Per-layer figures of a package from the runtime's layer table (layers with weights), beside the same
 * layer's in the fp32 baseline. */
function layerReports(pkg: Package, baseline: Package): LayerReport[] {
  const channels = (shapes: number[][]): number => shapes[0]?.[shapes[0].length - 1] ?? 0;
  const fp32 = new Map(Model.fromPackage(baseline).layers.map((l) => [l.name, l]));
  const manifest = pkg.manifest;
  return Model.fromPackage(pkg)
    .layers.filter((l) => l.weightBytes > 0)
    .map((l) => {
      const node = manifest.nodes.find((n) => n.name === l.name);
      const parameters = (node?.inputs ?? [])
        .filter((i) => i >= 0 && manifest.tensors[i]!.section !== undefined)
        .reduce((n, i) => n + elements(manifest.tensors[i]!.shape), 0);
      const before = fp32.get(l.name);
      const w = node?.inputs[1];
      return {
        name: l.name,
        op: l.op,
        format: l.format,
        weights: w !== undefined && w >= 0 ? (manifest.tensors[w]!.encoding?.kind ?? 'raw') : 'raw',
        parameters,
        bytes: l.weightBytes,
        baseline_bytes: before?.weightBytes ?? 0,
        macs: l.macs,
        baseline_macs: before?.macs ?? 0,
        channels: channels(l.outputShapes),
        baseline_channels: before ? channels(before.outputShapes) : 0,
      };
    });
}

function macsByFormat(pkg: Package): Partial<Record<NumberFormat, number>> {
  const out: Partial<Record<NumberFormat, number>> = {};
  for (const l of Model.fromPackage(pkg).layers)
    if (l.macs > 0) out[l.format] = (out[l.format] ?? 0) + l.macs;
  return out;
}

const totalMacs = (pkg: Package): number => Object.values(macsByFormat(pkg)).reduce((sum, n) => sum + n, 0);

interface SavedStep {
  entry: LedgerEntry;
  layers: [string, LayerCompression][];
  modelDir?: string;
}

const stepDir = (runDir: string, i: number, method: string): string =>
  join(runDir, `${String(i + 1).padStart(2, '0')}-${method}`);

export async function runCompress(options: CompressOptions): Promise<CompressResult> {
  const fromPackage = existsSync(options.model) && statSync(options.model).isFile();
  const runDir = options.runDir ?? `${options.out}.run`;
  const specPath = join(runDir, 'spec.json');
  const dataset = loadDataset(
    options.dataset,
    fromPackage
      ? { folder: packageImageSize(readPackageFile(options.model, { allowUnsigned: true, cpuFamily: null })) }
      : {},
  );
  const trainSet: ImageSet = options.trainLimit
    ? firstImages(dataset.train, options.trainLimit)
    : dataset.train;
  const testSet = firstImages(dataset.test ?? dataset.train, options.testImages ?? Number.MAX_SAFE_INTEGER);

  // The fp32 baseline: MODEL's package, or the trained model imported as `whittle import` does.
  const modelId = fromPackage
    ? undefined
    : `${
        options.model
          .split('/')
          .filter((p) => p)
          .pop() ?? 'model'
      }`;
  const baselineContent: PackageContent = fromPackage
    ? packageContent(readPackageFile(options.model, { allowUnsigned: true, cpuFamily: null }))
    : compressedPackage(options.model, new Map(), { modelId: modelId! });
  baselineContent.manifest = withTrainedPreprocessing(baselineContent.manifest, dataset.train);
  const baselineBytes = writePackage(baselineContent, options.key);
  const baseline = read(baselineBytes);
  const modelLayers = modelLayersOf(options.model, baseline, fromPackage);
  const steps = loadPipeline(options.pipeline, modelLayers, fromPackage);

  const spec = {
    model: options.model,
    dataset: options.dataset,
    pipeline: steps,
    trainLimit: options.trainLimit ?? null,
  };
  if (options.resume) {
    if (!existsSync(specPath)) throw new CompressRunError(`${runDir}: no run to resume (no spec.json)`);
    const earlier = readFileSync(specPath, 'utf8');
    if (earlier !== JSON.stringify(spec))
      throw new CompressRunError(
        `${runDir} holds a run of another model, dataset or pipeline (${earlier}); resume it with the same ` +
          'arguments, or choose another --run directory',
      );
  } else {
    if (existsSync(specPath))
      throw new CompressRunError(
        `${runDir} holds an earlier run: --resume continues it; remove it (or choose --run) to start over`,
      );
    mkdirSync(runDir, { recursive: true });
    writeFileSync(specPath, JSON.stringify(spec));
    writeFileSync(join(runDir, 'baseline.whittle'), baselineBytes);
  }

  const latencySet = firstImages(testSet, 100);
  const runs = options.latencyRuns ?? 200;
  const measure = (pkg: Package): { accuracy: number; latency: number | null } => ({
    accuracy: evaluatePackage(pkg, testSet).top1,
    latency: runs > 0 ? compareLatency([baseline, pkg], latencySet, runs)[1]!.medianMs : null,
  });
  const baselineAccuracy = evaluatePackage(baseline, testSet).top1;
  const baselineLatency = runs > 0 ? compareLatency([baseline], latencySet, runs)[0]!.medianMs : null;
  const ledger: LedgerEntry[] = [
    {
      step: 0,
      method: 'fp32',
      params: {},
      bytes: baseline.fileBytes,
      accuracy: baselineAccuracy,
      latency_ms: baselineLatency,
      compression_ratio: 1,
      delta_bytes: 0,
      delta_accuracy: 0,
      delta_latency_ms: null,
    },
  ];
  options.onStep?.(ledger[0]!);

  const meta = fromPackage
    ? undefined
    : (JSON.parse(readFileSync(join(options.model, 'evaluation.json'), 'utf8').toString()) as {
        config?: { model?: string; batchSize?: number; seed?: number };
      });
  const context: StepContext = {
    dir: runDir,
    ...(fromPackage ? {} : { modelDir: options.model }),
    layers: new Map(),
    notes: [],
    modelLayers,
    retrain: {
      model: meta?.config?.model ?? 'model',
      ...(fromPackage ? {} : { input: options.model }),
      dataset: options.dataset,
      batchSize: options.batchSize ?? meta?.config?.batchSize ?? 64,
      seed: options.seed ?? meta?.config?.seed ?? 1,
      ...(options.trainLimit !== undefined ? { trainLimit: options.trainLimit } : {}),
      ...(options.testImages !== undefined ? { testLimit: options.testImages } : {}),
    },
    fp32: baseline,
    trainSet,
    resume: options.resume === true,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  };

  let current = baseline;
  for (const [i, step] of steps.entries()) {
    const dir = stepDir(runDir, i, step.method);
    const donePath = join(dir, 'done.json');
    if (existsSync(donePath)) {
      const saved = JSON.parse(readFileSync(donePath, 'utf8')) as SavedStep;
      context.layers = new Map(saved.layers);
      if (saved.modelDir !== undefined) context.modelDir = saved.modelDir;
      current = read(readFileSync(join(dir, 'step.whittle')));
      ledger.push(saved.entry);
      options.onStep?.(saved.entry);
      continue;
    }
    mkdirSync(dir, { recursive: true });
    context.dir = dir;
    delete context.content;
    context.notes = [];
    // The layers of the model so far (a distilled student's are not the input model's).
    if (!fromPackage) context.modelLayers = modelLayersOf(context.modelDir!, baseline, false);
    const outcome = await STEPS[step.method]!(context, step.params);
    if (outcome.interrupted) return { interrupted: true, runDir };
    const content =
      context.content ??
      compressedPackage(context.modelDir!, context.layers, { modelId: baseline.manifest.model.id });
    content.manifest = withTrainedPreprocessing(content.manifest, dataset.train);
    const done = steps.slice(0, i + 1).map((s) => s.method);
    content.manifest.model = {
      ...content.manifest.model,
      name: `${baseline.manifest.model.name ?? baseline.manifest.model.id} (${done.join(', ')})`,
    };
    // Every step's package keeps its manifest deflated with the preset dictionary (format 1.5) and its
    // sections packed (1.4): kilobytes of JSON and 64-byte alignment are a large part of a compressed small
    // model's file.
    const bytes = writePackage(
      { ...content, manifestEncoding: ManifestEncoding.deflateDictionary, packedSections: true },
      options.key,
    );
    current = read(bytes);
    const measured = measure(current);
    const previous = ledger[ledger.length - 1]!;
    const entry: LedgerEntry = {
      step: i + 1,
      method: step.method,
      params: step.params,
      bytes: bytes.length,
      accuracy: measured.accuracy,
      latency_ms: measured.latency,
      compression_ratio: baseline.fileBytes / bytes.length,
      delta_bytes: bytes.length - previous.bytes,
      delta_accuracy: measured.accuracy - previous.accuracy,
      delta_latency_ms:
        measured.latency !== null && previous.latency_ms !== null
          ? measured.latency - previous.latency_ms
          : null,
      ...(context.notes.length > 0 ? { notes: context.notes } : {}),
    };
    writeFileSync(join(dir, 'step.whittle'), bytes);
    const saved: SavedStep = {
      entry,
      layers: [...context.layers],
      ...(context.modelDir !== undefined ? { modelDir: context.modelDir } : {}),
    };
    writeFileSync(donePath, JSON.stringify(saved, null, 1));
    ledger.push(entry);
    options.onStep?.(entry);
  }

  // The output: the last step's package, with its measured accuracy and a health-check probe.
  const final = packageContent(current);
  final.manifest = {
    ...final.manifest,
    accuracy: { dataset: testSet.source, images: testSet.count, top1: ledger[ledger.length - 1]!.accuracy },
  };
  if (dataset.test) {
    try {
      // The most compact of the first 100 confident probes: the manifest is deflated.
      final.manifest.probe = probeFromTestSet(writePackage(final, options.key), dataset.test, 0.9, 100);
    } catch {
      // A model that gets no test image right carries no probe (as whittle quantize).
    }
  }
  // Written once more from what the agent's reader makes of it: the manifest's keys in the reader's order,
  // so that reading and rewriting the output gives it back byte for byte.
  const outBytes = writePackage(packageContent(read(writePackage(final, options.key))), options.key);
  writeFileSync(options.out, outBytes);
  const last = ledger[ledger.length - 1]!;
  const report: CompressReport = {
    model: options.model,
    dataset: options.dataset,
    pipeline: steps,
    out: options.out,
    images: testSet.count,
    bytes: outBytes.length,
    baseline_bytes: baseline.fileBytes,
    compression_ratio: baseline.fileBytes / outBytes.length,
    accuracy: last.accuracy,
    baseline_accuracy: baselineAccuracy,
    latency_ms: last.latency_ms,
    baseline_latency_ms: baselineLatency,
    macs_by_format: macsByFormat(current),
    macs: totalMacs(current),
    baseline_macs: totalMacs(baseline),
    layers: layerReports(current, baseline),
    steps: ledger,
    targets: targets(options, ledger, baselineAccuracy),
  };
  writeFileSync(join(runDir, 'report.json'), JSON.stringify(report, null, 1));
  return { interrupted: false, report };
}

/** Each target asked for, met or not on the final package; when not, the ledger step that came closest. */
function targets(options: CompressOptions, ledger: LedgerEntry[], baselineAccuracy: number): TargetReport[] {
  const out: TargetReport[] = [];
  const last = ledger[ledger.length - 1]!;
  const drop = (e: LedgerEntry): number => 100 * (baselineAccuracy - e.accuracy);
  const steps = ledger.slice(1);
  if (options.targetRatio !== undefined) {
    const met = last.compression_ratio >= options.targetRatio;
    const best = steps.reduce((a, b) => (b.compression_ratio > a.compression_ratio ? b : a), last);
    out.push({
      target: 'compression_ratio',
      wanted: options.targetRatio,
      reached: last.compression_ratio,
      met,
      ...(met ? {} : { best: { step: best.step, method: best.method, value: best.compression_ratio } }),
    });
  }
  if (options.maxAccuracyDrop !== undefined) {
    const met = drop(last) <= options.maxAccuracyDrop;
    const best = steps.reduce((a, b) => (drop(b) < drop(a) ? b : a), last);
    out.push({
      target: 'accuracy_drop_points',
      wanted: options.maxAccuracyDrop,
      reached: drop(last),
      met,
      ...(met ? {} : { best: { step: best.step, method: best.method, value: drop(best) } }),
    });
  }
  return out;
}

/** The report as terminal tables: the ledger, the layers, the totals and the targets. */
export function formatReport(report: CompressReport): string {
  const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
  const ms = (x: number | null): string => (x === null ? '-' : x.toFixed(3));
  const row = (cells: (string | number)[], widths: number[]): string =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join('  ');
  const lines: string[] = [];
  const lw = [16, 10, 8, 9, 10, 10];
  lines.push(`ledger (${report.images} images of ${report.dataset}, latency batch 1 on this machine):`);
  lines.push(row(['step', 'bytes', 'ratio', 'accuracy', 'Δ accuracy', 'ms'], lw));
  for (const e of report.steps)
    lines.push(
      row(
        [
          `${e.step} ${e.method}`,
          e.bytes,
          `${e.compression_ratio.toFixed(1)}x`,
          pct(e.accuracy),
          `${(100 * e.delta_accuracy).toFixed(2)}`,
          ms(e.latency_ms),
        ],
        lw,
      ),
    );
  for (const e of report.steps)
    for (const note of e.notes ?? []) lines.push(`step ${e.step} ${e.method}: ${note}`);
  const yw = [24, 40, 9, 10, 10, 12, 12, 10];
  lines.push('layers:');
  lines.push(
    row(['layer', 'op / format', 'params', 'bytes', 'fp32 bytes', 'MACs', 'fp32 MACs', 'channels'], yw),
  );
  for (const l of report.layers)
    lines.push(
      row(
        [
          l.name,
          `${l.op}/${l.format}${l.weights !== 'raw' && l.weights !== l.format ? ` (${l.weights} weights)` : ''}`,
          l.parameters,
          l.bytes,
          l.baseline_bytes,
          l.macs,
          l.baseline_macs,
          l.channels === l.baseline_channels ? l.channels : `${l.baseline_channels}->${l.channels}`,
        ],
        yw,
      ),
    );
  lines.push(
    `total: ${report.baseline_bytes} -> ${report.bytes} bytes (${report.compression_ratio.toFixed(1)}x smaller), ` +
      `MACs ${report.baseline_macs} -> ${report.macs}, ` +
      `accuracy ${pct(report.baseline_accuracy)} -> ${pct(report.accuracy)}, latency ${ms(report.baseline_latency_ms)} -> ` +
      `${ms(report.latency_ms)} ms; MACs by format ${Object.entries(report.macs_by_format)
        .map(([f, n]) => `${f} ${n}`)
        .join(', ')}`,
  );
  for (const t of report.targets)
    lines.push(
      `target ${t.target} ${t.target === 'compression_ratio' ? '>=' : '<='} ${t.wanted}: ${t.met ? 'met' : 'NOT MET'} ` +
        `(${t.reached.toFixed(2)})` +
        (t.best ? `; best: step ${t.best.step} ${t.best.method} ${t.best.value.toFixed(2)}` : ''),
    );
  return lines.join('\n');
}
