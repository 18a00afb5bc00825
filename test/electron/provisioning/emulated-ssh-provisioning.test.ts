// Integration: `whittle device add` provisions a Raspberry Pi-class device over real SSH. The device is a
// network namespace with its own sshd and login (test/support/netns-device.ts) whose `node` is Debian's
// arm64 Node under qemu-user (a PATH shim set by sshd): the probe finds an arm64 Node, the manager ships
// the arm64 bundle and addon, and the agent comes online over the veth link reporting arm64 and NEON.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { packageRoot } from '../../../agent/package-root.js';
import { type Core, startCore } from '../../../electron/core/core.js';
import { DEVICE_CLASSES } from '../../support/device-classes.js';
import { emulationSkipReason, writeNodeShim } from '../../support/emulated-device.js';
import { type NetnsDevice, netnsSkipReason, startNetnsDevice } from '../../support/netns-device.js';
import { waitFor } from '../../support/stack.js';

const CLASS = DEVICE_CLASSES.rpi3;

/** `whittle ARGS` run to its end (the core in this process keeps serving meanwhile). */
async function whittle(args: string[]): Promise<{ code: number; output: string }> {
  const cli = join(packageRoot(), 'bin', 'whittle.js');
  try {
    const done = await promisify(execFile)(process.execPath, [cli, ...args], { timeout: 600_000 });
    return { code: 0, output: done.stdout + done.stderr };
  } catch (err) {
    const failed = err as { code?: unknown; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === 'number' ? failed.code : 1,
      output: `${failed.stdout}${failed.stderr}`,
    };
  }
}

const skip = netnsSkipReason() ?? emulationSkipReason(CLASS);
if (skip) console.log(`# skipping provisioning of an emulated ARM device: ${skip}`);

describe('provisioning an emulated arm64 device over SSH', { skip: skip ?? false }, () => {
  // The node shim (outside the device's home, so sshd's PATH can name it before the device exists) and
  // the manager's data directory.
  const work = mkdtempSync(join(tmpdir(), 'whittle-emulated-prov-'));
  const shimDir = join(work, 'bin');
  const dataDir = join(work, 'manager');
  let device: NetnsDevice;
  let core: Core;
  const logs: string[] = [];

  before(async () => {
    chmodSync(work, 0o755);
    mkdirSync(shimDir, { mode: 0o755 });
    writeNodeShim(CLASS, join(shimDir, 'node'));
    // Only this test's own namespace (63) is cleared: other files' devices may be running.
    device = await startNetnsDevice(63, [`SetEnv PATH=${shimDir}:/usr/local/bin:/usr/bin:/bin`]);
    const log = (line: string): void => void logs.push(`[core] ${line}`);
    core = await startCore({ dataDir, log, httpPort: 0, mqttPort: 0, mqttHost: device.hostAddress });
  });

  after(async () => {
    await core?.close();
    await device?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('whittle device add installs the arm64 agent, which comes online with its arch and ISA', async (t) => {
    const began = Date.now();
    const add = await whittle([
      'device',
      'add',
      `ssh://${device.username}@${device.deviceAddress}`,
      '--identity',
      device.identityFile,
      '--accept-host-key',
      device.hostKeyFingerprint(),
      '--name',
      'emu-pi3',
      '--camera',
      'testsrc',
      '--data-dir',
      dataDir,
      '--mqtt-port',
      String(core.broker.port),
    ]);
    assert.equal(add.code, 0, `${add.output}\n${agentLog(device)}`);
    t.diagnostic(`whittle device add finished in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    const online = await waitFor('stats from the emulated device', 180_000, () => {
      const d = core.registry.get('emu-pi3');
      return d?.online && d.stats && d.stats.fps > 0 ? d : undefined;
    }).catch((err: Error) => assert.fail(`${err.message}\n${logs.join('\n')}\n${agentLog(device)}`));
    t.diagnostic(`online with stats ${((Date.now() - began) / 1000).toFixed(1)} s after device add began`);
    assert.equal(online.info?.arch, CLASS.processArch);
    assert.equal(online.info?.isa, CLASS.isa);
    assert.ok(
      device
        .userProcesses()
        .some((p) => p.includes(CLASS.qemu) && p.includes('.whittle-agent/app/agent/cli.mjs')),
      device.userProcesses().join('\n'),
    );
    const list = await whittle(['devices', '--data-dir', dataDir]);
    assert.match(list.output, /^emu-pi3 +\S+ +arm64 +supervised/m);
  });
});

function agentLog(device: NetnsDevice): string {
  const file = join(device.home, '.whittle-agent', 'agent.log');
  return existsSync(file) ? `agent log:\n${readFileSync(file, 'utf8')}` : 'no agent log';
}
