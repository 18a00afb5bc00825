// Live accuracy in the manager: the registry's windowed and running figures from the devices' stats records,
// the running count kept in the store (schema 6) so that it survives a manager restart.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';

import Database from 'better-sqlite3';

import { deviceTopic, type StatsMessage, type StatusMessage } from '../../agent/protocol/messages.js';
import { ACCURACY_WINDOW_SECONDS, DeviceRegistry } from '../../electron/core/device-registry.js';
import { SCHEMA_VERSION, Store } from '../../electron/core/store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'whittle-accuracy-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const T0 = 1_700_000_000_000;

function stats(seq: number, accuracy?: { frames: number; correct: number }): Buffer {
  const body: StatsMessage = {
    v: 1,
    seq,
    epoch: 'e1',
    ts: T0 + seq * 1000,
    windowMs: 1000,
    frames: 30,
    fps: 30,
    latencyMs: { p50: 1, p95: 2, max: 4 },
    cpuPercent: 10,
    ...(accuracy ? { accuracy } : {}),
  };
  return Buffer.from(JSON.stringify(body));
}

function status(modelId: string, camera = '/videos/fashion.mp4'): Buffer {
  const body: StatusMessage = {
    v: 1,
    online: true,
    ts: T0,
    info: {
      id: 'cam-1',
      hostname: 'h',
      arch: 'x64',
      platform: 'linux',
      cpuModel: 'c',
      cpus: 2,
      memTotalBytes: 1e9,
      agentVersion: '0.1.0',
      nodeVersion: 'v20',
      camera,
      model: { id: modelId, name: modelId },
    },
  };
  return Buffer.from(JSON.stringify(body));
}

const STATS = deviceTopic('cam-1', 'stats');
const STATUS = deviceTopic('cam-1', 'status');

test('the window covers the last seconds of records, the running count all of them; a re-send counts once', () => {
  const store = new Store(dir);
  const registry = new DeviceRegistry(store, () => undefined);
  registry.ingest(STATUS, status('fashion'));
  const total = ACCURACY_WINDOW_SECONDS + 10;
  for (let seq = 0; seq < total; seq++)
    registry.ingest(STATS, stats(seq, { frames: 30, correct: seq < 10 ? 0 : 27 }));
  registry.ingest(STATS, stats(total - 1, { frames: 30, correct: 27 })); // a re-send: stored once, counted once
  const accuracy = registry.get('cam-1')?.accuracy;
  assert.ok(accuracy);
  // Records are 1 s apart: the window holds the newest ACCURACY_WINDOW_SECONDS of them, all from seq 10 on.
  assert.deepEqual(accuracy.window, {
    frames: 30 * ACCURACY_WINDOW_SECONDS,
    correct: 27 * ACCURACY_WINDOW_SECONDS,
    seconds: ACCURACY_WINDOW_SECONDS,
  });
  assert.equal(accuracy.running.frames, 30 * total);
  assert.equal(accuracy.running.correct, 27 * (total - 10));
  store.close();
});

test('an unlabelled record shows no accuracy; an offline device none either, and its count stays', () => {
  const store = new Store(dir);
  const registry = new DeviceRegistry(store, () => undefined);
  registry.ingest(STATUS, status('fashion'));
  registry.ingest(STATS, stats(0, { frames: 30, correct: 30 }));
  assert.ok(registry.get('cam-1')?.accuracy);
  registry.ingest(STATS, stats(1));
  assert.equal('accuracy' in registry.get('cam-1')!, false, 'no accuracy field, not a made-up one');
  registry.ingest(STATS, stats(2, { frames: 10, correct: 5 }));
  registry.markOffline('cam-1');
  assert.equal('accuracy' in registry.get('cam-1')!, false);
  assert.deepEqual(
    { ...store.runningAccuracy('cam-1'), since: 0 },
    { source: 'fashion\n/videos/fashion.mp4', frames: 40, correct: 35, since: 0 },
  );
  store.close();
});

test('the running count survives a manager restart, and starts afresh with another model', () => {
  let store = new Store(dir);
  let registry = new DeviceRegistry(store, () => undefined);
  registry.ingest(STATUS, status('fashion'));
  for (let seq = 0; seq < 5; seq++) registry.ingest(STATS, stats(seq, { frames: 30, correct: 20 }));
  const since = registry.get('cam-1')!.accuracy!.running.since;
  store.close();

  store = new Store(dir);
  registry = new DeviceRegistry(store, () => undefined);
  registry.ingest(STATUS, status('fashion'));
  registry.ingest(STATS, stats(5, { frames: 30, correct: 29 }));
  const after = registry.get('cam-1')!.accuracy!;
  assert.deepEqual(after.running, { frames: 180, correct: 129, since });
  // The window is rebuilt from the stored records of its span, not started empty.
  assert.deepEqual(after.window, { frames: 180, correct: 129, seconds: ACCURACY_WINDOW_SECONDS });

  registry.ingest(STATUS, status('another-model'));
  registry.ingest(STATS, stats(6, { frames: 30, correct: 3 }));
  assert.deepEqual(
    { ...registry.get('cam-1')!.accuracy!.running, since: 0 },
    { frames: 30, correct: 3, since: 0 },
  );
  store.close();
});

test('a store of schema 5 gets the accuracy table and keeps its records', () => {
  let store = new Store(dir);
  store.insertStats('cam-1', 'e1', 0, T0, '{}', T0);
  store.close();
  const db = new Database(join(dir, 'whittle.db'));
  db.exec('DROP TABLE device_accuracy');
  db.pragma('user_version = 5');
  db.close();
  store = new Store(dir);
  assert.equal(store.stats('cam-1').length, 1);
  assert.equal(store.runningAccuracy('cam-1'), undefined);
  assert.equal(store.addAccuracy('cam-1', 's', 30, 29, 1).frames, 30);
  store.close();
  const reopened = new Database(join(dir, 'whittle.db'));
  assert.equal(reopened.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  reopened.close();
});
