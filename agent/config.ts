// The agent's configuration: command-line flags over an optional JSON config file over defaults.
// Decoded with a schema so a bad file is refused with the field that is wrong.
import { readFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { z } from 'zod';

import { WhittleError } from '../native/whittle-error.js';
import { TEST_SOURCE } from './camera/ffmpeg-source.js';
import { packageRoot } from './package-root.js';
import { DeviceIdSchema } from './protocol/messages.js';

export const AgentConfigSchema = z
  .object({
    broker: z
      .string()
      .regex(/^mqtts?:\/\/[^\s/]+$/, 'broker: expected mqtt://host:port or mqtts://host:port'),
    deviceId: DeviceIdSchema,
    /** Broker username; defaults to the device id (the manager's ACL requires that). */
    username: z.string().min(1).max(128),
    password: z.string().max(1024),
    camera: z.string().min(1),
    fps: z.number().positive().max(240),
    /** The Whittle package served when no deployment is active. It is trusted as shipped (see
     * runtime/package-model.ts): its hash is checked, its signature is not. */
    model: z.string().min(1),
    /** Most bytes a model may take (weights + activation arena); a package needing more is refused.
     * Defaults to a quarter of the device's memory. */
    modelMemoryBytes: z.number().int().positive().optional(),
    /** Where the agent keeps what must survive restarts: the telemetry outbox, deployed models. */
    stateDir: z.string().min(1),
    /** Sidecar of per-frame labels of a labelled video (optimize/make-labelled-video.ts): the agent then
     * reports live accuracy. */
    labels: z.string().min(1).optional(),
    /** The manager's package-signing public key (PEM, or 64 hex digits of the raw Ed25519 key): every
     * deployed model must carry a signature by it. Without one the agent refuses deployments. */
    packageKey: z.string().min(1).max(4096).optional(),
    /** The same key in a PEM file (what provisioning installs next to the config); packageKey wins. */
    packageKeyFile: z.string().min(1).optional(),
    /** Seconds between camera snapshots sent to the manager; 0 turns them off. */
    snapshotSeconds: z.number().min(0).max(3600),
    /** Longest wait between reconnect attempts, ms. */
    reconnectMaxMs: z.number().int().min(100).max(600_000),
  })
  // Unknown fields are refused: a misspelt one (dataDir for stateDir) would otherwise be ignored silently.
  .strict();
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export class ConfigError extends WhittleError {
  override name = 'ConfigError';
  readonly code = 'bad-config';
}

export function defaultDeviceId(): string {
  return (
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 64) || 'device'
  );
}

/** The model package shipped with the agent, in agent/models/: the one line to change to ship another. */
export const DEFAULT_MODEL_FILE = 'fashion-lenet5-int8.whittle';

/** Node flags the agent runs with wherever it is launched (systemd unit, demo, footprint bench). A one-page
 * V8 young generation keeps the resident set of a small device's agent about 8 MB lower; the agent
 * allocates little per frame, so the extra scavenges cost nothing measurable. */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

export function defaultModelPath(): string {
  return join(packageRoot(), 'agent', 'models', DEFAULT_MODEL_FILE);
}

/** The device's memory budget for one model when the config sets none. */
export function modelMemoryBudget(config: Pick<AgentConfig, 'modelMemoryBytes'>, totalBytes: number): number {
  return config.modelMemoryBytes ?? Math.floor(totalBytes / 4);
}

/** The state directory when none is configured: next to the config file (one per device id), so an
 * agent started by the manager keeps its state in the manager's data directory; otherwise under
 * $XDG_STATE_HOME (or ~/.local/state). */
export function defaultStateDir(deviceId: string, configFile?: string): string {
  if (configFile) return join(dirname(resolve(configFile)), `agent-state-${deviceId}`);
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'whittle-agent', deviceId);
}

/** Merges, in order of precedence, flags, the config file (if any) and defaults, and validates. */
export function resolveConfig(
  flags: Partial<Record<keyof AgentConfig, string | number>>,
  configFile?: string,
): AgentConfig {
  let fromFile: Record<string, unknown> = {};
  if (configFile) {
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${configFile}: ${(err as Error).message}`);
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      fromFile = parsed as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${configFile} is not a JSON object: ${(err as Error).message}`);
    }
  }
  const deviceId = flags.deviceId ?? fromFile.deviceId ?? defaultDeviceId();
  const merged = {
    stateDir: defaultStateDir(typeof deviceId === 'string' ? deviceId : 'device', configFile),
    reconnectMaxMs: 30_000,
    snapshotSeconds: 5,
    broker: 'mqtt://127.0.0.1:7421',
    camera: TEST_SOURCE,
    fps: 30,
    model: defaultModelPath(),
    password: '',
    ...fromFile,
    deviceId,
    username: flags.username ?? fromFile.username ?? deviceId,
    ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)),
  };
  if (typeof merged.fps === 'string') merged.fps = Number(merged.fps);
  if (typeof merged.reconnectMaxMs === 'string') merged.reconnectMaxMs = Number(merged.reconnectMaxMs);
  if (typeof merged.snapshotSeconds === 'string') merged.snapshotSeconds = Number(merged.snapshotSeconds);
  const memory: unknown = (merged as Record<string, unknown>).modelMemoryBytes;
  if (typeof memory === 'string') (merged as Record<string, unknown>).modelMemoryBytes = Number(memory);
  const result = AgentConfigSchema.safeParse(merged);
  if (!result.success) {
    const where = configFile ? ` (flags and ${configFile})` : '';
    throw new ConfigError(
      `invalid agent configuration${where}: ` +
        result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '),
    );
  }
  return result.data;
}
