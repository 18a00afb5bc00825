// A real agent process with a config of the test's choosing, talking to a real core: for integration
// tests that need agent options the shared stack does not set (labels, state dir, reconnect bounds).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import mqtt, { type MqttClient } from 'mqtt';

import { packageRoot } from '../../agent/package-root.js';
import { deviceTopic, PROTOCOL_VERSION } from '../../agent/protocol/messages.js';
import { writeConnectionFile } from '../../electron/core/connection-file.js';
import { type Core, startCore } from '../../electron/core/core.js';
import { managerSigningPublicKey } from '../../electron/core/provisioning/signing-key.js';
import { waitFor } from '../support/stack.js';

export interface AgentProcess {
  child: ChildProcess;
  configFile: string;
  /** Ends the agent (SIGTERM, then SIGKILL after 5 s) and waits for it. */
  stop(): Promise<void>;
  exited: Promise<number | null>;
}

/** Issues credentials for deviceId and starts `whittle-agent run` with config (merged over them).
 * `launcher` is the command line up to `run`: this Node and bin/whittle-agent.js by default, an emulated
 * Node and an agent bundle for ARM devices (test/support/emulated-device.ts). */
export function startAgentProcess(
  core: Core,
  dir: string,
  deviceId: string,
  config: Record<string, unknown>,
  log: (line: string) => void,
  launcher: readonly string[] = [process.execPath, join(packageRoot(), 'bin', 'whittle-agent.js')],
): AgentProcess {
  const configFile = join(dir, `agent-${deviceId}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      broker: `mqtt://127.0.0.1:${core.broker.port}`,
      deviceId,
      password: core.store.issueCredential(deviceId),
      ...config,
    }),
    { mode: 0o600 },
  );
  const child = spawn(launcher[0]!, [...launcher.slice(1), 'run', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const forward = (b: Buffer): void => {
    for (const line of b.toString('utf8').split('\n')) if (line.trim()) log(`[agent] ${line}`);
  };
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    configFile,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** An agent on ffmpeg's test camera (10 fps, no snapshots) whose pinned package key is the manager's of
 * `dataDir`, its state in DIR/state: a device the manager can deploy to and have time packages. */
export function startPinnedAgent(
  core: Core,
  dir: string,
  deviceId: string,
  dataDir: string,
  log: (line: string) => void,
): AgentProcess {
  return startAgentProcess(
    core,
    dir,
    deviceId,
    {
      camera: 'testsrc',
      stateDir: join(dir, 'state'),
      packageKey: managerSigningPublicKey(dataDir),
      fps: 10,
      snapshotSeconds: 0,
    },
    log,
  );
}

/** A device speaking the protocol by hand: connected with its credentials, subscribed to its request leaf
 * (answering nothing unless the caller listens), announced online; resolves once the manager sees it. */
export async function startHandmadeDevice(core: Core, deviceId: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${core.broker.port}`, {
    username: deviceId,
    password: core.store.issueCredential(deviceId),
    clientId: `whittle-agent-${deviceId}`,
  });
  await client.subscribeAsync(deviceTopic(deviceId, 'request'), { qos: 1 });
  await client.publishAsync(
    deviceTopic(deviceId, 'status'),
    JSON.stringify({ v: PROTOCOL_VERSION, online: true, ts: Date.now() }),
    { qos: 1, retain: true },
  );
  await waitFor(`device ${deviceId} online`, 5000, () => core.registry.get(deviceId)?.online || undefined);
  return client;
}

/** A real core (its data directory `dataDir(dir)` under a new temporary DIR, its connection file written) and
 * a pinned agent for `deviceId` on it (startPinnedAgent), with everything both logged. */
export interface PinnedDevice {
  dir: string;
  dataDir: string;
  core: Core;
  /** The running agent: restartAgent() replaces it. */
  agent: AgentProcess;
  logs: string[];
  restartAgent: () => AgentProcess;
  /** Fails with the error and the last lines logged. */
  failWithLogs: (err: Error) => never;
  stop: () => Promise<void>;
}

export async function startPinnedDevice(options: {
  prefix: string;
  deviceId: string;
  dataDir: (dir: string) => string;
  deviceAnswerMs?: number;
}): Promise<PinnedDevice> {
  const dir = mkdtempSync(join(tmpdir(), options.prefix));
  const dataDir = options.dataDir(dir);
  const logs: string[] = [];
  const core = await startCore({
    dataDir,
    httpPort: 0,
    mqttPort: 0,
    mqttHost: '127.0.0.1',
    log: (l) => logs.push(`[core] ${l}`),
    ...(options.deviceAnswerMs !== undefined ? { deviceAnswerMs: options.deviceAnswerMs } : {}),
  });
  writeConnectionFile(dataDir, {
    url: `http://127.0.0.1:${core.api.port}`,
    token: core.api.token,
    pid: process.pid,
  });
  const start = (): AgentProcess =>
    startPinnedAgent(core, dir, options.deviceId, dataDir, (l) => logs.push(l));
  const device: PinnedDevice = {
    dir,
    dataDir,
    core,
    agent: start(),
    logs,
    restartAgent: () => (device.agent = start()),
    failWithLogs: (err) => assert.fail(`${err.message}\n${logs.slice(-60).join('\n')}`),
    stop: async () => {
      await device.agent.stop();
      await core.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return device;
}
