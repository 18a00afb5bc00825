// The manager's SQLite store: devices seen and the broker credentials issued to them.
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import type { DeviceInfo } from '../../agent/protocol/messages.js';
import { DeviceInfoSchema } from '../../agent/protocol/messages.js';

export interface StoredDevice {
  id: string;
  info: DeviceInfo | null;
  firstSeen: number;
  lastSeen: number;
}

const SCHEMA_VERSION = 1;

export class Store {
  private readonly db: Database.Database;

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

  close(): void {
    this.db.close();
  }
}
