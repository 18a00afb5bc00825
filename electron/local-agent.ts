// The main job's local device: this machine runs an agent too, as a child process of the manager.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { AGENT_NODE_FLAGS } from '../agent/config.js';
import { packageRoot } from '../agent/package-root.js';
import { managerSigningPublicKey } from './core/provisioning/signing-key.js';
import type { Store } from './core/store.js';

export interface LocalAgentOptions {
  store: Store;
  deviceId: string;
  brokerPort: number;
  camera: string;
  dataDir: string;
  /** Called with the agent's log lines (already written to the log file). */
  onLine?: (line: string) => void;
}

export interface LocalAgent {
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Issues fresh broker credentials for the local device, writes them to a private config file (so the
 * password never appears in `ps`), and starts `whittle-agent run` with it. */
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
      // The manager's package-signing key: the local device accepts the manager's deployments like any
      // provisioned one.
      packageKey: managerSigningPublicKey(options.dataDir),
    }),
    { mode: 0o600 },
  );
  const logFile = join(options.dataDir, 'local-agent.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(
    process.execPath,
    [...AGENT_NODE_FLAGS, join(packageRoot(), 'bin', 'whittle-agent.js'), 'run', '--config', configFile],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const forward = (chunk: Buffer): void => {
    log.write(chunk);
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) options.onLine?.(line);
  };
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      log.end();
      resolve(code);
    });
  });
  return {
    child,
    logFile,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timeout = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timeout);
      }
    },
  };
}
