// Integration: provisioning over real SSH into a real test device (a network namespace with its own sshd
// and user), the agent in it streaming stats to the manager's broker across the veth link.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { packageRoot } from '../../../agent/package-root.js';
import { type Core, startCore } from '../../../electron/core/core.js';
import {
  HostKeyChangedError,
  HostKeyNotAcceptedError,
  SshAuthError,
} from '../../../electron/core/provisioning/errors.js';
import { acceptFingerprint, refuseUnknownHostKey } from '../../../electron/core/provisioning/host-key.js';
import {
  addDeviceOverSsh,
  probeDevice,
  provisionedRecord,
  removeDevice,
} from '../../../electron/core/provisioning/provision.js';
import { managerSigningKeys } from '../../../electron/core/provisioning/signing-key.js';
import { type SshConnectOptions, SshSession } from '../../../electron/core/provisioning/ssh-session.js';
import type { SshTarget } from '../../../electron/core/provisioning/target-url.js';
import {
  type NetnsDevice,
  netnsSkipReason,
  removeLeftovers,
  startNetnsDevice,
} from '../../support/netns-device.js';
import { demoPackage } from '../../support/packages.js';
import { waitFor } from '../../support/stack.js';
import { startSerialConsole } from './serial-pty.js';

const LOGIN_SCRIPT = join(packageRoot(), 'test', 'electron', 'provisioning', 'fixtures', 'serial-login.sh');

/** Runs the whittle CLI to completion with `stdin`, returning everything it printed. */
function cli(args: string[], stdin = ''): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'whittle.js'), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`whittle ${args.join(' ')} did not finish in 600 s:\n${output}`));
    }, 600_000);
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    child.stdin.end(stdin);
  });
}

const skip = netnsSkipReason();
if (skip) console.log(`# skipping SSH provisioning tests: ${skip}`);

describe('provisioning over SSH into a network-namespace device', { skip: skip ?? false }, () => {
  let device: NetnsDevice;
  let core: Core;
  let dataDir: string;
  let target: SshTarget;
  const logs: string[] = [];
  const progress = (line: string): void => {
    logs.push(`[provision] ${line}`);
  };
  /** An SSH session with the device's password, the store's pins and the given host-key policy. */
  const connectWithPassword = (acceptHostKey: SshConnectOptions['acceptHostKey']): Promise<SshSession> =>
    SshSession.connect({
      target,
      auth: { kind: 'password', password: device.password },
      pins: core.store,
      acceptHostKey,
    });

  before(async () => {
    removeLeftovers();
    device = await startNetnsDevice(61);
    dataDir = mkdtempSync(join(tmpdir(), 'whittle-prov-test-'));
    core = await startCore({
      dataDir,
      httpPort: 0,
      mqttPort: 0,
      mqttHost: device.hostAddress,
      log: (line) => logs.push(`[core] ${line}`),
    });
    target = { kind: 'ssh', host: device.deviceAddress, port: 22, username: device.username };
  });

  after(async () => {
    await core?.close();
    await device?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    removeLeftovers();
  });

  test('first contact without acceptance is refused, showing the fingerprint as ssh-keygen prints it', async () => {
    await assert.rejects(connectWithPassword(refuseUnknownHostKey), (err: unknown) => {
      assert.ok(err instanceof HostKeyNotAcceptedError, String(err));
      assert.equal(err.fingerprint, device.hostKeyFingerprint());
      assert.match(err.message, new RegExp(`ssh-ed25519 ${escape(device.hostKeyFingerprint())}`));
      assert.match(err.message, /--accept-host-key/);
      return true;
    });
    assert.equal(core.store.pinnedHostKey(target.host, 22), undefined, 'nothing pinned');
  });

  test('a wrong --accept-host-key fingerprint is refused, naming both', async () => {
    const wrong = 'SHA256:' + 'A'.repeat(43);
    await assert.rejects(
      connectWithPassword(acceptFingerprint(wrong)),
      (err: unknown) =>
        err instanceof HostKeyNotAcceptedError &&
        err.message.includes(wrong) &&
        err.message.includes(device.hostKeyFingerprint()),
    );
  });

  test('on a terminal the CLI shows the fingerprint and pins nothing when the user says no', () => {
    const command = [process.execPath, join(packageRoot(), 'bin', 'whittle.js'), 'device', 'add']
      .concat([`ssh://${device.username}@${device.deviceAddress}`, '--identity', device.identityFile])
      .concat(['--data-dir', dataDir])
      .join(' ');
    // script(1) gives the CLI a pseudo-terminal, as a user's shell would.
    const r = spawnSync('script', ['-qec', command, '/dev/null'], {
      input: 'n\n',
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.match(r.stdout, new RegExp(`The host key of ${escape(device.deviceAddress)}:22 is not known yet`));
    assert.match(r.stdout, new RegExp(`ssh-ed25519 ${escape(device.hostKeyFingerprint())}`));
    assert.match(r.stdout, /Accept and pin it\? \[y\/N\]/);
    assert.match(r.stdout, /is not known yet: ssh-ed25519 .* accept it with --accept-host-key/);
    assert.equal(core.store.pinnedHostKey(target.host, 22), undefined);
  });

  test('a wrong password is refused clearly', async () => {
    await assert.rejects(
      SshSession.connect({
        target,
        auth: { kind: 'password', password: 'not-the-password' },
        pins: core.store,
        acceptHostKey: acceptFingerprint(device.hostKeyFingerprint()),
      }),
      (err: unknown) => {
        assert.ok(err instanceof SshAuthError, String(err));
        assert.match(err.message, new RegExp(`refused the password of user ${device.username}`));
        return true;
      },
    );
  });

  test('key authentication works and the probe reports the device', async () => {
    const session = await SshSession.connect({
      target,
      auth: { kind: 'key', privateKeyPath: device.identityFile },
      pins: core.store,
      acceptHostKey: acceptFingerprint(device.hostKeyFingerprint()),
    });
    try {
      const probe = await probeDevice(session);
      assert.equal(probe.arch, process.arch === 'x64' ? 'x64' : probe.arch);
      assert.equal(probe.nodeVersion, process.versions.node);
      assert.ok(probe.cpus >= 1 && probe.memTotalBytes > 2 ** 27, JSON.stringify(probe));
      assert.equal(probe.systemd, false);
      assert.equal(probe.managerAddress, device.hostAddress);
      assert.equal(probe.home, device.home);
    } finally {
      session.close();
    }
    assert.equal(core.store.pinnedHostKey(target.host, 22)?.fingerprint, device.hostKeyFingerprint());
  });

  test('provisions the agent over SSH; its stats arrive over the veth link', async () => {
    const result = await addDeviceOverSsh({
      store: core.store,
      dataDir,
      target,
      auth: { kind: 'password', password: device.password },
      acceptHostKey: acceptFingerprint(device.hostKeyFingerprint()),
      deviceId: 'netns-device',
      mqttPort: core.broker.port,
      camera: 'testsrc',
      progress,
    });
    assert.equal(result.record.kind, 'supervised', 'no systemd in the namespace');
    assert.equal(result.record.broker, `mqtt://${device.hostAddress}:${core.broker.port}`);
    const configMode = statSync(result.record.configFile).mode & 0o777;
    assert.equal(configMode, 0o600, `config mode ${configMode.toString(8)}`);
    assert.equal(statSync(result.record.configFile).uid, statSync(device.home).uid);
    assert.ok(existsSync(join(device.home, '.whittle-agent', 'etc', 'package-signing.pub.pem')));
    const stats = await waitFor('stats from the device in the namespace', 30_000, () => {
      const d = core.registry.get('netns-device');
      return d?.online && d.stats && d.stats.fps > 0 ? d : undefined;
    }).catch((err: Error) => assert.fail(`${err.message}\n${logs.join('\n')}\n${agentLog(device)}`));
    assert.equal(stats.info?.arch, process.arch);
    assert.ok(
      device.userProcesses().some((p) => p.includes('.whittle-agent/app/agent/cli.mjs')),
      device.userProcesses().join('\n'),
    );
  });

  test('a package deployed from the manager downloads over the veth link and commits on the device', async () => {
    // The real path: the manager signs the target with the key provisioning pinned on the device, the
    // agent in the namespace fetches the package from the manager's package server across the veth link.
    const { privateKey } = managerSigningKeys(dataDir);
    const { pkg } = core.deployments.addPackage(
      demoPackage(privateKey, { id: 'fashion-netns', version: '2' }),
    );
    const started = await core.deployments.deploy({
      package: pkg.sha256,
      devices: ['netns-device'],
      healthSeconds: 1,
    });
    const done = await waitFor('the deployment to finish on the namespace device', 60_000, () => {
      const view = core.deployments.get(started.id);
      return view?.finished ? view : undefined;
    }).catch((err: Error) => assert.fail(`${err.message}\n${logs.join('\n')}\n${agentLog(device)}`));
    const outcome = done.devices[0]!;
    assert.equal(outcome.phase, 'committed', `${outcome.code}: ${outcome.reason}\n${agentLog(device)}`);
    assert.equal(outcome.serving, pkg.sha256);
    await waitFor('the device to announce the deployed model', 15_000, () =>
      core.registry.get('netns-device')?.info?.model.id === 'fashion-netns' ? true : undefined,
    );
  });

  test('a second device id on the same login is refused, naming the first', async () => {
    await assert.rejects(
      addDeviceOverSsh({
        store: core.store,
        dataDir,
        target,
        auth: { kind: 'key', privateKeyPath: device.identityFile },
        acceptHostKey: refuseUnknownHostKey,
        deviceId: 'other-name',
        mqttPort: core.broker.port,
        progress,
      }),
      /already runs the agent of device netns-device; remove it first \(whittle device remove netns-device\)/,
    );
    assert.equal(core.store.checkCredential('other-name', ''), false);
  });

  test('uninstall leaves nothing behind and revokes the broker credential', async () => {
    const before = provisionedRecord(core.store, 'netns-device');
    assert.ok(before);
    await removeDevice({
      store: core.store,
      deviceId: 'netns-device',
      auth: { kind: 'key', privateKeyPath: device.identityFile },
      progress,
    });
    assert.equal(existsSync(join(device.home, '.whittle-agent')), false);
    await waitFor('the agent process to end', 5000, () =>
      device.userProcesses().some((p) => /cli\.mjs|supervise\.sh|ffmpeg/.test(p)) ? undefined : true,
    );
    assert.equal(provisionedRecord(core.store, 'netns-device'), undefined);
    assert.equal(core.store.checkCredential('netns-device', 'anything'), false);
    await waitFor('the device to go offline', 10_000, () =>
      core.registry.get('netns-device')?.online === false ? true : undefined,
    );
  });

  test(
    'the CLI adds a device from its serial console, continuing over SSH, lists it and removes it',
    { timeout: 600_000 },
    async () => {
      // The console's far side runs inside the device's namespace, so it reports the device's address.
      const wrapper = join(dataDir, 'console.sh');
      writeFileSync(
        wrapper,
        `#!/bin/sh\nexec ip netns exec ${device.netns} bash ${LOGIN_SCRIPT} ${device.username} ${device.password}\n`,
        { mode: 0o755 },
      );
      const serial = await startSerialConsole(`sh ${wrapper}`);
      try {
        const add = await cli(
          [
            'device',
            'add',
            `serial://${serial.path}?baud=115200&user=${device.username}`,
            '--password-stdin',
            '--accept-host-key',
            device.hostKeyFingerprint(),
            '--name',
            'serial-device',
            '--camera',
            'testsrc',
            // The namespace shares this machine's gcc, g++ and Node headers: the device builds its own addon.
            '--build-addon-on-device',
            '--data-dir',
            dataDir,
            '--mqtt-port',
            String(core.broker.port),
          ],
          `${device.password}\n`,
        );
        assert.equal(add.code, 0, add.output);
        assert.match(add.output, new RegExp(`: ${escape(device.deviceAddress)}/30`));
        assert.match(
          add.output,
          new RegExp(`continuing over SSH: ssh://${device.username}@${escape(device.deviceAddress)}`),
        );
        assert.match(
          add.output,
          /the device has no systemd; the agent runs as a supervised background process/,
        );
      } finally {
        await serial.stop();
      }
      await waitFor('stats from the device added by the CLI', 30_000, () => {
        const d = core.registry.get('serial-device');
        return d?.online && d.stats && d.stats.fps > 0 ? d : undefined;
      }).catch((err: Error) => assert.fail(`${err.message}\n${agentLog(device)}`));
      const list = await cli(['devices', '--data-dir', dataDir]);
      assert.equal(list.code, 0);
      assert.match(
        list.output,
        new RegExp(
          `^serial-device +${device.username}@${escape(device.deviceAddress)}:22 +x64 +supervised`,
          'm',
        ),
      );
      const remove = await cli(
        ['device', 'remove', 'serial-device', '--password-stdin', '--data-dir', dataDir],
        `${device.password}\n`,
      );
      assert.equal(remove.code, 0, remove.output);
      assert.equal(existsSync(join(device.home, '.whittle-agent')), false);
      await waitFor('the agent, its supervisor and ffmpeg to end', 5000, () =>
        device.userProcesses().some((p) => /cli\.mjs|supervise\.sh|ffmpeg/.test(p)) ? undefined : true,
      );
      assert.equal((await cli(['devices', '--data-dir', dataDir])).output.includes('serial-device'), false);
    },
  );

  test('a changed host key is refused with both fingerprints', async () => {
    const pinned = device.hostKeyFingerprint();
    await device.replaceHostKey();
    const presented = device.hostKeyFingerprint();
    assert.notEqual(pinned, presented);
    await assert.rejects(connectWithPassword(acceptFingerprint(presented)), (err: unknown) => {
      assert.ok(err instanceof HostKeyChangedError, String(err));
      assert.match(err.message, new RegExp(escape(pinned)));
      assert.match(err.message, new RegExp(escape(presented)));
      return true;
    });
    assert.equal(core.store.pinnedHostKey(target.host, 22)?.fingerprint, pinned, 'the pin is kept');
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function agentLog(device: NetnsDevice): string {
  const file = join(device.home, '.whittle-agent', 'agent.log');
  return existsSync(file) ? `agent log:\n${readFileSync(file, 'utf8')}` : 'no agent log';
}
