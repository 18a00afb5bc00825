// Runs a whittle-int8-mlp model file (see int8-mlp-format.ts) on grayscale frames through the native
// int8 fully-connected kernel. Every buffer is allocated at load: a frame allocates only its result.
import { readFileSync } from 'node:fs';

import { fullyConnectedS8, type FullyConnectedS8Args } from '../../native/index.js';
import {
  decodeInt8Base64,
  decodeInt32LeBase64,
  type Int8MlpFile,
  type Int8MlpInput,
  ModelFormatError,
  parseInt8MlpFile,
} from './int8-mlp-format.js';

/** Any implementation of the qs8 fully-connected contract: the native kernel, or its TS reference. */
export type FullyConnectedS8Kernel = (args: FullyConnectedS8Args) => void;

export interface Int8MlpOptions {
  /** Defaults to the native kernel. */
  kernel?: FullyConnectedS8Kernel;
}

export interface Int8MlpResult {
  /** Index into labels of the largest logit (the first one on ties). */
  classIndex: number;
  /** Softmax probability of classIndex, in (0, 1]. */
  confidence: number;
  /** [labels.length] dequantized outputs of the last layer. */
  logits: Float32Array;
}

export class Int8MlpModel {
  readonly id: string;
  readonly name: string;
  readonly labels: readonly string[];
  readonly input: Readonly<Int8MlpInput>;
  readonly accuracy: Int8MlpFile['accuracy'];

  readonly #kernel: FullyConnectedS8Kernel;
  /** Pixel byte -> int8 input, so the frame loop does no floating point. */
  readonly #pixelToInput = new Int8Array(256);
  /** One argument record per layer; layer k's input is layer k-1's output buffer. */
  readonly #layers: FullyConnectedS8Args[];
  readonly #outputScale: number;
  readonly #outputZeroPoint: number;

  private constructor(file: Int8MlpFile, options: Int8MlpOptions) {
    this.id = file.id;
    this.name = file.name;
    this.labels = Object.freeze([...file.labels]);
    this.input = Object.freeze({ ...file.input });
    this.accuracy = file.accuracy;
    this.#kernel = options.kernel ?? fullyConnectedS8;
    const { scale, zeroPoint } = file.input;
    for (let p = 0; p < 256; p++) {
      const q = Math.round(p / 255 / scale) + zeroPoint; // p >= 0: round half up = half away from zero
      this.#pixelToInput[p] = Math.min(127, Math.max(-128, q));
    }
    let input = new Int8Array(file.input.width * file.input.height * file.input.channels);
    this.#layers = file.layers.map((layer) => {
      const output = new Int8Array(layer.outChannels);
      const args: FullyConnectedS8Args = {
        batch: 1,
        inChannels: layer.inChannels,
        outChannels: layer.outChannels,
        input,
        inputZeroPoint: layer.inputZeroPoint,
        weights: decodeInt8Base64(layer.weights),
        bias: decodeInt32LeBase64(layer.bias),
        multipliers: Int32Array.from(layer.multipliers),
        shifts: Int32Array.from(layer.shifts),
        outputZeroPoint: layer.outputZeroPoint,
        outputMin: layer.outputMin,
        outputMax: layer.outputMax,
        output,
      };
      input = output;
      return args;
    });
    // The schema guarantees at least one layer.
    const last = file.layers[file.layers.length - 1]!;
    this.#outputScale = last.outputScale;
    this.#outputZeroPoint = last.outputZeroPoint;
  }

  /** Reads and validates a model file; throws ModelFormatError naming the file and the bad fields. */
  static load(path: string, options: Int8MlpOptions = {}): Int8MlpModel {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new ModelFormatError(`Cannot read model file ${path}: ${(error as Error).message}`);
    }
    return new Int8MlpModel(parseInt8MlpFile(text, path), options);
  }

  /** A model from an already-validated file object (as parseInt8MlpFile returns). */
  static fromFile(file: Int8MlpFile, options: Int8MlpOptions = {}): Int8MlpModel {
    return new Int8MlpModel(file, options);
  }

  /** Classifies one frame: gray is [height][width][channels] pixel bytes, 0 = black. */
  infer(gray: Uint8Array): Int8MlpResult {
    const first = this.#layers[0]!;
    if (gray.length !== first.input.length) {
      const { width, height, channels } = this.input;
      throw new RangeError(
        `Expected a frame of ${first.input.length} bytes (${width}x${height}x${channels}) for gray but received ${gray.length}`,
      );
    }
    const input = first.input;
    const table = this.#pixelToInput;
    for (let i = 0; i < gray.length; i++) input[i] = table[gray[i]!]!;
    for (const layer of this.#layers) this.#kernel(layer);

    const output = this.#layers[this.#layers.length - 1]!.output;
    const logits = new Float32Array(output.length);
    let classIndex = 0;
    for (let o = 0; o < output.length; o++) {
      logits[o] = this.#outputScale * (output[o]! - this.#outputZeroPoint);
      if (logits[o]! > logits[classIndex]!) classIndex = o;
    }
    // Softmax of the top class, shifted by the max logit so exp never overflows.
    const top = logits[classIndex]!;
    let sum = 0;
    for (const logit of logits) sum += Math.exp(logit - top);
    return { classIndex, confidence: 1 / sum, logits };
  }
}
