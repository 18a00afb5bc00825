// How a command finds the running manager: `whittle serve` (and `whittle demo`) write the API address and
// this launch's token to <data dir>/manager.json, readable by the user only, and remove it when they stop.
// The token is as powerful as the UI, so the file is mode 0600 inside the 0700 data directory.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { z } from 'zod';

import { WhittleError } from '../../native/whittle-error.js';

export const CONNECTION_FILE = 'manager.json';

export interface ManagerConnection {
  /** http://127.0.0.1:PORT */
  url: string;
  token: string;
  /** The manager's process id: lets `remove` leave a newer manager's file alone. */
  pid: number;
}

const ConnectionSchema = z.object({
  url: z.string().regex(/^http:\/\/(127\.0\.0\.1|localhost):\d{1,5}$/, 'url: expected http://127.0.0.1:PORT'),
  token: z.string().min(16).max(256),
  pid: z.number().int().positive(),
});

/** No manager is running for this data directory, or its file is unreadable. */
export class NoManagerError extends WhittleError {
  override readonly name = 'NoManagerError';
  readonly code = 'no-manager';
}

export function connectionFilePath(dataDir: string): string {
  return join(dataDir, CONNECTION_FILE);
}

export function writeConnectionFile(dataDir: string, connection: ManagerConnection): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = connectionFilePath(dataDir);
  // Written aside and renamed, so a reader never sees half a file; created 0600, never widened.
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, `${JSON.stringify(connection)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(temp, path);
  return path;
}

export function readConnectionFile(dataDir: string): ManagerConnection {
  const path = connectionFilePath(dataDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new NoManagerError(
        `no manager is running for ${dataDir} (no ${CONNECTION_FILE}); start one with: whittle serve --data-dir ${dataDir}`,
      );
    throw new NoManagerError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new NoManagerError(`${path} is not JSON; remove it and restart whittle serve`);
  }
  const parsed = ConnectionSchema.safeParse(json);
  if (!parsed.success)
    throw new NoManagerError(
      `${path}: ${parsed.error.issues[0]?.message ?? 'invalid'}; remove it and restart whittle serve`,
    );
  return parsed.data;
}

/** Removes the file if it still names this process (a newer manager may have replaced it). */
export function removeConnectionFile(dataDir: string, pid = process.pid): void {
  try {
    if (readConnectionFile(dataDir).pid !== pid) return;
    unlinkSync(connectionFilePath(dataDir));
  } catch {
    // Already gone or unreadable: nothing of ours to remove.
  }
}
