// Debian's XNNPACK (libxnnpack-dev) as a second peer of `bench kernels`, beside ONNX Runtime. The native
// side (bench/xnnpack/peer.cc) is its own addon, built by scripts/setup.sh when libxnnpack-dev is installed,
// so the product addon never links XNNPACK. Its layers take the very arguments Whittle's create functions
// take (native/index.ts), so a shape is described once and both sides are built from it.
//
// fp32: XNNPACK's f32 convolution and fully-connected operators. int8: its per-channel qc8 convolution; the
// 2022 header has no qc8 fully-connected operator, so a fully-connected layer runs on the per-tensor qs8 one
// and needs one requantization scale for every channel. Quantized layers run at input and output scale 1
// with the kernel scale set to Whittle's requantization scale (multiplier x 2^(shift - 31)), so both compute
// round(acc x scale); XNNPACK rounds in fp32 and may differ in the last bit.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { packageRoot } from '../agent/package-root.js';
import { dequantizeMultiplier } from '../agent/runtime/number/requantization.js';
import type {
  Conv2dF32Args,
  Conv2dInt8Args,
  FullyConnectedF32Args,
  FullyConnectedInt8Args,
  Int8LayerQuantization,
} from '../native/index.js';
import { whittleError } from '../native/whittle-error.js';

/** XNNPACK refused a layer, or its peer is used in a way it cannot run (batch > 1, uint8, per-channel FC). */
export class XnnpackPeerError extends whittleError('XnnpackPeerError', 'xnnpack-peer') {}

/** One XNNPACK operator, created and set up once for batch 1 and one thread (it runs on the caller's). */
export interface XnnpackLayer<T extends Float32Array | Int8Array> {
  /** One run on `input`, writing `output`. */
  run(input: T, output: T): void;
  /** Runs `reps` times in a loop in C on the last input; microseconds per run. */
  time(reps: number): number;
  /** One run on the last input: a bare Node-API call, for timing with the call's cost included. */
  call(): void;
  dispose(): void;
  readonly inputLength: number;
  readonly outputLength: number;
  /** The XNNPACK operator, e.g. "convolution2d_nhwc_qc8". */
  readonly operator: string;
}

/** The fields bench/xnnpack/peer.cc reads, every default resolved. */
interface XnnpackLayerConfig {
  op: 'conv2d' | 'fullyConnected';
  precision: 'fp32' | 'int8';
  weights: Float32Array | Int8Array;
  bias: Float32Array | Int32Array | null;
  outputMin: number;
  outputMax: number;
  [dimension: string]: unknown;
}

interface XnnpackBinding {
  XnnpackLayer: new (config: XnnpackLayerConfig) => object;
}

const ADDON = join('bench', 'xnnpack', 'build', 'Release', 'whittle_xnnpack_peer.node');

/** XNNPACK's layers, at batch 1 and one thread. */
export interface XnnpackPeer {
  /** The Debian package version, e.g. "0.0~git20220216.ae108ef-2", or "unknown". */
  readonly version: string;
  conv2dF32(args: Conv2dF32Args): XnnpackLayer<Float32Array>;
  conv2dInt8(args: Conv2dInt8Args): XnnpackLayer<Int8Array>;
  fullyConnectedF32(args: FullyConnectedF32Args): XnnpackLayer<Float32Array>;
  fullyConnectedInt8(args: FullyConnectedInt8Args): XnnpackLayer<Int8Array>;
}

function debianVersion(): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', 'libxnnpack-dev'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

/** Wraps the addon's constructor so XNNPACK's refusals (thrown as plain errors) become XnnpackPeerErrors. */
function construct<T extends Float32Array | Int8Array>(
  binding: XnnpackBinding,
  config: XnnpackLayerConfig,
): XnnpackLayer<T> {
  try {
    return new binding.XnnpackLayer(config) as XnnpackLayer<T>;
  } catch (error) {
    throw new XnnpackPeerError((error as Error).message);
  }
}

function checkBatch(batch: number, layer: string): void {
  if (batch !== 1)
    throw new XnnpackPeerError(`The XNNPACK peer runs ${layer} at batch 1 only, not batch ${batch}`);
}

/** The quantized fields XNNPACK takes: int8 activations, and the kernel scales that make its
 * requantization Whittle's. */
function quantization(q: Int8LayerQuantization, layer: string) {
  if (q.activations !== 'int8')
    throw new XnnpackPeerError(
      `The XNNPACK peer runs signed int8 activations (qc8/qs8), not ${q.activations} (${layer})`,
    );
  return {
    inputZeroPoint: q.inputZeroPoint,
    outputZeroPoint: q.outputZeroPoint,
    outputMin: q.outputMin ?? -128,
    outputMax: q.outputMax ?? 127,
    kernelScales: Float32Array.from(q.multipliers, (multiplier, o) =>
      dequantizeMultiplier({ multiplier, shift: q.shifts[o]! }),
    ),
  };
}

function peerOf(binding: XnnpackBinding): XnnpackPeer {
  const conv = (args: Conv2dF32Args | Conv2dInt8Args) => {
    checkBatch(args.batch, 'convolutions');
    return {
      op: 'conv2d' as const,
      inputHeight: args.inputHeight,
      inputWidth: args.inputWidth,
      inputChannels: args.inputChannels,
      outputChannels: args.outputChannels,
      kernelHeight: args.kernelHeight,
      kernelWidth: args.kernelWidth,
      strideHeight: args.strideHeight ?? 1,
      strideWidth: args.strideWidth ?? 1,
      dilationHeight: args.dilationHeight ?? 1,
      dilationWidth: args.dilationWidth ?? 1,
      paddingTop: args.paddingTop ?? 0,
      paddingLeft: args.paddingLeft ?? 0,
      paddingBottom: args.paddingBottom ?? 0,
      paddingRight: args.paddingRight ?? 0,
      groups: args.groups ?? 1,
    };
  };
  const fc = (args: FullyConnectedF32Args | FullyConnectedInt8Args) => {
    checkBatch(args.batch, 'fully-connected layers');
    return { op: 'fullyConnected' as const, inChannels: args.inChannels, outChannels: args.outChannels };
  };
  const fp32 = (args: Conv2dF32Args | FullyConnectedF32Args) => ({
    precision: 'fp32' as const,
    weights: args.weights,
    bias: args.bias ?? null,
    outputMin: args.outputMin ?? -Infinity,
    outputMax: args.outputMax ?? Infinity,
  });
  const int8 = (args: Conv2dInt8Args | FullyConnectedInt8Args, layer: string) => ({
    precision: 'int8' as const,
    weights: args.weights,
    bias: args.bias ?? null,
    ...quantization(args, layer),
  });
  return {
    version: debianVersion(),
    conv2dF32: (args) => construct(binding, { ...conv(args), ...fp32(args) }),
    conv2dInt8: (args) => construct(binding, { ...conv(args), ...int8(args, 'a convolution') }),
    fullyConnectedF32: (args) => construct(binding, { ...fc(args), ...fp32(args) }),
    fullyConnectedInt8: (args) => {
      const config = { ...fc(args), ...int8(args, 'a fully-connected layer') };
      if (config.kernelScales.some((s) => s !== config.kernelScales[0]))
        throw new XnnpackPeerError(
          'XNNPACK 0.0~git20220216 has no per-channel (qc8) fully-connected operator, and its per-tensor qs8 ' +
            'one takes a single requantization scale: this layer has a different scale per output channel',
        );
      return construct(binding, { ...config, kernelScales: config.kernelScales.subarray(0, 1) });
    },
  };
}

let loaded: XnnpackPeer | { missing: string } | undefined;

/** The peer, or a sentence saying why it is not there (not built, or built but not loadable). Loaded once. */
export function loadXnnpackPeer(): XnnpackPeer | { missing: string } {
  if (loaded !== undefined) return loaded;
  const path = join(packageRoot(), ADDON);
  if (!existsSync(path)) {
    const header = existsSync('/usr/include/xnnpack.h');
    return (loaded = {
      missing: header
        ? `the XNNPACK peer is not built (${ADDON} is missing): run \`npm run setup\``
        : 'the XNNPACK peer is not built: libxnnpack-dev is not installed ' +
          '(`sudo apt-get install libxnnpack-dev libpthreadpool-dev`, then `npm run setup`)',
    });
  }
  try {
    const binding = createRequire(import.meta.url)(path) as Partial<XnnpackBinding>;
    if (typeof binding.XnnpackLayer !== 'function')
      return (loaded = {
        missing: `${path} does not export XnnpackLayer: rebuild it with \`npm run setup\``,
      });
    return (loaded = peerOf(binding as XnnpackBinding));
  } catch (error) {
    return (loaded = { missing: `cannot load ${path}: ${(error as Error).message}` });
  }
}

/** How far XNNPACK's output is from Whittle's on the same layer and input: the largest absolute difference,
 * and a sentence when it is beyond tolerance (fp32: 1e-4 x (1 + the largest |output|); int8: 1 LSB, as
 * XNNPACK rounds in fp32 where Whittle rounds in fixed point). */
export function xnnpackAgreement(
  ours: Float32Array | Int8Array,
  theirs: Float32Array | Int8Array,
): { maxAbsDiff: number; mismatch: string | null } {
  if (ours.length !== theirs.length)
    return {
      maxAbsDiff: NaN,
      mismatch: `XNNPACK writes ${theirs.length} outputs where Whittle writes ${ours.length}`,
    };
  let maxAbsDiff = 0;
  let at = 0;
  let largest = 0;
  for (let i = 0; i < ours.length; i++) {
    const diff = Math.abs(ours[i]! - theirs[i]!);
    if (Number.isNaN(diff))
      return { maxAbsDiff: NaN, mismatch: `output ${i} is NaN (Whittle ${ours[i]}, XNNPACK ${theirs[i]})` };
    if (diff > maxAbsDiff) {
      maxAbsDiff = diff;
      at = i;
    }
    largest = Math.max(largest, Math.abs(ours[i]!));
  }
  const tolerance = ours instanceof Int8Array ? 1 : 1e-4 * (1 + largest);
  return {
    maxAbsDiff,
    mismatch:
      maxAbsDiff <= tolerance
        ? null
        : `XNNPACK's output differs from Whittle's: |diff| ${maxAbsDiff} at output ${at} ` +
          `(Whittle ${ours[at]}, XNNPACK ${theirs[at]}; tolerance ${tolerance})`,
  };
}
