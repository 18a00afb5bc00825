// Issue 16's CI miniature of `whittle optimize --device`, end to end: a real agent process measures a small
// latency table over the link, the manager stores it, and `whittle optimize --device ID` on a tiny model is
// priced from that table and verified on the device (the fp32 baseline and the final package timed there).
// The device lost mid-verification first: a clear error, the package and the report still written; the
// same run resumed once it is back.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { packageRoot } from '../../../agent/package-root.js';
import type { ResponseMessage } from '../../../agent/protocol/messages.js';
import { ManagerClient } from '../../../electron/commands/manager-client.js';
import type { OptimizeReport } from '../../../optimize/plan/optimize.js';
import { waitFor } from '../../support/stack.js';
import { trainTinyModel } from '../../support/tiny-model.js';
import { type PinnedDevice, startPinnedDevice } from '../agent-process.js';

const DEVICE = 'tiny-board';

describe('whittle optimize --device: priced from the table a real agent measured, verified on it', () => {
  let t: PinnedDevice;
  /** `whittle ...` as a user runs it, in a child process (the manager runs in this one, so not spawnSync),
   * its data directory the manager's. */
  const whittle = (...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'whittle.js'), ...args], {
        env: { ...process.env, XDG_DATA_HOME: join(t.dir, 'xdg') },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
      child.on('exit', (status) => resolve({ status, stdout, stderr }));
    });
  const trained = (): string => join(t.dir, 'trained');
  const out = (): string => join(t.dir, 'out');
  const optimize = (...extra: string[]): ReturnType<typeof whittle> =>
    whittle(
      'optimize',
      '--device',
      DEVICE,
      '--dataset',
      'fashion-mnist',
      '--model',
      trained(),
      '--images',
      '60',
      '--runs',
      '20',
      '--size-kb',
      '500',
      '--out',
      out(),
      '--json',
      ...extra,
    );

  before(async () => {
    // The manager's data directory is the CLI's default one (XDG_DATA_HOME/whittle): its signing key is the
    // one the agent pins, and the command finds the manager's connection file there.
    t = await startPinnedDevice({
      prefix: 'whittle-optimize-device-',
      deviceId: DEVICE,
      dataDir: (dir) => join(dir, 'xdg', 'whittle'),
    });
    await trainTinyModel('lenet-300-100', trained());
    await waitFor('the device online', 30_000, () => t.core.registry.get(DEVICE)?.online || undefined).catch(
      t.failWithLogs,
    );
  });
  after(() => t.stop());

  test('the device measures a small table, the manager stores it', async () => {
    const client = new ManagerClient({
      url: `http://127.0.0.1:${t.core.api.port}`,
      token: t.core.api.token,
      pid: process.pid,
    });
    await client.measure(DEVICE, { grid: 'quick' });
    const done = await waitFor('the table', 60_000, async () => {
      const t = await client.latencyTables(DEVICE);
      return t.measurement?.state !== 'running' ? t : undefined;
    }).catch(t.failWithLogs);
    assert.equal(done.measurement?.state, 'complete', done.measurement?.error ?? '');
    assert.equal(done.current?.complete, true);
  });

  test('the device lost while it verifies: a clear error, the package and the report written', async () => {
    const onResponse = (device: string, message: ResponseMessage): void => {
      if (device === DEVICE && message.kind === 'packages-start') t.agent.child.kill('SIGKILL');
    };
    t.core.registry.on('response', onResponse);
    const r = await optimize();
    t.core.registry.off('response', onResponse);
    const why = `${r.stderr}\n${t.logs.slice(-40).join('\n')}`;
    assert.equal(r.status, 1, why);
    assert.match(
      r.stderr,
      /cannot verify on device tiny-board: device tiny-board went offline during the package measurement.*model\.whittle and its report are written/,
      why,
    );
    assert.ok(existsSync(join(out(), 'model.whittle')));
    const report = JSON.parse(readFileSync(join(out(), 'report.json'), 'utf8')) as OptimizeReport;
    assert.match(report.latency_source, /tiny-board's measured table/);
    assert.ok(report.device_measured && 'error' in report.device_measured);
    assert.match(report.device_measured.error, /went offline/);
  });

  test('priced from the device table and verified on the device', async () => {
    t.restartAgent();
    await waitFor('the device back', 30_000, () => t.core.registry.get(DEVICE)?.online || undefined).catch(
      t.failWithLogs,
    );
    const r = await optimize('--resume');
    const report = JSON.parse(r.stdout) as OptimizeReport;
    assert.match(report.latency_source, /tiny-board's measured table/);
    const measured = report.device_measured;
    assert.ok(measured && !('error' in measured), JSON.stringify(measured));
    assert.equal(measured.runs, 20);
    assert.match(measured.source, /^device tiny-board \(\w+, \d+ thread\(s\)\)$/);
    assert.ok(measured.baseline_ms > 0 && measured.final_ms > 0);
    assert.ok(measured.final_p90_ms >= measured.final_ms && measured.baseline_p90_ms >= measured.baseline_ms);
    assert.equal(measured.slower, measured.final_ms > measured.baseline_ms * 1.05);
    assert.ok(
      report.notes.some((n) => /verified on the device tiny-board|SLOWER than the fp32 baseline/.test(n)),
    );
    // Exit 0 only when the budgets are met and the device confirmed the plan.
    assert.equal(r.status, report.met && !measured.slower ? 0 : 3, r.stderr);
    const written = JSON.parse(readFileSync(join(out(), 'report.json'), 'utf8')) as OptimizeReport;
    assert.deepEqual(written.device_measured, measured);
  });
});
