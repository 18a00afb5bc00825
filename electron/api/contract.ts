// The renderer <-> manager core contract: HTTP routes and WebSocket messages. The renderer imports only
// types from this file; the core decodes requests at its edge.
//
// Authentication: every /api route needs the per-launch token, as `Authorization: Bearer <token>` for
// HTTP, and as the WebSocket subprotocol `whittle-token.<token>` for /api/live (browsers cannot set
// headers on WebSockets). A missing or wrong token gets HTTP 401. Static UI files need no token.
import type {
  DeployErrorCode,
  DeployPhase,
  DeviceInfo,
  SnapshotMessage,
  StatsMessage,
} from '../../agent/protocol/messages.js';

export type { DeployErrorCode, DeployPhase, DeviceInfo, SnapshotMessage, StatsMessage };

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

/** Every error response: a sentence a user can act on, and for typed refusals a code. */
export interface ApiError {
  error: string;
  /** PackageError codes (bad-magic, hash-mismatch, wrong-key, ...) and deployment codes
   * (unknown-package, unknown-device, no-devices, bad-package). */
  code?: string;
}

/** GET /api/devices/:id/snapshot: the device's newest camera picture and the prediction on it; null
 * before the first one (not a 404: a page polling for it should not log failed requests). 404 for an
 * unknown device. */
export interface SnapshotResponse {
  device: string;
  snapshot: SnapshotMessage | null;
}

/** A package the manager accepted: it passed the agent's strict reader and is signed by the manager's key. */
export interface PackageView {
  /** SHA-256 of the whole file (what agents download and verify). */
  sha256: string;
  modelId: string;
  modelVersion: string;
  name: string | null;
  bytes: number;
  /** The CPU family the package is built for (x86_64, aarch64, armv7, any). */
  cpuFamily: string;
  addedAt: number;
}

/** GET /api/packages, newest first. POST /api/packages takes the package file as the body
 * (Content-Type: application/octet-stream, at most MAX_PACKAGE_BYTES) and answers 201 with a PackageView
 * (200 when it was already known), or 422 with the reader's error code. */
export interface PackagesResponse {
  packages: PackageView[];
}

/** At most this many bytes in a POST /api/packages body. */
export const MAX_PACKAGE_BYTES = 64 * 1024 * 1024;
/** At most this many bytes in any JSON request body. */
export const MAX_JSON_BODY_BYTES = 64 * 1024;

/** POST /api/deployments (Content-Type: application/json): answers 201 with a DeploymentView. */
export interface DeployRequest {
  /** sha256 of a package from GET /api/packages. */
  package: string;
  /** Device ids, or every known device, or every device online now. */
  devices: string[] | 'all' | 'online';
  /** Install even if older than what a device runs. */
  rollback?: boolean;
  /** How long the device runs the new model before committing it (default 5). */
  healthSeconds?: number;
  /** p95 frame latency allowed during the health check, ms. */
  latencyBudgetMs?: number;
}

/** Where a device is in a deployment: 'pending' until its first report, then the phases the agent
 * reports, or 'superseded' when a newer deployment to it started before this one finished. */
export type DeploymentPhase = 'pending' | 'superseded' | DeployPhase;

export interface DeploymentDeviceView {
  device: string;
  phase: DeploymentPhase;
  code: DeployErrorCode | null;
  /** Why it was refused, failed or rolled back, as the device said it. */
  reason: string | null;
  /** The model the device serves after this phase: a package sha256, or "bundled". */
  serving: string | null;
  updatedAt: number;
  /** No further report is expected. */
  finished: boolean;
}

export interface DeploymentView {
  id: string;
  createdAt: number;
  package: { sha256: string; modelId: string; modelVersion: string };
  devices: DeploymentDeviceView[];
  /** Every device finished. */
  finished: boolean;
  /** Every device committed. */
  succeeded: boolean;
}

/** One phase one device reported in a deployment (or 'superseded', set by the manager). */
export interface DeploymentEventView {
  device: string;
  phase: DeploymentPhase;
  code: DeployErrorCode | null;
  reason: string | null;
  serving: string | null;
  at: number;
}

/** GET /api/deployments/:id/events: every phase of every device, oldest first. */
export interface DeploymentEventsResponse {
  deployment: string;
  events: DeploymentEventView[];
}

/** GET /api/deployments, newest first (at most 100). GET /api/deployments/:id gives one DeploymentView. */
export interface DeploymentsResponse {
  deployments: DeploymentView[];
}

/** Server -> client on /api/live: a snapshot on connect, then one message per device change and one per
 * change of a deployment. */
export type LiveMessage =
  | { type: 'snapshot'; devices: DeviceView[] }
  | { type: 'device'; device: DeviceView }
  | { type: 'deployment'; deployment: DeploymentView };

export const LIVE_PATH = '/api/live';
export const TOKEN_SUBPROTOCOL_PREFIX = 'whittle-token.';
