// Decoding of what the core sends: the GET /api/devices body and the /api/live WebSocket messages.
// Limits mirror agent/protocol/messages.ts; a message that breaks them is rejected whole, never half-applied.
import type {
  DeployErrorCode,
  DeploymentDeviceView,
  DeploymentPhase,
  DeploymentsResponse,
  DeploymentView,
  DeviceInfo,
  DevicesResponse,
  DeviceView,
  LiveMessage,
  PackagesResponse,
  PackageView,
  SnapshotResponse,
  StatsMessage,
} from '../../electron/api/contract.js';
import {
  array,
  boolean,
  DecodeError,
  type Decoder,
  finiteNumber,
  literal,
  nonNegativeInteger,
  nonNegativeNumber,
  nullable,
  object,
  oneOf,
  optional,
  string,
  stringUnion,
} from './json-decoder.js';

/** More than any fleet one manager will show; bounds the work a hostile or broken message can cause. */
const MAX_DEVICES = 10_000;
/** Characters of one WebSocket message; a snapshot of MAX_DEVICES devices fits well inside. */
export const MAX_MESSAGE_CHARS = 16 * 1024 * 1024;

const deviceId: Decoder<string> = (value, path) => {
  const id = string(64)(value, path);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id))
    throw new DecodeError(path, 'a device id (1-64 of A-Z a-z 0-9 . _ -)', id);
  return id;
};

const deviceInfo: Decoder<DeviceInfo> = object({
  id: deviceId,
  hostname: string(255),
  arch: string(32),
  platform: string(32),
  cpuModel: string(255),
  cpus: nonNegativeInteger,
  isa: optional(string(32)),
  cpuFeatures: optional(array(string(32), 32)),
  memTotalBytes: nonNegativeNumber,
  agentVersion: string(64),
  nodeVersion: string(64),
  camera: string(1024),
  model: object({ id: string(128), name: string(255) }),
});

const statsMessage: Decoder<StatsMessage> = object({
  v: literal(1),
  seq: nonNegativeInteger,
  ts: finiteNumber,
  windowMs: nonNegativeNumber,
  frames: nonNegativeInteger,
  fps: nonNegativeNumber,
  latencyMs: object({ p50: nonNegativeNumber, p95: nonNegativeNumber, max: nonNegativeNumber }),
  cpuPercent: nonNegativeNumber,
  rssBytes: optional(nonNegativeNumber),
  prediction: optional(
    object({ classIndex: nonNegativeInteger, label: string(128), confidence: finiteNumber }),
  ),
});

const deviceView: Decoder<DeviceView> = object({
  id: deviceId,
  online: boolean,
  info: nullable(deviceInfo),
  lastSeen: nullable(finiteNumber),
  stats: nullable(statsMessage),
});

const devicesResponse: Decoder<DevicesResponse> = object({ devices: array(deviceView, MAX_DEVICES) });

const sha256: Decoder<string> = (value, path) => {
  const text = string(64)(value, path);
  if (!/^[0-9a-f]{64}$/.test(text)) throw new DecodeError(path, 'a sha256 (64 hex digits)', text);
  return text;
};

const deploymentPhase = stringUnion<DeploymentPhase>({
  pending: true,
  superseded: true,
  downloading: true,
  verified: true,
  staged: true,
  switched: true,
  committed: true,
  refused: true,
  failed: true,
  'rolled-back': true,
});

const deployErrorCode = stringUnion<DeployErrorCode>({
  'no-key': true,
  'bad-target': true,
  'older-version': true,
  'wrong-cpu': true,
  'not-enough-memory': true,
  'download-failed': true,
  truncated: true,
  'too-large': true,
  'hash-mismatch': true,
  'bad-signature': true,
  'bad-model': true,
  'probe-mismatch': true,
  'over-latency-budget': true,
  'no-frames': true,
  interrupted: true,
  aborted: true,
  io: true,
});

const deploymentDevice: Decoder<DeploymentDeviceView> = object({
  device: deviceId,
  phase: deploymentPhase,
  code: nullable(deployErrorCode),
  reason: nullable(string(2000)),
  serving: nullable(string(64)),
  updatedAt: finiteNumber,
  finished: boolean,
});

const deploymentView: Decoder<DeploymentView> = object({
  id: string(64),
  createdAt: finiteNumber,
  package: object({ sha256, modelId: string(128), modelVersion: string(64) }),
  devices: array(deploymentDevice, MAX_DEVICES),
  finished: boolean,
  succeeded: boolean,
});

const packageView: Decoder<PackageView> = object({
  sha256,
  modelId: string(128),
  modelVersion: string(64),
  name: nullable(string(256)),
  bytes: nonNegativeInteger,
  cpuFamily: string(32),
  addedAt: finiteNumber,
});

/** Most bytes of base64 of a snapshot JPEG (agent/protocol/messages.ts MAX_SNAPSHOT_JPEG_BYTES). */
const MAX_JPEG_BASE64 = Math.ceil((256 * 1024) / 3) * 4;

const snapshotResponse: Decoder<SnapshotResponse> = object({
  device: deviceId,
  snapshot: nullable(
    object({
      v: literal(1),
      ts: finiteNumber,
      jpeg: (value, path) => {
        const text = string(MAX_JPEG_BASE64)(value, path);
        // Shown as a data: URL, so only base64 of a JPEG may pass.
        if (!/^\/9j\/[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new DecodeError(path, 'base64 of a JPEG', text);
        return text;
      },
      prediction: optional(
        object({ classIndex: nonNegativeInteger, label: string(128), confidence: finiteNumber }),
      ),
      trueLabel: optional(string(128)),
    }),
  ),
});

const liveMessage: Decoder<LiveMessage> = oneOf<LiveMessage>('type', {
  snapshot: object({ type: literal('snapshot'), devices: array(deviceView, MAX_DEVICES) }),
  device: object({ type: literal('device'), device: deviceView }),
  deployment: object({ type: literal('deployment'), deployment: deploymentView }),
});

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

function run<T>(decoder: Decoder<T>, value: unknown): Decoded<T> {
  try {
    return { ok: true, value: decoder(value, '') };
  } catch (error) {
    if (error instanceof DecodeError) return { ok: false, reason: error.message };
    throw error;
  }
}

/** Decodes one WebSocket text frame. Binary frames and non-JSON text are rejected, not thrown. */
export function decodeLiveMessage(data: unknown): Decoded<LiveMessage> {
  if (typeof data !== 'string') return { ok: false, reason: 'expected a text frame, got a binary one' };
  if (data.length > MAX_MESSAGE_CHARS)
    return { ok: false, reason: `message of ${data.length} characters is too long` };
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return { ok: false, reason: 'message is not JSON' };
  }
  return run(liveMessage, json);
}

/** Decodes the parsed body of GET /api/devices. */
export function decodeDevicesResponse(json: unknown): Decoded<DevicesResponse> {
  return run(devicesResponse, json);
}

export function decodePackageView(json: unknown): Decoded<PackageView> {
  return run(packageView, json);
}

export function decodePackagesResponse(json: unknown): Decoded<PackagesResponse> {
  return run(object({ packages: array(packageView, 10_000) }), json);
}

export function decodeDeploymentsResponse(json: unknown): Decoded<DeploymentsResponse> {
  return run(object({ deployments: array(deploymentView, 1000) }), json);
}

export function decodeDeploymentView(json: unknown): Decoded<DeploymentView> {
  return run(deploymentView, json);
}

export function decodeSnapshotResponse(json: unknown): Decoded<SnapshotResponse> {
  return run(snapshotResponse, json);
}
