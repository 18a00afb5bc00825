// Compression pipelines: an ordered list of steps, each a method with its parameters, given as a preset name
// or a JSON spec file, checked against the methods' definitions and the model's layers before anything
// runs. A spec file is `{ "steps": [ { "method": "prune", "sparsity": 0.9 }, ... ] }` (or the bare list).
// Methods are defined here (what they take and which layers they apply to) and run in steps.ts.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { whittleError } from '../../native/whittle-error.js';
import { MODEL_FILE } from '../train/file-io.js';
import { ZOO_MODEL_NAMES } from '../zoo/index.js';

/** A pipeline (spec file or preset) that cannot run: the message names the step, the parameter or the layer. */
export class PipelineError extends whittleError('PipelineError', 'bad-pipeline') {}

type ParamValue = number | boolean | string | string[] | Record<string, number>;

interface ParamSpec {
  /** `layers`: a map from layer name to a number; `names`: a list of layer names; `model`: a `whittle train`
   * directory (checked to hold a model). */
  kind: 'number' | 'integer' | 'boolean' | 'choice' | 'layers' | 'names' | 'model';
  /** Inclusive bounds of a number / integer, and of a `layers` map's values. */
  min?: number;
  max?: number;
  /** Exclusive upper bound (a sparsity below 1). */
  below?: number;
  choices?: readonly string[];
  default?: number | boolean | string;
  doc: string;
}

/** The layer kinds (tfjs class names) that hold weights a method can compress. */
export const WEIGHT_LAYER_CLASSES = ['Conv2D', 'DepthwiseConv2D', 'Dense'] as const;

/** What a method takes: parameters, and the layers it applies to (undefined: the whole model at once). */
export interface MethodDefinition {
  method: string;
  summary: string;
  params: Record<string, ParamSpec>;
  layerClasses?: readonly string[];
  /** Retrains, so MODEL must be a `whittle train` directory. */
  retrains: boolean;
  /** Writes the whole package in its own number format: the last step, alone with other package steps. */
  rewritesPackage: boolean;
}

/** How the sparsity of the prune-and-retrain rounds rises to the target (projection.ts iterationSparsity). */
export const PRUNE_SCHEDULES = ['geometric', 'cubic'] as const;
export type PruneSchedule = (typeof PRUNE_SCHEDULES)[number];

/** Knowledge distillation's defaults (Hinton et al. 2015): the softening temperature T and the weight α of the
 * soft term, loss = α·T²·KL(soft teacher ‖ soft student) + (1 − α)·CE(labels). */
export const DISTILL_TEMPERATURE = 4;
export const DISTILL_ALPHA = 0.9;

/** What makes a retraining phase learn from a teacher (any retraining step takes them; `distill` always). */
const distillation = (on: boolean): Record<string, ParamSpec> => ({
  ...(on
    ? {}
    : {
        distill: {
          kind: 'boolean',
          doc: "retrain on the teacher's softened outputs too (knowledge distillation); off unless true",
        },
      }),
  teacher: {
    kind: 'model',
    doc: 'the teacher, a `whittle train` directory (default: the pipeline input model)',
  },
  temperature: {
    kind: 'number',
    min: 0.01,
    max: 100,
    ...(on ? { default: DISTILL_TEMPERATURE } : {}),
    doc: `distillation temperature T (default ${DISTILL_TEMPERATURE})`,
  },
  alpha: {
    kind: 'number',
    min: 0,
    max: 1,
    ...(on ? { default: DISTILL_ALPHA } : {}),
    doc: `weight of the teacher's soft targets against the labels (default ${DISTILL_ALPHA}; 0: labels only)`,
  },
});

/** How a retraining phase augments its training batches (the trainer's random crop and flip). A distilling
 * phase's teacher scores the same augmented batch as its student ("consistent" teaching, Beyer et al. 2022). */
const augmentation: Record<string, ParamSpec> = {
  cropPadding: {
    kind: 'integer',
    min: 0,
    max: 8,
    default: 0,
    doc: 'random crop: shift each training image by up to this many pixels, zero fill (default 0: none)',
  },
  flip: { kind: 'boolean', default: false, doc: 'mirror training images left-right with probability 1/2' },
};

const retraining: Record<string, ParamSpec> = {
  epochs: { kind: 'integer', min: 0, max: 1000, default: 2, doc: 'retraining epochs (per iteration)' },
  learningRate: { kind: 'number', min: 1e-9, max: 1, default: 1e-4, doc: 'retraining learning rate' },
  minWeights: {
    kind: 'integer',
    min: 0,
    default: 0,
    doc: 'leave layers with fewer weights than this as they are',
  },
  ...augmentation,
  ...distillation(false),
};

const calibration: Record<string, ParamSpec> = {
  calibrationImages: { kind: 'integer', min: 1, default: 1000, doc: 'calibration images' },
  calibrationMethod: {
    kind: 'choice',
    choices: ['minmax', 'percentile', 'mse'],
    default: 'minmax',
    doc: 'activation ranges',
  },
};

/** The straight-through-estimator methods (ste.ts): trained on their projected weights Q(w), stored in the
 * package's binary / ternary / xnor formats. */
const straightThrough: Record<string, ParamSpec> = {
  ...retraining,
  learningRate: { ...retraining.learningRate!, default: 1e-3 },
  epochs: { ...retraining.epochs!, default: 5 },
};

/** BinaryConnect's and TWN's activations: int8 (the package quantized after training, the binary / ternary
 * weights stored as int8 bit planes and run on the int8 kernels) or f32 (the binary / ternary kernels). */
const weightFormatActivations: Record<string, ParamSpec> = {
  activations: {
    kind: 'choice',
    choices: ['int8', 'f32'],
    default: 'int8',
    doc:
      'int8: the package quantized after training, the weights kept as 1- or 2-bit planes and run on the ' +
      'int8 kernels; f32: real activations on the binary / ternary kernels',
  },
  ...calibration,
};

/** The layer kinds the binary and ternary formats take (their native kernels: conv2d, fully connected). */
export const BINARY_LAYER_CLASSES = ['Conv2D', 'Dense'] as const;

export const METHODS: Record<string, MethodDefinition> = {
  distill: {
    method: 'distill',
    summary:
      "knowledge distillation (Hinton et al. 2015): a student trained on the teacher's softened outputs",
    params: {
      student: {
        kind: 'choice',
        choices: [...ZOO_MODEL_NAMES, 'input'],
        doc: "the student: a zoo model at `width`, new (default: the teacher's architecture), or `input`: the input model itself, fine-tuned",
      },
      width: {
        kind: 'number',
        min: 0.05,
        max: 4,
        default: 0.5,
        doc: "a new student's width multiplier (every hidden layer's channels / units)",
      },
      epochs: { kind: 'integer', min: 1, max: 1000, default: 10, doc: 'training epochs' },
      learningRate: { kind: 'number', min: 1e-9, max: 1, default: 1e-3, doc: 'learning rate' },
      ...augmentation,
      ...distillation(true),
    },
    retrains: true,
    rewritesPackage: false,
  },
  prune: {
    method: 'prune',
    summary: 'magnitude pruning with iterative prune-and-retrain (Han et al. 2015), stored sparse',
    params: {
      sparsity: { kind: 'number', min: 0, below: 1, default: 0.9, doc: 'target fraction of zero weights' },
      convSparsity: {
        kind: 'number',
        min: 0,
        below: 1,
        doc: "the conv layers' target sparsity (default: sparsity)",
      },
      outputSparsity: {
        kind: 'number',
        min: 0,
        below: 1,
        doc: "the last weight layer's target sparsity, when it is not a conv (default: sparsity)",
      },
      layers: { kind: 'layers', min: 0, below: 1, doc: 'per-layer target sparsity, by layer name' },
      sizeExponent: {
        kind: 'number',
        min: 0,
        max: 1,
        doc:
          'the layers `sparsity` applies to are pruned to it together, each keeping a share of the kept weights ' +
          'proportional to its weights^sizeExponent (1 or absent: each to sparsity; below 1: the larger ' +
          'pruned harder)',
      },
      global: { kind: 'boolean', default: false, doc: 'one magnitude threshold over all the pruned layers' },
      iterations: { kind: 'integer', min: 1, max: 100, default: 3, doc: 'prune-and-retrain rounds' },
      schedule: {
        kind: 'choice',
        choices: PRUNE_SCHEDULES,
        default: 'geometric',
        doc:
          "the rounds' sparsity on the way to the target: geometric (the kept fraction shrinks by a constant " +
          "factor, Han et al. 2015) or cubic (Zhu & Gupta 2017's gradual ramp, steepest in the first rounds)",
      },
      ...retraining,
      finalEpochs: {
        kind: 'integer',
        min: 0,
        max: 1000,
        doc: 'retraining epochs of the last round, at the target sparsity (default: epochs)',
      },
    },
    layerClasses: WEIGHT_LAYER_CLASSES,
    retrains: true,
    rewritesPackage: false,
  },
  kmeans: {
    method: 'kmeans',
    summary:
      'weight sharing: k-means per layer, centroid fine-tuning (Han et al. 2016), stored as a codebook',
    params: {
      bits: {
        kind: 'integer',
        min: 1,
        max: 8,
        default: 5,
        doc: 'index bits: 2^bits shared values per layer',
      },
      layers: { kind: 'layers', min: 1, max: 8, doc: 'per-layer index bits, by layer name' },
      steEpochs: {
        kind: 'integer',
        min: 0,
        max: 1000,
        default: 0,
        doc:
          'trained assignments: epochs of training the float weights through the codebook (straight-through, ' +
          're-clustered after every update, so weights can change cluster) before the `epochs` of centroid ' +
          'fine-tuning (default 0: none)',
      },
      ...retraining,
    },
    layerClasses: WEIGHT_LAYER_CLASSES,
    retrains: true,
    rewritesPackage: false,
  },
  'filter-prune': {
    method: 'filter-prune',
    summary:
      'filter (channel) pruning by L1 norm (Li et al. 2017): the filters and what they feed removed, a ' +
      'smaller dense model, fine-tuned',
    params: {
      fraction: {
        kind: 'number',
        min: 0,
        below: 1,
        default: 0.3,
        doc: "fraction of each conv layer's filters removed (those of least L1 norm)",
      },
      layers: {
        kind: 'layers',
        min: 0,
        below: 1,
        doc: 'per-layer fraction of filters removed, by layer name',
      },
      macReduction: {
        kind: 'number',
        min: 0,
        below: 1,
        doc: "instead of fraction: the smallest common fraction that removes this fraction of the model's MACs",
      },
      ...retraining,
    },
    layerClasses: ['Conv2D'],
    retrains: true,
    rewritesPackage: false,
  },
  huffman: {
    method: 'huffman',
    summary: "Huffman coding of the shared layers' cluster indices (after kmeans)",
    params: {},
    retrains: false,
    rewritesPackage: false,
  },
  hashednets: {
    method: 'hashednets',
    summary:
      'HashedNets (Chen et al. 2015): fully-connected weights shared through a signed index hash, trained ' +
      'through the hash, stored hashed',
    params: {
      compression: {
        kind: 'integer',
        min: 1,
        max: 1 << 16,
        default: 8,
        doc:
          'weights per real parameter (a layer keeps ceil(weights / compression) hash buckets; with ' +
          'sizeExponent, the layers it applies to together)',
      },
      layers: { kind: 'layers', min: 1, max: 1 << 16, doc: 'per-layer compression factor, by layer name' },
      sizeExponent: {
        kind: 'number',
        min: 0,
        max: 1,
        doc:
          'the layers `compression` applies to share weights / compression buckets together, each a share ' +
          'proportional to its weights^sizeExponent (absent: each layer at compression; below 1: the larger ' +
          'hashed harder, the output layer lightest; a layer given all its weights stays dense)',
      },
      seed: { kind: 'integer', min: 0, max: 0xffffffff, default: 0, doc: 'hash seed (layer i: seed + i)' },
      ...retraining,
    },
    layerClasses: ['Dense'],
    retrains: true,
    rewritesPackage: false,
  },
  binaryconnect: {
    method: 'binaryconnect',
    summary:
      'BinaryConnect (Courbariaux et al. 2015): binary weights alpha * sign(w), alpha = mean |w| per output ' +
      'channel; trained through a straight-through estimator on float weights clipped to [-1, 1]; then, by ' +
      'default, int8 activations with the weights kept as 1-bit planes on the int8 kernels (activations f32: ' +
      'real activations on the binary-weight kernels)',
    params: {
      layers: { kind: 'names', doc: 'the layers to binarize (default: every conv / dense layer)' },
      ...straightThrough,
      ...weightFormatActivations,
    },
    layerClasses: BINARY_LAYER_CLASSES,
    retrains: true,
    rewritesPackage: false,
  },
  ternary: {
    method: 'ternary',
    summary:
      'ternary weight networks (Li & Liu 2016): weights in {-alpha, 0, +alpha}, threshold 0.7 mean |w|, ' +
      'alpha the mean |w| above it; trained through a straight-through estimator; then, by default, int8 ' +
      'activations with the weights kept as 2-bit planes on the int8 kernels (activations f32: the ternary kernels)',
    params: {
      layers: { kind: 'names', doc: 'the layers to ternarize (default: every conv / dense layer)' },
      perChannel: {
        kind: 'boolean',
        default: true,
        doc: 'a threshold and alpha per output channel (false: one per layer)',
      },
      ...straightThrough,
      ...weightFormatActivations,
    },
    layerClasses: BINARY_LAYER_CLASSES,
    retrains: true,
    rewritesPackage: false,
  },
  xnor: {
    method: 'xnor',
    summary:
      'XNOR-Net (Rastegari et al. 2016): binary weights (alpha per output channel) and binary activations ' +
      '(sign, straight-through gradient for |x| <= 1) with a batch norm before each binarization; first and ' +
      'last layers int8; run on the native xnor kernels',
    params: {
      layers: {
        kind: 'names',
        doc: 'the layers to run as xnor (default: every conv / dense layer but the first and the last)',
      },
      outerFormat: {
        kind: 'choice',
        choices: ['int8', 'f32'],
        default: 'int8',
        doc: 'the number format of the layers that are not xnor',
      },
      ...straightThrough,
      ...calibration,
    },
    layerClasses: BINARY_LAYER_CLASSES,
    retrains: true,
    rewritesPackage: false,
  },
  int8: {
    method: 'int8',
    summary: 'post-training int8 quantization (whittle quantize)',
    params: calibration,
    retrains: false,
    rewritesPackage: true,
  },
  fixed16: {
    method: 'fixed16',
    summary: 'post-training 16-bit dynamic fixed point (whittle quantize --format fixed16)',
    params: calibration,
    retrains: false,
    rewritesPackage: true,
  },
  fixed8: {
    method: 'fixed8',
    summary: 'post-training 8-bit dynamic fixed point (whittle quantize --format fixed8)',
    params: calibration,
    retrains: false,
    rewritesPackage: true,
  },
};

/** int8 quantization-aware training and fixed-point fine-tuning (qat.ts): retrain, then write the package. */
function quantizationAware(format: 'int8' | 'fixed16' | 'fixed8'): MethodDefinition {
  const method = format === 'int8' ? 'int8-qat' : `${format}-ft`;
  return {
    method,
    summary:
      format === 'int8'
        ? 'int8 quantization-aware training (straight-through estimators, activation ranges by EMA), then the int8 package'
        : `${format === 'fixed16' ? 16 : 8}-bit dynamic fixed-point fine-tuning (Gupta et al. 2015: stochastic rounding, float copy), then the ${format} package`,
    params: { ...retraining, ...calibration },
    layerClasses: QAT_LAYER_CLASSES,
    retrains: true,
    rewritesPackage: true,
  };
}

/** The layers quantization-aware training takes (a depthwise kernel's channels are not its last axis). */
const QAT_LAYER_CLASSES = ['Conv2D', 'Dense'] as const;

METHODS['int8-qat'] = quantizationAware('int8');
METHODS['fixed16-ft'] = quantizationAware('fixed16');
METHODS['fixed8-ft'] = quantizationAware('fixed8');

export type StepParams = Record<string, ParamValue>;

export interface PipelineStep {
  method: string;
  /** Every parameter of the method, defaults filled in (a `layers` map only when given). */
  params: StepParams;
}

export const PRESETS: Record<string, { method: string; [param: string]: unknown }[]> = {
  // Han et al. 2016's three stages: iterative pruning (three rounds, the kept fraction shrinking
  // geometrically) of the conv layers to 75 %, the output layer to 60 % and the other fully-connected layers
  // to 92.1 % together, the larger pruned harder (sizeExponent 0.63: LeNet-300-100's 784x300 to 93 %, its
  // 300x100 to 85 %; fc1 holds most of the bytes and loses the least per byte), each round retrained at the
  // training rate 1e-3 (cosine; 1e-4 does not recover a 92 %-pruned layer), 3 epochs a round and 10 at the
  // target, then k-means to 5 bits (linear initialisation) with its centroids fine-tuned for 3 epochs at
  // 3e-4, then Huffman coding of the cluster indices and the sparse-index gaps (docs/benchmarks.md, "Deep
  // Compression at 35x": LeNet-300-100 40x within 0.41 points on Fashion-MNIST).
  'deep-compression': [
    {
      method: 'prune',
      sparsity: 0.921,
      sizeExponent: 0.63,
      convSparsity: 0.75,
      outputSparsity: 0.6,
      iterations: 3,
      epochs: 3,
      finalEpochs: 10,
      learningRate: 1e-3,
    },
    { method: 'kmeans', bits: 5, epochs: 3, learningRate: 3e-4 },
    { method: 'huffman' },
  ],
  int8: [{ method: 'int8' }],
  binaryconnect: [{ method: 'binaryconnect' }],
  xnor: [{ method: 'xnor' }],
  ternary: [{ method: 'ternary' }],
  fixed16: [{ method: 'fixed16' }],
  fixed8: [{ method: 'fixed8' }],
  // Li et al. 2017's filter pruning to 40 % fewer MACs (one fraction of filters over every conv that can
  // lose filters), fine-tuned.
  'filter-prune': [{ method: 'filter-prune', macReduction: 0.4, epochs: 2, learningRate: 3e-4 }],
  // Chen et al. 2015's 1/8 over the fully-connected layers together, split by size (sizeExponent 0.5:
  // LeNet-300-100's 784x300 at 1/9.9, its 300x100 at 1/3.5, the output layer left dense), fine-tuned from the
  // trained model (its weights' signed bucket means as the start) for 12 epochs at 2e-3, a rate that moves the
  // buckets far from that start (docs/benchmarks.md, "HashedNets: the preset at 8x").
  hashednets: [{ method: 'hashednets', compression: 8, sizeExponent: 0.5, epochs: 12, learningRate: 2e-3 }],
  'int8-qat': [{ method: 'int8-qat' }],
  'fixed16-ft': [{ method: 'fixed16-ft' }],
  'fixed8-ft': [{ method: 'fixed8-ft' }],
  // A half-width student of the input model's architecture, trained from scratch on its softened outputs.
  // 40 epochs at T 2, α 0.5: LeNet-5's student from a LeNet-5 trained with crop and flip beat the labels-only
  // one on 3 of 3 seeds (+0.44 to +0.52 points), from the bench's own LeNet-5 by 0.19 on seed 1; 20 epochs
  // tied (docs/benchmarks.md, branch kd).
  distill: [{ method: 'distill', width: 0.5, epochs: 40, temperature: 2, alpha: 0.5 }],
};

/** A layer of the model as the pipeline sees it: its name and kind (tfjs class, or the package op). */
export interface ModelLayer {
  name: string;
  kind: string;
  weights: number;
}

/** What applies to a layer of `kind`: the per-layer methods that take it (but `except`, a method the layer
 * turned out not to take), and the whole-model ones. */
export function methodsFor(kind: string, except?: string): string {
  const perLayer = Object.values(METHODS).filter(
    (m) => m.layerClasses?.includes(kind) && m.method !== except,
  );
  const whole = Object.values(METHODS).filter((m) => m.layerClasses === undefined && m.rewritesPackage);
  return (
    (perLayer.length > 0
      ? `the methods that apply to it: ${perLayer.map((m) => m.method).join(', ')}`
      : `no per-layer method applies to it (they take ${WEIGHT_LAYER_CLASSES.join(', ')} layers)`) +
    `; whole-model methods: ${whole.map((m) => m.method).join(', ')}`
  );
}

function checkValue(where: string, name: string, spec: ParamSpec, value: unknown): ParamValue {
  const range = (v: number): boolean =>
    (spec.min === undefined || v >= spec.min) &&
    (spec.max === undefined || v <= spec.max) &&
    (spec.below === undefined || v < spec.below);
  const bounds = [
    spec.min !== undefined ? `>= ${spec.min}` : '',
    spec.max !== undefined ? `<= ${spec.max}` : '',
    spec.below !== undefined ? `< ${spec.below}` : '',
  ]
    .filter((b) => b)
    .join(' and ');
  const numeric = (v: unknown, integer: boolean): v is number =>
    typeof v === 'number' && Number.isFinite(v) && (!integer || Number.isInteger(v)) && range(v);
  switch (spec.kind) {
    case 'number':
    case 'integer':
      if (!numeric(value, spec.kind === 'integer'))
        throw new PipelineError(
          `${where}: ${name} must be ${spec.kind === 'integer' ? 'an integer' : 'a number'} ${bounds} ` +
            `(${spec.doc}) but is ${JSON.stringify(value)}`,
        );
      return value;
    case 'boolean':
      if (typeof value !== 'boolean')
        throw new PipelineError(`${where}: ${name} must be true or false but is ${JSON.stringify(value)}`);
      return value;
    case 'choice':
      if (typeof value !== 'string' || !spec.choices!.includes(value))
        throw new PipelineError(
          `${where}: ${name} must be one of ${spec.choices!.join(', ')} but is ${JSON.stringify(value)}`,
        );
      return value;
    case 'names':
      if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string'))
        throw new PipelineError(`${where}: ${name} must be a non-empty list of layer names (${spec.doc})`);
      return value;
    case 'layers': {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new PipelineError(`${where}: ${name} must map layer names to numbers (${spec.doc})`);
      const integer = spec.max !== undefined && spec.below === undefined;
      for (const [layer, v] of Object.entries(value))
        if (!numeric(v, integer))
          throw new PipelineError(
            `${where}: ${name}.${layer} must be ${integer ? 'an integer' : 'a number'} ${bounds} but is ${JSON.stringify(v)}`,
          );
      return value as Record<string, number>;
    }
    case 'model':
      if (typeof value !== 'string' || !existsSync(join(value, MODEL_FILE)))
        throw new PipelineError(
          `${where}: ${name} must be a \`whittle train\` directory (${spec.doc}) but ${JSON.stringify(value)} ` +
            `holds no ${MODEL_FILE}`,
        );
      return value;
  }
}

/** The layers a step's `layers` parameter names (a map's keys or a list), undefined when it names none. */
export function namedLayers(params: StepParams): string[] | undefined {
  const named = params.layers as Record<string, number> | string[] | undefined;
  if (named === undefined) return undefined;
  return Array.isArray(named) ? named : Object.keys(named);
}

/** The steps of a preset name or a JSON spec file, every parameter checked and defaulted, and every layer a
 * step names checked against `layers` (when known): a layer the method cannot take is refused with the
 * methods that do apply to it. `fromPackage`: MODEL is a package, so retraining methods are refused. */
export function loadPipeline(
  pipeline: string,
  layers?: readonly ModelLayer[],
  fromPackage = false,
): PipelineStep[] {
  let raw: unknown;
  if (Object.hasOwn(PRESETS, pipeline)) raw = PRESETS[pipeline];
  else {
    let text: string;
    try {
      text = readFileSync(pipeline, 'utf8');
    } catch {
      throw new PipelineError(
        `"${pipeline}" is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a readable spec file`,
      );
    }
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new PipelineError(`${pipeline}: not JSON (${(error as Error).message})`);
    }
  }
  const list = Array.isArray(raw) ? raw : (raw as { steps?: unknown } | null)?.steps;
  if (!Array.isArray(list) || list.length === 0)
    throw new PipelineError(
      `${pipeline}: expected { "steps": [ { "method": ... }, ... ] } with at least one step`,
    );
  const steps = list.map((entry, i) => checkStep(entry, `${pipeline} step ${i + 1}`, layers, fromPackage));
  checkOrder(steps, pipeline);
  return steps;
}

function checkStep(
  entry: unknown,
  where: string,
  layers: readonly ModelLayer[] | undefined,
  fromPackage: boolean,
): PipelineStep {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
    throw new PipelineError(`${where}: expected an object with a "method"`);
  const { method, ...given } = entry as Record<string, unknown>;
  const definition =
    typeof method === 'string' && Object.hasOwn(METHODS, method) ? METHODS[method]! : undefined;
  if (definition === undefined)
    throw new PipelineError(
      `${where}: unknown method ${JSON.stringify(method)}; the methods are ${Object.keys(METHODS).join(', ')}`,
    );
  const at = `${where} (${definition.method})`;
  if (definition.retrains && fromPackage)
    throw new PipelineError(
      `${at}: ${definition.method} retrains, so MODEL must be a \`whittle train\` directory, not a package`,
    );
  const params: StepParams = {};
  for (const [name, value] of Object.entries(given)) {
    const spec = definition.params[name];
    if (spec === undefined)
      throw new PipelineError(
        `${at}: unknown parameter "${name}"; ${definition.method} takes ` +
          (Object.keys(definition.params).join(', ') || 'no parameters'),
      );
    params[name] = checkValue(at, name, spec, value);
  }
  for (const [name, spec] of Object.entries(definition.params))
    if (params[name] === undefined && spec.default !== undefined) params[name] = spec.default;
  const distilling = ['teacher', 'temperature', 'alpha'].filter((p) => given[p] !== undefined);
  if (definition.params.distill !== undefined && distilling.length > 0 && params.distill !== true)
    throw new PipelineError(
      `${at}: ${distilling.join(', ')} apply to a distilling phase: add "distill": true (or drop them)`,
    );
  const named = namedLayers(params);
  if (named && layers) {
    for (const name of named) {
      const layer = layers.find((l) => l.name === name);
      if (layer === undefined)
        throw new PipelineError(
          `${at}: the model has no layer "${name}"; its layers are ${layers.map((l) => l.name).join(', ')}`,
        );
      if (!definition.layerClasses!.includes(layer.kind))
        throw new PipelineError(
          `${at}: layer ${name} (${layer.kind}) cannot take ${definition.method}; ${methodsFor(layer.kind)}`,
        );
    }
  }
  return { method: definition.method, params };
}

/** The methods that train through a straight-through estimator into a binary / ternary weight format. */
export const STRAIGHT_THROUGH_METHODS: readonly string[] = ['binaryconnect', 'ternary', 'xnor'];

/** Huffman needs shared layers before it; a package-rewriting step (int8, fixed point) takes the fp32 model,
 * so it cannot follow a step whose layers it could not keep (pruned, shared), and only one may run. */
function checkOrder(steps: readonly PipelineStep[], where: string): void {
  steps.forEach((step, i) => {
    const before = steps.slice(0, i).map((s) => s.method);
    if (step.method === 'huffman' && !before.includes('kmeans'))
      throw new PipelineError(
        `${where} step ${i + 1} (huffman): codes the cluster indices of a kmeans step, which must come before it`,
      );
    const sharing = ['prune', 'kmeans'];
    if (
      (step.method === 'hashednets' && before.some((m) => sharing.includes(m))) ||
      (sharing.includes(step.method) && before.includes('hashednets'))
    )
      throw new PipelineError(
        `${where} step ${i + 1} (${step.method}): a hashed layer's weights are its hash buckets, which ` +
          `pruning and k-means cannot keep; hashednets runs without prune and kmeans`,
      );
    const weightFormat = before.find((m) => STRAIGHT_THROUGH_METHODS.includes(m));
    if (weightFormat !== undefined)
      throw new PipelineError(
        `${where} step ${i + 1} (${step.method}): ${weightFormat} leaves its layers in its own weight format, ` +
          `so it is the last step`,
      );
    if (STRAIGHT_THROUGH_METHODS.includes(step.method) && before.length > 0)
      throw new PipelineError(
        `${where} step ${i + 1} (${step.method}): ${step.method} stores its layers in its own weight format ` +
          `(binary / ternary), which cannot also be pruned or shared; it runs alone, not after ${before.join(', ')}`,
      );
    if (step.method === 'prune' && before.includes('kmeans'))
      throw new PipelineError(
        `${where} step ${i + 1} (prune): pruning after kmeans would break the shared values; prune first`,
      );
    if (step.method === 'filter-prune' && before.some((m) => m === 'prune' || m === 'kmeans'))
      throw new PipelineError(
        `${where} step ${i + 1} (filter-prune): removing filters reshapes the layers a ${before.join(', ')} ` +
          'step has pruned or shared; filter-prune first',
      );
    const newStudent = steps.slice(0, i).some((s) => s.method === 'distill' && s.params.student !== 'input');
    if (step.params.layers !== undefined && newStudent)
      throw new PipelineError(
        `${where} step ${i + 1} (${step.method}): names layers of the input model, but a distill step before ` +
          'it replaces the model by a new student (drop the layers map, or distill with student "input")',
      );
    const definition = METHODS[step.method]!;
    // A retraining package step (QAT, fixed-point fine-tuning) takes the model so far: a distilled one.
    const kept = definition.retrains ? before.filter((m) => m !== 'distill') : before;
    if (definition.rewritesPackage && kept.length > 0)
      throw new PipelineError(
        `${where} step ${i + 1} (${step.method}): ${step.method} rewrites the whole ` +
          `${definition.retrains ? '' : 'fp32 '}model in its own number format, so it runs alone` +
          `${definition.retrains ? ' (or after distill)' : ''}; it cannot follow ${kept.join(', ')}`,
      );
    const packageStep = before.find((m) => METHODS[m]!.rewritesPackage);
    if (packageStep !== undefined)
      throw new PipelineError(
        `${where} step ${i + 1} (${step.method}): ${packageStep} wrote the package in its own number format; ` +
          'it must be the last step',
      );
  });
}
