// The device classes (issue 16 point 3): the boards Whittle targets, with the facts a plan needs before a
// device has been measured — cores, clock, ISA, memory, the core's vector throughput — and an estimated
// latency table derived from a table measured on another machine. This is the one catalog of board facts:
// the qemu fixture's emulated classes (test/support/device-classes.ts) take their boards' ISA and CPU family
// from here.
//
// How a table is estimated for a class (estimateTable), entry by entry from a measured reference table:
//   - compute-bound entries (conv2d, fully_connected) scale by the ratio of MAC throughput, host over target:
//     clock x MACs per cycle of the core's vector unit (f32 for the float kernels and the formats expanded to
//     them, int8 for int8 and fixed8 layers, where a dot-product ISA — neondot, VNNI — multiplies it) x the
//     threads the table was measured with (at most the class's cores);
//   - everything else (elementwise, copies, the edges, plan calls, TypeScript steps) scales by scalar
//     throughput, clock x a per-core instructions-per-cycle figure: these are memory- and call-bound.
// MACs per cycle are the cores' FMA widths (e.g. Cortex-A72: one 128-bit FMA pipe, 4 f32 MACs a cycle;
// Cortex-A76: two, 8); they are priors, not measurements. A device's own measured table
// replaces its class's estimate as soon as it exists (latencyTableFor).
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

import type { CpuFamily } from '../../agent/package/manifest.js';
import {
  type LatencyEntry,
  type LatencyTable,
  PASSES,
  ROUNDS,
  SAMPLE_MS,
} from '../../agent/profile/latency-table.js';
import type { Isa } from '../../native/index.js';
import { whittleError } from '../../native/whittle-error.js';

/** A device-class name the catalog does not know. */
export class DeviceClassError extends whittleError('DeviceClassError', 'unknown-device-class') {}

/** A core's throughput per cycle: f32 and int8 MACs of its vector unit, scalar instructions. */
export interface CoreThroughput {
  f32MacsPerCycle: number;
  int8MacsPerCycle: number;
  ipc: number;
}

export const CORES = {
  'cortex-a7': { f32MacsPerCycle: 1, int8MacsPerCycle: 4, ipc: 0.6 },
  'cortex-a15': { f32MacsPerCycle: 2, int8MacsPerCycle: 8, ipc: 1.2 },
  'cortex-a53': { f32MacsPerCycle: 2, int8MacsPerCycle: 8, ipc: 0.8 },
  'cortex-a57': { f32MacsPerCycle: 4, int8MacsPerCycle: 8, ipc: 1.3 },
  'cortex-a72': { f32MacsPerCycle: 4, int8MacsPerCycle: 8, ipc: 1.5 },
  // sdot: 16 int8 MACs per 128-bit instruction, two pipes.
  'cortex-a76': { f32MacsPerCycle: 8, int8MacsPerCycle: 32, ipc: 2.2 },
  'cortex-a78ae': { f32MacsPerCycle: 8, int8MacsPerCycle: 32, ipc: 2.4 },
  // Intel N100: AVX2 on two 128-bit FMA pipes, AVX-VNNI.
  gracemont: { f32MacsPerCycle: 8, int8MacsPerCycle: 32, ipc: 2.2 },
} as const satisfies Record<string, CoreThroughput>;
export type CoreName = keyof typeof CORES;

export interface DeviceClassInfo {
  name: string;
  title: string;
  cores: number;
  /** The big cores' clock (MHz). */
  clockMhz: number;
  core: CoreName;
  /** The kernel path the addon selects there. */
  isa: Isa;
  cpuFamily: CpuFamily;
  memoryBytes: number;
}

const GB = 1024 ** 3;

export const DEVICE_CLASS_CATALOG = {
  'raspberry-pi-3b': {
    name: 'raspberry-pi-3b',
    title: 'Raspberry Pi 3 Model B (4x Cortex-A53 1.2 GHz, 1 GB)',
    cores: 4,
    clockMhz: 1200,
    core: 'cortex-a53',
    isa: 'neon',
    cpuFamily: 'aarch64',
    memoryBytes: 1 * GB,
  },
  'raspberry-pi-4b': {
    name: 'raspberry-pi-4b',
    title: 'Raspberry Pi 4 Model B (4x Cortex-A72 1.5 GHz, 4 GB)',
    cores: 4,
    clockMhz: 1500,
    core: 'cortex-a72',
    isa: 'neon',
    cpuFamily: 'aarch64',
    memoryBytes: 4 * GB,
  },
  'raspberry-pi-5': {
    name: 'raspberry-pi-5',
    title: 'Raspberry Pi 5 (4x Cortex-A76 2.4 GHz, 8 GB)',
    cores: 4,
    clockMhz: 2400,
    core: 'cortex-a76',
    isa: 'neondot',
    cpuFamily: 'aarch64',
    memoryBytes: 8 * GB,
  },
  'jetson-tk1': {
    name: 'jetson-tk1',
    title: 'Jetson TK1 (4x Cortex-A15 2.3 GHz, 32-bit, 2 GB)',
    cores: 4,
    clockMhz: 2300,
    core: 'cortex-a15',
    isa: 'neon',
    cpuFamily: 'armv7',
    memoryBytes: 2 * GB,
  },
  'jetson-nano': {
    name: 'jetson-nano',
    title: 'Jetson Nano (4x Cortex-A57 1.43 GHz, 4 GB)',
    cores: 4,
    clockMhz: 1430,
    core: 'cortex-a57',
    isa: 'neon',
    cpuFamily: 'aarch64',
    memoryBytes: 4 * GB,
  },
  'jetson-orin-nano': {
    name: 'jetson-orin-nano',
    title: 'Jetson Orin Nano (6x Cortex-A78AE 1.5 GHz, 8 GB)',
    cores: 6,
    clockMhz: 1500,
    core: 'cortex-a78ae',
    isa: 'neondot',
    cpuFamily: 'aarch64',
    memoryBytes: 8 * GB,
  },
  'android-termux': {
    name: 'android-termux',
    title: 'Android phone under Termux (mid-range: big Cortex-A76 cores at 2.4 GHz, 6 GB)',
    cores: 8,
    clockMhz: 2400,
    core: 'cortex-a76',
    isa: 'neondot',
    cpuFamily: 'aarch64',
    memoryBytes: 6 * GB,
  },
  'x86-mini-pc': {
    name: 'x86-mini-pc',
    title: 'x86 mini-PC (Intel N100: 4x Gracemont 3.4 GHz, AVX2, 16 GB)',
    cores: 4,
    clockMhz: 3400,
    core: 'gracemont',
    isa: 'avx2',
    cpuFamily: 'x86_64',
    memoryBytes: 16 * GB,
  },
} as const satisfies Record<string, DeviceClassInfo>;
export type DeviceClassName = keyof typeof DEVICE_CLASS_CATALOG;

export const DEVICE_CLASS_NAMES = Object.keys(DEVICE_CLASS_CATALOG) as DeviceClassName[];

export function deviceClassInfo(name: string): DeviceClassInfo {
  if (!(name in DEVICE_CLASS_CATALOG))
    throw new DeviceClassError(
      `unknown device class "${name}"; the classes are ${DEVICE_CLASS_NAMES.join(', ')}`,
    );
  return DEVICE_CLASS_CATALOG[name as DeviceClassName];
}

/** The throughput of the machine a table was measured on, from its kernel path (the ISA's vector width) and
 * clock: what estimateTable divides by. */
export function isaThroughput(isa: string): CoreThroughput {
  if (isa.startsWith('avx512'))
    return { f32MacsPerCycle: 32, int8MacsPerCycle: isa === 'avx512' ? 64 : 128, ipc: 2.5 };
  if (isa === 'avx2') return { f32MacsPerCycle: 16, int8MacsPerCycle: 32, ipc: 2.5 };
  if (isa === 'neondot') return CORES['cortex-a76'];
  if (isa === 'neon') return CORES['cortex-a72'];
  return { f32MacsPerCycle: 1, int8MacsPerCycle: 1, ipc: 1.5 };
}

/** The reference machine's clock (MHz): the table's own clock readings, else this machine's (os.cpus, or
 * /proc/cpuinfo's "cpu MHz" where the kernel has no cpufreq). */
function referenceClockMhz(table: LatencyTable): number {
  const clocks = [...table.conditions.before.freq_khz, ...table.conditions.after.freq_khz];
  if (clocks.length > 0) return Math.max(...clocks) / 1000;
  const speed = Math.max(0, ...cpus().map((c) => c.speed));
  if (speed > 0) return speed;
  let info = '';
  try {
    info = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // No /proc: refused below.
  }
  const mhz = Math.max(0, ...[...info.matchAll(/^cpu MHz\s*:\s*([\d.]+)/gm)].map((m) => Number(m[1])));
  if (mhz > 0) return mhz;
  throw new DeviceClassError(
    'the reference table records no clock and this machine reports none: pass the reference clock',
  );
}

const INT8_FORMATS = new Set(['int8', 'fixed8']);

/** How much slower the class runs each entry than the reference machine (target time / reference time). */
function slowdown(
  entry: LatencyEntry,
  reference: { clockMhz: number; throughput: CoreThroughput; threads: number },
  target: DeviceClassInfo,
): number {
  const core = CORES[target.core];
  const clocks = reference.clockMhz / target.clockMhz;
  if (entry.shape.op === 'conv2d' || entry.shape.op === 'fully_connected') {
    const int8 = INT8_FORMATS.has(entry.format);
    const host = int8 ? reference.throughput.int8MacsPerCycle : reference.throughput.f32MacsPerCycle;
    const device = int8 ? core.int8MacsPerCycle : core.f32MacsPerCycle;
    const threads = Math.min(reference.threads, target.cores) / reference.threads;
    return (clocks * host) / (device * threads);
  }
  return (clocks * reference.throughput.ipc) / core.ipc;
}

/** The class's estimated table, from a measured one (see the file comment). Marked by its build_hash
 * (`estimate:` and the reference's) and the class's ISA. */
export function estimateTable(
  reference: LatencyTable,
  target: DeviceClassInfo,
  referenceClock = referenceClockMhz(reference),
): LatencyTable {
  const ref = {
    clockMhz: referenceClock,
    throughput: isaThroughput(reference.isa),
    threads: reference.threads,
  };
  return {
    ...reference,
    build_hash: `estimate:${reference.build_hash}`.slice(0, 64),
    isa: target.isa,
    threads: Math.min(reference.threads, target.cores),
    conditions: { before: { temps_c: [], freq_khz: [] }, after: { temps_c: [], freq_khz: [] } },
    entries: reference.entries.map((e) => {
      const k = slowdown(e, ref, target);
      return { ...e, ms: e.ms * k, ...(e.block_ms ? { block_ms: e.block_ms.map((b) => b * k) } : {}) };
    }),
  };
}

/** Seconds of timing a measurement of `entries` spends: per entry PASSES blocks, each of 3 runs that set the
 * runs per sample, a warm-up sample and ROUNDS samples of at least SAMPLE_MS (measureLatencyTable). */
export function timingSeconds(entries: readonly LatencyEntry[]): number {
  return (
    (PASSES * entries.reduce((s, e) => s + 3 * e.ms + (ROUNDS + 1) * Math.max(SAMPLE_MS, e.ms), 0)) / 1000
  );
}

/** Seconds the class would take to measure `reference`'s grid: the timing at its estimated speeds, plus the
 * rest of the reference's measurement — building the grid's graphs, `cpuSeconds` of CPU less its own timing —
 * scaled by scalar throughput. */
export function estimateMeasurementSeconds(
  reference: LatencyTable,
  target: DeviceClassInfo,
  cpuSeconds: number,
): number {
  const build = Math.max(0, cpuSeconds - timingSeconds(reference.entries));
  const scalar =
    (referenceClockMhz(reference) * isaThroughput(reference.isa).ipc) /
    (target.clockMhz * CORES[target.core].ipc);
  return timingSeconds(estimateTable(reference, target).entries) + build * scalar;
}

/** The table to plan with for a device: its own measured table once complete, else its class's estimate
 * from the reference table. */
export function latencyTableFor(device: {
  measured?: LatencyTable | undefined;
  deviceClass: string;
  reference: LatencyTable;
}): { table: LatencyTable; source: 'measured' | 'estimated' } {
  if (device.measured?.complete === true) return { table: device.measured, source: 'measured' };
  return { table: estimateTable(device.reference, deviceClassInfo(device.deviceClass)), source: 'estimated' };
}
