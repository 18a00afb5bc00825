// The TypeScript face of the fp32 training kernels (whittle_train.node, built from native/train/ as a
// second target of native/binding.gyp). The addon checks every argument (types, lengths, ranges,
// aliasing) and throws a TypeError or RangeError naming it, so no bad call reaches C.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { WhittleError } from '../whittle-error.js';

export type FusedActivation = 'linear' | 'relu' | 'relu6';

/** A 2-D window op over NHWC tensors: conv, depthwise conv (outChannels = inChannels * multiplier) or
 * pooling (outChannels = inChannels, no dilation). padTop/padLeft are the zero rows/columns before the
 * input (tfjs's padInfo). */
export interface WindowShape {
  batch: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  padTop: number;
  padLeft: number;
}

export interface TrainBinding {
  /** y[batch][outH][outW][outC] = act(conv(x, filter[fh][fw][inC][outC]) + bias). */
  conv2dForward(
    args: WindowShape & {
      x: Float32Array;
      filter: Float32Array;
      bias: Float32Array | null;
      activation: FusedActivation;
      y: Float32Array;
    },
  ): void;
  conv2dBackpropInput(args: WindowShape & { dy: Float32Array; filter: Float32Array; dx: Float32Array }): void;
  conv2dBackpropFilter(
    args: WindowShape & { x: Float32Array; dy: Float32Array; dfilter: Float32Array },
  ): void;
  /** filter[fh][fw][inC][multiplier]. */
  depthwiseConv2dForward(
    args: WindowShape & {
      x: Float32Array;
      filter: Float32Array;
      bias: Float32Array | null;
      activation: FusedActivation;
      y: Float32Array;
    },
  ): void;
  depthwiseConv2dBackpropInput(
    args: WindowShape & { dy: Float32Array; filter: Float32Array; dx: Float32Array },
  ): void;
  depthwiseConv2dBackpropFilter(
    args: WindowShape & { x: Float32Array; dy: Float32Array; dfilter: Float32Array },
  ): void;
  maxPool(args: WindowShape & { x: Float32Array; y: Float32Array }): void;
  maxPoolBackward(args: WindowShape & { x: Float32Array; dy: Float32Array; dx: Float32Array }): void;
  avgPool(args: WindowShape & { x: Float32Array; y: Float32Array }): void;
  avgPoolBackward(args: WindowShape & { dy: Float32Array; dx: Float32Array }): void;
  /** c[batch][m][n] = act(op(a) * op(b) + bias); a batch of 1 broadcasts; bias has 1 or n values. */
  batchMatMul(args: {
    batchA: number;
    batchB: number;
    m: number;
    n: number;
    k: number;
    transposeA: boolean;
    transposeB: boolean;
    a: Float32Array;
    b: Float32Array;
    bias: Float32Array | null;
    activation: FusedActivation;
    c: Float32Array;
  }): void;
  /** y = (x - mean) * scale / sqrt(variance + epsilon) + offset over [count][channels]. */
  batchNorm(args: {
    count: number;
    channels: number;
    x: Float32Array;
    mean: Float32Array;
    variance: Float32Array;
    scale: Float32Array | null;
    offset: Float32Array | null;
    epsilon: number;
    y: Float32Array;
  }): void;
  batchNormBackward(args: {
    count: number;
    channels: number;
    x: Float32Array;
    mean: Float32Array;
    variance: Float32Array;
    scale: Float32Array | null;
    dy: Float32Array;
    epsilon: number;
    dx: Float32Array;
    dmean: Float32Array;
    dvariance: Float32Array;
    dscale: Float32Array;
    doffset: Float32Array;
  }): void;
  /** The biased per-channel mean and variance of x[count][channels] (batch norm's training moments). */
  batchNormMoments(args: {
    count: number;
    channels: number;
    x: Float32Array;
    mean: Float32Array;
    variance: Float32Array;
  }): void;
  /** Batch norm's gradient in training mode, where mean and variance are x's own moments: dx includes
   * their dependence on x. */
  batchNormTrainBackward(args: {
    count: number;
    channels: number;
    x: Float32Array;
    mean: Float32Array;
    variance: Float32Array;
    scale: Float32Array | null;
    dy: Float32Array;
    epsilon: number;
    dx: Float32Array;
    dscale: Float32Array;
    doffset: Float32Array;
  }): void;
  /** y[i] = op(a[(i / aDivisor) % aLength], b[(i / bDivisor) % bLength]) for i < n (BINARY_OPS). */
  binary(args: {
    op: number;
    n: number;
    a: Float32Array;
    aDivisor: number;
    aLength: number;
    b: Float32Array;
    bDivisor: number;
    bLength: number;
    y: Float32Array;
  }): void;
  /** y = op(x) elementwise (UNARY_OPS); alpha is Step's value for x <= 0. */
  unary(args: { op: number; x: Float32Array; alpha: number; y: Float32Array }): void;
  /** y[outer][inner] = sum over mid of x[outer][mid][inner]. */
  sumAxes(args: { outer: number; mid: number; inner: number; x: Float32Array; y: Float32Array }): void;
  /** dx = dy * step(x) (op relu) or dy * (2 x) (op square), elementwise (UNARY_GRAD_OPS). */
  unaryGrad(args: { op: number; dy: Float32Array; x: Float32Array; dx: Float32Array }): void;
  /** y[i] = dy[i] * (op(a[(i / aDivisor) % aLength], b[(i / bDivisor) % bLength]) ? 1 : 0) for i < n
   * (COMPARE_OPS): Minimum's and Maximum's gradients in one pass. */
  compareMask(args: {
    op: number;
    n: number;
    dy: Float32Array;
    a: Float32Array;
    aDivisor: number;
    aLength: number;
    b: Float32Array;
    bDivisor: number;
    bLength: number;
    y: Float32Array;
  }): void;
  /** dx[outer][m][inner] = dy[outer][inner] / mid: the gradient of a mean over a block of axes. */
  meanGrad(args: { outer: number; mid: number; inner: number; dy: Float32Array; dx: Float32Array }): void;
  /** y = transpose(x, perm) for x of `shape` (rank 1-8). */
  transpose(args: { shape: number[]; perm: number[]; x: Float32Array; y: Float32Array }): void;
  /** One Adam step in place on param, m and v (tfjs AdamOptimizer's formula); bias1 = 1 - beta1^t. */
  adamUpdate(args: {
    param: Float32Array;
    grad: Float32Array;
    m: Float32Array;
    v: Float32Array;
    learningRate: number;
    beta1: number;
    beta2: number;
    epsilon: number;
    bias1: number;
    bias2: number;
  }): void;
  /** Keeps freed activation-sized buffers in the C heap instead of unmapping them (glibc mallopt), so
   * the next step's arrays do not page-fault in again; false where the C library has no such setting. */
  retainFreedMemory(): boolean;
  /** The SGEMM path in use and the best one this CPU and build support. */
  isa(): { current: TrainIsa; best: TrainIsa };
  /** Forces an SGEMM path (tests, benchmarks); RangeError if the CPU or build lacks it. */
  setIsa(isa: TrainIsa): void;
  threads(): number;
  /** Threads for every kernel, 1-8 (default 2). */
  setThreads(threads: number): void;
}

/** Codes of f32_binary_op in native/train/src/f32_train.h. */
export const BINARY_OPS = { add: 0, sub: 1, mul: 2, div: 3, max: 4, min: 5, squaredDifference: 6 } as const;
/** Codes of f32_unary_op. */
export const UNARY_OPS = { relu: 0, relu6: 1, step: 2, neg: 3, square: 4, sqrt: 5, abs: 6 } as const;

/** Codes of f32_unary_grad_op. */
export const UNARY_GRAD_OPS = { relu: 0, square: 1 } as const;
/** Codes of f32_compare_op. */
export const COMPARE_OPS = { greater: 0, greaterEqual: 1, less: 2, lessEqual: 3 } as const;

export type TrainIsa = 'scalar' | 'avx2' | 'avx512';

/** The training addon could not be loaded: not built, built for another platform, or stale. */
export class TrainAddonLoadError extends WhittleError {
  override readonly name = 'TrainAddonLoadError';
  readonly code = 'train-addon-not-loaded';
}

const ADDON_FILE = 'whittle_train.node';
const REQUIRED_EXPORTS = [
  'conv2dForward',
  'batchMatMul',
  'maxPool',
  'batchNorm',
  'binary',
  'compareMask',
  'meanGrad',
  'batchNormTrainBackward',
  'adamUpdate',
] as const;

function findRepositoryRoot(start: string): string | undefined {
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        const parsed: unknown = JSON.parse(readFileSync(manifest, 'utf8'));
        if (
          typeof parsed === 'object' &&
          parsed !== null &&
          (parsed as { name?: unknown }).name === 'whittle'
        )
          return dir;
      } catch {
        // Another project's unreadable manifest: keep walking up.
      }
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function isTrainBinding(value: unknown): value is TrainBinding {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return REQUIRED_EXPORTS.every((name) => typeof record[name] === 'function');
}

/** Where the addon may be: $WHITTLE_TRAIN_ADDON first (a build made elsewhere), then native/build. */
export function trainAddonCandidates(): string[] {
  const candidates: string[] = [];
  const fromEnv = process.env['WHITTLE_TRAIN_ADDON'];
  if (fromEnv !== undefined && fromEnv !== '') candidates.push(fromEnv);
  const root = findRepositoryRoot(dirname(fileURLToPath(import.meta.url)));
  if (root !== undefined) {
    for (const configuration of ['Release', 'Debug'])
      candidates.push(join(root, 'native', 'build', configuration, ADDON_FILE));
  }
  return candidates;
}

let binding: TrainBinding | undefined;

/** Loads the addon once. Throws TrainAddonLoadError listing every path tried and why each failed. */
export function loadTrainBinding(): TrainBinding {
  if (binding !== undefined) return binding;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const path of trainAddonCandidates()) {
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
    if (!isTrainBinding(loaded)) {
      tried.push(`${path} (loaded, but it lacks ${REQUIRED_EXPORTS.join(', ')}: a stale build?)`);
      continue;
    }
    binding = loaded;
    return binding;
  }
  throw new TrainAddonLoadError(
    `Cannot load the Whittle training addon ${ADDON_FILE}. Tried:\n  ${tried.join('\n  ') || '(no candidate paths)'}\n` +
      `Build it with \`npx node-gyp rebuild --directory native\` (needs python3, make and a C/C++ compiler).`,
  );
}

/** True when the addon loads; never throws. */
export function trainAddonAvailable(): boolean {
  try {
    loadTrainBinding();
    return true;
  } catch {
    return false;
  }
}
