// What the agent tells the manager about the machine it runs on, taken from what this process can know
// for itself: process.arch (the CPU its code runs on) and the native addon's own CPU feature detection.
// The kernel's view (os.cpus(), /proc/cpuinfo, `uname -m` run as a child) is used only where it describes
// the same CPU: under user-mode emulation (qemu-user running an ARM Node on an x86 host) the kernel
// describes the host, so its CPU model would be a wrong fact about the device.
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

import { cpuFeatures } from '../../native/index.js';
import type { DeviceInfo } from '../protocol/messages.js';

export type DeviceFacts = Pick<
  DeviceInfo,
  'arch' | 'platform' | 'cpuModel' | 'cpus' | 'memTotalBytes' | 'isa' | 'cpuFeatures'
>;

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

/** The CPU model to report: the kernel's when it describes this process's CPU family, otherwise (an
 * emulator on another machine) "<arch> (emulated on <host model>)". */
export function cpuModelFact(arch: string, kernelModel: string | undefined, cpuinfo: string): string {
  const model = kernelModel?.trim() || 'unknown';
  const kernel = kernelCpuFamily(cpuinfo);
  const own = archFamily(arch);
  if (kernel === 'unknown' || own === 'unknown' || kernel === own) return model;
  return `${arch} (emulated on ${model})`.slice(0, 255);
}

/** The addon's kernel path and detected features; nothing when the addon cannot load (the agent then
 * runs the reference operators, and says so in its log). */
function addonFacts(): Pick<DeviceFacts, 'isa' | 'cpuFeatures'> {
  try {
    const f = cpuFeatures();
    const features = Object.entries(f.features)
      .filter(([, present]) => present)
      .map(([name]) => name);
    return { isa: f.selected, cpuFeatures: features };
  } catch {
    return {};
  }
}

export function deviceFacts(): DeviceFacts {
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // Not Linux, or /proc not mounted: the kernel's model is then taken as it is.
  }
  return {
    arch: process.arch,
    platform: process.platform,
    cpuModel: cpuModelFact(process.arch, cpus()[0]?.model, cpuinfo),
    // Under qemu-user these are the host's cores, which the emulated threads do run on.
    cpus: cpus().length,
    memTotalBytes: totalmem(),
    ...addonFacts(),
  };
}
