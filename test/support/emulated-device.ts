// Emulated ARM devices for integration tests: Debian's own ARM Node (scripts/arm-sysroot.sh) run by
// qemu-user with the CPU of a device class, loading the real agent bundle (buildAgentBundle) and the
// cross-built addon, talking to a real manager. No binfmt is needed: the agent's only child, ffmpeg, is
// started by execve as this machine's own binary.
//
// Shared across a test file: each sysroot is checked once and each bundle built once per process (the
// cross-compile is incremental, a few seconds when nothing changed); the bundles are removed at exit.
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { AGENT_NODE_FLAGS } from '../../agent/config.js';
import { packageRoot } from '../../agent/package-root.js';
import type { Core } from '../../electron/core/core.js';
import { type AgentBundle, buildAgentBundle } from '../../electron/core/provisioning/agent-bundle.js';
import type { AddonArch } from '../../electron/core/provisioning/device-probe.js';
import { type AgentProcess, startAgentProcess } from '../electron/agent-process.js';
import type { DebianArch, DeviceClass } from './device-classes.js';

const CROSS_COMPILERS: Record<AddonArch, string> = {
  x64: 'g++',
  arm64: 'aarch64-linux-gnu-g++',
  armv7: 'arm-linux-gnueabihf-g++',
};

export function sysrootDir(arch: DebianArch): string {
  return join(packageRoot(), 'build', 'sysroot', arch);
}

const sysrootVerdicts = new Map<DebianArch, string | undefined>();

/** Why this class cannot be emulated here (qemu, sysroot or cross compiler missing), or undefined. The
 * sysroot is verified against its manifest, never built: scripts/setup.sh builds it once. */
export function emulationSkipReason(cls: DeviceClass): string | undefined {
  if (process.platform !== 'linux') return 'qemu-user emulation needs Linux';
  if (spawnSync('sh', ['-c', `command -v ${cls.qemu}`]).status !== 0)
    return `${cls.qemu} is missing (Debian package qemu-user-static)`;
  if (spawnSync('sh', ['-c', `command -v ${CROSS_COMPILERS[cls.addonArch]}`]).status !== 0)
    return `${CROSS_COMPILERS[cls.addonArch]} is missing: no ${cls.addonArch} addon can be built (see scripts/setup.sh)`;
  if (!sysrootVerdicts.has(cls.debianArch)) {
    const check = spawnSync(
      'bash',
      [join(packageRoot(), 'scripts', 'arm-sysroot.sh'), '--check', cls.debianArch],
      {
        encoding: 'utf8',
      },
    );
    sysrootVerdicts.set(
      cls.debianArch,
      check.status === 0
        ? undefined
        : `no ${cls.debianArch} Node sysroot: ${check.stderr.trim().replace(/^arm-sysroot: /, '')}`,
    );
  }
  return sysrootVerdicts.get(cls.debianArch);
}

/** The command line that runs Node as this class's CPU: `qemu -cpu MODEL -L SYSROOT SYSROOT/usr/bin/node`. */
export function emulatedNode(cls: DeviceClass): string[] {
  const root = sysrootDir(cls.debianArch);
  return [cls.qemu, '-cpu', cls.qemuCpu, '-L', root, join(root, 'usr', 'bin', 'node')];
}

/** Writes an executable `node` at `path` that runs the emulated Node: a device's PATH shim. */
export function writeNodeShim(cls: DeviceClass, path: string): void {
  const quoted = emulatedNode(cls).map((w) => `'${w.replace(/'/g, `'\\''`)}'`);
  writeFileSync(path, `#!/bin/sh\n# ${cls.boards}, emulated by qemu-user\nexec ${quoted.join(' ')} "$@"\n`);
  chmodSync(path, 0o755);
}

const bundles = new Map<AddonArch, Promise<AgentBundle>>();

/** The agent bundle for this class's addon arch, built once per process (removed when it exits). */
export function emulatedBundle(cls: DeviceClass): Promise<AgentBundle> {
  let bundle = bundles.get(cls.addonArch);
  if (!bundle) {
    bundle = buildAgentBundle(cls.addonArch, false);
    bundles.set(cls.addonArch, bundle);
    bundle.then(
      (b) => process.once('exit', () => b.remove()),
      () => undefined,
    );
  }
  return bundle;
}

/** The bundle's app directory: its agent/cli.mjs, package.json and native addon. */
export function bundleAppDir(bundle: AgentBundle): string {
  return join(bundle.dir, 'app');
}

/** Starts the real agent of `cls` under qemu-user against `core` (credentials issued for deviceId). */
export async function startEmulatedAgent(
  core: Core,
  dir: string,
  cls: DeviceClass,
  deviceId: string,
  config: Record<string, unknown>,
  log: (line: string) => void,
): Promise<AgentProcess> {
  const bundle = await emulatedBundle(cls);
  return startAgentProcess(core, dir, deviceId, config, log, [
    ...emulatedNode(cls),
    ...AGENT_NODE_FLAGS,
    join(bundleAppDir(bundle), 'agent', 'cli.mjs'),
  ]);
}
