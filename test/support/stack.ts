// A real manager core and, optionally, a real agent process with ffmpeg's test camera, on free ports
// and a temporary data directory: the system under test for integration and end-to-end tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type Core, startCore } from '../../electron/core/core.js';
import { demoVideo } from '../../electron/demo-video.js';
import { type LocalAgent, startLocalAgent } from '../../electron/local-agent.js';

export interface Stack {
  /** http://127.0.0.1:PORT/#token=... */
  uiUrl: string;
  /** http://127.0.0.1:PORT */
  apiUrl: string;
  token: string;
  /** The core's data directory (store, signing key, packages). */
  dataDir: string;
  agentId: string;
  core: Core;
  agent: LocalAgent | null;
  /** Everything the core and the agent logged, for assertions and for failure messages. */
  logs: string[];
  stop(): Promise<void>;
  /** SIGKILL: the agent gets no chance to say goodbye (its supervisor starts it again). */
  killAgent(): void;
}

/** A real core in `dataDir` on loopback, HTTP on a free port, its broker on `mqttPort` (0: a free one). */
export function startLoopbackCore(
  dataDir: string,
  log: (line: string) => void = () => undefined,
  mqttPort = 0,
): Promise<Core> {
  return startCore({ dataDir, httpPort: 0, mqttPort, mqttHost: '127.0.0.1', log });
}

/** withAgent: a supervised local agent (restarted when it dies; its supervisor's events are logged as
 * [supervisor] lines). camera: its camera (testsrc by default); labelledVideo: the demo's labelled video
 * instead, made in the stack's data directory. */
export async function startStack(
  opts: { withAgent?: boolean; camera?: string; labelledVideo?: boolean } = {},
): Promise<Stack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'whittle-test-'));
  const logs: string[] = [];
  const labelled = opts.labelledVideo ? await demoVideo({ dataDir }) : undefined;
  const core = await startLoopbackCore(dataDir, (line) => logs.push(`[core] ${line}`));
  const agentId = 'test-device';
  const agent =
    opts.withAgent === false
      ? null
      : startLocalAgent({
          store: core.store,
          deviceId: agentId,
          brokerPort: core.broker.port,
          camera: labelled?.video ?? opts.camera ?? 'testsrc',
          ...(labelled ? { labels: labelled.labelsFile } : {}),
          dataDir,
          onLine: (line) => logs.push(`[agent] ${line}`),
          onSupervisor: (event) => logs.push(`[supervisor] ${JSON.stringify(event)}`),
        });
  return {
    uiUrl: core.api.uiUrl,
    apiUrl: `http://127.0.0.1:${core.api.port}`,
    token: core.api.token,
    dataDir,
    agentId,
    core,
    agent,
    logs,
    killAgent: () => {
      agent?.child.kill('SIGKILL');
    },
    async stop() {
      await agent?.stop();
      await core.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves when `check` returns a value other than undefined; rejects after `timeoutMs` with `what`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
