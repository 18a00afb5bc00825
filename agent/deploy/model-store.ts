// The agent's installed models on disk, and which one it serves.
//
//   <root>/blobs/<sha256>.model   verified model files, named by the SHA-256 of their content
//   <root>/blobs/<sha256>.part    a download in progress (resumed with an HTTP Range request)
//   <root>/active.json            {current, previous, trial}: replaced atomically (write, fsync, rename,
//                                 fsync dir) — the switch between models is this one rename
//
// Invariants, which make a crash at any instant leave the device serving the old or the new model:
// - A .model file appears only by renaming a fully written, fsynced, verified .part file.
// - active.json names only blobs that exist; blobs named by current or previous are never deleted.
// - current = null means the model bundled with the agent.
// - trial = true means current was switched to and its health check has not passed yet; an agent that
//   starts in that state goes back to previous (the check was interrupted, possibly by the new model).
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

import { writeFileAtomicSync } from './atomic-file.js';

export interface InstalledModel {
  sha256: string;
  modelId: string;
  version: string;
}

export interface ActiveState {
  version: 1;
  current: InstalledModel | null;
  previous: InstalledModel | null;
  trial: boolean;
  deploymentId?: string;
}

const EMPTY: ActiveState = { version: 1, current: null, previous: null, trial: false };
const SHA_RE = /^[0-9a-f]{64}$/;

export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function isInstalled(x: unknown): x is InstalledModel {
  if (typeof x !== 'object' || x === null) return false;
  const m = x as Record<string, unknown>;
  return (
    typeof m.sha256 === 'string' &&
    SHA_RE.test(m.sha256) &&
    typeof m.modelId === 'string' &&
    typeof m.version === 'string'
  );
}

export class ModelStore {
  readonly blobs: string;
  private readonly activeFile: string;

  constructor(
    readonly root: string,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.blobs = join(root, 'blobs');
    this.activeFile = join(root, 'active.json');
    mkdirSync(this.blobs, { recursive: true, mode: 0o700 });
  }

  blobPath(sha256: string): string {
    return join(this.blobs, `${sha256}.model`);
  }

  partPath(sha256: string): string {
    return join(this.blobs, `${sha256}.part`);
  }

  hasBlob(sha256: string): boolean {
    try {
      return statSync(this.blobPath(sha256)).isFile();
    } catch {
      return false;
    }
  }

  /** The active state; a missing or damaged file (it is only replaced atomically, so damage means a
   * disk fault) reads as "serve the bundled model". */
  readActive(): ActiveState {
    let text: string;
    try {
      text = readFileSync(this.activeFile, 'utf8');
    } catch {
      return { ...EMPTY };
    }
    try {
      const o = JSON.parse(text) as Record<string, unknown>;
      if (
        o.version === 1 &&
        (o.current === null || isInstalled(o.current)) &&
        (o.previous === null || isInstalled(o.previous)) &&
        typeof o.trial === 'boolean'
      )
        return o as unknown as ActiveState;
    } catch {
      // fall through
    }
    this.log(`models: ${this.activeFile} is damaged; serving the bundled model`);
    return { ...EMPTY };
  }

  writeActive(state: ActiveState): void {
    writeFileAtomicSync(this.activeFile, JSON.stringify(state), 0o600);
  }

  /** Deletes blobs and partial downloads other than those kept (current, previous, the one in flight). */
  collectGarbage(keep: ReadonlySet<string>): void {
    for (const name of readdirSync(this.blobs)) {
      const sha = name.slice(0, 64);
      if (keep.has(sha)) continue;
      try {
        unlinkSync(join(this.blobs, name));
      } catch {
        // Already gone: nothing to do.
      }
    }
  }
}
