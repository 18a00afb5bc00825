// Integration: redeploying a model across a fleet. A real core, two real agent processes (ffmpeg test
// camera), the real `whittle deploy` CLI talking to the running manager through its connection file.
// Both devices commit; a package signed by another key or damaged is refused at the manager before anything
// is published; what the devices themselves refuse (another CPU family, an older version, a device pinning
// another key, a file damaged on the package server while a device was offline) is stored per device with
// the device's reason; and the history survives a restart of the manager.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../../agent/package-root.js';
import { writeConnectionFile } from '../../electron/core/connection-file.js';
import type { Core } from '../../electron/core/core.js';
import { managerSigningKeys, managerSigningPublicKey } from '../../electron/core/provisioning/signing-key.js';
import { withCoreScratch } from '../support/core-scratch.js';
import { demoPackage } from '../support/packages.js';
import { waitFor } from '../support/stack.js';
import { type AgentProcess, startAgentProcess } from './agent-process.js';

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

function whittle(args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(packageRoot(), 'bin', 'whittle.js'), ...args],
      { timeout: 90_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

test('deploy to the whole fleet, refusals with reasons, history after a restart', { timeout: 240_000 }, () =>
  withCoreScratch(
    'whittle-fleet-',
    async ({ dir, logs, log, startCore, closeCore, onCleanup, fail: failWithLog }) => {
      let core = await startCore();
      const agents = new Map<string, AgentProcess>();
      onCleanup(() => Promise.all([...agents.values()].map((a) => a.stop())));
      const fail = (err: Error): never => failWithLog(err, 80);
      /** (Re)starts a device's agent; its state directory (installed models, finished deployments) stays. */
      const startAgent = (id: string, packageKey: string): void => {
        agents.set(
          id,
          startAgentProcess(
            core,
            dir,
            id,
            {
              stateDir: join(dir, `state-${id}`),
              packageKey,
              fps: 10,
              snapshotSeconds: 0,
              reconnectMaxMs: 500,
            },
            log,
          ),
        );
      };
      const keys = managerSigningKeys(dir);
      const packageKey = managerSigningPublicKey(dir);
      for (const id of ['cam-a', 'cam-b']) startAgent(id, packageKey);
      const registry = (): Core['registry'] => core.registry;
      await waitFor('both agents online', 30_000, () =>
        ['cam-a', 'cam-b'].every((id) => registry().get(id)?.online) ? true : undefined,
      ).catch(fail);
      writeConnectionFile(dir, {
        url: `http://127.0.0.1:${core.api.port}`,
        token: core.api.token,
        pid: process.pid,
      });

      // 1. A good package to every device, followed to the end by the CLI.
      const v2 = join(dir, 'fashion-v2.wpkg');
      writeFileSync(v2, demoPackage(keys.privateKey, { id: 'fashion', version: '2' }));
      const deployed = await whittle([
        'deploy',
        v2,
        '--all',
        '--wait',
        '--health-seconds',
        '1',
        '--data-dir',
        dir,
      ]);
      assert.equal(deployed.code, 0, `${deployed.stdout}\n${deployed.stderr}\n${logs.slice(-60).join('\n')}`);
      // One line per phase, each device through every phase in order (the live feed misses none).
      for (const id of ['cam-a', 'cam-b']) {
        const phases = deployed.stdout
          .split('\n')
          .filter((line) => line.startsWith(`${id}  `))
          .map((line) => line.slice(id.length + 2));
        assert.deepEqual(
          phases.filter((p) => p !== 'pending'),
          ['downloading', 'verified', 'staged', 'switched', 'committed'],
          deployed.stdout,
        );
      }
      assert.match(deployed.stdout, /2 of 2 devices committed/);
      const first = core.deployments.list()[0]!;
      assert.ok(first.succeeded);
      await waitFor('both devices to announce the new model', 15_000, () =>
        ['cam-a', 'cam-b'].every((id) => registry().get(id)?.info?.model.id === 'fashion') ? true : undefined,
      ).catch(fail);

      // 2. Signed by another key, or damaged: refused by the manager with the reader's code; nothing published.
      const foreign = join(dir, 'foreign.wpkg');
      writeFileSync(foreign, demoPackage(generateKeyPairSync('ed25519').privateKey, { version: '3' }));
      const damaged = join(dir, 'damaged.wpkg');
      const bytes = demoPackage(keys.privateKey, { version: '3' });
      bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0x01;
      writeFileSync(damaged, bytes);
      for (const [file, code] of [
        [foreign, 'wrong-key'],
        [damaged, 'hash-mismatch'],
      ] as const) {
        const refused = await whittle(['deploy', file, '--all', '--data-dir', dir]);
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, new RegExp(`refused \\(${code}\\)`));
      }
      assert.equal(core.deployments.list().length, 1, 'a refused package starts no deployment');

      // 3. A package the devices themselves refuse (built for another CPU family; an older version without
      // --rollback): the reasons they give are stored per device.
      const otherCpu = process.arch === 'arm64' ? 'x86_64' : 'aarch64';
      const armOnly = join(dir, 'other-cpu.wpkg');
      writeFileSync(armOnly, demoPackage(keys.privateKey, { version: '4', cpuFamily: otherCpu }));
      const wrongCpu = await whittle([
        'deploy',
        armOnly,
        '--device',
        'cam-a',
        '--device',
        'cam-b',
        '--wait',
        '--data-dir',
        dir,
      ]);
      assert.equal(wrongCpu.code, 1, wrongCpu.stdout);
      assert.match(wrongCpu.stdout, /^cam-a {2}refused \(wrong-cpu\): model fashion 4 is built for/m);
      const older = join(dir, 'fashion-v1.wpkg');
      writeFileSync(older, demoPackage(keys.privateKey, { version: '1' }));
      const downgrade = await whittle(['deploy', older, '--device', 'cam-b', '--wait', '--data-dir', dir]);
      assert.equal(downgrade.code, 1, downgrade.stdout);
      assert.match(downgrade.stdout, /^cam-b {2}refused \(older-version\): .*deploy it with rollback/m);
      const unknown = await whittle(['deploy', older, '--device', 'cam-z', '--data-dir', dir]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /unknown device: cam-z/);

      // 4. A device that pins another key refuses the manager's signature; a file damaged on the package server
      // after the deployment started is refused by the device that downloads it. Both reasons are stored.
      await agents.get('cam-a')!.stop();
      const otherKey = generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' });
      startAgent('cam-a', otherKey.toString());
      await agents.get('cam-b')!.stop();
      await waitFor('cam-a back, cam-b gone', 30_000, () =>
        registry().get('cam-a')?.online && !registry().get('cam-b')?.online ? true : undefined,
      ).catch(fail);
      const v3 = join(dir, 'fashion-v3.wpkg');
      writeFileSync(v3, demoPackage(keys.privateKey, { version: '3' }));
      const foreignPin = await whittle(['deploy', v3, '--device', 'cam-a', '--wait', '--data-dir', dir]);
      assert.equal(foreignPin.code, 1, foreignPin.stdout);
      assert.match(foreignPin.stdout, /^cam-a {2}(failed|refused) \(bad-signature\): /m);
      // cam-b is offline: its target waits, retained, while the stored file is damaged.
      const offline = await whittle(['deploy', v3, '--device', 'cam-b', '--data-dir', dir]);
      assert.equal(offline.code, 0, offline.stderr);
      const stored = core.packages.pathOf(core.deployments.list()[0]!.package.sha256)!;
      const file = readFileSync(stored);
      file[file.length - 1] = file[file.length - 1]! ^ 0x01;
      writeFileSync(stored, file);
      startAgent('cam-b', packageKey);
      const damagedDownload = await waitFor('cam-b to refuse the damaged download', 30_000, () => {
        const d = core.deployments.list()[0]!.devices[0]!;
        return d.finished ? d : undefined;
      }).catch(fail);
      assert.deepEqual([damagedDownload.phase, damagedDownload.code], ['failed', 'hash-mismatch']);
      assert.match(damagedDownload.reason ?? '', /SHA-256/);
      // The manager checks its stored file again before any new deployment of it.
      const again = await whittle(['deploy', v3, '--device', 'cam-b', '--data-dir', dir]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /was altered/);

      // 5. Restart the manager: the history is still there, and the fleet reconnects.
      const port = core.broker.port;
      await closeCore();
      core = await startCore({ mqttPort: port });
      const history = core.deployments.list();
      // Each device as "id:outcome": its error code when it did not commit.
      assert.deepEqual(
        history.map((d) => [
          d.package.modelVersion,
          d.devices.map((x) => `${x.device}:${x.code ?? x.phase}`),
        ]),
        [
          ['3', ['cam-b:hash-mismatch']],
          ['3', ['cam-a:bad-signature']],
          ['1', ['cam-b:older-version']],
          ['4', ['cam-a:wrong-cpu', 'cam-b:wrong-cpu']],
          ['2', ['cam-a:committed', 'cam-b:committed']],
        ],
      );
      assert.ok(
        history
          .slice(0, 4)
          .every((d) => d.finished && d.devices.every((x) => x.phase !== 'committed' && x.reason)),
        'every refusal is final and has its reason',
      );
      assert.match(
        history[3]!.devices[0]!.reason ?? '',
        new RegExp(`built for ${process.arch === 'arm64' ? 'x64' : 'arm64'}`),
      );
      await waitFor('the fleet back online after the restart', 30_000, () =>
        ['cam-a', 'cam-b'].every((id) => core.registry.get(id)?.online) ? true : undefined,
      ).catch(fail);
    },
  ),
);
