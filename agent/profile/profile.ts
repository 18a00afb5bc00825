// A device's profile: the one versioned description of the machine the agent runs on (issue 16). The agent
// collects it (`whittle-agent profile --json`, and on the manager's request over the link); the status
// message's device facts and the SSH probe's parsing come from here, so each fact is read in one place.
//
// Every fact comes from what this process can know for itself: process.arch, the native addon's own CPU
// feature detection and build hash, and the kernel's files. A source that is absent (containers hide
// /sys, qemu-user's kernel describes the host) gives null or an empty list, never a wrong number: under
// user-mode emulation (an ARM Node on an x86 host) the kernel's CPU model, frequencies and caches are the
// host's, so the model says so and the frequencies and caches are left out.
import { readdirSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { cpus, freemem, hostname, release, totalmem, version } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { addonBuildHash, cpuFeatures } from '../../native/index.js';
import { readZoneCelsius, THERMAL_ROOT } from '../telemetry/temperature.js';
import {
  type CacheInfo,
  type DeviceProfile,
  parseDeviceProfile,
  PROFILE_VERSION,
  type ThermalZone,
} from './profile-schema.js';

export {
  type CacheInfo,
  CacheSchema,
  type DeviceProfile,
  DeviceProfileError,
  DeviceProfileSchema,
  parseDeviceProfile,
  PROFILE_VERSION,
  type ThermalZone,
  ThermalZoneSchema,
} from './profile-schema.js';

// ---- Pure parsers of the kernel's texts (the SSH probe uses them too) ----

/** The CPU family a /proc/cpuinfo text describes: x86 kernels list `flags`, ARM kernels `Features` and
 * `CPU implementer`. 'unknown' for anything else (or no text). */
export function kernelCpuFamily(cpuinfo: string): 'x86' | 'arm' | 'unknown' {
  if (/^(vendor_id|flags)\s*:/m.test(cpuinfo)) return 'x86';
  if (/^(CPU implementer|Features)\s*:/m.test(cpuinfo)) return 'arm';
  return 'unknown';
}

/** The family of a process.arch value, in kernelCpuFamily's terms. */
function archFamily(arch: string): 'x86' | 'arm' | 'unknown' {
  if (arch === 'x64' || arch === 'ia32') return 'x86';
  if (arch === 'arm' || arch === 'arm64') return 'arm';
  return 'unknown';
}

/** Whether the kernel's cpuinfo describes another CPU family than a process of `arch` runs on. */
export function emulatedOn(arch: string, cpuinfo: string): boolean {
  const kernel = kernelCpuFamily(cpuinfo);
  const own = archFamily(arch);
  return kernel !== 'unknown' && own !== 'unknown' && kernel !== own;
}

/** The CPU model to report: the kernel's when it describes this process's CPU family, otherwise (an
 * emulator on another machine) "<arch> (emulated on <host model>)". */
export function cpuModelFact(arch: string, kernelModel: string | undefined, cpuinfo: string): string {
  const model = kernelModel?.trim() || 'unknown';
  if (!emulatedOn(arch, cpuinfo)) return model;
  return `${arch} (emulated on ${model})`.slice(0, 255);
}

/** The fields of an /etc/os-release text (KEY=value, quotes removed). */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) fields[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return fields;
}

/** The operating system's name in os-release fields: PRETTY_NAME, else NAME; null without either. */
export function osName(fields: Record<string, string>): string | null {
  return fields.PRETTY_NAME ?? fields.NAME ?? null;
}

/** A /proc/meminfo field in bytes (the kernel writes kB); null when absent. */
export function meminfoBytes(text: string, field: string): number | null {
  const m = new RegExp(`^${field}:\\s*(\\d+)\\s*kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

/** Whether a path names a V4L2 device node (/dev/videoN). */
export function isVideoDevicePath(path: string): boolean {
  return /^\/dev\/video\d+$/.test(path);
}

/** Bytes of a sysfs cache size: "32K", "1024K", "8M", or a plain number. */
export function parseCacheSize(text: string): number | null {
  const m = /^(\d+)\s*([KMG]?)$/i.exec(text.trim());
  if (!m) return null;
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * unit;
}

/** How many CPUs a kernel CPU list names: "0-3,6" is 5; null for a malformed list. */
export function cpuListCount(text: string): number | null {
  let count = 0;
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return null;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) return null;
    count += to - from + 1;
  }
  return count;
}

// ---- Collection ----

export interface CollectOptions {
  /** The directory whose free space the profile reports: the agent's state dir (default: the working
   * directory). */
  dataDir?: string;
  /** Where the kernel's files are read from (default /): tests point it at a fake tree. */
  root?: string;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** Sorted by the number in the name: cpu2 before cpu10. */
function byNumber(pattern: RegExp, names: string[]): string[] {
  return names
    .filter((n) => pattern.test(n))
    .sort((a, b) => Number(/\d+$/.exec(a)![0]) - Number(/\d+$/.exec(b)![0]));
}

/** Each CPU's value of a cpufreq file, kHz; null unless every CPU has a readable one. */
function cpuFrequencies(cpuRoot: string, cpuNames: string[], file: string): number[] | null {
  if (cpuNames.length === 0) return null;
  const values: number[] = [];
  for (const name of cpuNames) {
    const text = readText(join(cpuRoot, name, 'cpufreq', file));
    const khz = text === null ? NaN : Number(text.trim());
    if (!Number.isInteger(khz) || khz < 0) return null;
    values.push(khz);
  }
  return values;
}

function cpu0Caches(cpuRoot: string): CacheInfo[] {
  const dir = join(cpuRoot, 'cpu0', 'cache');
  const caches: CacheInfo[] = [];
  for (const index of byNumber(/^index\d+$/, listDir(dir))) {
    const field = (name: string): string | null => readText(join(dir, index, name))?.trim() ?? null;
    const level = Number(field('level'));
    const size = parseCacheSize(field('size') ?? '');
    const shared = cpuListCount(field('shared_cpu_list') ?? '');
    const type = field('type');
    if (!Number.isInteger(level) || level < 1 || size === null || shared === null || type === null) continue;
    caches.push({ level, type, size_bytes: size, shared_cpus: Math.max(1, shared) });
  }
  return caches;
}

function thermalZoneFacts(thermalRoot: string): ThermalZone[] {
  return byNumber(/^thermal_zone\d+$/, listDir(thermalRoot)).map((zone) => ({
    zone,
    type: readText(join(thermalRoot, zone, 'type'))?.trim() || null,
    temp_c: readZoneCelsius(join(thermalRoot, zone, 'temp')) ?? null,
  }));
}

function videoDevices(devRoot: string): string[] {
  return byNumber(/^video\d+$/, listDir(devRoot)).filter((name) => {
    try {
      return statSync(join(devRoot, name)).isCharacterDevice();
    } catch {
      return false;
    }
  });
}

/** The addon's kernel path, detected features and build hash; nulls when the addon cannot load. */
function addonFacts(): { isa: string | null; features: string[]; buildHash: string | null } {
  try {
    const f = cpuFeatures();
    const features = Object.entries(f.features)
      .filter(([, present]) => present)
      .map(([name]) => name);
    return { isa: f.selected, features, buildHash: addonBuildHash() };
  } catch {
    return { isa: null, features: [], buildHash: null };
  }
}

/** Free bytes of the file system a directory is (or will be, once created) on: its nearest existing
 * ancestor's; null when none can be read. */
function storageFree(path: string): number | null {
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    try {
      const s = statfsSync(dir);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      if (dir === dirname(dir)) return null;
    }
  }
}

/** The profile of the machine this process runs on. */
export function collectDeviceProfile(options: CollectOptions = {}): DeviceProfile {
  const root = options.root ?? '/';
  const cpuinfo = readText(join(root, 'proc/cpuinfo')) ?? '';
  const meminfo = readText(join(root, 'proc/meminfo')) ?? '';
  const emulated = emulatedOn(process.arch, cpuinfo);
  const cpuRoot = join(root, 'sys/devices/system/cpu');
  const cpuNames = byNumber(/^cpu\d+$/, listDir(cpuRoot));
  const addon = addonFacts();
  const osFields = parseOsRelease(readText(join(root, 'etc/os-release')) ?? '');
  const dataDir = options.dataDir ?? process.cwd();
  const profile: DeviceProfile = {
    profile_version: PROFILE_VERSION,
    collected_at: Date.now(),
    hostname: hostname().slice(0, 255),
    cpu: {
      model: cpuModelFact(process.arch, cpus()[0]?.model, cpuinfo),
      cores: Math.max(1, cpus().length),
      emulated,
      isa_features: addon.features,
      // The host's clocks and caches under emulation are not this device's: left out.
      freq_khz: {
        cur: emulated ? null : cpuFrequencies(cpuRoot, cpuNames, 'scaling_cur_freq'),
        max: emulated ? null : cpuFrequencies(cpuRoot, cpuNames, 'cpuinfo_max_freq'),
      },
      caches: emulated ? [] : cpu0Caches(cpuRoot),
    },
    memory: {
      total_bytes: totalmem(),
      // MemAvailable counts reclaimable caches, which a model can have; os.freemem() where it is absent.
      free_bytes: meminfoBytes(meminfo, 'MemAvailable') ?? freemem(),
    },
    storage: { free_bytes: storageFree(dataDir), path: dataDir },
    thermal: thermalZoneFacts(root === '/' ? THERMAL_ROOT : join(root, 'sys/class/thermal')),
    os: {
      platform: process.platform,
      arch: process.arch,
      release: release().slice(0, 255),
      kernel: version().slice(0, 255),
      name: osName(osFields)?.slice(0, 255) ?? null,
    },
    node_version: process.versions.node,
    cameras: videoDevices(join(root, 'dev')).map((name) => `/dev/${name}`),
    kernels: { isa: addon.isa, build_hash: addon.buildHash },
  };
  return parseDeviceProfile(profile);
}

/** A few lines a person reads: `whittle-agent profile` and `whittle device profile ID`. */
export function formatDeviceProfile(p: DeviceProfile): string {
  const mib = (bytes: number | null): string => (bytes === null ? '?' : `${Math.round(bytes / 2 ** 20)} MiB`);
  const mhz = (khz: number[] | null): string =>
    khz === null ? 'unknown' : [...new Set(khz.map((k) => Math.round(k / 1000)))].join('/') + ' MHz';
  const caches = p.cpu.caches.map((c) => `L${c.level} ${c.type} ${c.size_bytes / 1024} KiB`).join(', ');
  const temps = p.thermal
    .map((t) => `${t.type ?? t.zone} ${t.temp_c === null ? '?' : `${t.temp_c} °C`}`)
    .join(', ');
  return [
    `host      ${p.hostname} (${p.os.name ?? p.os.platform}, kernel ${p.os.release}, Node ${p.node_version})`,
    `cpu       ${p.cpu.model}, ${p.cpu.cores} cores, ${p.os.arch}${p.cpu.emulated ? ' (emulated)' : ''}`,
    `clock     now ${mhz(p.cpu.freq_khz.cur)}, max ${mhz(p.cpu.freq_khz.max)}`,
    `caches    ${caches || 'unknown'}`,
    `kernels   ${p.kernels.isa ?? 'none (the addon did not load)'}` +
      (p.kernels.build_hash ? `, build ${p.kernels.build_hash}` : '') +
      (p.cpu.isa_features.length ? ` [${p.cpu.isa_features.join(' ')}]` : ''),
    `memory    ${mib(p.memory.free_bytes)} free of ${mib(p.memory.total_bytes)}`,
    `storage   ${mib(p.storage.free_bytes)} free at ${p.storage.path}`,
    `thermal   ${temps || 'no thermal zones'}`,
    `cameras   ${p.cameras.join(', ') || 'none'}`,
  ].join('\n');
}
