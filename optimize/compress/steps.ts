// The steps a compression pipeline runs (their parameters are defined in pipeline.ts). The step interface:
//
//   run(context, params) -> { interrupted } after it has
//   - retrained, if it does: one or more retraining phases, each the trainer's own loop (optimize/train/
//     trainer.ts: progress with ETA, a checkpoint every epoch, resume) started from the model so far, with
//     the TrainHooks of its projection (projection.ts) and its own directory under the step's;
//   - set `context.modelDir` to the model it leaves (TensorFlow.js Layers, as `whittle train` writes), and
//   - recorded in `context.layers` what it did to each layer, which decides how the layer is stored
//     (encode.ts); or, for a step that rewrites the whole package (int8, fixed point), set `context.content`.
//
// A phase that finished is marked by PHASE_DONE in its directory and skipped when the run resumes; one that
// was interrupted resumes from its checkpoint, with the projection (masks, cluster assignments) it saved
// before it started. Another method plugs in as one more entry of STEPS. The straight-through-estimator
// methods (binaryconnect, ternary, xnor; later fixed-point / int8 QAT) retrain one phase with steHooks
// (ste.ts) in place of the projections' hooks; their float weights are saved with each checkpoint.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import { type Package, readPackage } from '../../agent/package/reader.js';
import type { ImageSet } from '../datasets/image-set.js';
import { imageInput, packageImageInput, withTrainedPreprocessing } from '../evaluate-package.js';
import { fixedPointPackage } from '../package/fixed-point.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../package/writer.js';
import { calibrationFromImages, type CalibrationMethod, type TensorRange } from '../quantize/calibrate.js';
import { quantizePackage } from '../quantize/ptq.js';
import { fileHandler, loadNamedTensors, saveNamedTensors } from '../train/file-io.js';
import {
  combineHooks,
  DEFAULT_TRAIN_CONFIG,
  type Distillation,
  train,
  type TrainConfig,
  type TrainHooks,
  type TrainProgress,
} from '../train/trainer.js';
import { buildZooModel } from '../zoo/index.js';
import { compressedPackage, encodeLayers, type LayerCompression } from './encode.js';
import { applyFilterPlan, type FilterPlan, planFilterPruning } from './filters.js';
import {
  DISTILL_ALPHA,
  DISTILL_TEMPERATURE,
  METHODS,
  type ModelLayer,
  namedLayers,
  PipelineError,
  type PruneSchedule,
  type StepParams,
} from './pipeline.js';
import {
  type HashedKernel,
  iterationSparsity,
  kernelOf,
  type LayerProjection,
  magnitudeMasks,
  project,
  projectionHooks,
  readKernel,
  shareWeights,
  sizeScaledBuckets,
  sizeScaledSparsities,
  writeKernel,
} from './projection.js';
import {
  activationHooks,
  fixedPointWeightQuantizer,
  INT8_WEIGHT_QUANTIZER,
  packageRanges,
  QAT_RANGES_FILE,
  type QatFormat,
  quantizedPoints,
} from './qat.js';
import {
  BINARY_QUANTIZER,
  codebookQuantizer,
  steHooks,
  type SteLayer,
  ternaryQuantizer,
  type WeightQuantizer,
} from './ste.js';
import { xnorModel } from './xnor.js';

/** Written in a phase's directory once the phase is complete. */
export const PHASE_DONE = 'phase.json';
const PROJECTION_FILE = 'projection';
const START_DIR = 'start';

/** The retraining settings every phase shares (the step's own: epochs, learning rate). */
export interface RetrainSettings {
  /** The model's zoo name (recorded in each phase's evaluation.json). */
  model: string;
  /** The pipeline's input model (a `whittle train` directory): the teacher of a distilling phase that names
   * none. */
  input?: string;
  dataset: string;
  batchSize: number;
  seed: number;
  trainLimit?: number;
  testLimit?: number;
}

export interface StepContext {
  /** This step's directory in the run directory. */
  dir: string;
  /** The model so far (a `whittle train` directory); undefined when MODEL is a package. */
  modelDir?: string;
  /** What the steps so far did to each layer, by layer name; a step updates it. */
  layers: Map<string, LayerCompression>;
  /** The model's layers (for the methods' layer selection). */
  modelLayers: readonly ModelLayer[];
  retrain: RetrainSettings;
  /** The fp32 package of MODEL (the package steps' input) and the training images (their calibration set). */
  fp32: Package;
  trainSet: ImageSet;
  /** Continue interrupted phases from their checkpoints. */
  resume: boolean;
  signal?: AbortSignal;
  onProgress?: (phase: string, progress: TrainProgress) => void;
  /** A package step's result. */
  content?: PackageContent;
  /** What the step has to say in the report (layers it left alone and why, its own target not met). */
  notes: string[];
}

export type CompressStep = (context: StepContext, params: StepParams) => Promise<{ interrupted: boolean }>;

/** The layers a method compresses: those of its kinds with at least `minWeights` weights, and any named in
 * its `layers` map (checked against the kinds by loadPipeline). */
function selectedLayers(method: string, context: StepContext, params: StepParams): ModelLayer[] {
  const named = params.layers as Record<string, number> | undefined;
  const kinds = METHODS[method]!.layerClasses!;
  return context.modelLayers.filter(
    (l) =>
      (named !== undefined && Object.hasOwn(named, l.name)) ||
      (kinds.includes(l.kind) && l.weights >= (params.minWeights as number)),
  );
}

/** The teacher of a phase whose step asks for distillation (the distill step, or `distill: true`). */
async function phaseTeacher(context: StepContext, params: StepParams): Promise<Distillation | undefined> {
  if (params.distill !== true) return undefined;
  const dir = (params.teacher as string | undefined) ?? context.retrain.input;
  if (dir === undefined)
    throw new PipelineError(
      'distillation needs a teacher: MODEL is a package, so name a `teacher` directory',
    );
  return {
    teacher: await tf.loadLayersModel(fileHandler(dir)),
    temperature: (params.temperature as number | undefined) ?? DISTILL_TEMPERATURE,
    alpha: (params.alpha as number | undefined) ?? DISTILL_ALPHA,
  };
}

/** One retraining phase in `dir` from the model in context.modelDir (or the one `phase.build` makes): `prepare`
 * projects the starting model's weights and returns the projections to keep (saved, so a resumed phase keeps
 * the same ones). With distillation asked for, the phase trains on its teacher's softened outputs too.
 * Leaves context.modelDir at the phase's model. */
async function retrainPhase(
  context: StepContext,
  dir: string,
  label: string,
  params: StepParams,
  prepare: (model: tf.LayersModel) => LayerProjection[],
  /** A phase's own start and hooks: a new model (`build`, with its `config`: a distillation's student), the
   * starting model rewritten (`rewrite`: XNOR-Net's binary activations), or its own hooks in place of the
   * projections' (a straight-through-estimator method: the projections are then none). */
  phase?: {
    build?: () => tf.LayersModel;
    rewrite?: (model: tf.LayersModel) => tf.LayersModel;
    config?: Partial<TrainConfig>;
    hooks?: TrainHooks;
  },
): Promise<{ interrupted: boolean }> {
  if (existsSync(join(dir, PHASE_DONE))) {
    context.modelDir = dir;
    return { interrupted: false };
  }
  const epochs = params.epochs as number;
  const resuming = context.resume && existsSync(join(dir, 'checkpoint', 'state.json'));
  let projections: LayerProjection[];
  if (resuming) {
    projections = loadProjections(dir);
  } else {
    const loaded = phase?.build ? phase.build() : await tf.loadLayersModel(fileHandler(context.modelDir!));
    let model = loaded;
    try {
      if (phase?.rewrite) model = phase.rewrite(loaded);
      projections = prepare(model);
      await saveProjections(dir, projections);
      await model.save(fileHandler(epochs === 0 ? dir : join(dir, START_DIR)));
    } finally {
      loaded.dispose();
      if (model !== loaded) model.dispose();
    }
  }
  if (epochs > 0) {
    const config: TrainConfig = {
      ...DEFAULT_TRAIN_CONFIG,
      model: context.retrain.model,
      dataset: context.retrain.dataset,
      epochs,
      batchSize: context.retrain.batchSize,
      learningRate: params.learningRate as number,
      seed: context.retrain.seed,
      cropPadding: (params.cropPadding as number | undefined) ?? 0,
      flip: params.flip === true,
      patience: 0,
      ...(context.retrain.trainLimit !== undefined ? { trainLimit: context.retrain.trainLimit } : {}),
      ...(context.retrain.testLimit !== undefined ? { testLimit: context.retrain.testLimit } : {}),
      ...phase?.config,
    };
    const distill = await phaseTeacher(context, params);
    try {
      const result = await train({
        config,
        outDir: dir,
        resume: resuming,
        from: join(dir, START_DIR),
        hooks: phase?.hooks ?? projectionHooks(projections),
        ...(distill ? { distill } : {}),
        ...(context.signal ? { signal: context.signal } : {}),
        ...(context.onProgress ? { onProgress: (p: TrainProgress) => context.onProgress!(label, p) } : {}),
      });
      if (result.interrupted) return { interrupted: true };
    } finally {
      distill?.teacher.dispose();
    }
  }
  writeFileSync(join(dir, PHASE_DONE), JSON.stringify({ label, epochs }));
  context.modelDir = dir;
  return { interrupted: false };
}

async function saveProjections(dir: string, projections: readonly LayerProjection[]): Promise<void> {
  const tensors = projections.flatMap((p) => [
    ...(p.mask ? [{ name: `${p.layer}/mask`, tensor: tf.tensor1d(Int32Array.from(p.mask), 'int32') }] : []),
    ...(p.assignments
      ? [{ name: `${p.layer}/assignments`, tensor: tf.tensor1d(Int32Array.from(p.assignments), 'int32') }]
      : []),
    ...(p.hashed
      ? [{ name: `${p.layer}/hashed`, tensor: tf.tensor1d(hashedFields(p.hashed), 'int32') }]
      : []),
  ]);
  // An empty list still records the phase's projection (none).
  await saveNamedTensors(dir, PROJECTION_FILE, tensors);
  tf.dispose(tensors.map((t) => t.tensor));
}

function loadProjections(dir: string): LayerProjection[] {
  const byLayer = new Map<string, LayerProjection>();
  for (const { name, tensor } of loadNamedTensors(dir, PROJECTION_FILE)) {
    const cut = name.lastIndexOf('/');
    const layer = name.slice(0, cut);
    const p = byLayer.get(layer) ?? { layer };
    const kind = name.slice(cut + 1);
    if (kind === 'hashed') {
      const [buckets, seed, inputs, outputs] = tensor.dataSync();
      p.hashed = { buckets: buckets!, seed: seed! >>> 0, inputs: inputs!, outputs: outputs! };
    } else {
      const values = Uint8Array.from(tensor.dataSync());
      if (kind === 'mask') p.mask = values;
      else p.assignments = values;
    }
    byLayer.set(layer, p);
    tensor.dispose();
  }
  return [...byLayer.values()];
}

/** A hashed kernel as the int32 fields a projection file stores (the seed's bits as a signed int32). */
function hashedFields(h: HashedKernel): Int32Array {
  return Int32Array.of(h.buckets, h.seed | 0, h.inputs, h.outputs);
}

const prune: CompressStep = async (context, params) => {
  const layers = selectedLayers('prune', context, params);
  const named = (params.layers as Record<string, number> | undefined) ?? {};
  const output = context.modelLayers.filter((l) => METHODS.prune!.layerClasses!.includes(l.kind)).at(-1);
  const kindSparsity = (l: ModelLayer): number =>
    ((l.kind === 'Dense' && l === output
      ? params.outputSparsity
      : l.kind !== 'Dense'
        ? params.convSparsity
        : undefined) as number | undefined) ?? (params.sparsity as number);
  const targets = new Map(layers.map((l) => [l.name, named[l.name] ?? kindSparsity(l)]));
  if (params.sizeExponent !== undefined) {
    // The layers at `sparsity` (not named, not taken by convSparsity / outputSparsity) share it by size.
    const shared = layers.filter(
      (l) =>
        named[l.name] === undefined &&
        (l.kind === 'Dense'
          ? l !== output || params.outputSparsity === undefined
          : params.convSparsity === undefined),
    );
    const scaled = sizeScaledSparsities(
      shared.map((l) => l.weights),
      params.sparsity as number,
      params.sizeExponent as number,
    );
    shared.forEach((l, i) => targets.set(l.name, scaled[i]!));
  }
  const iterations = params.iterations as number;
  for (let i = 1; i <= iterations; i++) {
    const label = `prune ${i}/${iterations}`;
    const result = await retrainPhase(
      context,
      join(context.dir, `iteration-${i}`),
      label,
      i === iterations && params.finalEpochs !== undefined
        ? { ...params, epochs: params.finalEpochs }
        : params,
      (model) => {
        const weights = new Map(layers.map((l) => [l.name, readKernel(model, l.name)]));
        const sparsity = new Map(
          [...targets].map(
            ([name, s]) =>
              [name, iterationSparsity(s, i, iterations, params.schedule as PruneSchedule)] as const,
          ),
        );
        const masks = magnitudeMasks(weights, sparsity, params.global as boolean);
        return [...masks].map(([layer, mask]) => {
          writeKernel(
            model,
            layer,
            weights.get(layer)!.map((v, k) => (mask[k] ? v : 0)),
          );
          return { layer, mask };
        });
      },
    );
    if (result.interrupted) return result;
  }
  for (const [name, sparsity] of targets) context.layers.set(name, { ...context.layers.get(name), sparsity });
  return { interrupted: false };
};

/** Weight sharing: each selected layer's (kept) weights k-means-clustered to 2^bits values (a pruned layer's
 * zeros its fixed cluster 0), then the centroids fine-tuned with the assignments fixed (`fine-tune/`). With
 * `steEpochs`, trained assignments first (`assign/`): the float weights trained that many epochs through the
 * codebook quantizer (ste.ts codebookQuantizer: each weight at its nearest centroid, the codebook refitted
 * after every update, the pruned weights held at 0), so weights can change cluster; the fine-tuning then
 * starts from that codebook, exactly (kmeansLinear keeps values that already fit). */
const kmeans: CompressStep = async (context, params) => {
  const layers = selectedLayers('kmeans', context, params);
  const named = (params.layers as Record<string, number> | undefined) ?? {};
  const bits = new Map(layers.map((l) => [l.name, named[l.name] ?? (params.bits as number)]));
  // A pruned layer's zeros stay its fixed cluster 0 (its mask is where the pruned model holds zeros).
  const maskOf = (name: string, weights: Float32Array): Uint8Array | undefined =>
    context.layers.get(name)?.sparsity ? Uint8Array.from(weights, (v) => (v !== 0 ? 1 : 0)) : undefined;
  const steEpochs = params.steEpochs as number;
  if (steEpochs > 0) {
    const dir = join(context.dir, 'assign');
    let quantizers: SteLayer[] = [];
    if (!existsSync(join(dir, PHASE_DONE))) {
      // The masks from the step's input (the pruned model), the same on a resumed run.
      const model = await tf.loadLayersModel(fileHandler(context.modelDir!));
      try {
        quantizers = layers.map(({ name }) => ({
          layer: name,
          quantizer: codebookQuantizer(2 ** bits.get(name)!, maskOf(name, readKernel(model, name))),
        }));
      } finally {
        model.dispose();
      }
    }
    const result = await retrainPhase(
      context,
      dir,
      'kmeans assign',
      { ...params, epochs: steEpochs },
      () => [],
      { hooks: steHooks(quantizers) },
    );
    if (result.interrupted) return result;
  }
  const result = await retrainPhase(context, join(context.dir, 'fine-tune'), 'kmeans', params, (model) =>
    layers.map(({ name }) => {
      const weights = readKernel(model, name);
      const mask = maskOf(name, weights);
      const { assignments, shared } = shareWeights(weights, 2 ** bits.get(name)!, mask);
      writeKernel(model, name, shared);
      return { layer: name, assignments, ...(mask ? { mask } : {}) };
    }),
  );
  if (result.interrupted) return result;
  for (const [name, b] of bits) context.layers.set(name, { ...context.layers.get(name), bits: b });
  return { interrupted: false };
};

/** Filter pruning: the surgery (its own phase, `pruned/`: the smaller model and its plan, filters.json),
 * then one fine-tuning phase of the smaller model with no projection (it is dense). */
const filterPrune: CompressStep = async (context, params) => {
  const layers = selectedLayers('filter-prune', context, params);
  const named = (params.layers as Record<string, number> | undefined) ?? {};
  const surgery = join(context.dir, 'pruned');
  const planFile = join(surgery, 'filters.json');
  if (!existsSync(join(surgery, PHASE_DONE))) {
    const model = await tf.loadLayersModel(fileHandler(context.modelDir!));
    try {
      const plan = planFilterPruning(model, {
        layers: new Map(layers.map((l) => [l.name, named[l.name]])),
        fraction: params.fraction as number,
        ...(params.macReduction !== undefined ? { macReduction: params.macReduction as number } : {}),
        named: new Set(Object.keys(named)),
      });
      const pruned = await applyFilterPlan(model, plan);
      try {
        await pruned.save(fileHandler(surgery));
      } finally {
        pruned.dispose();
      }
      writeFileSync(planFile, JSON.stringify({ ...plan, keep: Object.fromEntries(plan.keep) }, null, 1));
      writeFileSync(join(surgery, PHASE_DONE), JSON.stringify({ label: 'filter-prune surgery', epochs: 0 }));
    } finally {
      model.dispose();
    }
  }
  const plan = JSON.parse(readFileSync(planFile, 'utf8')) as Omit<FilterPlan, 'keep'>;
  for (const l of plan.layers)
    if (l.fixed !== undefined) context.notes.push(`${l.layer} keeps its ${l.filters} filters: ${l.fixed}`);
  if (plan.target && !plan.target.met)
    context.notes.push(
      `MAC reduction ${plan.target.macReduction} not met: the best reached is ${plan.target.reached.toFixed(3)}`,
    );
  context.notes.push(
    `MACs ${plan.baselineMacs} -> ${plan.macs} (${(100 * (1 - plan.macs / plan.baselineMacs)).toFixed(1)} % fewer)`,
  );
  context.modelDir = surgery;
  return retrainPhase(context, join(context.dir, 'fine-tune'), 'filter-prune', params, () => []);
};

/** HashedNets: each selected Dense layer's kernel becomes signed hash buckets (layer i of the selection hashes
 * with seed + i): ceil(weights / compression), or with `sizeExponent` the layers at `compression` (those the
 * `layers` map does not name) share ⌊their weights / compression⌋ buckets by size (sizeScaledBuckets). The
 * buckets start at the signed means of the trained weights hashed into them and are fine-tuned through the
 * hash (projection.ts). A layer left with as many buckets as weights stays dense: hashing would only merge
 * its weights. */
const hashednets: CompressStep = async (context, params) => {
  const selected = selectedLayers('hashednets', context, params);
  const named = (params.layers as Record<string, number> | undefined) ?? {};
  const compression = params.compression as number;
  const buckets = new Map(
    selected.map((l) => [l.name, Math.max(1, Math.ceil(l.weights / (named[l.name] ?? compression)))]),
  );
  const shared = selected.filter((l) => named[l.name] === undefined);
  if (params.sizeExponent !== undefined && shared.length > 0) {
    const split = sizeScaledBuckets(
      shared.map((l) => l.weights),
      compression,
      params.sizeExponent as number,
    );
    shared.forEach((l, i) => buckets.set(l.name, split[i]!));
    const weights = shared.reduce((sum, l) => sum + l.weights, 0);
    const total = split.reduce((a, b) => a + b, 0);
    context.notes.push(
      weights / total >= compression
        ? `hashednets: ${shared.length} layers ${(weights / total).toFixed(2)}x smaller together (` +
            shared.map((l, i) => `${l.name} 1/${(l.weights / split[i]!).toFixed(2)}`).join(', ') +
            ')'
        : `hashednets: compression ${compression} over ${shared.map((l) => l.name).join(', ')} not met: ` +
            `at least one bucket a layer, the best is ${(weights / total).toFixed(2)}x`,
    );
  }
  const dense = selected.filter((l) => buckets.get(l.name)! >= l.weights);
  for (const l of dense)
    context.notes.push(`${l.name} stays dense: its ${l.weights} weights would take as many hash buckets`);
  const hashes = new Map(
    selected.flatMap((l, i) =>
      dense.includes(l)
        ? []
        : [[l.name, { buckets: buckets.get(l.name)!, seed: ((params.seed as number) + i) >>> 0 }] as const],
    ),
  );
  const layers = selected.filter((l) => hashes.has(l.name));
  const result = await retrainPhase(context, join(context.dir, 'fine-tune'), 'hashednets', params, (model) =>
    layers.map(({ name }) => {
      const [inputs, outputs] = kernelOf(model.getLayer(name))!.shape as [number, number];
      const projection: LayerProjection = { layer: name, hashed: { ...hashes.get(name)!, inputs, outputs } };
      writeKernel(model, name, project(readKernel(model, name), projection));
      return projection;
    }),
  );
  if (result.interrupted) return result;
  for (const [name, hashed] of hashes) context.layers.set(name, { ...context.layers.get(name), hashed });
  return { interrupted: false };
};

/** Knowledge distillation: a new student (a zoo model at a width, from scratch) or the input model itself
 * trained on the teacher's softened outputs; the student is the model every later step compresses. */
const distill: CompressStep = async (context, params) => {
  const student = params.student as string | undefined;
  const width = params.width as number;
  const fresh = student !== 'input';
  const name = student ?? context.retrain.model;
  const result = await retrainPhase(
    context,
    join(context.dir, 'student'),
    'distill',
    { ...params, distill: true },
    () => [],
    fresh
      ? {
          build: () =>
            buildZooModel(name, {
              height: context.trainSet.height,
              width: context.trainSet.width,
              channels: context.trainSet.channels,
              classes: context.trainSet.classes.length,
              seed: context.retrain.seed,
              widthMultiplier: width,
            }),
          config: { model: name, widthMultiplier: width },
        }
      : undefined,
  );
  if (result.interrupted) return result;
  // A new student has other layers: nothing a step did to the teacher's layers carries over.
  if (fresh) context.layers = new Map();
  return { interrupted: false };
};

const huffman: CompressStep = (context) => {
  for (const [name, layer] of context.layers)
    if (layer.bits !== undefined) context.layers.set(name, { ...layer, huffman: true });
  return Promise.resolve({ interrupted: false });
};

/** The package of `pkg` in `format`, calibrated on the training images; `ranges` (by tensor name) replace the
 * calibrated ones; with `layers`, only those conv / FC layers become int8 (the others keep their format). */
function quantizedContent(
  context: StepContext,
  pkg: Package,
  format: QatFormat,
  params: StepParams,
  { ranges, layers }: { ranges?: ReadonlyMap<string, TensorRange>; layers?: ReadonlySet<string> } = {},
): PackageContent {
  const calibration = calibrationFromImages(
    context.trainSet,
    params.calibrationImages as number,
    packageImageInput(pkg, context.trainSet),
  );
  const options = {
    calibrationMethod: params.calibrationMethod as CalibrationMethod,
    ...(ranges ? { ranges } : {}),
  };
  return format === 'int8'
    ? quantizePackage(pkg, calibration, { ...options, ...(layers ? { layers } : {}) }).content
    : fixedPointPackage(pkg, calibration, { ...options, bits: format === 'fixed16' ? 16 : 8 }).content;
}

/** The existing post-training quantizers as steps: the fp32 package rewritten whole. */
function postTraining(format: QatFormat): CompressStep {
  return (context, params) => {
    context.content = quantizedContent(context, context.fp32, format, params);
    return Promise.resolve({ interrupted: false });
  };
}

/** int8 quantization-aware training and dynamic fixed-point fine-tuning (qat.ts): one retraining phase with
 * the weights through the STE hook and the activations fake-quantized, then the model so far written in the
 * format with the activation ranges it was trained with. */
function quantizationAware(format: QatFormat): CompressStep {
  const method = format === 'int8' ? 'int8-qat' : `${format}-ft`;
  return async (context, params) => {
    const layers = selectedLayers(method, context, params).map((l) => l.name);
    if (layers.length === 0)
      throw new PipelineError(`${method}: no conv / dense layer with at least minWeights weights to train`);
    const quantizer =
      format === 'int8'
        ? INT8_WEIGHT_QUANTIZER
        : fixedPointWeightQuantizer(format === 'fixed16' ? 16 : 8, context.retrain.seed);
    const activations = activationHooks(format, quantizedPoints(format, layers), context.retrain.seed);
    const dir = join(context.dir, 'train');
    const result = await retrainPhase(context, dir, method, params, () => [], {
      hooks: combineHooks(steHooks(layers.map((layer) => ({ layer, quantizer }))), activations),
    });
    if (result.interrupted) return result;
    // The ranges as the last epoch left them (its checkpoint's); none when the phase did not train.
    const saved = join(dir, 'checkpoint');
    if (existsSync(join(saved, QAT_RANGES_FILE))) activations.restore!(saved);
    const content = compressedPackage(context.modelDir!, new Map(), {
      modelId: context.fp32.manifest.model.id,
    });
    content.manifest = {
      ...content.manifest,
      inputs: content.manifest.inputs.map((input, i) => ({
        ...input,
        ...(i === 0 && context.fp32.manifest.inputs[0]!.preprocessing
          ? { preprocessing: context.fp32.manifest.inputs[0]!.preprocessing }
          : {}),
      })),
    };
    const pkg = readPackage(writePackage(content, bundledSigningKey()), {
      allowUnsigned: true,
      cpuFamily: null,
    });
    context.content = quantizedContent(context, pkg, format, params, {
      ranges: packageRanges(pkg.manifest, activations.ranges()),
    });
    return { interrupted: false };
  };
}

/** The layers a straight-through method trains: those it names, else its kinds' layers with at least
 * minWeights weights, without the first and the last weight layers when `outer` says so (XNOR-Net). */
function straightThroughLayers(
  method: string,
  context: StepContext,
  params: StepParams,
  outer: boolean,
): string[] {
  const named = namedLayers(params);
  if (named !== undefined) return named;
  const kinds = METHODS[method]!.layerClasses!;
  const weighted = context.modelLayers.filter((l) => kinds.includes(l.kind));
  const inner = outer ? weighted.slice(1, -1) : weighted;
  return inner.filter((l) => l.weights >= (params.minWeights as number)).map((l) => l.name);
}

/** BinaryConnect and TWN: one retraining phase through the STE hook, the layers stored in the format. With
 * `activations` int8 (the default) the package is then quantized whole (post-training, calibrated on the
 * package as the runtime runs it): each binary / ternary layer's weights {-a, 0, a} become int8 {-127, 0,
 * 127} exactly, stored as bit planes, so the layers keep their 1 or 2 bits a weight and run on the int8
 * kernels (the fp32-activation binary and ternary kernels run at about fp32's speed). */
function weightFormatStep(
  method: 'binaryconnect' | 'ternary',
  quantizer: (params: StepParams) => WeightQuantizer,
): CompressStep {
  const weights = method === 'binaryconnect' ? 'binary' : 'ternary';
  return async (context, params) => {
    const layers = straightThroughLayers(method, context, params, false);
    const q = quantizer(params);
    const hooks = steHooks(layers.map((layer) => ({ layer, quantizer: q })));
    const result = await retrainPhase(context, join(context.dir, 'train'), method, params, () => [], {
      hooks,
    });
    if (result.interrupted) return result;
    for (const name of layers) context.layers.set(name, { ...context.layers.get(name), weights });
    if (params.activations === 'int8') {
      const pkg = packageOfLayers(context);
      context.content = quantizedContent(context, pkg, 'int8', params);
    }
    return { interrupted: false };
  };
}

/** The package of the retrained model with every layer as `context.layers` says (read back, unsigned). */
function packageOfLayers(context: StepContext): Package {
  const content = compressedPackage(context.modelDir!, context.layers, {
    modelId: context.fp32.manifest.model.id,
  });
  content.manifest = withTrainedPreprocessing(content.manifest, context.trainSet);
  return readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });
}

/** XNOR-Net (xnor.ts): the model rewritten with batch norms and binary activations, retrained through the
 * STE hook; the package's first and last layers int8 (post-training, calibrated on the package as the
 * runtime runs it, xnor layers included) unless outerFormat is f32. */
const xnor: CompressStep = async (context, params) => {
  const layers = straightThroughLayers('xnor', context, params, true);
  if (layers.length === 0)
    throw new PipelineError(
      'xnor: no layer to binarize (the first and last conv / dense layers stay ' +
        `${params.outerFormat as string}); name them with "layers"`,
    );
  const hooks = steHooks(layers.map((layer) => ({ layer, quantizer: BINARY_QUANTIZER })));
  const result = await retrainPhase(context, join(context.dir, 'train'), 'xnor', params, () => [], {
    rewrite: (model) => {
      const n = Math.min(256, context.trainSet.count);
      const set = context.trainSet;
      const images = tf.tensor4d(imageInput(set, 0, n), [n, set.height, set.width, set.channels]);
      try {
        return xnorModel(model, new Set(layers), images);
      } finally {
        images.dispose();
      }
    },
    hooks,
  });
  if (result.interrupted) return result;
  for (const name of layers) context.layers.set(name, { ...context.layers.get(name), weights: 'xnor' });
  if (params.outerFormat === 'int8') {
    const pkg = packageOfLayers(context);
    const outer = new Set(
      pkg.manifest.nodes
        .filter((n) => (n.op === 'conv2d' || n.op === 'fully_connected') && !layers.includes(n.name))
        .map((n) => n.name),
    );
    context.content = encodeLayers(
      quantizedContent(context, pkg, 'int8', params, { layers: outer }),
      context.layers,
    );
  }
  return { interrupted: false };
};

export const STEPS: Record<string, CompressStep> = {
  distill,
  prune,
  'filter-prune': filterPrune,
  kmeans,
  huffman,
  hashednets,
  int8: postTraining('int8'),
  fixed16: postTraining('fixed16'),
  fixed8: postTraining('fixed8'),
  'int8-qat': quantizationAware('int8'),
  'fixed16-ft': quantizationAware('fixed16'),
  'fixed8-ft': quantizationAware('fixed8'),
  binaryconnect: weightFormatStep('binaryconnect', () => BINARY_QUANTIZER),
  ternary: weightFormatStep('ternary', (params) => ternaryQuantizer(params.perChannel as boolean)),
  xnor,
};
