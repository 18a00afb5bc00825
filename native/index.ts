// The TypeScript face of the kernel library: finds and loads the Node-API addon, and gives each kernel a
// typed signature. The addon checks every argument itself (types, lengths, ranges, aliasing) and throws a
// TypeError or RangeError naming the argument, so a bad call can never reach C.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Arguments of one int8 fully-connected layer with per-output-channel fixed-point requantization:
 *
 *   output[b][o] = clamp(outputZeroPoint + round(acc * multipliers[o] * 2^(shifts[o] - 31)), outputMin, outputMax)
 *   acc          = bias[o] + sum_i (input[b][i] - inputZeroPoint) * weights[o][i]
 *
 * with the rounding of TFLite's MultiplyByQuantizedMultiplier (bit-exact on every target). */
export interface FullyConnectedS8Args {
  /** Rows of input and output, >= 1. */
  batch: number;
  /** Input features per row, in [1, 65536]. */
  inChannels: number;
  /** Output features per row, >= 1. */
  outChannels: number;
  /** [batch][inChannels] quantized activations, real = inputScale * (q - inputZeroPoint). */
  input: Int8Array;
  /** In [-128, 127]. */
  inputZeroPoint: number;
  /** [outChannels][inChannels] symmetric weights (zero point 0), real = weightScale[o] * q. */
  weights: Int8Array;
  /** [outChannels] in units of inputScale * weightScale[o]. */
  bias: Int32Array;
  /** [outChannels] Q31 fixed-point multipliers, from quantizeMultiplier(inputScale * weightScale[o] / outputScale). */
  multipliers: Int32Array;
  /** [outChannels] power-of-two exponents in [-31, 30]; positive shifts left. */
  shifts: Int32Array;
  /** In [-128, 127]. */
  outputZeroPoint: number;
  /** Clamp bounds in [-128, 127], outputMin <= outputMax; a fused ReLU is outputMin = outputZeroPoint. */
  outputMin: number;
  outputMax: number;
  /** [batch][outChannels], written; must not share memory with any input. */
  output: Int8Array;
}

/** What the addon exports (checked when it is loaded). */
export interface NativeBinding {
  fullyConnectedS8(args: FullyConnectedS8Args): void;
}

/** The addon could not be loaded: built for another platform, not built, or its build failed. */
export class NativeAddonLoadError extends Error {
  override readonly name = 'NativeAddonLoadError';
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

function isNativeBinding(value: unknown): value is NativeBinding {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { fullyConnectedS8?: unknown }).fullyConnectedS8 === 'function'
  );
}

let binding: NativeBinding | undefined;

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
      tried.push(`${path} (loaded, but it does not export fullyConnectedS8: a stale build?)`);
      continue;
    }
    binding = loaded;
    return binding;
  }
  throw new NativeAddonLoadError(
    `Cannot load the Whittle native addon. Tried:\n  ${tried.join('\n  ')}\n` +
      `Build it with \`npm run install\` or \`npx node-gyp rebuild --directory native\` ` +
      `(needs python3, make and a C/C++ compiler).`,
  );
}

/** Runs the int8 fully-connected kernel; see FullyConnectedS8Args. Throws TypeError/RangeError naming the
 * argument on bad input, NativeAddonLoadError when the addon is missing. */
export function fullyConnectedS8(args: FullyConnectedS8Args): void {
  loadNativeBinding().fullyConnectedS8(args);
}
