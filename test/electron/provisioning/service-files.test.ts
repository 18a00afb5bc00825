import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { supervisorScript, systemdUnit } from '../../../electron/core/provisioning/service-files.js';
import { waitFor } from '../../support/stack.js';

const unitOptions = {
  serviceUser: 'whittle-agent',
  nodePath: '/usr/bin/node',
  appDir: '/opt/whittle-agent',
  configFile: '/etc/whittle-agent/config.json',
  dataDir: '/var/lib/whittle-agent',
};
const haveSystemdAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;

describe('systemd unit', () => {
  test('runs as its own user, sandboxed, writing only its data directory and opening only the camera', () => {
    const unit = systemdUnit({ ...unitOptions, cameraDevice: '/dev/video0' });
    for (const line of [
      'User=whittle-agent',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'ReadWritePaths=/var/lib/whittle-agent',
      'DevicePolicy=closed',
      'DeviceAllow=/dev/video0 rw',
      'CapabilityBoundingSet=',
      'ExecStart=/usr/bin/node --max-semi-space-size=1 /opt/whittle-agent/agent/cli.mjs run --config /etc/whittle-agent/config.json',
    ])
      assert.ok(unit.split('\n').includes(line), `missing ${line}`);
    assert.equal(unit.match(/^ReadWritePaths=/gm)?.length, 1);
    const withoutCamera = systemdUnit({ ...unitOptions, cameraDevice: null });
    assert.match(withoutCamera, /^PrivateDevices=yes$/m);
    assert.doesNotMatch(withoutCamera, /DeviceAllow/);
  });

  test(
    'systemd-analyze verifies it and rates its exposure below 2.5',
    { skip: haveSystemdAnalyze ? false : 'systemd-analyze is missing' },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'whittle-unit-'));
      try {
        for (const cameraDevice of ['/dev/video0', null]) {
          const file = join(dir, 'whittle-agent.service');
          writeFileSync(file, systemdUnit({ ...unitOptions, cameraDevice }));
          const verify = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', cwd: dir });
          assert.equal(verify.status, 0, verify.stderr);
          const security = spawnSync('systemd-analyze', ['security', '--offline=true', file], {
            encoding: 'utf8',
            cwd: dir,
          });
          const m = /Overall exposure level for whittle-agent\.service: ([\d.]+)/.exec(security.stdout);
          assert.ok(m, security.stdout + security.stderr);
          assert.ok(Number(m[1]) < 2.5, `exposure ${m[1]}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('supervisor script (devices without systemd)', () => {
  test('keeps the agent running, restarts it when it exits, and stops it with the pid file', async () => {
    const base = mkdtempSync(join(tmpdir(), 'whittle-supervise-'));
    try {
      // A stand-in for node: records each start, then lives until killed or exits when told to.
      const fakeNode = join(base, 'fake-node');
      writeFileSync(
        fakeNode,
        `#!/bin/sh\necho start >> ${base}/starts\necho $$ > ${base}/child.pid\nwhile [ ! -f ${base}/crash ]; do sleep 0.1; done\nrm -f ${base}/crash\nexit 3\n`,
      );
      chmodSync(fakeNode, 0o755);
      mkdirSync(join(base, 'app', 'agent'), { recursive: true });
      writeFileSync(join(base, 'supervise.sh'), supervisorScript({ nodePath: fakeNode, baseDir: base }));
      spawnSync('sh', ['-c', `setsid sh ${base}/supervise.sh </dev/null >/dev/null 2>&1 &`]);
      const pid = await waitFor('the pid file', 5000, () =>
        existsSync(join(base, 'agent.pid'))
          ? Number(readFileSync(join(base, 'agent.pid'), 'utf8'))
          : undefined,
      );
      await waitFor('the first start', 5000, () => (existsSync(join(base, 'starts')) ? true : undefined));
      writeFileSync(join(base, 'crash'), '');
      await waitFor('a restart after the agent exited', 8000, () =>
        readFileSync(join(base, 'starts'), 'utf8').split('\n').filter(Boolean).length >= 2 ? true : undefined,
      );
      assert.match(
        readFileSync(join(base, 'agent.log'), 'utf8'),
        /the agent exited with status 3; restarting in 1 s/,
      );
      const child = Number(readFileSync(join(base, 'child.pid'), 'utf8'));
      process.kill(pid, 'SIGTERM');
      await waitFor('the supervisor and the agent to stop', 5000, () =>
        alive(pid) || alive(child) ? undefined : true,
      );
      assert.equal(existsSync(join(base, 'agent.pid')), false);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
