// Issue 16 end to end: a real manager core, real agent processes, real MQTT. The manager asks the device
// for its profile and its latency table over the link, stores them, and serves them; bad answers, old
// agents, other kernel builds and a device killed mid-measurement are each handled as the issue says.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { latencyKey, type LatencyTable } from '../../agent/profile/latency-table.js';
import { collectDeviceProfile } from '../../agent/profile/profile.js';
import { deviceTopic, PROTOCOL_VERSION, RequestMessageSchema } from '../../agent/protocol/messages.js';
import type { DeviceProfileResponse, LatencyTablesResponse } from '../../electron/api/contract.js';
import { type Core, startCore } from '../../electron/core/core.js';
import { addonBuildHash } from '../../native/index.js';
import { cliSandbox } from '../support/cli.js';
import { waitFor } from '../support/stack.js';
import { type AgentProcess, startAgentProcess, startHandmadeDevice } from './agent-process.js';

const DEVICE = 'profiled';

describe('device profiles and latency tables over the agent link', () => {
  let dir: string;
  let core: Core;
  let agent: AgentProcess;
  const logs: string[] = [];
  const api = async (
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> => {
    const res = await fetch(`http://127.0.0.1:${core.api.port}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${core.api.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, json: await res.json() };
  };
  const startAgent = (): AgentProcess =>
    startAgentProcess(core, dir, DEVICE, { camera: 'testsrc', stateDir: join(dir, 'state') }, (l) =>
      logs.push(l),
    );
  const failWithLogs = (err: Error): never => assert.fail(`${err.message}\n${logs.slice(-60).join('\n')}`);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'whittle-profile-e2e-'));
    core = await startCore({
      dataDir: join(dir, 'data'),
      httpPort: 0,
      mqttPort: 0,
      mqttHost: '127.0.0.1',
      log: (l) => logs.push(`[core] ${l}`),
      deviceAnswerMs: 3000,
    });
    agent = startAgent();
  });
  after(async () => {
    await agent.stop();
    await core.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the manager asks a device that comes online for its profile, stores it and serves it', async () => {
    const missing = await api('GET', '/api/devices/nobody/profile');
    assert.equal(missing.status, 404);
    assert.match((missing.json as { error: string }).error, /unknown device nobody/);
    const stored = await waitFor('the profile to be stored', 30_000, async () => {
      const r = await api('GET', `/api/devices/${DEVICE}/profile`);
      return r.status === 200 ? (r.json as DeviceProfileResponse) : undefined;
    }).catch(failWithLogs);
    const here = collectDeviceProfile();
    assert.equal(stored.profile.kernels.build_hash, addonBuildHash());
    assert.equal(stored.profile.os.arch, process.arch);
    assert.equal(stored.profile.cpu.cores, here.cpu.cores);
    assert.equal(stored.profile.storage.path, join(dir, 'state'));
    const refreshed = await api('POST', `/api/devices/${DEVICE}/profile`);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.json));
    assert.ok((refreshed.json as DeviceProfileResponse).receivedAt >= stored.receivedAt);
  });

  test('whittle devices --json and whittle device profile --json print the stored profile', () => {
    const cli = cliSandbox('whittle-profile-cli-');
    try {
      const dataDir = join(dir, 'data');
      const devices = cli.whittle('devices', '--json', '--data-dir', dataDir);
      assert.equal(devices.status, 0, devices.stderr);
      const listed = (JSON.parse(devices.stdout) as { devices: { id: string; profile: unknown }[] }).devices;
      const mine = listed.find((d) => d.id === DEVICE);
      assert.equal(
        (mine?.profile as { kernels: { build_hash: string } }).kernels.build_hash,
        addonBuildHash(),
      );
      const profile = cli.whittle('device', 'profile', DEVICE, '--json', '--data-dir', dataDir);
      assert.equal(profile.status, 0, profile.stderr);
      assert.equal((JSON.parse(profile.stdout) as { profile_version: number }).profile_version, 1);
      const none = cli.whittle('device', 'profile', 'nobody', '--data-dir', dataDir);
      assert.equal(none.status, 1);
      assert.match(none.stderr, /no profile stored for device nobody/);
    } finally {
      cli.cleanup();
    }
  });

  test('an old agent that never answers, and a profile of another version or malformed, are refused by name', async () => {
    // A device speaking the protocol by hand: it answers each request with what `answer` gives.
    const fake = 'handmade';
    const client = await startHandmadeDevice(core, fake);
    try {
      let answer: ((id: string) => unknown) | null = null;
      client.on('message', (_topic, payload) => {
        const request = RequestMessageSchema.parse(JSON.parse(payload.toString('utf8')));
        if (answer)
          void client.publishAsync(deviceTopic(fake, 'response'), JSON.stringify(answer(request.id)), {
            qos: 1,
          });
      });
      const silent = await api('POST', `/api/devices/${fake}/profile`);
      assert.equal(silent.status, 504);
      assert.match(
        (silent.json as { error: string }).error,
        /did not answer the profile request within 3 s; its agent may predate/,
      );
      const good = collectDeviceProfile();
      const respond = (profile: unknown) => (id: string) => ({
        v: PROTOCOL_VERSION,
        id,
        ts: Date.now(),
        kind: 'profile',
        profile,
      });
      answer = respond({ ...good, profile_version: 2 });
      const newer = await api('POST', `/api/devices/${fake}/profile`);
      assert.equal(newer.status, 502);
      assert.match(
        (newer.json as { error: string }).error,
        /refuses: device profile: profile_version 2 is not readable/,
      );
      answer = respond({ ...good, memory: { total_bytes: -1, free_bytes: 0 } });
      const malformed = await api('POST', `/api/devices/${fake}/profile`);
      assert.equal(malformed.status, 502);
      assert.match((malformed.json as { error: string }).error, /memory\.total_bytes/);
      assert.equal(
        (await api('GET', `/api/devices/${fake}/profile`)).status,
        404,
        'nothing refused was stored',
      );
    } finally {
      await client.endAsync();
    }
  });

  test('a table of another kernel build is stored but not served as current', async () => {
    const foreign: LatencyTable = {
      table_version: 3,
      build_hash: 'ffffffffffffffff',
      isa: 'scalar',
      threads: 1,
      grid_id: '0000000000000000',
      complete: true,
      measured_at: 1,
      conditions: { before: { temps_c: [], freq_khz: [] }, after: { temps_c: [], freq_khz: [] } },
      entries: [],
    };
    core.store.saveLatencyTable(
      DEVICE,
      {
        buildHash: foreign.build_hash,
        gridId: foreign.grid_id,
        threads: 1,
        complete: true,
        json: JSON.stringify(foreign),
      },
      Date.now(),
    );
    const r = await api('GET', `/api/devices/${DEVICE}/latency-table`);
    assert.equal(r.status, 200);
    const tables = r.json as LatencyTablesResponse;
    assert.equal(tables.buildHash, addonBuildHash());
    assert.equal(tables.current, null);
    assert.deepEqual(
      tables.stale.map((t) => t.build_hash),
      ['ffffffffffffffff'],
    );
  });

  test('a device killed mid-measurement leaves an incomplete table that the next request completes', async () => {
    // 48 points of the quick grid: the first chunk's 24 entries arrive together, then the agent is killed
    // while it times the next 24.
    const request = { grid: 'quick', limit: 48 };
    let killedAt = -1;
    const onResponse = (device: string, message: { kind: string; done?: number }): void => {
      if (device === DEVICE && message.kind === 'latency-entry' && killedAt < 0) {
        killedAt = message.done ?? 0;
        agent.child.kill('SIGKILL');
      }
    };
    core.registry.on('response', onResponse);
    const started = await api('POST', `/api/devices/${DEVICE}/latency-table`, request);
    assert.equal(started.status, 202, JSON.stringify(started.json));
    const failed = await waitFor('the measurement to fail', 60_000, async () => {
      const t = (await api('GET', `/api/devices/${DEVICE}/latency-table`)).json as LatencyTablesResponse;
      return t.measurement?.state === 'failed' ? t : undefined;
    }).catch(failWithLogs);
    core.registry.off('response', onResponse);
    assert.match(
      failed.measurement!.error!,
      /went offline during the measurement; \d+ of 48 entries are stored/,
    );
    const partial = failed.current!;
    assert.equal(partial.complete, false);
    assert.ok(
      partial.entries.length >= 1 && partial.entries.length < 48,
      `${partial.entries.length} entries`,
    );

    agent = startAgent();
    await waitFor('the device back online', 30_000, () => core.registry.get(DEVICE)?.online || undefined);
    const resumed = await api('POST', `/api/devices/${DEVICE}/latency-table`, request);
    assert.equal(resumed.status, 202, JSON.stringify(resumed.json));
    const done = await waitFor('the measurement to complete', 60_000, async () => {
      const t = (await api('GET', `/api/devices/${DEVICE}/latency-table`)).json as LatencyTablesResponse;
      return t.measurement?.state !== 'running' ? t : undefined;
    }).catch(failWithLogs);
    assert.equal(done.measurement?.state, 'complete', done.measurement?.error ?? '');
    const table = done.current!;
    assert.equal(table.complete, true);
    assert.equal(table.entries.length, 48);
    assert.equal(table.build_hash, addonBuildHash());
    // Resumed, not measured again: the entries that survived the kill are in the final table as they were.
    for (const e of partial.entries)
      assert.deepEqual(
        table.entries.find((x) => x.key === e.key),
        e,
      );
    assert.equal(new Set(table.entries.map((e) => latencyKey(e.shape))).size, 48);
  });
});
