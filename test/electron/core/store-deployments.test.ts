// Schema 4 of the store (packages, deployments, deployment_devices): a schema 3 store is upgraded in place,
// keeping what it held, and the deployment history survives reopening.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';

import Database from 'better-sqlite3';

import { SCHEMA_VERSION, Store } from '../../../electron/core/store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'whittle-store4-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A store exactly as schema 3 left it, with one device, one stats record and one provisioned device. */
function writeSchema3Store(): void {
  const db = new Database(join(dir, 'whittle.db'));
  db.exec(`
    CREATE TABLE devices (id TEXT PRIMARY KEY, info_json TEXT, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);
    CREATE TABLE agent_credentials (username TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, created_at INTEGER NOT NULL);
    CREATE TABLE stats (device TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
      received_at INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY (device, epoch, seq));
    CREATE INDEX stats_by_time ON stats (device, ts);
    CREATE TABLE ssh_host_keys (host TEXT NOT NULL, port INTEGER NOT NULL, key_type TEXT NOT NULL,
      fingerprint TEXT NOT NULL, pinned_at INTEGER NOT NULL, PRIMARY KEY (host, port));
    CREATE TABLE provisioned_devices (id TEXT PRIMARY KEY, install_json TEXT NOT NULL, installed_at INTEGER NOT NULL);
  `);
  db.prepare('INSERT INTO devices VALUES (?, NULL, 1, 2)').run('pi-1');
  db.prepare('INSERT INTO stats VALUES (?, ?, ?, ?, ?, ?)').run('pi-1', 'e', 0, 10, 11, '{}');
  db.prepare('INSERT INTO provisioned_devices VALUES (?, ?, ?)').run('pi-1', '{"how":"ssh"}', 3);
  db.pragma('user_version = 3');
  db.close();
}

const sha = (c: string): string => c.repeat(64);

function addDeployment(store: Store, id: string, devices: string[], createdAt: number): void {
  store.addDeployment(
    {
      id,
      createdAt,
      packageSha256: sha('a'),
      modelId: 'fashion',
      modelVersion: '2',
      targetJson: `{"deploymentId":"${id}"}`,
    },
    devices.map((device) => ({ device, targetJson: `{"deploymentId":"${id}","for":"${device}"}` })),
  );
}

test('a schema 3 store is upgraded to the current schema keeping devices, stats and installs', () => {
  writeSchema3Store();
  const store = new Store(dir);
  assert.deepEqual(
    store.devices().map((d) => d.id),
    ['pi-1'],
  );
  assert.equal(store.stats('pi-1').length, 1);
  assert.deepEqual(
    store.provisioned().map((p) => p.installJson),
    ['{"how":"ssh"}'],
  );
  assert.deepEqual(store.deployments(), []);
  store.close();
  const db = new Database(join(dir, 'whittle.db'), { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  const tables = (
    db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
  )
    .map((t) => t.name)
    .sort();
  assert.deepEqual(tables, [
    'agent_credentials',
    'deployment_devices',
    'deployment_events',
    'deployments',
    'device_accuracy',
    'device_profiles',
    'devices',
    'latency_tables',
    'packages',
    'provisioned_devices',
    'ssh_host_keys',
    'stats',
  ]);
  db.close();
});

test('deployments and per-device outcomes survive reopening the store', () => {
  const store = new Store(dir);
  store.addPackage({
    sha256: sha('a'),
    modelId: 'fashion',
    modelVersion: '2',
    name: null,
    bytes: 1234,
    cpuFamily: 'any',
    addedAt: 5,
  });
  addDeployment(store, 'd-1', ['cam-1', 'cam-2'], 100);
  assert.ok(store.updateDeploymentDevice('d-1', 'cam-1', 'committed', { serving: sha('a') }, 110));
  assert.ok(
    store.updateDeploymentDevice(
      'd-1',
      'cam-2',
      'refused',
      { code: 'bad-signature', reason: 'does not verify', serving: 'bundled' },
      111,
    ),
  );
  assert.equal(store.updateDeploymentDevice('d-1', 'cam-9', 'committed', {}, 112), false, 'not part of it');
  addDeployment(store, 'd-2', ['cam-2'], 200);
  store.close();

  const again = new Store(dir);
  assert.deepEqual(
    again.deployments().map((d) => d.id),
    ['d-2', 'd-1'],
    'newest first',
  );
  assert.deepEqual(
    again.deploymentDevices('d-1').map((d) => [d.device, d.phase, d.code, d.reason, d.serving]),
    [
      ['cam-1', 'committed', null, null, sha('a')],
      ['cam-2', 'refused', 'bad-signature', 'does not verify', 'bundled'],
    ],
  );
  assert.deepEqual(
    again.latestDeploymentPerDevice().map((d) => [d.device, d.deploymentId, d.phase]),
    [
      ['cam-1', 'd-1', 'committed'],
      ['cam-2', 'd-2', 'pending'],
    ],
  );
  assert.equal(again.package(sha('a'))?.bytes, 1234);
  // Every phase is kept in order, not only the newest; a device not in the deployment adds none.
  assert.deepEqual(
    again.deploymentEvents('d-1').map((e) => [e.device, e.phase, e.code, e.at]),
    [
      ['cam-1', 'committed', null, 110],
      ['cam-2', 'refused', 'bad-signature', 111],
    ],
  );
  assert.deepEqual(again.deploymentEvents('d-2'), []);
  again.close();
});

test('a store written by a newer schema is refused with a way out', () => {
  const db = new Database(join(dir, 'whittle.db'));
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  assert.throws(
    () => new Store(dir),
    new RegExp(`newer Whittle \\(schema ${SCHEMA_VERSION + 1} > ${SCHEMA_VERSION}\\).*--data-dir`),
  );
});
