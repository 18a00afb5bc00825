// The manager's SQLite store: devices seen, the broker credentials issued to them, every per-second
// stats record the devices sent (each (device, epoch, seq) once), and the deployment history.
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import type { DeviceInfo } from '../../agent/protocol/messages.js';
import { DeviceInfoSchema } from '../../agent/protocol/messages.js';
import type { HostKey } from './provisioning/host-key.js';

export interface StoredDevice {
  id: string;
  info: DeviceInfo | null;
  firstSeen: number;
  lastSeen: number;
}

/** One stored stats record, as the manager received it. */
export interface StoredStats {
  device: string;
  epoch: string;
  seq: number;
  /** Agent clock, ms since epoch. */
  ts: number;
  /** Manager clock when the record was first stored. */
  receivedAt: number;
  /** Insertion order: first arrivals are numbered in the order they reached the manager. */
  arrival: number;
  json: string;
}

/** A package the manager accepted (validated by the agent's reader), kept by its SHA-256. */
export interface StoredPackage {
  sha256: string;
  modelId: string;
  modelVersion: string;
  name: string | null;
  bytes: number;
  cpuFamily: string;
  addedAt: number;
}

/** One deployment: a package sent to a set of devices, with the target each device was given. */
export interface StoredDeployment {
  id: string;
  createdAt: number;
  packageSha256: string;
  modelId: string;
  modelVersion: string;
  /** The DeployTarget as published (JSON; the same for every device except for the package URL host). */
  targetJson: string;
}

/** Where one device is in one deployment: the newest phase it reported (or 'pending' before any). */
export interface StoredDeploymentDevice {
  deploymentId: string;
  device: string;
  phase: string;
  code: string | null;
  reason: string | null;
  /** The model the device served after that phase (sha256 or "bundled"), from its report. */
  serving: string | null;
  /** The target published to this device (JSON); republished after a manager restart until finished. */
  targetJson: string;
  updatedAt: number;
}

/** One phase of one device in a deployment, as it was reported. */
export interface StoredDeploymentEvent {
  device: string;
  phase: string;
  code: string | null;
  reason: string | null;
  serving: string | null;
  at: number;
}

/** A device's running accuracy: labelled frames and right answers since `since` (manager clock), counted
 * while it served one model on one camera (`source`); another source starts the count afresh. */
export interface RunningAccuracy {
  source: string;
  frames: number;
  correct: number;
  since: number;
}

export interface StoredProfile {
  json: string;
  /** Manager clock, ms since epoch. */
  receivedAt: number;
}

export interface StoredLatencyTableKey {
  buildHash: string;
  gridId: string;
  threads: number;
}

export interface StoredLatencyTable extends StoredLatencyTableKey {
  complete: boolean;
  json: string;
  updatedAt: number;
}

/** 1: devices, agent_credentials. 2: stats. 3: ssh_host_keys, provisioned_devices. 4: packages,
 * deployments, deployment_devices. 5: deployment_events (every phase a device went through).
 * 6: device_accuracy (each device's running accuracy). 7: device_profiles, latency_tables (issue 16). */
export const SCHEMA_VERSION = 7;

/** A device's phase in a deployment: deployment_devices keeps each device's newest, deployment_events all. */
const DEPLOYMENT_PHASE_COLUMNS = `deployment_id TEXT NOT NULL REFERENCES deployments (id),
  device TEXT NOT NULL,
  phase TEXT NOT NULL,
  code TEXT,
  reason TEXT,
  serving TEXT`;

export class Store {
  private readonly db: Database.Database;
  private insertStatsStatement: Database.Statement | undefined;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(dataDir, 'whittle.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `the store in ${dataDir} was written by a newer Whittle (schema ${version} > ${SCHEMA_VERSION}); upgrade Whittle or use another --data-dir`,
      );
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS devices (
        id TEXT PRIMARY KEY,
        info_json TEXT,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS agent_credentials (
        username TEXT PRIMARY KEY,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
      -- Keyed by (device, epoch, seq): an agent re-sends records whose acknowledgement it did not see, and
      -- its seq restarts only with a new epoch (its outbox state was wiped), so this stores each once.
      CREATE TABLE IF NOT EXISTS stats (
        device TEXT NOT NULL,
        epoch TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        json TEXT NOT NULL,
        PRIMARY KEY (device, epoch, seq)
      );
      CREATE INDEX IF NOT EXISTS stats_by_time ON stats (device, ts);
      -- SSH host keys pinned on first contact (trust on first use); a changed key is refused.
      CREATE TABLE IF NOT EXISTS ssh_host_keys (
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        key_type TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        pinned_at INTEGER NOT NULL,
        PRIMARY KEY (host, port)
      );
      -- Devices the manager installed an agent on, and how, so that uninstall can remove all of it.
      CREATE TABLE IF NOT EXISTS provisioned_devices (
        id TEXT PRIMARY KEY,
        install_json TEXT NOT NULL,
        installed_at INTEGER NOT NULL
      );
    `);
    // Schema 4: the deployment history. Created in one transaction with the version bump, so a store is
    // either fully at 4 or still at its old version.
    if (version < 4) {
      this.db.transaction(() => {
        this.db.exec(`
          CREATE TABLE IF NOT EXISTS packages (
            sha256 TEXT PRIMARY KEY,
            model_id TEXT NOT NULL,
            model_version TEXT NOT NULL,
            name TEXT,
            bytes INTEGER NOT NULL,
            cpu_family TEXT NOT NULL,
            added_at INTEGER NOT NULL
          );
          CREATE TABLE IF NOT EXISTS deployments (
            id TEXT PRIMARY KEY,
            created_at INTEGER NOT NULL,
            package_sha256 TEXT NOT NULL REFERENCES packages (sha256),
            model_id TEXT NOT NULL,
            model_version TEXT NOT NULL,
            target_json TEXT NOT NULL
          );
          CREATE INDEX IF NOT EXISTS deployments_by_time ON deployments (created_at);
          CREATE TABLE IF NOT EXISTS deployment_devices (
            ${DEPLOYMENT_PHASE_COLUMNS},
            target_json TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (deployment_id, device)
          );
          CREATE INDEX IF NOT EXISTS deployment_devices_by_device ON deployment_devices (device);
        `);
      })();
    }
    // Schema 5: deployment_devices keeps each device's newest phase; the events keep them all, in order.
    if (version < 5)
      this.migrate(
        5,
        `
        CREATE TABLE IF NOT EXISTS deployment_events (
          ${DEPLOYMENT_PHASE_COLUMNS},
          at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS deployment_events_by_deployment ON deployment_events (deployment_id);
      `,
      );
    // Schema 6: the running accuracy of each device; stats records are pruned, so it cannot be summed
    // from them.
    if (version < 6)
      this.migrate(
        6,
        `
        CREATE TABLE IF NOT EXISTS device_accuracy (
          device TEXT PRIMARY KEY,
          source TEXT NOT NULL,
          frames INTEGER NOT NULL,
          correct INTEGER NOT NULL,
          since INTEGER NOT NULL
        );
      `,
      );
    // Schema 7: each device's newest profile, and its latency tables, one per (kernel build, grid,
    // threads): a table of another build stays stored but is not the device's current one.
    if (version < 7)
      this.migrate(
        7,
        `
        CREATE TABLE IF NOT EXISTS device_profiles (
          device TEXT PRIMARY KEY,
          profile_json TEXT NOT NULL,
          build_hash TEXT,
          received_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS latency_tables (
          device TEXT NOT NULL,
          build_hash TEXT NOT NULL,
          grid_id TEXT NOT NULL,
          threads INTEGER NOT NULL,
          complete INTEGER NOT NULL,
          table_json TEXT NOT NULL,
          updated_at INTEGER NOT NULL,
          PRIMARY KEY (device, build_hash, grid_id, threads)
        );
      `,
      );
  }

  /** Runs one schema step and sets the version to it, in one transaction: a store is either fully at the
   * new version or still at its old one. */
  private migrate(to: number, sql: string): void {
    this.db.transaction(() => {
      this.db.exec(sql);
      this.db.pragma(`user_version = ${to}`);
    })();
  }

  /** Keeps a device's newest profile (its JSON as received and checked), with its kernel build hash. */
  saveProfile(device: string, profileJson: string, buildHash: string | null, receivedAt: number): void {
    this.db
      .prepare(
        `INSERT INTO device_profiles (device, profile_json, build_hash, received_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (device) DO UPDATE SET profile_json = excluded.profile_json,
           build_hash = excluded.build_hash, received_at = excluded.received_at`,
      )
      .run(device, profileJson, buildHash, receivedAt);
  }

  profile(device: string): StoredProfile | undefined {
    const row = this.db
      .prepare('SELECT profile_json, received_at FROM device_profiles WHERE device = ?')
      .get(device) as { profile_json: string; received_at: number } | undefined;
    return row && { json: row.profile_json, receivedAt: row.received_at };
  }

  /** Stores a latency table (whole, as JSON) under its build, grid and threads, replacing the one there. */
  saveLatencyTable(
    device: string,
    table: StoredLatencyTableKey & { complete: boolean; json: string },
    at: number,
  ): void {
    this.db
      .prepare(
        `INSERT INTO latency_tables (device, build_hash, grid_id, threads, complete, table_json, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (device, build_hash, grid_id, threads) DO UPDATE SET complete = excluded.complete,
           table_json = excluded.table_json, updated_at = excluded.updated_at`,
      )
      .run(device, table.buildHash, table.gridId, table.threads, table.complete ? 1 : 0, table.json, at);
  }

  /** Every latency table of a device, newest first. */
  latencyTables(device: string): StoredLatencyTable[] {
    const rows = this.db
      .prepare(
        `SELECT build_hash, grid_id, threads, complete, table_json, updated_at FROM latency_tables
         WHERE device = ? ORDER BY updated_at DESC`,
      )
      .all(device) as {
      build_hash: string;
      grid_id: string;
      threads: number;
      complete: number;
      table_json: string;
      updated_at: number;
    }[];
    return rows.map((r) => ({
      buildHash: r.build_hash,
      gridId: r.grid_id,
      threads: r.threads,
      complete: r.complete === 1,
      json: r.table_json,
      updatedAt: r.updated_at,
    }));
  }

  devices(): StoredDevice[] {
    const rows = this.db
      .prepare('SELECT id, info_json, first_seen, last_seen FROM devices ORDER BY id')
      .all() as {
      id: string;
      info_json: string | null;
      first_seen: number;
      last_seen: number;
    }[];
    return rows.map((r) => {
      // A row written by an older version may not match today's schema: keep the device, drop the info.
      const info = r.info_json ? DeviceInfoSchema.safeParse(JSON.parse(r.info_json)) : null;
      return {
        id: r.id,
        info: info?.success ? info.data : null,
        firstSeen: r.first_seen,
        lastSeen: r.last_seen,
      };
    });
  }

  upsertDevice(id: string, info: DeviceInfo | null, seenAt: number): void {
    this.db
      .prepare(
        `INSERT INTO devices (id, info_json, first_seen, last_seen) VALUES (?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET info_json = COALESCE(excluded.info_json, info_json), last_seen = excluded.last_seen`,
      )
      .run(id, info ? JSON.stringify(info) : null, seenAt, seenAt);
  }

  /** Stores a stats record unless this (device, epoch, seq) is already stored; true if it was new. */
  insertStats(
    device: string,
    epoch: string,
    seq: number,
    ts: number,
    json: string,
    receivedAt: number,
  ): boolean {
    this.insertStatsStatement ??= this.db.prepare(
      'INSERT OR IGNORE INTO stats (device, epoch, seq, ts, received_at, json) VALUES (?, ?, ?, ?, ?, ?)',
    );
    return this.insertStatsStatement.run(device, epoch, seq, Math.round(ts), receivedAt, json).changes === 1;
  }

  /** A device's stored stats records in arrival order, optionally only those with ts >= sinceTs. */
  stats(device: string, sinceTs = 0): StoredStats[] {
    const rows = this.db
      .prepare(
        `SELECT rowid AS arrival, device, epoch, seq, ts, received_at, json FROM stats
         WHERE device = ? AND ts >= ? ORDER BY rowid`,
      )
      .all(device, sinceTs) as {
      arrival: number;
      device: string;
      epoch: string;
      seq: number;
      ts: number;
      received_at: number;
      json: string;
    }[];
    return rows.map((r) => ({
      device: r.device,
      epoch: r.epoch,
      seq: r.seq,
      ts: r.ts,
      receivedAt: r.received_at,
      arrival: r.arrival,
      json: r.json,
    }));
  }

  /** Adds one record's labelled frames to the device's running accuracy and returns the new total; a
   * `source` other than the stored one (another model or camera) starts a new count at `at`. */
  addAccuracy(device: string, source: string, frames: number, correct: number, at: number): RunningAccuracy {
    return this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO device_accuracy (device, source, frames, correct, since) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(device) DO UPDATE SET
             frames = CASE WHEN source = excluded.source THEN frames + excluded.frames ELSE excluded.frames END,
             correct = CASE WHEN source = excluded.source THEN correct + excluded.correct ELSE excluded.correct END,
             since = CASE WHEN source = excluded.source THEN since ELSE excluded.since END,
             source = excluded.source`,
        )
        .run(device, source, frames, correct, at);
      return this.runningAccuracy(device)!;
    })();
  }

  /** The device's running accuracy, if it ever reported labelled frames. */
  runningAccuracy(device: string): RunningAccuracy | undefined {
    const row = this.db
      .prepare('SELECT source, frames, correct, since FROM device_accuracy WHERE device = ?')
      .get(device) as RunningAccuracy | undefined;
    return row ? { ...row } : undefined;
  }

  /** Deletes stats records older than beforeTs (agent clock); returns how many. */
  pruneStats(beforeTs: number): number {
    return this.db.prepare('DELETE FROM stats WHERE ts < ?').run(beforeTs).changes;
  }

  /** Issues (or replaces) the broker password of a device and returns it; only its scrypt hash is kept. */
  issueCredential(username: string): string {
    const password = randomBytes(24).toString('base64url');
    const salt = randomBytes(16);
    this.db
      .prepare(
        `INSERT INTO agent_credentials (username, salt, hash, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(username) DO UPDATE SET salt = excluded.salt, hash = excluded.hash, created_at = excluded.created_at`,
      )
      .run(username, salt, scryptSync(password, salt, 32), Date.now());
    return password;
  }

  checkCredential(username: string, password: string): boolean {
    const row = this.db
      .prepare('SELECT salt, hash FROM agent_credentials WHERE username = ?')
      .get(username) as { salt: Buffer; hash: Buffer } | undefined;
    if (!row) return false;
    const candidate = scryptSync(password, row.salt, 32);
    return candidate.length === row.hash.length && timingSafeEqual(candidate, row.hash);
  }

  /** Deletes a device's broker credential (its agent can no longer connect); true if there was one. */
  revokeCredential(username: string): boolean {
    return this.db.prepare('DELETE FROM agent_credentials WHERE username = ?').run(username).changes === 1;
  }

  pinnedHostKey(host: string, port: number): HostKey | undefined {
    const row = this.db
      .prepare('SELECT key_type, fingerprint FROM ssh_host_keys WHERE host = ? AND port = ?')
      .get(host, port) as { key_type: string; fingerprint: string } | undefined;
    return row ? { keyType: row.key_type, fingerprint: row.fingerprint } : undefined;
  }

  pinHostKey(host: string, port: number, key: HostKey): void {
    this.db
      .prepare(
        `INSERT INTO ssh_host_keys (host, port, key_type, fingerprint, pinned_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(host, port) DO UPDATE SET key_type = excluded.key_type, fingerprint = excluded.fingerprint,
         pinned_at = excluded.pinned_at`,
      )
      .run(host, port, key.keyType, key.fingerprint, Date.now());
  }

  /** Forgets a pinned host key (the user knows why it changed); true if one was pinned. */
  forgetHostKey(host: string, port: number): boolean {
    return (
      this.db.prepare('DELETE FROM ssh_host_keys WHERE host = ? AND port = ?').run(host, port).changes === 1
    );
  }

  /** Records how an agent was installed on a device (JSON decoded by the provisioning code). */
  recordProvisioned(id: string, installJson: string): void {
    this.db
      .prepare(
        `INSERT INTO provisioned_devices (id, install_json, installed_at) VALUES (?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET install_json = excluded.install_json, installed_at = excluded.installed_at`,
      )
      .run(id, installJson, Date.now());
  }

  provisioned(): { id: string; installJson: string; installedAt: number }[] {
    const rows = this.db
      .prepare('SELECT id, install_json, installed_at FROM provisioned_devices ORDER BY id')
      .all() as { id: string; install_json: string; installed_at: number }[];
    return rows.map((r) => ({ id: r.id, installJson: r.install_json, installedAt: r.installed_at }));
  }

  removeProvisioned(id: string): boolean {
    return this.db.prepare('DELETE FROM provisioned_devices WHERE id = ?').run(id).changes === 1;
  }

  /** Records an accepted package (again: refreshes nothing but keeps the first added_at). */
  addPackage(p: StoredPackage): void {
    this.db
      .prepare(
        `INSERT OR IGNORE INTO packages (sha256, model_id, model_version, name, bytes, cpu_family, added_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(p.sha256, p.modelId, p.modelVersion, p.name, p.bytes, p.cpuFamily, p.addedAt);
  }

  packages(): StoredPackage[] {
    const rows = this.db
      .prepare(
        'SELECT sha256, model_id, model_version, name, bytes, cpu_family, added_at FROM packages ORDER BY added_at DESC, sha256',
      )
      .all() as PackageRow[];
    return rows.map(packageFromRow);
  }

  package(sha256: string): StoredPackage | undefined {
    const row = this.db
      .prepare(
        'SELECT sha256, model_id, model_version, name, bytes, cpu_family, added_at FROM packages WHERE sha256 = ?',
      )
      .get(sha256) as PackageRow | undefined;
    return row ? packageFromRow(row) : undefined;
  }

  /** Stores a deployment and its devices (all 'pending') in one transaction. */
  addDeployment(d: StoredDeployment, devices: readonly { device: string; targetJson: string }[]): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO deployments (id, created_at, package_sha256, model_id, model_version, target_json)
           VALUES (?, ?, ?, ?, ?, ?)`,
        )
        .run(d.id, d.createdAt, d.packageSha256, d.modelId, d.modelVersion, d.targetJson);
      const insert = this.db.prepare(
        `INSERT INTO deployment_devices (deployment_id, device, phase, target_json, updated_at)
         VALUES (?, ?, 'pending', ?, ?)`,
      );
      for (const { device, targetJson } of devices) insert.run(d.id, device, targetJson, d.createdAt);
    })();
  }

  /** Newest first; at most `limit`. */
  deployments(limit = 100): StoredDeployment[] {
    const rows = this.db
      .prepare(
        `SELECT id, created_at, package_sha256, model_id, model_version, target_json FROM deployments
         ORDER BY created_at DESC, rowid DESC LIMIT ?`,
      )
      .all(limit) as DeploymentRow[];
    return rows.map(deploymentFromRow);
  }

  deployment(id: string): StoredDeployment | undefined {
    const row = this.db
      .prepare(
        'SELECT id, created_at, package_sha256, model_id, model_version, target_json FROM deployments WHERE id = ?',
      )
      .get(id) as DeploymentRow | undefined;
    return row ? deploymentFromRow(row) : undefined;
  }

  /** The devices of one deployment, by id. */
  deploymentDevices(deploymentId: string): StoredDeploymentDevice[] {
    const rows = this.db
      .prepare(
        `SELECT deployment_id, device, phase, code, reason, serving, target_json, updated_at
         FROM deployment_devices WHERE deployment_id = ? ORDER BY device`,
      )
      .all(deploymentId) as DeploymentDeviceRow[];
    return rows.map(deploymentDeviceFromRow);
  }

  /** Each device's newest deployment (the target it should be working on), whatever its phase. */
  latestDeploymentPerDevice(): StoredDeploymentDevice[] {
    const rows = this.db
      .prepare(
        `SELECT dd.deployment_id, dd.device, dd.phase, dd.code, dd.reason, dd.serving, dd.target_json, dd.updated_at
         FROM deployment_devices dd JOIN deployments d ON d.id = dd.deployment_id
         WHERE d.rowid = (SELECT MAX(d2.rowid) FROM deployment_devices dd2 JOIN deployments d2
                          ON d2.id = dd2.deployment_id WHERE dd2.device = dd.device)
         ORDER BY dd.device`,
      )
      .all() as DeploymentDeviceRow[];
    return rows.map(deploymentDeviceFromRow);
  }

  /** Records a device's progress in a deployment (its newest phase, and the phase in its history); false
   * when that device is not part of it. */
  updateDeploymentDevice(
    deploymentId: string,
    device: string,
    phase: string,
    extra: { code?: string | undefined; reason?: string | undefined; serving?: string | undefined },
    at: number,
  ): boolean {
    const code = extra.code ?? null;
    const reason = extra.reason ?? null;
    const serving = extra.serving ?? null;
    return this.db.transaction(() => {
      const changed =
        this.db
          .prepare(
            `UPDATE deployment_devices SET phase = ?, code = ?, reason = ?, serving = COALESCE(?, serving), updated_at = ?
             WHERE deployment_id = ? AND device = ?`,
          )
          .run(phase, code, reason, serving, at, deploymentId, device).changes === 1;
      if (changed)
        this.db
          .prepare(
            `INSERT INTO deployment_events (deployment_id, device, phase, code, reason, serving, at)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(deploymentId, device, phase, code, reason, serving, at);
      return changed;
    })();
  }

  /** Every phase the devices of a deployment reported (and 'superseded'), oldest first. */
  deploymentEvents(deploymentId: string): StoredDeploymentEvent[] {
    const rows = this.db
      .prepare(
        `SELECT device, phase, code, reason, serving, at FROM deployment_events
         WHERE deployment_id = ? ORDER BY rowid`,
      )
      .all(deploymentId) as StoredDeploymentEvent[];
    return rows.map((r) => ({ ...r }));
  }

  close(): void {
    this.db.close();
  }
}

/** `fooBar` as its column name `foo_bar`. */
type SnakeCase<S extends string> = S extends `${infer H}${infer T}`
  ? `${H extends Lowercase<H> ? H : `_${Lowercase<H>}`}${SnakeCase<T>}`
  : S;

/** The row SQLite returns for a stored record: its fields under their snake_case column names. */
type RowOf<T> = { [K in keyof T & string as SnakeCase<K>]: T[K] };

type PackageRow = RowOf<StoredPackage>;
type DeploymentRow = RowOf<StoredDeployment>;
type DeploymentDeviceRow = RowOf<StoredDeploymentDevice>;

/** The record of a row: each snake_case column as its camelCase field. */
function fromRow<T>(row: RowOf<T>): T {
  return Object.fromEntries(
    Object.entries(row).map(([column, value]) => [
      column.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
      value,
    ]),
  ) as T;
}

const packageFromRow = (r: PackageRow): StoredPackage => fromRow<StoredPackage>(r);
const deploymentFromRow = (r: DeploymentRow): StoredDeployment => fromRow<StoredDeployment>(r);
const deploymentDeviceFromRow = (r: DeploymentDeviceRow): StoredDeploymentDevice =>
  fromRow<StoredDeploymentDevice>(r);
