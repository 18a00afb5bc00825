// The setup and teardown integration tests repeat around a real core: a temporary data directory, a log of
// what the core and the agents said, the core on loopback (closed, and restartable on the same directory), and
// whatever else the test starts (agents, servers, clients), all stopped and removed when the test ends,
// whether it passed or failed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Core } from '../../electron/core/core.js';
import { startLoopbackCore } from './stack.js';

export interface CoreScratch {
  /** The temporary data directory (removed at the end). */
  readonly dir: string;
  /** Every line logged so far, oldest first. */
  readonly logs: string[];
  log: (line: string) => void;
  /** Starts a loopback core on `dir`, its lines logged with `logPrefix`, its broker on `mqttPort` (0: a free
   * port); closed at the end unless the test closes it first. One core at a time. */
  startCore: (opts?: { logPrefix?: string; mqttPort?: number }) => Promise<Core>;
  /** Closes the running core, if any (a test restarting the manager calls startCore again afterwards). */
  closeCore: () => Promise<void>;
  /** Runs `stop` at the end, before the core is closed; the last registered runs first. */
  onCleanup: (stop: () => unknown) => void;
  /** Fails the test with `err`'s message and the last `lines` lines of the log. */
  fail: (err: Error, lines?: number) => never;
}

/** Runs `body` with a fresh scratch named after `prefix`, then stops what it registered, closes the core and
 * removes the directory. */
export async function withCoreScratch<T>(
  prefix: string,
  body: (scratch: CoreScratch) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const logs: string[] = [];
  const cleanups: (() => unknown)[] = [];
  let core: Core | null = null;
  const scratch: CoreScratch = {
    dir,
    logs,
    log: (line) => void logs.push(line),
    startCore: async ({ logPrefix = '', mqttPort = 0 } = {}) => {
      if (core !== null) throw new Error('startCore: a core is already running in this scratch directory');
      core = await startLoopbackCore(dir, (line) => logs.push(`${logPrefix}${line}`), mqttPort);
      return core;
    },
    closeCore: async () => {
      const running = core;
      core = null;
      await running?.close();
    },
    onCleanup: (stop) => void cleanups.push(stop),
    fail: (err, lines = 40) => assert.fail(`${err.message}\n${logs.slice(-lines).join('\n')}`),
  };
  try {
    return await body(scratch);
  } finally {
    for (const stop of cleanups.reverse()) await stop();
    await scratch.closeCore();
    rmSync(dir, { recursive: true, force: true });
  }
}
