// The renderer <-> manager core contract: HTTP routes and WebSocket messages. The renderer imports only
// types from this file; the core decodes requests at its edge.
//
// Authentication: every /api route needs the per-launch token, as `Authorization: Bearer <token>` for
// HTTP, and as the WebSocket subprotocol `whittle-token.<token>` for /api/live (browsers cannot set
// headers on WebSockets). A missing or wrong token gets HTTP 401. Static UI files need no token.
import type { DeviceInfo, StatsMessage } from '../../agent/protocol/messages.js';

export type { DeviceInfo, StatsMessage };

export interface DeviceView {
  id: string;
  online: boolean;
  /** What the agent announced about itself; null until its first status message. */
  info: DeviceInfo | null;
  /** Manager clock, ms since epoch, of the last message from the device. */
  lastSeen: number | null;
  /** The newest per-second record, or null before the first one. */
  stats: StatsMessage | null;
}

/** GET /api/devices */
export interface DevicesResponse {
  devices: DeviceView[];
}

/** GET /api/health */
export interface HealthResponse {
  ok: true;
  version: string;
}

/** Server -> client on /api/live: a snapshot on connect, then one message per device change. */
export type LiveMessage =
  { type: 'snapshot'; devices: DeviceView[] } | { type: 'device'; device: DeviceView };

export const LIVE_PATH = '/api/live';
export const TOKEN_SUBPROTOCOL_PREFIX = 'whittle-token.';
