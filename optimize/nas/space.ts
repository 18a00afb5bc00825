// The hardware-aware NAS search space (issue 16 point 6): a stem conv (stride 1, or 2: the small-budget
// corner, a quarter of every later layer's work), three stages that each halve the resolution, global average pooling and a classifier. Each stage picks a block type (plain conv, MobileNet's
// depthwise-separable block, SqueezeNet's fire module, ShuffleNet v2's unit — the zoo's own blocks,
// optimize/zoo/blocks.ts), its width, its depth (blocks; the first strides) and its kernel size, plus the
// number format its layers are stored and run in and a pruning ratio. Formats are what the runtime runs per
// layer: fp32, int8 (post-training, quantizePackage on that layer only), ternary and binary weights (the
// package's ternary / binary formats). Depthwise layers have no ternary / binary kernel: in such a stage they
// stay fp32. A pruning ratio applies to fp32 conv / FC layers (stored sparse); other formats have prune 0.
//
// Every block after a stage's first has an identity shortcut (ShuffleNet's unit has its own).
//
// Layer names are fixed by the architecture (`stem_conv`, `s1b0_dwsep_pw`, `head_fc`): the supernet
// (supernet.ts) shares weights between architectures by these names, and the package's nodes carry them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs';

import { type Package, readPackage } from '../../agent/package/reader.js';
import { SPACE_SHAPES } from '../../agent/profile/search-space-layers.js';
import { whittleError } from '../../native/whittle-error.js';
import { encodeLayers, type LayerCompression } from '../compress/encode.js';
import { magnitudeMasks, readKernel, writeKernel } from '../compress/projection.js';
import { BINARY_QUANTIZER, ternaryQuantizer, type WeightQuantizer } from '../compress/ste.js';
import type { ImageSet } from '../datasets/image-set.js';
import { withTrainedPreprocessing } from '../evaluate-package.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../package/writer.js';
import type { CalibrationSet } from '../quantize/calibrate.js';
import { quantizePackage } from '../quantize/ptq.js';
import type { SeededRandom } from '../seeded-random.js';
import { importTfjsLayers } from '../tfjs/import.js';
import { fileHandler, MODEL_FILE } from '../train/file-io.js';
import { apply, convBlock, fireModule, separableBlock, shuffleUnit, type Tensor } from '../zoo/blocks.js';
import { Initializers } from '../zoo/model-options.js';

/** An architecture or a search-space request that cannot be built; the message names the field. */
export class ArchSpecError extends whittleError('ArchSpecError', 'bad-arch-spec') {}

export const BLOCK_TYPES = ['conv', 'dwsep', 'fire', 'shuffle'] as const;
export type BlockType = (typeof BLOCK_TYPES)[number];

/** The per-layer number formats the search picks from (each one the runtime runs natively). */
export const LAYER_FORMATS = ['fp32', 'int8', 'ternary', 'binary'] as const;
export type LayerFormat = (typeof LAYER_FORMATS)[number];

export type StemStride = 1 | 2;

export interface StageSpec {
  block: BlockType;
  /** Output channels of every block of the stage. */
  width: number;
  /** Blocks; the first has stride 2. */
  depth: number;
  /** Kernel size of the block's spatial conv (the conv, the depthwise, fire's expand, the unit's depthwise). */
  kernel: number;
  /** Number format of the stage's conv layers (depthwise layers: fp32 unless int8). */
  format: LayerFormat;
  /** Fraction of each fp32 conv layer's weights pruned (0 unless format is fp32). */
  prune: number;
}

export interface ArchSpec {
  /** `stride` 2 halves the resolution at once (absent: 1, the space before it had the choice). */
  stem: { width: number; format: LayerFormat; stride?: StemStride };
  stages: StageSpec[];
  head: { format: LayerFormat };
}

/** The choices. Widths are multiples of 8 (fire splits a width in quarters, a ShuffleNet unit in halves). */
/** The shapes are the agent's SPACE_SHAPES (agent/profile/search-space-layers.ts: the latency table times the
 * space's layers, and the agent loads no TensorFlow), so the two cannot drift apart. */
export const SEARCH_SPACE = {
  stemWidths: SPACE_SHAPES.stemWidths,
  stemStrides: SPACE_SHAPES.stemStrides as readonly StemStride[],
  stageWidths: SPACE_SHAPES.stageWidths,
  blocks: BLOCK_TYPES,
  depths: SPACE_SHAPES.depths,
  kernels: SPACE_SHAPES.kernels,
  formats: LAYER_FORMATS,
  prunes: [0, ...SPACE_SHAPES.prunes],
} as const;

/** The format and pruning choices a search draws from (a subset of SEARCH_SPACE's). */
export interface FormatChoices {
  formats: readonly LayerFormat[];
  prunes: readonly number[];
}

/** `choices` when they are within SEARCH_SPACE, else ArchSpecError naming the bad one. */
export function parseFormatChoices(choices: FormatChoices): FormatChoices {
  for (const [field, got, all] of [
    ['formats', choices.formats, SEARCH_SPACE.formats],
    ['prunes', choices.prunes, SEARCH_SPACE.prunes],
  ] as const) {
    const bad = got.find((c) => !(all as readonly unknown[]).includes(c));
    if (got.length === 0 || bad !== undefined)
      throw new ArchSpecError(
        `search ${field}: expected some of ${all.join(', ')} but received ${JSON.stringify(got)}`,
      );
  }
  return choices;
}

const pick = <T>(rng: SeededRandom, choices: readonly T[]): T => choices[rng.int(0, choices.length - 1)]!;

/** `prune` as the format allows it (0 unless fp32). */
function normalized(stage: StageSpec): StageSpec {
  return stage.format === 'fp32' ? stage : { ...stage, prune: 0 };
}

/** `arch` with its stem stride written out only when it is 2 (one spelling per architecture). */
function withStride(arch: ArchSpec, stride: StemStride): ArchSpec {
  const stem: ArchSpec['stem'] = { width: arch.stem.width, format: arch.stem.format };
  return { ...arch, stem: stride === 2 ? { ...stem, stride } : stem };
}

/** A uniformly random architecture of SEARCH_SPACE (its formats and pruning ratios from `choices`). */
export function sampleArch(rng: SeededRandom, choices: FormatChoices = SEARCH_SPACE): ArchSpec {
  const arch: ArchSpec = {
    stem: { width: pick(rng, SEARCH_SPACE.stemWidths), format: pick(rng, choices.formats) },
    stages: SEARCH_SPACE.stageWidths.map((widths) =>
      normalized({
        block: pick(rng, SEARCH_SPACE.blocks),
        width: pick(rng, widths),
        depth: pick(rng, SEARCH_SPACE.depths),
        kernel: pick(rng, SEARCH_SPACE.kernels),
        format: pick(rng, choices.formats),
        prune: pick(rng, choices.prunes),
      }),
    ),
    head: { format: pick(rng, choices.formats) },
  };
  return withStride(arch, pick(rng, SEARCH_SPACE.stemStrides));
}

/** The all-fp32, unpruned form of `arch` (what the supernet trains). */
export function floatArch(arch: ArchSpec): ArchSpec {
  return {
    stem: { ...arch.stem, format: 'fp32' },
    stages: arch.stages.map((s) => ({ ...s, format: 'fp32', prune: 0 })),
    head: { format: 'fp32' },
  };
}

/** Its family: the stem's stride and the stages' block types (`s1:conv-conv-dwsep`), what sets how a
 * network learns more than its widths, depths and kernels do. */
export function archFamily(arch: ArchSpec): string {
  return `s${arch.stem.stride ?? 1}:${arch.stages.map((s) => s.block).join('-')}`;
}

/** A different choice from `choices` (the same when there is no other). */
function other<T>(rng: SeededRandom, choices: readonly T[], current: T): T {
  const rest = choices.filter((c) => c !== current);
  return rest.length === 0 ? current : pick(rng, rest);
}

/** One mutation of `arch` (Real et al.'s regularized evolution mutates one choice): a stage's block type,
 * width (Net2Net-style widen / narrow: the supernet's weights are inherited), depth (deepen / shallow),
 * kernel, format or pruning ratio (from `choices`), or the stem's width, stride or format, or the head's
 * format. Never `arch` itself. */
export function mutateArch(
  arch: ArchSpec,
  rng: SeededRandom,
  choices: FormatChoices = SEARCH_SPACE,
): ArchSpec {
  const next: ArchSpec = structuredClone(arch);
  for (;;) {
    const what = rng.int(0, 9);
    const s = rng.int(0, next.stages.length - 1);
    const stage = next.stages[s]!;
    if (what === 0) stage.block = other(rng, SEARCH_SPACE.blocks, stage.block);
    else if (what === 1) stage.width = other(rng, SEARCH_SPACE.stageWidths[s]!, stage.width);
    else if (what === 2) stage.depth = other(rng, SEARCH_SPACE.depths, stage.depth);
    else if (what === 3) stage.kernel = other(rng, SEARCH_SPACE.kernels, stage.kernel);
    else if (what === 4) stage.format = other(rng, choices.formats, stage.format);
    else if (what === 5) stage.prune = other(rng, choices.prunes, stage.prune);
    else if (what === 6) next.stem.width = other(rng, SEARCH_SPACE.stemWidths, next.stem.width);
    else if (what === 7) next.stem.format = other(rng, choices.formats, next.stem.format);
    else if (what === 8) next.head.format = other(rng, choices.formats, next.head.format);
    next.stages[s] = normalized(stage);
    const stride =
      what === 9 ? other(rng, SEARCH_SPACE.stemStrides, next.stem.stride ?? 1) : next.stem.stride;
    const child = withStride(next, stride ?? 1);
    if (archKey(child) !== archKey(arch)) return child;
  }
}

/** `arch` one step smaller, the costliest choice first (undefined: the smallest already): a stage's 5x5
 * kernel to 3x3, then its depth 3 to 2, then 2 to 1, then its width one choice down (each from the first
 * stage, at the highest resolution), then the stem's width; a stride-1 stem stays stride 1. The shrink
 * that keeps a budget's largest architecture of a block type (search.ts budget seeds). */
export function shrinkArch(arch: ArchSpec): ArchSpec | undefined {
  const next: ArchSpec = structuredClone(arch);
  const smaller = (choices: readonly number[], v: number): number | undefined =>
    [...choices].reverse().find((c) => c < v);
  // Each field given up, in order, and its next value for stage i (undefined: none smaller).
  const steps: ['kernel' | 'depth' | 'width', (stage: StageSpec, i: number) => number | undefined][] = [
    ['kernel', (stage) => smaller(SEARCH_SPACE.kernels, stage.kernel)],
    ['depth', (stage) => (stage.depth > 2 ? 2 : undefined)],
    ['depth', (stage) => (stage.depth > 1 ? 1 : undefined)],
    ['width', (stage, i) => smaller(SEARCH_SPACE.stageWidths[i]!, stage.width)],
  ];
  for (const [field, value] of steps)
    for (const [i, stage] of next.stages.entries()) {
      const v = value(stage, i);
      if (v === undefined) continue;
      stage[field] = v;
      return next;
    }
  const stem = smaller(SEARCH_SPACE.stemWidths, next.stem.width);
  if (stem === undefined) return undefined;
  next.stem.width = stem;
  return next;
}

/** A short stable key: equal for equal architectures. */
export function archKey(arch: ArchSpec): string {
  const stages = arch.stages.map(
    (s) => `${s.block}${s.width}x${s.depth}k${s.kernel}${s.format}${s.prune > 0 ? `p${s.prune}` : ''}`,
  );
  const stride = (arch.stem.stride ?? 1) === 1 ? '' : `s${arch.stem.stride}`;
  return [`stem${arch.stem.width}${stride}${arch.stem.format}`, ...stages, `head${arch.head.format}`].join(
    '-',
  );
}

/** `value` as an ArchSpec within SEARCH_SPACE, or ArchSpecError naming the first bad field. */
export function parseArch(value: unknown): ArchSpec {
  const fail = (field: string, got: unknown, choices: readonly unknown[]): never => {
    throw new ArchSpecError(
      `architecture field ${field}: expected one of ${choices.join(', ')} but received ${JSON.stringify(got)}`,
    );
  };
  const v = value as Partial<ArchSpec> | null;
  if (typeof v !== 'object' || v === null || !Array.isArray(v.stages))
    throw new ArchSpecError('an architecture is an object with stem, stages and head');
  const oneOf = <T>(field: string, got: unknown, choices: readonly T[]): T =>
    choices.includes(got as T) ? (got as T) : fail(field, got, choices);
  if (v.stages.length !== SEARCH_SPACE.stageWidths.length)
    fail('stages.length', v.stages.length, [SEARCH_SPACE.stageWidths.length]);
  const arch: ArchSpec = {
    stem: {
      width: oneOf('stem.width', v.stem?.width, SEARCH_SPACE.stemWidths),
      format: oneOf('stem.format', v.stem?.format, SEARCH_SPACE.formats),
      ...(v.stem?.stride === undefined || v.stem.stride === 1
        ? {}
        : { stride: oneOf('stem.stride', v.stem.stride, SEARCH_SPACE.stemStrides) }),
    },
    stages: v.stages.map((s, i) => ({
      block: oneOf(`stages[${i}].block`, s?.block, SEARCH_SPACE.blocks),
      width: oneOf(`stages[${i}].width`, s?.width, SEARCH_SPACE.stageWidths[i]!),
      depth: oneOf(`stages[${i}].depth`, s?.depth, SEARCH_SPACE.depths),
      kernel: oneOf(`stages[${i}].kernel`, s?.kernel, SEARCH_SPACE.kernels),
      format: oneOf(`stages[${i}].format`, s?.format, SEARCH_SPACE.formats),
      prune: oneOf(`stages[${i}].prune`, s?.prune, SEARCH_SPACE.prunes),
    })),
    head: { format: oneOf('head.format', v.head?.format, SEARCH_SPACE.formats) },
  };
  arch.stages.forEach((s, i) => {
    if (s.prune > 0 && s.format !== 'fp32')
      throw new ArchSpecError(`architecture field stages[${i}].prune: only fp32 layers are pruned`);
  });
  return arch;
}

export interface ArchModelOptions {
  /** [height, width, channels]. */
  inputShape: readonly [number, number, number];
  classes: number;
  seed?: number;
}

/** The tfjs model of `arch` (its float form: formats and pruning are applied by projectArchWeights and
 * archPackage). */
export function buildArchModel(arch: ArchSpec, options: ArchModelOptions): tf.LayersModel {
  const [height, width, channels] = options.inputShape;
  if (Math.min(height, width) < 8)
    throw new ArchSpecError(`the search space needs inputs of at least 8x8 but received ${height}x${width}`);
  if (!Number.isInteger(options.classes) || options.classes < 2)
    throw new ArchSpecError(`expected at least 2 classes but received ${options.classes}`);
  const init = new Initializers(options.seed);
  const input = tf.input({ shape: [height, width, channels] });
  const stride = arch.stem.stride ?? 1;
  let x: Tensor = convBlock(input, { filters: arch.stem.width, kernel: 3, stride, init, name: 'stem' });
  arch.stages.forEach((stage, i) => {
    for (let j = 0; j < stage.depth; j++) {
      const name = `s${i}b${j}_${stage.block}`;
      const o = { filters: stage.width, kernel: stage.kernel, stride: j === 0 ? 2 : 1, init, name };
      const from = x;
      if (stage.block === 'conv') x = convBlock(x, o);
      else if (stage.block === 'dwsep') x = separableBlock(x, o);
      else if (stage.block === 'shuffle') x = shuffleUnit(x, o);
      else {
        // SqueezeNet downsamples by max pooling between its fire modules.
        if (j === 0) x = apply(tf.layers.maxPooling2d({ poolSize: 2, name: `${name}_pool` }), x);
        x = fireModule(x, stage.width / 4, stage.width / 2, init, { kernel: stage.kernel, name });
      }
      // The blocks after a stage's first add their input back (a ShuffleNet unit passes half its input
      // through already): a shallower path then differs from a deeper one by blocks near identity, which is
      // what lets the supernet's paths of every depth share weights (OFA's elastic depth).
      if (j > 0 && stage.block !== 'shuffle') x = apply(tf.layers.add({ name: `${name}_add` }), [x, from]);
    }
  });
  x = apply(tf.layers.globalAveragePooling2d({ name: 'head_pool' }), x);
  const output = apply(
    tf.layers.dense({
      units: options.classes,
      activation: 'softmax',
      kernelInitializer: init.dense(),
      name: 'head_fc',
    }),
    x,
  );
  return tf.model({ inputs: input, outputs: output, name: 'nas' });
}

/** How one weight layer of an architecture is stored. */
export interface ArchLayer {
  /** The tfjs layer's (and the package node's) name. */
  name: string;
  className: 'Conv2D' | 'DepthwiseConv2D' | 'Dense';
  format: LayerFormat;
  prune: number;
}

const WEIGHT_CLASSES = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);

/** Every conv / depthwise / FC layer of `model` (built by buildArchModel from `arch`) with its format. */
export function archLayers(arch: ArchSpec, model: tf.LayersModel): ArchLayer[] {
  return model.layers
    .filter((l) => WEIGHT_CLASSES.has(l.getClassName()))
    .map((l) => {
      const className = l.getClassName() as ArchLayer['className'];
      const stage = /^s(\d+)b/.exec(l.name);
      const spec = l.name.startsWith('stem_')
        ? { format: arch.stem.format, prune: 0 }
        : l.name.startsWith('head_')
          ? { format: arch.head.format, prune: 0 }
          : arch.stages[Number(stage?.[1])];
      if (spec === undefined)
        throw new ArchSpecError(`layer ${l.name} belongs to no stage of the architecture`);
      const depthwise = className === 'DepthwiseConv2D';
      const format: LayerFormat =
        depthwise && (spec.format === 'ternary' || spec.format === 'binary') ? 'fp32' : spec.format;
      return { name: l.name, className, format, prune: depthwise || format !== 'fp32' ? 0 : spec.prune };
    });
}

const QUANTIZERS: Partial<Record<LayerFormat, WeightQuantizer>> = {
  ternary: ternaryQuantizer(true),
  binary: BINARY_QUANTIZER,
};

/** Replaces each weight layer's kernel by what its format stores: pruned by magnitude, or ternary / binary
 * (the package encoders give these values back exactly). int8 layers are left to the quantizer. */
export function projectArchWeights(model: tf.LayersModel, layers: readonly ArchLayer[]): void {
  const pruned = layers.filter((l) => l.prune > 0);
  if (pruned.length > 0) {
    const weights = new Map(pruned.map((l) => [l.name, readKernel(model, l.name)]));
    const masks = magnitudeMasks(weights, new Map(pruned.map((l) => [l.name, l.prune])), false);
    for (const [name, w] of weights) {
      const mask = masks.get(name)!;
      writeKernel(
        model,
        name,
        w.map((v, i) => (mask[i] === 1 ? v : 0)),
      );
    }
  }
  for (const l of layers) {
    const quantizer = QUANTIZERS[l.format];
    if (quantizer === undefined) continue;
    const shape = model.getLayer(l.name).getWeights()[0]!.shape;
    writeKernel(model, l.name, quantizer.quantize(readKernel(model, l.name), shape));
  }
}

/** A package read back from its content (unsigned: it is measured here, never deployed as is). */
export function readContent(content: PackageContent): Package {
  return readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });
}

export interface ArchPackageOptions {
  /** Images as the model takes them (pixels / 255, NHWC) for the int8 layers' activation ranges. */
  calibration: CalibrationSet;
  modelId?: string;
  labels?: string[];
  /** Declare the input preprocessing this set was trained with (pixels / 255) and its labels. */
  preprocessingOf?: ImageSet;
}

/** The package of `model` (buildArchModel(arch), random or trained weights) with every layer in its format:
 * the tfjs importer's fp32 package, int8 layers through the post-training quantizer, ternary / binary /
 * pruned layers through the compressor's encoders. Projects the model's weights in place first
 * (projectArchWeights), so the model then computes what the package does (but for int8 rounding). */
export async function archPackage(
  arch: ArchSpec,
  model: tf.LayersModel,
  options: ArchPackageOptions,
): Promise<Package> {
  const layers = archLayers(arch, model);
  projectArchWeights(model, layers);
  const dir = mkdtempSync(join(tmpdir(), 'whittle-nas-'));
  let content: PackageContent;
  try {
    await model.save(fileHandler(dir));
    content = importTfjsLayers(join(dir, MODEL_FILE), {
      modelId: options.modelId ?? 'nas',
      ...(options.labels ? { labels: options.labels } : {}),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const int8 = new Set(layers.filter((l) => l.format === 'int8').map((l) => l.name));
  if (int8.size > 0)
    content = quantizePackage(readContent(content), options.calibration, {
      layers: int8,
      modelId: options.modelId ?? 'nas',
    }).content;
  const encoded = new Map<string, LayerCompression>();
  for (const l of layers) {
    if (l.format === 'ternary' || l.format === 'binary') encoded.set(l.name, { weights: l.format });
    else if (l.prune > 0) encoded.set(l.name, { sparsity: l.prune });
  }
  const out = encodeLayers(content, encoded);
  if (options.preprocessingOf) out.manifest = withTrainedPreprocessing(out.manifest, options.preprocessingOf);
  return readContent(out);
}
