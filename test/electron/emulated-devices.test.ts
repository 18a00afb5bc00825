// Integration: Raspberry Pi-class devices in the suite. Real agents — Debian's ARM Node under qemu-user
// with the CPU of a device class, the agent bundle of buildAgentBundle and the cross-built addon — stream
// from ffmpeg's test camera to a real manager, take signed deployments, refuse a package for another CPU
// family with `wrong-cpu`, and come back on their previous model after a SIGKILL mid-deployment.
// Skips, saying why, only when qemu, a cross compiler or the sysroot (scripts/arm-sysroot.sh) is missing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { defaultModelPath } from '../../agent/config.js';
import type { CpuFamily } from '../../agent/package/manifest.js';
import type { StatsMessage } from '../../agent/protocol/messages.js';
import { type Core, startCore } from '../../electron/core/core.js';
import { ADDON_RELATIVE_PATH } from '../../electron/core/provisioning/agent-bundle.js';
import { managerSigningKeys, managerSigningPublicKey } from '../../electron/core/provisioning/signing-key.js';
import { rewritePackage } from '../agent/deploy/deploy-fixtures.js';
import { DEVICE_CLASSES, type DeviceClass } from '../support/device-classes.js';
import {
  bundleAppDir,
  emulatedBundle,
  emulatedNode,
  emulationSkipReason,
  startEmulatedAgent,
} from '../support/emulated-device.js';
import { waitFor } from '../support/stack.js';
import type { AgentProcess } from './agent-process.js';

const execFileAsync = promisify(execFile);

/** The two devices that run whole agents: a 64-bit Pi 4 and a 32-bit ARMv7 board. */
const DEVICES = [DEVICE_CLASSES.rpi4, DEVICE_CLASSES.armv7] as const;
const ALL_CLASSES = Object.values(DEVICE_CLASSES);
/** The classes checked by their addon alone (rpi4 and armv7 report theirs through the agent). */
const OTHER_CLASSES = ALL_CLASSES.filter((cls) => !(DEVICES as readonly DeviceClass[]).includes(cls));

const skip = ALL_CLASSES.map(emulationSkipReason).find((reason) => reason !== undefined);
if (skip) console.log(`# skipping emulated ARM device tests: ${skip}`);

const idOf = (cls: DeviceClass): string => `emu-${cls.name}`;

describe('emulated ARM devices against a real manager', { skip: skip ?? false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-emulated-'));
  const logs: string[] = [];
  const log = (line: string): void => void logs.push(line);
  const agents = new Map<string, AgentProcess>();
  const startedAt = new Map<string, number>();
  let core: Core;
  let privateKey: ReturnType<typeof managerSigningKeys>['privateKey'];
  /** The package each device serves after the signed deployment: the kill test's "previous model". */
  const committed = new Map<string, string>();
  const fail = (err: Error): never => assert.fail(`${err.message}\n${logs.slice(-60).join('\n')}`);

  const start = async (cls: DeviceClass): Promise<void> => {
    startedAt.set(idOf(cls), Date.now());
    agents.set(
      idOf(cls),
      await startEmulatedAgent(
        core,
        dir,
        cls,
        idOf(cls),
        {
          stateDir: join(dir, `state-${cls.name}`),
          packageKey: managerSigningPublicKey(dir),
          camera: 'testsrc',
          fps: 30,
          snapshotSeconds: 2,
          reconnectMaxMs: 1000,
        },
        (line) => log(`[${cls.name}] ${line}`),
      ),
    );
  };

  /** The bundled LeNet-5 as package `id` version `version` for `cpuFamily`, signed by the manager. */
  const addPackage = (id: string, version: string, cpuFamily: CpuFamily = 'any'): string =>
    core.deployments.addPackage(
      rewritePackage(
        readFileSync(defaultModelPath()),
        (manifest) => {
          manifest.model = { id, version, name: id };
          manifest.target = { ...manifest.target, cpuFamily };
        },
        privateKey,
      ),
    ).pkg.sha256;

  const deployAndWait = async (sha: string, devices: string[], healthSeconds: number) => {
    const started = await core.deployments.deploy({ package: sha, devices, healthSeconds });
    return waitFor(`deployment ${started.id} to finish`, 120_000, () => {
      const view = core.deployments.get(started.id);
      return view?.finished ? view : undefined;
    }).catch(fail);
  };

  before(async () => {
    core = await startCore({ dataDir: dir, httpPort: 0, mqttPort: 0, mqttHost: '127.0.0.1', log });
    privateKey = managerSigningKeys(dir).privateKey;
    // Both bundles first (one cross-compile at a time), then both agents at once.
    for (const cls of DEVICES) await emulatedBundle(cls);
    await Promise.all(DEVICES.map(start));
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => a.stop()));
    await core?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an arm64 and an armv7 device come online with their arch and ISA and stream >= 25 fps', async (t) => {
    for (const cls of DEVICES) {
      const id = idOf(cls);
      const windows: StatsMessage[] = [];
      // Under emulation V8's first frames run cold (its JIT output is translated again by qemu): the
      // device must reach and hold the camera's rate, three windows in a row at >= 25 fps.
      const steady = await waitFor(`three windows at >= 25 fps from ${id}`, 180_000, () => {
        const d = core.registry.get(id);
        const s = d?.online ? d.stats : null;
        if (s && s.frames > 0 && windows.at(-1)?.seq !== s.seq) {
          if (windows.length === 0)
            t.diagnostic(
              `${cls.name}: first stats ${((Date.now() - startedAt.get(id)!) / 1000).toFixed(1)} s after spawn`,
            );
          windows.push(s);
        }
        const last = windows.slice(-3);
        return last.length === 3 && last.every((w) => w.fps >= 25) ? last : undefined;
      }).catch((err: Error) =>
        fail(new Error(`${err.message}; fps per window: ${windows.map((w) => w.fps.toFixed(1)).join(', ')}`)),
      );
      t.diagnostic(`${cls.name}: ${windows.length} windows to reach the camera's rate after the first stats`);
      const info = core.registry.get(id)!.info!;
      assert.equal(info.arch, cls.processArch);
      assert.equal(info.isa, cls.isa);
      assert.ok(info.cpuFeatures?.includes('neon'), JSON.stringify(info.cpuFeatures));
      // The kernel (and os.cpus()) describe this x86 machine, which the agent must not claim to be.
      if (process.arch === 'x64')
        assert.match(info.cpuModel, new RegExp(`^${cls.processArch} \\(emulated on `));
      const fps = steady.map((s) => s.fps).sort((a, b) => a - b)[1]!;
      for (const s of steady) assert.notEqual(s.rssBytes, 0, 'an unknown RSS is absent, not 0');
      const p50 = steady.map((s) => s.latencyMs.p50).sort((a, b) => a - b)[1]!;
      t.diagnostic(
        `${cls.name}: ${fps.toFixed(1)} fps, per-frame latency p50 ${p50.toFixed(2)} ms, rss ${steady[0]!.rssBytes ?? 'unknown'}`,
      );
    }
    await waitFor('a camera snapshot from each device', 30_000, () =>
      DEVICES.every((cls) => core.registry.snapshot(idOf(cls)) !== undefined) ? true : undefined,
    ).catch(fail);
  });

  test('the other device classes select their kernel path: neon on the A53, neondot on the A76', async () => {
    const seen = await Promise.all(
      OTHER_CLASSES.map(async (cls) => {
        const addon = join(bundleAppDir(await emulatedBundle(cls)), ADDON_RELATIVE_PATH);
        const [qemu, ...args] = emulatedNode(cls);
        const { stdout } = await execFileAsync(qemu!, [
          ...args,
          '-p',
          `process.arch + ' ' + require(${JSON.stringify(addon)}).cpuFeatures().selected`,
        ]);
        return `${cls.name} ${stdout.trim()}`;
      }),
    );
    assert.deepEqual(
      seen,
      OTHER_CLASSES.map((cls) => `${cls.name} ${cls.processArch} ${cls.isa}`),
    );
  });

  test('a signed deployment commits on both', async (t) => {
    const sha = addPackage('fashion-arm', '2');
    const began = Date.now();
    const done = await deployAndWait(sha, DEVICES.map(idOf), 2);
    t.diagnostic(`pending -> committed on both in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    for (const outcome of done.devices) {
      assert.equal(outcome.phase, 'committed', `${outcome.device}: ${outcome.code} ${outcome.reason}`);
      assert.equal(outcome.serving, sha);
      committed.set(outcome.device, sha);
    }
    await waitFor('both devices to announce the deployed model', 30_000, () =>
      DEVICES.every((cls) => core.registry.get(idOf(cls))?.info?.model.id === 'fashion-arm')
        ? true
        : undefined,
    ).catch(fail);
  });

  test('a package built for another CPU family is refused with wrong-cpu', async () => {
    const [arm64, armv7] = DEVICES;
    const outcomes = await Promise.all([
      deployAndWait(addPackage('fashion-x86', '3', 'x86_64'), [idOf(arm64)], 1),
      deployAndWait(addPackage('fashion-aarch64', '3', 'aarch64'), [idOf(armv7)], 1),
    ]);
    for (const view of outcomes) {
      const outcome = view.devices[0]!;
      assert.equal(outcome.code, 'wrong-cpu', `${outcome.device}: ${outcome.phase} ${outcome.reason}`);
      assert.equal(outcome.serving, committed.get(outcome.device) ?? outcome.serving);
    }
  });

  test('an emulated agent killed mid-deployment comes back on its previous model', async () => {
    const cls = DEVICES[0];
    const id = idOf(cls);
    const previous = committed.get(id);
    assert.ok(previous, 'the signed deployment committed first');
    // A long health check: the kill lands while the new model is on trial.
    const sha = addPackage('fashion-arm', '4');
    const started = await core.deployments.deploy({ package: sha, devices: [id], healthSeconds: 120 });
    await waitFor('the new model on trial', 90_000, () =>
      core.deployments.get(started.id)?.devices[0]?.phase === 'switched' ? true : undefined,
    ).catch(fail);
    const reportsBefore = core.registry.deployments(id).length;
    const agent = agents.get(id)!;
    agent.child.kill('SIGKILL');
    await agent.exited;
    await start(cls);
    const rolledBack = await waitFor('the restarted agent to roll back', 90_000, () =>
      core.registry
        .deployments(id)
        .slice(reportsBefore)
        .find((r) => r.phase === 'rolled-back'),
    ).catch(fail);
    assert.equal(rolledBack.code, 'interrupted');
    assert.equal(rolledBack.serving, previous);
  });
});
