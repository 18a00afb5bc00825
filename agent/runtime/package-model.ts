// A Whittle package as the agent serves it: read strictly (hash, signature, CPU family), built by the
// runtime with its static memory plan at batch 1 and checked against the device's memory budget, and fed
// camera frames through the preprocessing its manifest names. This is the deployable unit of the agent:
// the daemon serves one, the deployment runner loads and probes one.
//
// What a camera can feed: the manifest's first input, with `preprocessing` of kind image, in layout NHWC
// ([1][h][w][c]), NCHW ([1][c][h][w]) or NC ([1][h·w·c], pixels in camera order), of dtype f32, or i8/u8
// with one scale and zero point. What it reads back: the first output, one score per class, f32 or
// quantized. Anything else is refused at load with a PackageModelError naming the field.
import type { KeyObject } from 'node:crypto';

import { whittleError } from '../../native/whittle-error.js';
import {
  expectFrame,
  frameOrder,
  frameTables,
  type FrameTensor,
  type FrameTensorType,
  frameWriter,
  type ImagePreprocessing,
  imageShape,
  PreprocessingError,
} from '../camera/preprocess.js';
import type { CpuFamily, Manifest } from '../package/manifest.js';
import { type Package, readPackageFile } from '../package/reader.js';
import { Model } from './model.js';
import type { FrameIO } from './native-plan.js';
import { elements, type TensorSpec } from './tensor.js';

/** A package the runtime could build but a camera cannot feed, or whose output is no class vector. */
export class PackageModelError extends whittleError('PackageModelError', 'unsupported-model-io') {}

/** Whose word the package is taken on. */
export type PackageTrust =
  /** Deployed packages: the embedded signature must verify against the pinned key. */
  | { publicKey: KeyObject | null }
  /** The model shipped with the agent (or named by the device's own config file): it arrived with the
   * agent's code, which is trusted the same way, so its signature is not checked — its hash still is, so
   * a damaged file is refused. The bundled package is signed by a throwaway key at build time. */
  | 'shipped';

export interface PackageModelOptions {
  trust: PackageTrust;
  /** Refuse the package when its weights plus activation arena exceed this many bytes. */
  memoryBudgetBytes?: number;
  /** The device's CPU family; defaults to this machine's. */
  cpuFamily?: CpuFamily;
}

/** The camera frames the model takes: the ffmpeg side of the preprocessing. */
export interface FrameFormat {
  width: number;
  height: number;
  channels: 1 | 3;
  resize: 'stretch' | 'center-crop';
  cropFraction: number;
}

/** What infer returns. `logits` and `probabilities` are the model's own arrays, written in place by each
 * infer (no allocation per frame): copy them to keep them past the next frame. */
export interface PackageModelResult {
  /** Index into labels of the highest score (the first one on ties). */
  classIndex: number;
  /** Probability of classIndex, in (0, 1]. */
  confidence: number;
  /** One score per class: logits, or probabilities when the graph ends in softmax. */
  logits: Float32Array;
  /** Softmax probabilities of every class (the same array as logits when the graph ends in softmax). */
  probabilities: Float32Array;
}

/** The scores as infer reads them: f32 outputs in place (the output's own arena view), quantized ones
 * dequantized by `read` into an array of their own (`quantized`: how, for the native frame runner). */
interface OutputScores {
  scores: Float32Array;
  read: () => void;
  quantized?: FrameIO['quantized'];
}

function outputScores(spec: TensorSpec, name: string, output: ArrayLike<number>): OutputScores {
  if (spec.dtype === 'f32') return { scores: output as Float32Array, read: () => undefined };
  if ((spec.dtype === 'i8' || spec.dtype === 'u8') && spec.quant?.scale.length === 1) {
    const scale = spec.quant.scale[0]!;
    const zeroPoint = spec.quant.zeroPoint[0]!;
    const scores = new Float32Array(output.length);
    return {
      scores,
      quantized: { signed: spec.dtype === 'i8', scale, zeroPoint, scores },
      read: () => {
        for (let i = 0; i < scores.length; i++) scores[i] = scale * (output[i]! - zeroPoint);
      },
    };
  }
  throw new PackageModelError(
    `output "${name}" is ${spec.dtype}${spec.quant ? ' with per-channel quantization' : ''}; ` +
      'expected f32 scores or i8/u8 scores with one scale',
  );
}

/** Checks the input tensor against the preprocessing; returns how frames are written into it (`write`, and
 * the same as the tables of a native frame runner). */
function inputWriter(
  manifest: Manifest,
  spec: TensorSpec,
): {
  format: FrameFormat;
  write: (frame: Uint8Array, out: FrameTensor) => void;
  frame: Pick<FrameIO, 'tables' | 'channels' | 'planar'>;
} {
  const input = manifest.inputs[0]!;
  const image = input.preprocessing;
  if (image === undefined)
    throw new PackageModelError(`input "${input.name}" has no image preprocessing: a camera cannot feed it`);
  if (manifest.inputs.length !== 1)
    throw new PackageModelError(`the model has ${manifest.inputs.length} inputs; a camera feeds one`);
  const { width: w, height: h, channels: c } = image;
  const shape = imageShape(input.layout, image);
  if (shape === undefined)
    throw new PackageModelError(
      `input "${input.name}" has layout ${input.layout}; a camera feeds NHWC, NCHW or NC`,
    );
  if (spec.shape.join(',') !== shape.join(','))
    throw new PackageModelError(
      `input "${input.name}" has shape [${spec.shape.join(', ')}]; a ${w}x${h}x${c} frame in ${input.layout} ` +
        `at batch 1 is [${shape.join(', ')}]`,
    );
  const preprocessing: ImagePreprocessing = {
    width: w,
    height: h,
    channels: c,
    mean: image.mean,
    std: image.std,
    ...(image.resize ? { resize: image.resize } : {}),
    ...(image.cropFraction !== undefined ? { cropFraction: image.cropFraction } : {}),
    layout: frameOrder(input.layout),
  };
  let write: (frame: Uint8Array, out: FrameTensor) => void;
  let tables: FrameTensor;
  try {
    let type: FrameTensorType;
    if (spec.dtype === 'f32') type = { dtype: 'f32' };
    else if ((spec.dtype === 'i8' || spec.dtype === 'u8') && spec.quant?.scale.length === 1)
      type = { dtype: spec.dtype, scale: spec.quant.scale[0]!, zeroPoint: spec.quant.zeroPoint[0]! };
    else
      throw new PackageModelError(
        `input "${input.name}" is ${spec.dtype}; a camera feeds f32, or i8/u8 with one scale and zero point`,
      );
    write = frameWriter(preprocessing, type);
    tables = frameTables(preprocessing, type);
  } catch (err) {
    if (err instanceof PreprocessingError)
      throw new PackageModelError(`input "${input.name}" preprocessing: ${err.message}`);
    throw err;
  }
  return {
    format: {
      width: w,
      height: h,
      channels: c,
      resize: image.resize ?? 'stretch',
      cropFraction: image.cropFraction ?? 1,
    },
    write,
    frame: { tables, channels: c, planar: preprocessing.layout === 'NCHW' },
  };
}

export class PackageModel {
  readonly id: string;
  readonly version: string;
  readonly name: string;
  readonly labels: readonly string[];
  /** The frames the camera must deliver. */
  readonly input: Readonly<FrameFormat>;
  /** The manifest's known input and expected class, for the health check. */
  readonly probe: { input: Uint8Array; expectedClass: number } | undefined;
  /** SHA-256 of the package content (the trailer's), hex. */
  readonly contentSha256: string;
  /** Bytes the runtime holds for this model: weights, the activation arena and executors' buffers (word
   * buffers, expanded weights). */
  readonly memoryBytes: number;
  readonly manifest: Manifest;

  readonly #model: Model;
  /** Where frames are written: the model's arena, at its input or, when the model starts by quantizing
   * its float input (Model.quantizedInput), at that node's output, written quantized: the run then starts
   * at node 1. */
  readonly #input: FrameTensor;
  /** Runs the model on what #input holds (Model.inPlaceRunner): the plan's calls, looked up once. */
  readonly #run: () => void;
  /** The whole frame in one native call when the run is one call of the native plan (Model.frameRunner):
   * the frame written through #write's tables, the run, the scores read into #output.scores; returns the
   * class index. Undefined: infer writes, runs and reads from here. */
  readonly #frame: ((frame: Uint8Array) => number) | undefined;
  readonly #write: (frame: Uint8Array, out: FrameTensor) => void;
  readonly #output: OutputScores;
  /** Softmax of the scores, written by each infer; the scores themselves when the graph ends in softmax. */
  readonly #probabilities: Float32Array;
  /** infer's one native call per frame, for the agent's native frame loop (FrameSource.attach): defined when
   * infer makes that call and the scores are the probabilities (the graph ends in softmax), so that the
   * loop's class index and confidence (the class's score) are infer's, bit for bit. Undefined otherwise:
   * the model runs through infer only. While attached to a loop, infer throws. */
  readonly frameLoopRunner: ((frame: Uint8Array) => number) | undefined;

  private constructor(pkg: Package, options: PackageModelOptions) {
    const { manifest } = pkg;
    this.manifest = manifest;
    this.#model = Model.fromPackage(pkg, {
      batch: 1,
      ...(options.memoryBudgetBytes !== undefined ? { memoryBudgetBytes: options.memoryBudgetBytes } : {}),
    });
    // The frame writer's tables quantize exactly as quantize_linear does (round half to even, saturate),
    // so writing quantized frames past that node gives the same bits in fewer steps.
    const quantized = this.#model.quantizedInput(0);
    const inputSpec = quantized?.spec ?? this.#model.specs[manifest.inputs[0]!.tensor]!;
    const { format, write, frame } = inputWriter(manifest, inputSpec);
    this.input = Object.freeze(format);
    this.#write = write;
    // inputWriter accepted the spec: f32, i8 or u8, as the view's type.
    this.#input = (quantized?.view ?? this.#model.inputView(0)) as FrameTensor;
    this.#run = this.#model.inPlaceRunner(quantized === undefined ? 0 : 1);

    const output = manifest.outputs[0]!;
    const outputSpec = this.#model.specs[output.tensor]!;
    this.#output = outputScores(outputSpec, output.name, this.#model.outputView(0));
    const { quantized: dequantize } = this.#output;
    this.#frame = this.#model.frameRunner(quantized === undefined ? 0 : 1, {
      ...frame,
      input: this.#input,
      output: this.#model.outputView(0),
      ...(dequantize !== undefined ? { quantized: dequantize } : {}),
    });
    const classes = elements(outputSpec.shape);
    if (classes < 1)
      throw new PackageModelError(`output "${output.name}" has shape [${outputSpec.shape.join(', ')}]`);
    if (manifest.labels !== undefined && manifest.labels.length !== classes)
      throw new PackageModelError(
        `output "${output.name}" has ${classes} scores but the manifest names ${manifest.labels.length} labels`,
      );
    this.labels = Object.freeze(
      manifest.labels ? [...manifest.labels] : Array.from({ length: classes }, (_, i) => String(i)),
    );
    const producer = manifest.nodes.find((node) => node.outputs.includes(output.tensor));
    this.#probabilities = producer?.op === 'softmax' ? this.#output.scores : new Float32Array(classes);
    this.frameLoopRunner = this.#probabilities === this.#output.scores ? this.#frame : undefined;

    const { probe } = manifest;
    if (probe !== undefined && probe.expectedClass >= classes)
      throw new PackageModelError(
        `probe.expectedClass is ${probe.expectedClass}; the model has ${classes} classes`,
      );
    this.probe = probe && { input: Buffer.from(probe.input, 'base64'), expectedClass: probe.expectedClass };
    this.id = manifest.model.id;
    this.version = manifest.model.version;
    this.name = manifest.model.name ?? manifest.model.id;
    this.contentSha256 = pkg.sha256;
    this.memoryBytes = this.#model.plan.arenaBytes + this.#model.weightBytes + this.#model.scratchBytes;
  }

  /** Reads, verifies and builds a package file. Throws PackageError (damaged, badly signed, for another
   * CPU family), GraphError (an op this runtime lacks), MemoryBudgetError, or PackageModelError. */
  static load(path: string, options: PackageModelOptions): PackageModel {
    const trust = options.trust;
    const pkg = readPackageFile(path, {
      ...(trust === 'shipped'
        ? { allowUnsigned: true }
        : trust.publicKey !== null
          ? { publicKey: trust.publicKey }
          : {}),
      ...(options.cpuFamily !== undefined ? { cpuFamily: options.cpuFamily } : {}),
    });
    return new PackageModel(pkg, options);
  }

  static fromPackage(pkg: Package, options: Omit<PackageModelOptions, 'trust'> = {}): PackageModel {
    return new PackageModel(pkg, { ...options, trust: 'shipped' });
  }

  /** Classifies one camera frame: [height][width][channels] bytes of `input`'s size. The result's arrays are
   * overwritten by the next call (PackageModelResult). */
  infer(frame: Uint8Array): PackageModelResult {
    const logits = this.#output.scores;
    let classIndex = 0;
    if (this.#frame !== undefined) {
      expectFrame(this.input, frame);
      classIndex = this.#frame(frame);
    } else {
      this.#write(frame, this.#input);
      this.#run();
      this.#output.read();
      for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[classIndex]!) classIndex = i;
    }
    const probabilities = this.#probabilities;
    if (probabilities !== logits) {
      // Shifted by the top score so exp never overflows.
      const top = logits[classIndex]!;
      let sum = 0;
      for (let i = 0; i < logits.length; i++) sum += probabilities[i] = Math.exp(logits[i]! - top);
      for (let i = 0; i < logits.length; i++) probabilities[i] = probabilities[i]! / sum;
    }
    return { classIndex, confidence: probabilities[classIndex]!, logits, probabilities };
  }
}
