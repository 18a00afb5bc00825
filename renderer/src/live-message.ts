// Decoding of what the core sends: the GET /api/devices body and the /api/live WebSocket messages.
// Limits mirror agent/protocol/messages.ts; a message that breaks them is rejected whole, never half-applied.
import type {
  DeviceInfo,
  DevicesResponse,
  DeviceView,
  LiveMessage,
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
  rssBytes: nonNegativeNumber,
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

const liveMessage: Decoder<LiveMessage> = oneOf<LiveMessage>('type', {
  snapshot: object({ type: literal('snapshot'), devices: array(deviceView, MAX_DEVICES) }),
  device: object({ type: literal('device'), device: deviceView }),
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
