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

import { packageRoot } from '../../../agent/package-root.js';
import { type Core, startCore } from '../../../electron/core/core.js';
import { DEVICE_CLASSES } from '../../support/device-classes.js';
import { emulationSkipReason, writeNodeShim } from '../../support/emulated-device.js';
import { type NetnsDevice, netnsSkipReason, startNetnsDevice } from '../../support/netns-device.js';
import { waitFor } from '../../support/stack.js';

const CLASS = DEVICE_CLASSES.rpi3;

function whittle(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(packageRoot(), 'bin', 'whittle.js'), ...args],
      { timeout: 600_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: stdout + stderr });
      },
    );
  });
}

const skip = netnsSkipReason() ?? emulationSkipReason(CLASS);
if (skip) console.log(`# skipping provisioning of an emulated ARM device: ${skip}`);

describe('provisioning an emulated arm64 device over SSH', { skip: skip ?? false }, () => {
  // The shim lives outside the device's home so sshd's PATH can name it before the device exists.
  const shimDir = mkdtempSync(join(tmpdir(), 'whittle-emulated-shim-'));
  let device: NetnsDevice;
  let core: Core;
  let dataDir: string;
  const logs: string[] = [];

  before(async () => {
    chmodSync(shimDir, 0o755);
    mkdirSync(join(shimDir, 'bin'), { mode: 0o755 });
    writeNodeShim(CLASS, join(shimDir, 'bin', 'node'));
    // Only this test's own namespace (63) is cleared: other files' devices may be running.
    device = await startNetnsDevice(63, [`SetEnv PATH=${join(shimDir, 'bin')}:/usr/local/bin:/usr/bin:/bin`]);
    dataDir = mkdtempSync(join(tmpdir(), 'whittle-emulated-prov-'));
    core = await startCore({
      dataDir,
      httpPort: 0,
      mqttPort: 0,
      mqttHost: device.hostAddress,
      log: (line) => logs.push(`[core] ${line}`),
    });
  });

  after(async () => {
    await core?.close();
    await device?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    rmSync(shimDir, { recursive: true, force: true });
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
