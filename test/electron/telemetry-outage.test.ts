// Integration: the broker disappears for 60 s while the agent streams; after it returns, every
// per-second record of the gap reaches the manager's store exactly once, in order. Real core (aedes,
// SQLite), real agent process, real ffmpeg test camera.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../../agent/package-root.js';
import type { StatsMessage } from '../../agent/protocol/messages.js';
import { type Core, startCore } from '../../electron/core/core.js';
import { waitFor } from '../support/stack.js';

const OUTAGE_MS = 60_000;
const DEVICE = 'outage-device';

test('a 60 s broker outage loses no per-second record and duplicates none', { timeout: 90_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'whittle-outage-'));
  const logs: string[] = [];
  const log = (line: string): void => void logs.push(line);
  const coreOptions = { dataDir, httpPort: 0, mqttHost: '127.0.0.1', log };
  let core: Core | null = await startCore({ ...coreOptions, mqttPort: 0 });
  const mqttPort = core.broker.port;
  const configFile = join(dataDir, 'agent.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      broker: `mqtt://127.0.0.1:${mqttPort}`,
      deviceId: DEVICE,
      password: core.store.issueCredential(DEVICE),
      fps: 10,
      reconnectMaxMs: 1000,
    }),
    { mode: 0o600 },
  );
  const agent: ChildProcess = spawn(
    process.execPath,
    [join(packageRoot(), 'bin', 'whittle-agent.js'), 'run', '--config', configFile],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const agentExited = new Promise<void>((resolve) => agent.on('exit', () => resolve()));
  agent.stdout?.on('data', (b: Buffer) => log(`[agent] ${b.toString().trim()}`));
  agent.stderr?.on('data', (b: Buffer) => log(`[agent] ${b.toString().trim()}`));
  const failWithLogs = (err: Error): never => assert.fail(`${err.message}\n${logs.join('\n')}`);
  try {
    await waitFor('three stats records before the outage', 15_000, () =>
      core!.store.stats(DEVICE).length >= 3 ? true : undefined,
    ).catch(failWithLogs);

    const stoppedAt = Date.now();
    await core.close();
    core = null;
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    const restartedAt = Date.now();
    core = await startCore({ ...coreOptions, mqttPort });

    const live = core;
    await waitFor('records from after the outage', 15_000, () =>
      live.store.stats(DEVICE).some((r) => r.ts > restartedAt + 2000) ? true : undefined,
    ).catch(failWithLogs);

    const rows = live.store.stats(DEVICE);
    const records = rows.map((r) => JSON.parse(r.json) as StatsMessage);
    assert.equal(new Set(rows.map((r) => r.epoch)).size, 1, 'one epoch');
    // Contiguous sequence numbers, stored in the order they were produced: nothing lost, nothing twice.
    const first = rows[0]!.seq;
    assert.deepEqual(
      rows.map((r) => r.seq),
      rows.map((_, i) => first + i),
      'every seq once, in order of arrival',
    );
    // One record per second of agent time through the gap: no second is missing.
    for (let i = 1; i < records.length; i++) {
      const step = records[i]!.ts - records[i - 1]!.ts;
      assert.ok(step > 500 && step < 1500, `records ${i - 1}→${i} are ${step} ms apart`);
    }
    const gap = records.filter((r) => r.ts > stoppedAt + 1000 && r.ts < restartedAt);
    assert.ok(gap.length >= OUTAGE_MS / 1000 - 3, `${gap.length} records from the outage`);
    assert.ok(
      gap.every((r) => r.frames > 0),
      'the camera kept running while the broker was away',
    );
    assert.equal(records.at(-1)!.dropped, 0);
  } finally {
    agent.kill('SIGTERM');
    const timer = setTimeout(() => agent.kill('SIGKILL'), 5000);
    await agentExited;
    clearTimeout(timer);
    await core?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
