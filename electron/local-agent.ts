// The main job's local device: this machine runs an agent too, as a child process of the manager, supervised
// as the device's systemd unit supervises a provisioned agent (Restart=always): whenever it dies, it is
// started again after a back-off, until stop().
//
// Invariants:
//  - At most one agent process runs at a time; a restart is scheduled only after the previous one exited.
//  - The broker credential and the config file are made once: every restart uses the same ones.
//  - The back-off grows while the agent keeps dying (1 s doubling to 30 s, jittered: agent/link/backoff.ts),
//    and starts over once an agent has run STABLE_MS.
//  - After stop() nothing is started again, and `exited` resolves once the last process is gone.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { AGENT_NODE_FLAGS } from '../agent/config.js';
import { Backoff } from '../agent/link/backoff.js';
import { packageRoot } from '../agent/package-root.js';
import { managerSigningPublicKey } from './core/provisioning/signing-key.js';
import type { Store } from './core/store.js';

/** An agent that ran this long was healthy: the next death restarts it after the shortest back-off. */
const STABLE_MS = 30_000;

/** Restart back-off bounds, ms: the first restart within a second, as the device's RestartSec=2. */
export const RESTART_BACKOFF = { initialMs: 1000, maxMs: 30_000 } as const;

/** What the supervisor did, for the terminal. */
export type SupervisorEvent =
  | {
      kind: 'died';
      /** Exit code, or null when a signal ended it. */
      code: number | null;
      signal: NodeJS.Signals | null;
      /** How long it ran, ms. */
      ranMs: number;
      restartInMs: number;
    }
  | { kind: 'restarted'; pid: number | undefined; restarts: number };

export interface LocalAgentOptions {
  store: Store;
  deviceId: string;
  brokerPort: number;
  camera: string;
  /** Per-frame labels of the camera's video (<video>.labels.json): the agent reports live accuracy. */
  labels?: string;
  dataDir: string;
  /** Called with the agent's log lines (already written to the log file). */
  onLine?: (line: string) => void;
  /** Called when the agent died (and when it will start again), and when it started again. */
  onSupervisor?: (event: SupervisorEvent) => void;
  restartBackoff?: { initialMs: number; maxMs: number };
}

export interface LocalAgent {
  /** The agent process running now (or the last one, between a death and its restart). */
  readonly child: ChildProcess;
  logFile: string;
  /** Times the agent was started again after dying. */
  readonly restarts: number;
  /** Resolves when the supervision ended (after stop()) and the last process exited: its exit code. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Issues fresh broker credentials for the local device, writes them to a private config file (so the
 * password never appears in `ps`), starts `whittle-agent run` with it and restarts it whenever it dies. */
export function startLocalAgent(options: LocalAgentOptions): LocalAgent {
  const password = options.store.issueCredential(options.deviceId);
  const configFile = join(options.dataDir, 'local-agent.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      broker: `mqtt://127.0.0.1:${options.brokerPort}`,
      deviceId: options.deviceId,
      password,
      camera: options.camera,
      ...(options.labels !== undefined ? { labels: options.labels } : {}),
      // The manager's package-signing key: the local device accepts the manager's deployments like any
      // provisioned one.
      packageKey: managerSigningPublicKey(options.dataDir),
    }),
    { mode: 0o600 },
  );
  const logFile = join(options.dataDir, 'local-agent.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  const backoff = new Backoff(options.restartBackoff ?? RESTART_BACKOFF);
  let stopped = false;
  let restarts = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  let resolveExited: (code: number | null) => void = () => undefined;
  const exited = new Promise<number | null>((resolve) => (resolveExited = resolve));

  const forward = (chunk: Buffer): void => {
    log.write(chunk);
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) options.onLine?.(line);
  };
  const launch = (): { child: ChildProcess; done: Promise<number | null> } => {
    const startedAt = Date.now();
    const child = spawn(
      process.execPath,
      [...AGENT_NODE_FLAGS, join(packageRoot(), 'bin', 'whittle-agent.js'), 'run', '--config', configFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', forward);
    child.stderr?.on('data', forward);
    const done = new Promise<number | null>((resolve) => {
      child.on('exit', (code, signal) => {
        resolve(code);
        if (stopped) {
          log.end();
          resolveExited(code);
          return;
        }
        const ranMs = Date.now() - startedAt;
        if (ranMs >= STABLE_MS) backoff.reset();
        const restartInMs = backoff.next();
        options.onSupervisor?.({ kind: 'died', code, signal, ranMs, restartInMs });
        restartTimer = setTimeout(() => {
          restartTimer = undefined;
          if (stopped) return;
          restarts++;
          current = launch();
          options.onSupervisor?.({ kind: 'restarted', pid: current.child.pid, restarts });
        }, restartInMs);
      });
    });
    return { child, done };
  };
  let current = launch();

  return {
    get child() {
      return current.child;
    },
    logFile,
    get restarts() {
      return restarts;
    },
    exited,
    async stop() {
      stopped = true;
      clearTimeout(restartTimer);
      const { child, done } = current;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timeout = setTimeout(() => child.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(timeout);
      } else {
        // Dead and waiting for a restart that will not come.
        log.end();
        resolveExited(child.exitCode);
      }
    },
  };
}
