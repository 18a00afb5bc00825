// What the manager learns about a device before installing: CPU, OS, Node.js, memory, cameras, and how
// the agent can run there (systemd and root, or a supervised process of the login user). One shell
// script runs on the device; its sectioned output is parsed by a pure function. The probe runs before the
// agent exists, so it gathers what provisioning needs itself, but reads the kernel's texts with the device
// profile's parsers (agent/profile/profile.ts); the full profile comes from the agent once it runs.
import { isVideoDevicePath, meminfoBytes, osName, parseOsRelease } from '../../../agent/profile/profile.js';
import { DeviceUnsupportedError } from './errors.js';

/** CPUs Whittle ships the native addon for. */
export type AddonArch = 'x64' | 'arm64' | 'armv7';

export interface DeviceProbe {
  /** `uname -m` as printed. */
  machine: string;
  arch: AddonArch;
  /** PRETTY_NAME of /etc/os-release, or "unknown". */
  os: string;
  osId: string;
  /** `node --version` without the v, or null when Node.js is missing. */
  nodeVersion: string | null;
  cpus: number;
  memTotalBytes: number;
  /** V4L2 capture devices, e.g. /dev/video0. */
  cameras: string[];
  hostname: string;
  uid: number;
  home: string;
  /** systemd is PID 1 (/run/systemd/system exists). */
  systemd: boolean;
  /** `sudo -n true` succeeds: root commands are possible without a password prompt. */
  sudo: boolean;
  /** A C and C++ compiler and Node's headers: the addon can be built on the device. */
  canBuildAddon: boolean;
  ffmpeg: boolean;
  /** The manager's address as the device sees it (first word of $SSH_CONNECTION), when known. */
  managerAddress: string | null;
}

/** Runs with /bin/sh on the device; every section starts with a line "@@name". */
export const PROBE_SCRIPT = [
  'echo @@machine; uname -m',
  'echo @@os; cat /etc/os-release 2>/dev/null',
  // Node's own arch decides the addon: a 32-bit userland on a 64-bit kernel (uname -m aarch64), or a
  // Node run by an emulator, needs the addon of the Node that loads it, not of the kernel.
  `echo @@node; node -p 'process.version + " " + process.arch' 2>/dev/null || node --version 2>/dev/null`,
  'echo @@cpus; getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null',
  'echo @@mem; grep MemTotal /proc/meminfo 2>/dev/null',
  'echo @@cameras; for d in /dev/video*; do [ -c "$d" ] && echo "$d"; done',
  'echo @@hostname; hostname 2>/dev/null || cat /etc/hostname',
  'echo @@uid; id -u',
  'echo @@home; echo "$HOME"',
  'echo @@systemd; [ -d /run/systemd/system ] && echo yes || echo no',
  'echo @@sudo; if [ "$(id -u)" = 0 ]; then echo yes; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then echo yes; else echo no; fi',
  'echo @@build; n=$(command -v node 2>/dev/null); p=${n%/bin/node}; if command -v gcc >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 && { [ -f "$p/include/node/node_api.h" ] || [ -f /usr/include/node/node_api.h ]; }; then echo yes; else echo no; fi',
  'echo @@ffmpeg; command -v ffmpeg >/dev/null 2>&1 && echo yes || echo no',
  'echo @@ssh; echo "$SSH_CONNECTION"',
  'echo @@end',
].join('\n');

function sections(output: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of output.split('\n')) {
    const m = /^@@([a-z]+)$/.exec(line.trim());
    if (m) {
      current = [];
      map.set(m[1]!, current);
    } else if (current && line.trim()) current.push(line.trim());
  }
  return map;
}

export function archOf(machine: string): AddonArch | null {
  switch (machine) {
    case 'x86_64':
    case 'amd64':
      return 'x64';
    case 'aarch64':
    case 'arm64':
      return 'arm64';
    case 'armv7l':
    case 'armv8l': // a 32-bit userland on a 64-bit core (Raspberry Pi OS 32-bit on a Pi 4)
      return 'armv7';
    default:
      return null;
  }
}

/** The addon arch of a process.arch value; null for none Whittle builds (or no value). */
function nodeArchOf(processArch: string | undefined): AddonArch | null {
  if (processArch === 'x64' || processArch === 'arm64') return processArch;
  return processArch === 'arm' ? 'armv7' : null;
}

/** Parses PROBE_SCRIPT's output. Throws DeviceUnsupportedError for a CPU Whittle has no addon for. */
export function parseProbe(output: string, host: string): DeviceProbe {
  const s = sections(output);
  if (!s.has('end'))
    throw new DeviceUnsupportedError(
      `the probe of ${host} did not run to its end; is /bin/sh a POSIX shell?`,
    );
  const first = (name: string): string => s.get(name)?.[0] ?? '';
  const machine = first('machine');
  const arch = nodeArchOf(first('node').split(/\s+/)[1]) ?? archOf(machine);
  if (!arch)
    throw new DeviceUnsupportedError(
      `${host} has a ${machine || 'unknown'} CPU; Whittle's agent runs on x86_64, aarch64 and armv7l`,
    );
  const os = parseOsRelease((s.get('os') ?? []).join('\n'));
  const node = /^v(\d+\.\d+\.\d+)/.exec(first('node'));
  const sshWords = first('ssh').split(/\s+/);
  return {
    machine,
    arch,
    os: osName(os) ?? 'unknown',
    osId: os.ID ?? 'unknown',
    nodeVersion: node ? node[1]! : null,
    cpus: Number(first('cpus')) || 1,
    memTotalBytes: meminfoBytes(first('mem'), 'MemTotal') ?? 0,
    cameras: (s.get('cameras') ?? []).filter(isVideoDevicePath),
    hostname: first('hostname') || host,
    uid: Number(first('uid')),
    home: first('home'),
    systemd: first('systemd') === 'yes',
    sudo: first('sudo') === 'yes',
    canBuildAddon: first('build') === 'yes',
    ffmpeg: first('ffmpeg') === 'yes',
    managerAddress: sshWords.length >= 4 && sshWords[0] ? sshWords[0] : null,
  };
}

/** The oldest Node.js the agent bundle targets. */
export const MIN_NODE_MAJOR = 18;

/** Refuses a device the agent cannot run on, saying what to install. */
export function checkRunnable(probe: DeviceProbe, host: string): void {
  if (!probe.nodeVersion)
    throw new DeviceUnsupportedError(
      `${host} has no Node.js (node --version failed); install Node.js ${MIN_NODE_MAJOR} or newer ` +
        `(Debian/Raspberry Pi OS: apt-get install nodejs) and add the device again`,
    );
  const major = Number(probe.nodeVersion.split('.')[0]);
  if (major < MIN_NODE_MAJOR)
    throw new DeviceUnsupportedError(
      `${host} has Node.js ${probe.nodeVersion}; the agent needs ${MIN_NODE_MAJOR} or newer`,
    );
  if (!probe.ffmpeg)
    throw new DeviceUnsupportedError(
      `${host} has no ffmpeg, which the agent reads the camera with; install it (apt-get install ffmpeg)`,
    );
}
