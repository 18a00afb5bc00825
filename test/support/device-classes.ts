// The device classes Whittle is built for, defined once: what each is, which CPU qemu-user emulates for it,
// and what the agent on it must report. The emulated-device fixture (emulated-device.ts) starts real ARM
// agents from these; a fleet simulator of hundreds of devices takes the few real ARM ones from here too.
import type { CpuFamily } from '../../agent/package/manifest.js';
import type { AddonArch } from '../../electron/core/provisioning/device-probe.js';
import type { Isa } from '../../native/index.js';
import { DEVICE_CLASS_CATALOG } from '../../optimize/latency/device-classes.js';

/** The boards' facts are the catalog's (optimize/latency/device-classes.ts). */
const {
  'raspberry-pi-3b': pi3,
  'raspberry-pi-4b': pi4,
  'raspberry-pi-5': pi5,
  'jetson-tk1': tk1,
} = DEVICE_CLASS_CATALOG;

/** Debian's architecture names, as scripts/arm-sysroot.sh takes them. */
export type DebianArch = 'arm64' | 'armhf';

export interface DeviceClass {
  name: DeviceClassName;
  /** The boards it stands for. */
  boards: string;
  /** The addon build it loads (build/addon/<addonArch>) and the agent bundle's arch. */
  addonArch: AddonArch;
  /** The sysroot it runs in (build/sysroot/<debianArch>). */
  debianArch: DebianArch;
  /** The qemu-user binary (Debian package qemu-user-static) and its -cpu model. */
  qemu: 'qemu-aarch64-static' | 'qemu-arm-static';
  qemuCpu: string;
  /** What the agent must report: process.arch, the package CPU family it accepts, the addon's path. */
  processArch: 'arm64' | 'arm';
  cpuFamily: CpuFamily;
  isa: Isa;
}

export const DEVICE_CLASSES = {
  rpi3: {
    name: 'rpi3',
    boards: 'Raspberry Pi 3 (Cortex-A53, AArch64)',
    addonArch: 'arm64',
    debianArch: 'arm64',
    qemu: 'qemu-aarch64-static',
    qemuCpu: 'cortex-a53',
    processArch: 'arm64',
    cpuFamily: pi3.cpuFamily,
    isa: pi3.isa,
  },
  rpi4: {
    name: 'rpi4',
    boards: 'Raspberry Pi 4, Jetson Nano (Cortex-A72 / A57, AArch64)',
    addonArch: 'arm64',
    debianArch: 'arm64',
    qemu: 'qemu-aarch64-static',
    qemuCpu: 'cortex-a72',
    processArch: 'arm64',
    cpuFamily: pi4.cpuFamily,
    isa: pi4.isa,
  },
  rpi5: {
    name: 'rpi5',
    boards: 'Raspberry Pi 5, Jetson Orin (Cortex-A76 / A78, AArch64 with dot product)',
    addonArch: 'arm64',
    debianArch: 'arm64',
    qemu: 'qemu-aarch64-static',
    qemuCpu: 'cortex-a76',
    processArch: 'arm64',
    cpuFamily: pi5.cpuFamily,
    isa: pi5.isa,
  },
  armv7: {
    name: 'armv7',
    boards: 'Jetson TK1-class 32-bit boards, Raspberry Pi OS 32-bit (Cortex-A7, ARMv7 with NEON)',
    addonArch: 'armv7',
    debianArch: 'armhf',
    qemu: 'qemu-arm-static',
    qemuCpu: 'cortex-a7',
    processArch: 'arm',
    cpuFamily: tk1.cpuFamily,
    isa: tk1.isa,
  },
} as const satisfies Record<string, Omit<DeviceClass, 'name'> & { name: string }>;

export type DeviceClassName = keyof typeof DEVICE_CLASSES;

export function deviceClass(name: DeviceClassName): DeviceClass {
  return DEVICE_CLASSES[name];
}
