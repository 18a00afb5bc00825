// The TypeScript face of the kernel library: finds and loads the Node-API addon, and gives each kernel a
// typed signature. The addon checks every argument itself (types, lengths, ranges, aliasing) and throws a
// TypeError or RangeError naming the argument, so a bad call can never reach C.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { TrainBinding } from './train-kernels.js';
import { WhittleError } from './whittle-error.js';

/** What the addon exports (checked when it is loaded): the inference kernels and, typed in
 * train-kernels.ts, the fp32 training kernels. */
export type NativeBinding = NativeKernels & TrainBinding;

/** The addon could not be loaded: built for another platform, not built, or its build failed. */
export class NativeAddonLoadError extends WhittleError {
  override readonly name = 'NativeAddonLoadError';
  readonly code = 'native-addon-not-loaded';
}

const ADDON_FILE = 'whittle_native.node';

/** The checkout root: the nearest ancestor directory whose package.json is named "whittle". Works from the
 * TypeScript sources (native/) and from the compiled output (dist/native/). */
function findRepositoryRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        const parsed: unknown = JSON.parse(readFileSync(manifest, 'utf8'));
        if (
          typeof parsed === 'object' &&
          parsed !== null &&
          (parsed as { name?: unknown }).name === 'whittle'
        ) {
          return dir;
        }
      } catch {
        // Some other project's unreadable manifest: keep walking up.
      }
    }
    if (dirname(dir) === dir) {
      throw new NativeAddonLoadError(
        `Cannot find the Whittle checkout (a package.json named "whittle") above ${start}, so the native ` +
          `addon ${ADDON_FILE} cannot be located.`,
      );
    }
  }
}

/** Exports a current build has (one per part of the binding); a stale build lacks some. */
const REQUIRED_EXPORTS = [
  'cpuFeatures',
  'Conv2d',
  'conv2dForward',
  'batchMatMul',
  'batchNormTrainBackward',
  'adamUpdate',
  'Plan',
] as const;

function isNativeBinding(value: unknown): value is NativeBinding {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return REQUIRED_EXPORTS.every((name) => typeof record[name] === 'function');
}

let binding: NativeBinding | undefined;
/** The file the binding was loaded from (set with `binding`). */
let bindingPath: string | undefined;
let buildHash: string | undefined;

/** Loads the addon once; later calls return the same module. Throws NativeAddonLoadError listing every
 * path tried and why each failed. */
export function loadNativeBinding(): NativeBinding {
  if (binding !== undefined) return binding;
  const root = findRepositoryRoot(dirname(fileURLToPath(import.meta.url)));
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const configuration of ['Release', 'Debug']) {
    const path = join(root, 'native', 'build', configuration, ADDON_FILE);
    if (!existsSync(path)) {
      tried.push(`${path} (not found)`);
      continue;
    }
    let loaded: unknown;
    try {
      loaded = require(path);
    } catch (error) {
      tried.push(`${path} (${error instanceof Error ? error.message : String(error)})`);
      continue;
    }
    if (!isNativeBinding(loaded)) {
      tried.push(`${path} (loaded, but it does not export ${REQUIRED_EXPORTS.join(', ')}: a stale build?)`);
      continue;
    }
    binding = loaded;
    bindingPath = path;
    return binding;
  }
  throw new NativeAddonLoadError(
    `Cannot load the Whittle native addon. Tried:\n  ${tried.join('\n  ')}\n` +
      `Build it with \`npm run install\` or \`npx node-gyp rebuild --directory native\` ` +
      `(needs python3, make and a C/C++ compiler).`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Kernel library: CPU features, kernel path, threads, and the fp32 / int8 operators (binding_kernels.cc).
// Tensors are NHWC. The typed array chooses the format of the stateless operators: Float32Array = fp32,
// Int8Array = int8, Uint8Array = uint8 (int8 formats: real = scale * (q - zeroPoint)). Every check is done
// by the addon, which throws a TypeError or RangeError naming the argument.

/** Kernel paths, lowest first on each ladder (x86: scalar < avx2 < ... < avx512vpopcnt; ARM: scalar < neon <
 * neondot). WHITTLE_ISA=<name> forces one for the whole process; a path the CPU lacks makes loading fail. */
export const ISAS = ['scalar', 'avx2', 'avx512', 'avx512vnni', 'avx512vpopcnt', 'neon', 'neondot'] as const;
export type Isa = (typeof ISAS)[number];

export interface CpuFeatures {
  /** What the CPU and OS support. */
  features: {
    avx2: boolean;
    avx512f: boolean;
    avx512bw: boolean;
    avx512vl: boolean;
    avx512vnni: boolean;
    avx512vpopcntdq: boolean;
    avxvnni: boolean;
    neon: boolean;
    neondot: boolean;
  };
  /** Every kernel path this CPU can run. */
  supported: Isa[];
  /** The fastest of them. */
  best: Isa;
  /** The one in use: WHITTLE_ISA when set, otherwise best. */
  selected: Isa;
}

/** A conv2d layer's shape: the one TypeScript type of convolution geometry. The compressed formats use it
 * without dilation (FormatConv2dShape in formats.ts); the training kernels (WindowShape in train-kernels.ts)
 * and the fixed-point reference (Conv2dGeometry) use its fields resolved, with a Conv2dOutputSize. Weights are OHWI: [outputChannels][kernelHeight][kernelWidth][inputChannels /
 * groups]; depthwise is groups = inputChannels = outputChannels. Every dimension is an integer >= 1
 * (paddings >= 0); strides, dilations and groups default to 1, paddings to 0. */
export interface Conv2dShape {
  batch: number;
  inputHeight: number;
  inputWidth: number;
  inputChannels: number;
  outputChannels: number;
  kernelHeight: number;
  kernelWidth: number;
  strideHeight?: number;
  strideWidth?: number;
  dilationHeight?: number;
  dilationWidth?: number;
  paddingTop?: number;
  paddingLeft?: number;
  paddingBottom?: number;
  paddingRight?: number;
  groups?: number;
}

/** The same padding `p` on all four sides of a window (TensorFlow's 'same' for odd kernels at stride 1). */
export function uniformPadding(
  p: number,
): Required<Pick<Conv2dShape, 'paddingTop' | 'paddingLeft' | 'paddingBottom' | 'paddingRight'>> {
  return { paddingTop: p, paddingLeft: p, paddingBottom: p, paddingRight: p };
}

/** The output rows and columns of a convolution or pooling window, for the shapes that carry them resolved
 * (the training kernels' WindowShape, the fixed-point reference's Conv2dGeometry). */
export interface Conv2dOutputSize {
  outputHeight: number;
  outputWidth: number;
}

/** output = clamp(bias + conv(input, weights), outputMin, outputMax); ReLU is outputMin 0, ReLU6 adds outputMax 6. */
export interface Conv2dF32Args extends Conv2dShape {
  weights: Float32Array;
  /** [outputChannels]; absent = zero. */
  bias?: Float32Array | null;
  /** Default -Infinity / +Infinity. */
  outputMin?: number;
  outputMax?: number;
  /** A residual add in the output stage: output = clamp(conv + addend, residual.outputMin, residual.outputMax),
   * the conv clamped first by outputMin / outputMax; the layer then runs as run(input, output, addend). */
  residual?: { outputMin?: number; outputMax?: number };
}

/** int8 affine quantization of a layer: symmetric int8 weights with a scale per output channel, int8 or
 * uint8 activations with a zero point, and per-channel requantization with the rounding of TFLite's
 * MultiplyByQuantizedMultiplier (bit-exact on every target):
 *   output = clamp(outputZeroPoint + round(acc * multipliers[o] * 2^(shifts[o] - 31)), outputMin, outputMax)
 *   acc    = bias[o] + sum (input - inputZeroPoint) * weights */
export interface Int8LayerQuantization {
  /** 'int8' (Int8Array tensors, values and zero points in [-128, 127]) or 'uint8' ([0, 255]). */
  activations: 'int8' | 'uint8';
  inputZeroPoint: number;
  outputZeroPoint: number;
  /** Default: the whole range of the activation type. A fused ReLU is outputMin = outputZeroPoint. */
  outputMin?: number;
  outputMax?: number;
  /** [outputChannels] Q31 multipliers. */
  multipliers: Int32Array;
  /** [outputChannels] in [-31, 30]. */
  shifts: Int32Array;
}

export interface Conv2dInt8Args extends Conv2dShape, Int8LayerQuantization {
  weights: Int8Array;
  /** [outputChannels] in units of inputScale * weightScale[o]; absent = zero. */
  bias?: Int32Array | null;
  /** A residual add in the output stage: the conv's requantized output (a, so aZeroPoint = outputZeroPoint)
   * added to the addend (b) as addInt8 adds; the layer then runs as run(input, output, addend). */
  residual?: Omit<AddInt8Args<Int8Tensor>, 'a' | 'b' | 'output' | 'reference'>;
}

export interface FullyConnectedShape {
  batch: number;
  inChannels: number;
  outChannels: number;
}

/** Weights [outChannels][inChannels]. */
export interface FullyConnectedF32Args extends FullyConnectedShape {
  weights: Float32Array;
  bias?: Float32Array | null;
  outputMin?: number;
  outputMax?: number;
}

export interface FullyConnectedInt8Args extends FullyConnectedShape, Int8LayerQuantization {
  weights: Int8Array;
  bias?: Int32Array | null;
}

export type Int8Tensor = Int8Array | Uint8Array;
export type Tensor = Float32Array | Int8Tensor;

/** What the addon's layer objects (Conv2d here, FormatLayer in formats.ts) share. */
export interface NativeLayer<T> {
  run(input: T, output: T, addend?: T): void;
  runReference(input: T, output: T, addend?: T): void;
  dispose(): void;
  readonly kernel: string | null;
  readonly inputLength: number;
  readonly outputLength: number;
  readonly outputHeight: number;
  readonly outputWidth: number;
}

type NativeConv2d = NativeLayer<Tensor>;

type NativeConv2dConstructor = new (
  format: 'f32' | 'int8',
  layer: 'conv2d' | 'fullyConnected',
  args: object,
) => NativeConv2d;

/** Pooling window over NHWC [batch][inputHeight][inputWidth][channels]; strides default to the window, paddings
 * to 0 (each smaller than the window). Average pooling divides by the elements inside the input, or with
 * countIncludePad by the whole window (ONNX count_include_pad), the padded positions counting as 0 (fp32) or
 * as paddingValue (int8 / uint8: the input's zero point, default 0); int8 averages round half to even. */
export interface Pool2dArgs<T extends Tensor> {
  batch: number;
  inputHeight: number;
  inputWidth: number;
  channels: number;
  windowHeight: number;
  windowWidth: number;
  strideHeight?: number;
  strideWidth?: number;
  paddingTop?: number;
  paddingLeft?: number;
  paddingBottom?: number;
  paddingRight?: number;
  countIncludePad?: boolean;
  paddingValue?: number;
  input: T;
  /** Same type as input; must not share memory with it. */
  output: T;
  /** Clamp bounds (fp32: numbers, default +-Infinity; int8: integers of the type, default its range).
   * int8 pooling keeps the input's scale and zero point. */
  outputMin?: number;
  outputMax?: number;
  /** Run the plain C reference instead of the optimized kernel (tests). */
  reference?: boolean;
}

export interface GlobalAvgPoolArgs<T extends Tensor> {
  batch: number;
  /** height * width, <= 65536. */
  pixels: number;
  channels: number;
  input: T;
  output: T;
  outputMin?: number;
  outputMax?: number;
  reference?: boolean;
}

/** int8 / uint8 global average pool from the input's quantization to the output's (per tensor), requantized
 * in the kernel: out = clamp(outputZeroPoint + gemmlowp(sum over pixels of (x - inputZeroPoint), multiplier,
 * shift), outputMin, outputMax), with (multiplier, shift) = quantizeMultiplier(inputScale / (outputScale *
 * pixels)) (agent/runtime/number/requantization.ts). */
export interface GlobalAvgPoolInt8Args<T extends Int8Tensor> extends GlobalAvgPoolArgs<T> {
  inputZeroPoint: number;
  outputZeroPoint: number;
  multiplier: number;
  shift: number;
}

/** ONNX QuantizeLinear (fp32 -> int8 / uint8) and DequantizeLinear (back), per tensor (one scale) or per
 * channel, in double precision exactly as the runtime's reference ops: quantize rounds x / scale half to
 * even, adds the zero point and saturates (NaN -> 0); dequantize is (x - zeroPoint) * scale rounded to
 * fp32. Element i belongs to channel floor(i / inner) % scales.length. */
export interface QuantizationArgs {
  scales: Float64Array;
  /** One per scale, in the integer type's range. */
  zeroPoints: Int32Array;
  /** Elements per run of one channel (per channel only; default 1, channels last). */
  inner?: number;
  reference?: boolean;
}

export interface QuantizeLinearArgs<T extends Int8Tensor> extends QuantizationArgs {
  input: Float32Array;
  output: T;
}

export interface DequantizeLinearArgs<T extends Int8Tensor> extends QuantizationArgs {
  input: T;
  output: Float32Array;
}

export interface AddF32Args {
  a: Float32Array;
  b: Float32Array;
  output: Float32Array;
  outputMin?: number;
  outputMax?: number;
  reference?: boolean;
}

/** TFLite-style quantized add: each input is rescaled by its own multiplier onto a common grid, summed and
 * requantized: multiplier/shift pairs from quantizeMultiplier(scale_x / (2 * max(scale_a, scale_b))) for the
 * inputs and (2 * max(scale_a, scale_b)) / (2^20 * scale_out) for the output. Input shifts in [-31, 0]. */
export interface AddInt8Args<T extends Int8Tensor> {
  a: T;
  b: T;
  output: T;
  aZeroPoint: number;
  aMultiplier: number;
  aShift: number;
  bZeroPoint: number;
  bMultiplier: number;
  bShift: number;
  outputZeroPoint: number;
  outputMultiplier: number;
  outputShift: number;
  outputMin?: number;
  outputMax?: number;
  reference?: boolean;
}

export interface ClampArgs<T extends Tensor> {
  input: T;
  output: T;
  min?: number;
  max?: number;
  reference?: boolean;
}

export interface SoftmaxF32Args {
  rows: number;
  channels: number;
  input: Float32Array;
  output: Float32Array;
  reference?: boolean;
}

/** Each row is dequantized, its softmax computed in floating point and quantized to the output's scale and
 * zero point (TFLite uses outputScale 1/256 with zero point -128 for int8, 0 for uint8). */
export interface SoftmaxInt8Args<T extends Int8Tensor> {
  rows: number;
  channels: number;
  input: T;
  output: T;
  inputScale: number;
  inputZeroPoint: number;
  outputScale: number;
  outputZeroPoint: number;
  reference?: boolean;
}

export interface ConcatArgs<T extends Tensor> {
  rows: number;
  /** Channels of each input; output has their sum. */
  channels: number[];
  inputs: T[];
  output: T;
}

export interface ChannelShuffleArgs<T extends Tensor> {
  rows: number;
  groups: number;
  groupChannels: number;
  input: T;
  output: T;
}

/** fp32 sigmoid (no alpha / beta), hard_sigmoid and hard_swish: clamp(alpha * x + beta, 0, 1), times x for
 * hard_swish. */
export interface ActivationF32Args {
  input: Float32Array;
  output: Float32Array;
  alpha?: number;
  beta?: number;
  reference?: boolean;
}

/** fp32 GELU, x * Phi(x) with Phi the normal CDF, or its tanh approximation when `tanh`. */
export interface GeluF32Args {
  input: Float32Array;
  output: Float32Array;
  tanh?: boolean;
  reference?: boolean;
}

/** fp32 layer normalization of each row of [rows][channels]: (x - mean) / sqrt(variance + epsilon) * scale
 * + bias (no bias: 0), the mean and biased variance over the row. scale and bias are copied when bound. */
export interface LayerNormF32Args {
  rows: number;
  channels: number;
  input: Float32Array;
  scale: Float32Array;
  bias?: Float32Array;
  epsilon: number;
  output: Float32Array;
  reference?: boolean;
}

/** fp32 output[r][p][c] = a[r][p][c] * b[r][c]: N x H x W x C times N x 1 x 1 x C (rows N, pixels H * W), or
 * two tensors of one shape (rows = pixels = 1). */
export interface MulChannelsArgs {
  rows: number;
  pixels: number;
  channels: number;
  a: Float32Array;
  b: Float32Array;
  output: Float32Array;
  reference?: boolean;
}

/** The int8 / uint8 mulChannels: TFLite's quantized mul, output = clamp(outputZeroPoint + gemmlowp((a -
 * aZeroPoint) * (b - bZeroPoint), multiplier, shift), outputMin, outputMax), (multiplier, shift) from
 * quantizeMultiplier(scale_a * scale_b / scale_out). */
export interface MulChannelsInt8Args<T extends Int8Tensor> {
  rows: number;
  pixels: number;
  channels: number;
  a: T;
  b: T;
  output: T;
  aZeroPoint: number;
  bZeroPoint: number;
  outputZeroPoint: number;
  multiplier: number;
  shift: number;
  outputMin?: number;
  outputMax?: number;
  reference?: boolean;
}

/** output[i] = table[input[i] & 0xff]: an int8 / uint8 activation through its 256-entry table. */
export interface LookupArgs<T extends Int8Tensor> {
  input: T;
  output: T;
  table: T;
  reference?: boolean;
}

/** output[r] = input[r][offset, offset + output.length / rows): a slice or a split's part along one axis. */
export interface SliceArgs<T extends Tensor> {
  rows: number;
  inputRow: number;
  offset: number;
  input: T;
  output: T;
}

/** A 2-D resize of [batch][inputHeight][inputWidth][channels] (the two resized axes adjacent; batch and channels
 * fold the others). Output row y reads input rows rows[2y] (top) and rows[2y + 1] (bottom), output column x
 * columns[2x] and columns[2x + 1]; with rowWeights / columnWeights (the bottom row's and the right column's
 * weight, in [0, 1]) it is bilinear (fp32, int8, uint8: the int8 sum is the reference executor's, in double,
 * rounded half up), without them nearest (the first index of each pair; any tensor type). */
export interface ResizeArgs<T extends Tensor> {
  batch: number;
  inputHeight: number;
  inputWidth: number;
  channels: number;
  rows: Uint32Array;
  columns: Uint32Array;
  rowWeights?: Float64Array;
  columnWeights?: Float64Array;
  input: T;
  output: T;
  reference?: boolean;
}

interface NativeKernels {
  cpuFeatures(): CpuFeatures;
  activeIsa(): Isa;
  setThreads(threads: number): void;
  getThreads(): number;
  Conv2d: NativeConv2dConstructor;
  maxPool2d(args: Pool2dArgs<Tensor>): void;
  avgPool2d(args: Pool2dArgs<Tensor>): void;
  globalAvgPool(args: GlobalAvgPoolArgs<Tensor> | GlobalAvgPoolInt8Args<Int8Tensor>): void;
  quantizeLinear(args: QuantizeLinearArgs<Int8Tensor>): void;
  dequantizeLinear(args: DequantizeLinearArgs<Int8Tensor>): void;
  add(args: AddF32Args | AddInt8Args<Int8Tensor>): void;
  clamp(args: ClampArgs<Tensor>): void;
  softmax(args: SoftmaxF32Args | SoftmaxInt8Args<Int8Tensor>): void;
  concat(args: ConcatArgs<Tensor>): void;
  channelShuffle(args: ChannelShuffleArgs<Tensor>): void;
  sigmoid(args: ActivationF32Args): void;
  hardSigmoid(args: ActivationF32Args): void;
  hardSwish(args: ActivationF32Args): void;
  gelu(args: GeluF32Args): void;
  layerNorm(args: LayerNormF32Args): void;
  mulChannels(args: MulChannelsArgs | MulChannelsInt8Args<Int8Tensor>): void;
  lookup(args: LookupArgs<Int8Tensor>): void;
  slice(args: SliceArgs<Tensor>): void;
  resize(args: ResizeArgs<Tensor>): void;
}

/** CPU features and the kernel paths they allow. */
export function cpuFeatures(): CpuFeatures {
  return loadNativeBinding().cpuFeatures();
}

/** The identity of the kernel build this process runs: the first 16 hex digits of the SHA-256 of the
 * loaded addon file. Anything measured with the kernels (a device's latency table) is stored with it, and
 * a different hash means a different build whose measurements do not carry over. */
export function addonBuildHash(): string {
  loadNativeBinding();
  if (buildHash === undefined) {
    if (bindingPath === undefined) throw new NativeAddonLoadError('the native addon is not loaded');
    buildHash = createHash('sha256').update(readFileSync(bindingPath)).digest('hex').slice(0, 16);
  }
  return buildHash;
}

/** The kernel path every operator of this process uses. */
export function activeIsa(): Isa {
  return loadNativeBinding().activeIsa();
}

/** Threads of the library's one pool (1..64, default 1): the conv2d / fully-connected layers split their
 * output rows over it, and the training kernels (train-kernels.ts) their images and GEMM blocks. The last
 * multi-thread pool stays started (its workers asleep) while 1 thread is set, so switching back is free. */
export function setThreads(threads: number): void {
  loadNativeBinding().setThreads(threads);
}

export function getThreads(): number {
  return loadNativeBinding().getThreads();
}

/** A conv2d or fully-connected layer whose weights were packed once, at creation, for the active kernel
 * path. run() may be called any number of times; dispose() frees the packed weights early (the garbage
 * collector frees them otherwise). */
export class PackedLayer<T extends ArrayBufferView> {
  readonly #native: NativeLayer<T>;

  /** @internal use the create* functions. */
  constructor(native: NativeLayer<T>) {
    this.#native = native;
  }

  /** The kernel chosen for this layer: the microkernel of an fp32/int8 layer (e.g.
   * qs8_gemm_minmax_gemmlowp_ukernel_8x32c4__avx512vnni), the variant of a compressed format's layer for the
   * active kernel path ('scalar', 'avx2', 'avx512', 'neon', ...). */
  get kernel(): string | null {
    return this.#native.kernel;
  }
  /** batch x inputHeight x inputWidth x inputChannels (fully connected: batch x inChannels). */
  get inputLength(): number {
    return this.#native.inputLength;
  }
  /** batch x outputHeight x outputWidth x outputChannels (fully connected: batch x outChannels). */
  get outputLength(): number {
    return this.#native.outputLength;
  }
  get outputHeight(): number {
    return this.#native.outputHeight;
  }
  get outputWidth(): number {
    return this.#native.outputWidth;
  }

  /** output = layer(input) (+ addend, for a layer created with a residual add, which requires it); output must
   * not share memory with input or addend. */
  run(input: T, output: T, addend?: T): void {
    if (addend === undefined) this.#native.run(input, output);
    else this.#native.run(input, output, addend);
  }

  /** The same layer through the plain C reference (direct loops): for tests. */
  runReference(input: T, output: T, addend?: T): void {
    if (addend === undefined) this.#native.runReference(input, output);
    else this.#native.runReference(input, output, addend);
  }

  dispose(): void {
    this.#native.dispose();
  }

  /** The addon's layer object, as a step of an execution plan (native/plan.ts). */
  get step(): StepLayer {
    return this.#native as unknown as StepLayer;
  }
}

/** An addon object an execution plan can run as a step (native/plan.ts): a packed layer's, or an operator
 * made by createOperator. Opaque: only the addon reads it. */
export interface StepLayer {
  readonly __stepLayer: never;
}

export function createConv2dF32(args: Conv2dF32Args): PackedLayer<Float32Array> {
  return new PackedLayer(new (loadNativeBinding().Conv2d)('f32', 'conv2d', args));
}

export function createConv2dInt8(args: Conv2dInt8Args & { activations: 'int8' }): PackedLayer<Int8Array>;
export function createConv2dInt8(args: Conv2dInt8Args & { activations: 'uint8' }): PackedLayer<Uint8Array>;
export function createConv2dInt8(args: Conv2dInt8Args): PackedLayer<Int8Tensor>;
export function createConv2dInt8(args: Conv2dInt8Args): PackedLayer<Int8Tensor> {
  return new PackedLayer(new (loadNativeBinding().Conv2d)('int8', 'conv2d', args));
}

export function createFullyConnectedF32(args: FullyConnectedF32Args): PackedLayer<Float32Array> {
  return new PackedLayer(new (loadNativeBinding().Conv2d)('f32', 'fullyConnected', args));
}

export function createFullyConnectedInt8(
  args: FullyConnectedInt8Args & { activations: 'int8' },
): PackedLayer<Int8Array>;
export function createFullyConnectedInt8(
  args: FullyConnectedInt8Args & { activations: 'uint8' },
): PackedLayer<Uint8Array>;
export function createFullyConnectedInt8(args: FullyConnectedInt8Args): PackedLayer<Int8Tensor>;
export function createFullyConnectedInt8(args: FullyConnectedInt8Args): PackedLayer<Int8Tensor> {
  return new PackedLayer(new (loadNativeBinding().Conv2d)('int8', 'fullyConnected', args));
}

export function maxPool2d<T extends Tensor>(args: Pool2dArgs<T>): void {
  loadNativeBinding().maxPool2d(args);
}

export function avgPool2d<T extends Tensor>(args: Pool2dArgs<T>): void {
  loadNativeBinding().avgPool2d(args);
}

export function globalAvgPool<T extends Tensor>(args: GlobalAvgPoolArgs<T>): void {
  loadNativeBinding().globalAvgPool(args);
}

export function globalAvgPoolInt8<T extends Int8Tensor>(args: GlobalAvgPoolInt8Args<T>): void {
  loadNativeBinding().globalAvgPool(args);
}

export function quantizeLinear<T extends Int8Tensor>(args: QuantizeLinearArgs<T>): void {
  loadNativeBinding().quantizeLinear(args);
}

export function dequantizeLinear<T extends Int8Tensor>(args: DequantizeLinearArgs<T>): void {
  loadNativeBinding().dequantizeLinear(args);
}

export function addF32(args: AddF32Args): void {
  loadNativeBinding().add(args);
}

export function addInt8<T extends Int8Tensor>(args: AddInt8Args<T>): void {
  loadNativeBinding().add(args);
}

/** clamp(x, min, max) element-wise; ReLU and ReLU6 are its special cases (see relu, relu6). */
export function clamp<T extends Tensor>(args: ClampArgs<T>): void {
  loadNativeBinding().clamp(args);
}

/** fp32 ReLU: max(x, 0). */
export function relu(input: Float32Array, output: Float32Array): void {
  loadNativeBinding().clamp({ input, output, min: 0 });
}

/** fp32 ReLU6: min(max(x, 0), 6). */
export function relu6(input: Float32Array, output: Float32Array): void {
  loadNativeBinding().clamp({ input, output, min: 0, max: 6 });
}

export function softmaxF32(args: SoftmaxF32Args): void {
  loadNativeBinding().softmax(args);
}

export function softmaxInt8<T extends Int8Tensor>(args: SoftmaxInt8Args<T>): void {
  loadNativeBinding().softmax(args);
}

export function concat<T extends Tensor>(args: ConcatArgs<T>): void {
  loadNativeBinding().concat(args);
}

export function channelShuffle<T extends Tensor>(args: ChannelShuffleArgs<T>): void {
  loadNativeBinding().channelShuffle(args);
}

export function resize<T extends Tensor>(args: ResizeArgs<T>): void {
  loadNativeBinding().resize(args);
}

export function sigmoidF32(args: ActivationF32Args): void {
  loadNativeBinding().sigmoid(args);
}

export function hardSigmoidF32(args: ActivationF32Args): void {
  loadNativeBinding().hardSigmoid(args);
}

export function hardSwishF32(args: ActivationF32Args): void {
  loadNativeBinding().hardSwish(args);
}

export function geluF32(args: GeluF32Args): void {
  loadNativeBinding().gelu(args);
}

export function layerNormF32(args: LayerNormF32Args): void {
  loadNativeBinding().layerNorm(args);
}

export function mulChannelsF32(args: MulChannelsArgs): void {
  loadNativeBinding().mulChannels(args);
}

export function mulChannelsInt8<T extends Int8Tensor>(args: MulChannelsInt8Args<T>): void {
  loadNativeBinding().mulChannels(args);
}

export function lookupInt8<T extends Int8Tensor>(args: LookupArgs<T>): void {
  loadNativeBinding().lookup(args);
}

export function slice<T extends Tensor>(args: SliceArgs<T>): void {
  loadNativeBinding().slice(args);
}
