// The design's promise that accuracy measured on the desktop is the device's accuracy, checked end to end:
// the same int8 package, the same Fashion-MNIST test images, on this machine and on emulated ARM devices
// (Debian's ARM Node under qemu-user, the agent bundle's layout and cross-built addon, the device class's
// CPU). Every device's top-1 and raw int8 scores are compared with this machine's, image by image.
//
//   npm run bench -- arm-bit-exact [--images 1000] [--classes rpi4,armv7]
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';

import { defaultModelPath } from '../agent/config.js';
import { readPackageFile } from '../agent/package/reader.js';
import { packageRoot } from '../agent/package-root.js';
import { loadFashionMnist } from '../optimize/datasets/fashion-mnist.js';
import { imageInput, packageImageInput } from '../optimize/evaluate-package.js';
import { DEVICE_CLASSES, type DeviceClass, type DeviceClassName } from '../test/support/device-classes.js';
import {
  bundleAppDir,
  emulatedBundle,
  emulatedNode,
  emulationSkipReason,
} from '../test/support/emulated-device.js';
import { BenchArgumentError, positiveInteger } from './kernels.js';
import { type PackageOutputs, packageOutputs } from './package-outputs.js';

const execFileAsync = promisify(execFile);

export interface DeviceOutputs extends PackageOutputs {
  /** "this machine" or the device class name. */
  device: string;
  /** Images whose top-1 differs from this machine's. */
  top1Differences: number;
  /** Images with at least one raw int8 score different from this machine's. */
  rawDifferences: number;
  /** Correct top-1 answers against the dataset's labels. */
  correct: number;
}

export interface BitExactReport {
  images: number;
  packageId: string;
  devices: DeviceOutputs[];
}

function differingImages(a: Int8Array | Uint8Array, b: Int8Array | Uint8Array, per: number): number {
  let count = 0;
  for (let i = 0; i < a.length; i += per) {
    for (let k = 0; k < per; k++) {
      if (a[i + k] !== b[i + k]) {
        count++;
        break;
      }
    }
  }
  return count;
}

/** Bundles package-outputs-main.ts into the agent bundle of each class's arch (once) and runs it there. */
async function runOnDevice(
  cls: DeviceClass,
  packagePath: string,
  inputFile: string,
  count: number,
  dir: string,
): Promise<PackageOutputs> {
  const app = bundleAppDir(await emulatedBundle(cls));
  const script = join(app, 'bench', 'package-outputs.mjs');
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [join(packageRoot(), 'bench', 'package-outputs-main.ts')],
    outfile: script,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    logLevel: 'silent',
    banner: {
      js: "import { createRequire as __whittleRequire } from 'node:module'; const require = __whittleRequire(import.meta.url);",
    },
  });
  const out = join(dir, `${cls.name}.out`);
  const [qemu, ...args] = emulatedNode(cls);
  const { stdout } = await execFileAsync(
    qemu!,
    [...args, script, packagePath, inputFile, String(count), out],
    {
      maxBuffer: 1 << 20,
    },
  );
  const facts = JSON.parse(stdout.trim().split('\n').pop()!) as { arch: string; isa: string; ms: number };
  const bytes = readFileSync(out);
  return {
    ...facts,
    top1: new Uint8Array(bytes.subarray(0, count)),
    raw: new Int8Array(new Uint8Array(bytes.subarray(count)).buffer),
  };
}

/** Runs the package (the bundled int8 LeNet-5 by default) on the first `images` test images here and on
 * each device class, in turn, and compares. */
export async function compareAcrossDevices(options: {
  images: number;
  classes: readonly DeviceClass[];
  packagePath?: string;
}): Promise<BitExactReport> {
  const packagePath = options.packagePath ?? defaultModelPath();
  const pkg = readPackageFile(packagePath, { allowUnsigned: true, cpuFamily: null });
  const test = loadFashionMnist('test');
  const count = Math.min(options.images, test.count);
  const set = { ...test, channels: 1, classes: [], source: 'fashion-mnist test' };
  const input = imageInput(set, 0, count, packageImageInput(pkg, set));
  const dir = mkdtempSync(join(tmpdir(), 'whittle-bit-exact-'));
  try {
    const inputFile = join(dir, 'input.f32');
    writeFileSync(inputFile, new Uint8Array(input.buffer, input.byteOffset, input.byteLength));
    const runs: [string, PackageOutputs][] = [['this machine', packageOutputs(pkg, input, count)]];
    for (const cls of options.classes)
      runs.push([cls.name, await runOnDevice(cls, packagePath, inputFile, count, dir)]);
    const host = runs[0]![1];
    const classes = host.raw.length / count;
    return {
      images: count,
      packageId: pkg.manifest.model.id,
      devices: runs.map(([device, o]) => ({
        ...o,
        device,
        top1Differences: differingImages(o.top1, host.top1, 1),
        rawDifferences: o.raw.length === host.raw.length ? differingImages(o.raw, host.raw, classes) : count,
        correct: o.top1.reduce((n, c, i) => n + (c === test.labels[i] ? 1 : 0), 0),
      })),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The `arm-bit-exact` subcommand: one line per device; exit code 1 when any image differs. */
export async function armBitExactCommand(args: string[], machine: string): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { images: { type: 'string' }, classes: { type: 'string' }, json: { type: 'boolean' } },
  });
  const images = positiveInteger(values.images, 1000, '--images');
  const names = (values.classes ?? 'rpi4,armv7').split(',');
  const classes = names.map((name) => {
    if (!(name in DEVICE_CLASSES))
      throw new BenchArgumentError(
        `unknown device class "${name}"; expected ${Object.keys(DEVICE_CLASSES).join(', ')}`,
      );
    return DEVICE_CLASSES[name as DeviceClassName];
  });
  for (const cls of classes) {
    const skip = emulationSkipReason(cls);
    if (skip) {
      console.error(`arm-bit-exact: cannot emulate ${cls.name}: ${skip}`);
      return 1;
    }
  }
  const report = await compareAcrossDevices({ images, classes });
  const rows = report.devices.map((d) => ({
    device: d.device,
    arch: d.arch,
    isa: d.isa,
    seconds: Math.round(d.ms / 100) / 10,
    top1_differences: d.top1Differences,
    raw_int8_differences: d.rawDifferences,
    accuracy: d.correct / report.images,
  }));
  if (values.json)
    console.log(JSON.stringify({ machine, images: report.images, package: report.packageId, rows }));
  else {
    console.log(`arm-bit-exact: ${report.packageId} on ${report.images} Fashion-MNIST test images`);
    console.log(`machine: ${machine}`);
    for (const r of rows)
      console.log(
        `${r.device.padEnd(12)} ${r.arch.padEnd(5)} ${r.isa.padEnd(8)} ${String(r.seconds).padStart(6)} s  ` +
          `top-1 differences ${r.top1_differences}, raw int8 differences ${r.raw_int8_differences}, ` +
          `accuracy ${(100 * r.accuracy).toFixed(2)} %`,
      );
  }
  return rows.every((r) => r.top1_differences === 0 && r.raw_int8_differences === 0) ? 0 : 1;
}
