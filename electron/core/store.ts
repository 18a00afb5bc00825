// The manager's SQLite store: devices seen, the broker credentials issued to them, and every per-second
// stats record the devices sent (each (device, epoch, seq) once).
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

/** 1: devices, agent_credentials. 2: stats. 3: ssh_host_keys, provisioned_devices. */
const SCHEMA_VERSION = 3;

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
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
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

  close(): void {
    this.db.close();
  }
}
