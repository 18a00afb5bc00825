import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';

import Database from 'better-sqlite3';

import { deviceTopic, type StatsMessage } from '../../agent/protocol/messages.js';
import { DeviceRegistry } from '../../electron/core/device-registry.js';
import { Store } from '../../electron/core/store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'whittle-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function stats(seq: number, epoch = 'e1'): StatsMessage {
  return {
    v: 1,
    seq,
    epoch,
    ts: 1_700_000_000_000 + seq * 1000,
    windowMs: 1000,
    frames: 30,
    fps: 30,
    latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 },
    cpuPercent: 10,
    rssBytes: 50e6,
  };
}

test('the registry stores each (device, epoch, seq) once and ignores re-sends', () => {
  const store = new Store(dir);
  const registry = new DeviceRegistry(store, () => undefined);
  const changes: number[] = [];
  registry.on('change', (v) => changes.push(v.stats?.seq ?? -1));
  const topic = deviceTopic('cam-1', 'stats');
  for (const seq of [0, 1, 1, 2, 0]) registry.ingest(topic, Buffer.from(JSON.stringify(stats(seq))));
  registry.ingest(topic, Buffer.from(JSON.stringify(stats(0, 'e2'))));
  assert.deepEqual(
    store.stats('cam-1').map((r) => `${r.epoch}:${r.seq}`),
    ['e1:0', 'e1:1', 'e1:2', 'e2:0'],
  );
  assert.equal(registry.duplicates.get('cam-1'), 2);
  assert.deepEqual(changes, [0, 1, 2, 0], 'a duplicate emits no change');
  store.close();
});

test('a store of schema 1 is upgraded in place, keeping its devices', () => {
  const db = new Database(join(dir, 'whittle.db'));
  db.exec(
    'CREATE TABLE devices (id TEXT PRIMARY KEY, info_json TEXT, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL)',
  );
  db.prepare('INSERT INTO devices VALUES (?, NULL, 1, 2)').run('old-device');
  db.pragma('user_version = 1');
  db.close();
  const store = new Store(dir);
  assert.deepEqual(
    store.devices().map((d) => d.id),
    ['old-device'],
  );
  assert.equal(store.insertStats('old-device', '', 0, 5, '{}', 6), true);
  assert.equal(store.insertStats('old-device', '', 0, 5, '{}', 7), false);
  store.close();
});

test('snapshots and deploy reports are decoded at the edge; bad ones are counted, not kept', () => {
  const store = new Store(dir);
  const registry = new DeviceRegistry(store, () => undefined);
  const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]).toString('base64');
  registry.ingest(deviceTopic('cam-1', 'snapshot'), Buffer.from(JSON.stringify({ v: 1, ts: 1, jpeg })));
  assert.equal(registry.snapshot('cam-1')?.jpeg, jpeg);
  registry.ingest(
    deviceTopic('cam-1', 'snapshot'),
    Buffer.from(JSON.stringify({ v: 1, ts: 2, jpeg: 'iVBORw0K' })),
  );
  assert.equal(registry.snapshot('cam-1')?.ts, 1, 'a PNG is not a JPEG snapshot');
  const report = {
    v: 1,
    ts: 3,
    deploymentId: 'd1',
    modelId: 'm',
    version: '2',
    phase: 'refused',
    code: 'older-version',
    reason: 'older than installed',
    serving: 'bundled',
  };
  registry.ingest(deviceTopic('cam-1', 'deploy'), Buffer.from(JSON.stringify(report)));
  registry.ingest(
    deviceTopic('cam-1', 'deploy'),
    Buffer.from(JSON.stringify({ ...report, phase: 'exploded' })),
  );
  assert.deepEqual(
    registry.deployments('cam-1').map((r) => r.code),
    ['older-version'],
  );
  assert.equal(registry.rejected.get('cam-1'), 2);
  store.close();
});
