// The renderer <-> manager core contract: the schema of every body the HTTP API and the /api/live
// WebSocket carry, built from the agent protocol's schemas (agent/protocol/messages.ts). Which route carries
// which body is the route table's business (routes.ts). The types are inferred from the schemas, so a body
// has one description: the core and the CLI decode with these schemas, the renderer with checkers generated
// from them (json-schemas.ts), so no side keeps a hand-written copy of a limit.
//
// Authentication: every /api route needs the per-launch token, as `Authorization: Bearer <token>` for
// HTTP, and as the WebSocket subprotocol `whittle-token.<token>` for /api/live (browsers cannot set
// headers on WebSockets). A missing or wrong token gets HTTP 401. Static UI files need no token.
import { z } from 'zod';

import { LatencyTableSchema } from '../../agent/profile/latency-table-schema.js';
import { DeviceProfileSchema } from '../../agent/profile/profile-schema.js';
import {
  DEPLOY_ERROR_CODES,
  DEPLOY_PHASES,
  type DeployErrorCode,
  type DeployPhase,
  DeviceIdSchema,
  type DeviceInfo,
  DeviceInfoSchema,
  LATENCY_GRIDS,
  MAX_MEASURED_PACKAGES,
  PackageTimingSchema,
  type SnapshotMessage,
  SnapshotMessageSchema,
  type StatsMessage,
  StatsMessageSchema,
  StatusMessageSchema,
} from '../../agent/protocol/messages.js';

export type { DeployErrorCode, DeployPhase, DeviceInfo, SnapshotMessage, StatsMessage };

/** More than any fleet one manager will show; bounds the work a hostile or broken answer can cause. */
const MAX_DEVICES = 10_000;

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected the 64 lower-case hex digits of a sha256');

/** Frames whose true class was known (a labelled video) and how many of them the model got right. */
const accuracyCount = {
  frames: z.number().int().nonnegative(),
  correct: z.number().int().nonnegative(),
};

/** A device's live accuracy against ground truth, both figures labelled as what they are. */
export const DeviceAccuracySchema = z.object({
  /** The stats records of the last `seconds` (agent clock, ending at the newest record): what the model does
   * now. */
  window: z.object({ ...accuracyCount, seconds: z.number().positive() }),
  /** Every labelled frame since `since` (manager clock, ms since epoch): since the device first reported
   * accuracy with its current model and camera. Kept in the store, so it survives a manager restart. */
  running: z.object({ ...accuracyCount, since: z.number() }),
});
export type DeviceAccuracy = z.infer<typeof DeviceAccuracySchema>;

export const DeviceViewSchema = z.object({
  id: DeviceIdSchema,
  online: z.boolean(),
  /** What the agent announced about itself; null until its first status message. */
  info: DeviceInfoSchema.nullable(),
  /** Manager clock, ms since epoch, of the last message from the device. */
  lastSeen: z.number().nullable(),
  /** The newest per-second record, or null before the first one. */
  stats: StatsMessageSchema.nullable(),
  /** Live accuracy; absent unless the device is online and its newest record counted labelled frames (a
   * camera without labels has none, rather than a made-up one). */
  accuracy: DeviceAccuracySchema.optional(),
  /** Present while the device's camera loop is paused for a measurement (its retained status says so). */
  paused: StatusMessageSchema.shape.paused,
});
export type DeviceView = z.infer<typeof DeviceViewSchema>;

export const DevicesResponseSchema = z.object({ devices: z.array(DeviceViewSchema).max(MAX_DEVICES) });

/** GET /api/devices/:id/profile: the device's newest stored profile (agent/profile/profile.ts) and when the
 * manager received it (manager clock, ms since epoch). 404 (code no-profile) when it has none yet. */
export const DeviceProfileResponseSchema = z.object({
  device: DeviceIdSchema,
  receivedAt: z.number(),
  profile: DeviceProfileSchema,
});
export type DeviceProfileResponse = z.infer<typeof DeviceProfileResponseSchema>;

/** POST /api/devices/:id/latency-table: which grid to measure, cut to its first `limit` points. */
export const MeasureRequestSchema = z
  .object({
    grid: z.enum(LATENCY_GRIDS),
    limit: z.number().int().min(1).max(100_000).optional(),
    threads: z.number().int().min(1).max(64).optional(),
  })
  .strict();
export type MeasureRequest = z.infer<typeof MeasureRequestSchema>;

/** POST /api/devices/:id/measure-packages: packages the manager holds (POST /api/packages, signed by its
 * key) to time on the device, interleaved at batch 1, `runs` frames each (default 100). */
export const MeasurePackagesRequestSchema = z
  .object({
    packages: z.array(Sha256Hex).min(1).max(MAX_MEASURED_PACKAGES),
    runs: z.number().int().min(1).max(10_000).optional(),
  })
  .strict();
export type MeasurePackagesRequest = z.infer<typeof MeasurePackagesRequestSchema>;

/** The device's timings of the packages, in the request's order, with the kernels it ran them on and when
 * the manager received them (manager clock). */
export const MeasurePackagesResponseSchema = z.object({
  device: DeviceIdSchema,
  timings: z.array(PackageTimingSchema).max(MAX_MEASURED_PACKAGES),
  isa: z.string().nullable(),
  threads: z.number().int().positive(),
  build_hash: z.string().nullable(),
  receivedAt: z.number(),
});
export type MeasurePackagesResponse = z.infer<typeof MeasurePackagesResponseSchema>;

/** A stored table described without its entries. */
export const LatencyTableSummarySchema = z.object({
  build_hash: z.string(),
  grid_id: z.string(),
  threads: z.number().int(),
  complete: z.boolean(),
  entries: z.number().int().nonnegative(),
  measured_at: z.number(),
});
export type LatencyTableSummary = z.infer<typeof LatencyTableSummarySchema>;

/** The measurement the manager last asked a device for (memory only: a manager restart forgets it; the
 * stored table keeps what arrived). */
export const MeasurementViewSchema = z.object({
  request: z.string(),
  state: z.enum(['running', 'complete', 'stopped', 'failed']),
  done: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
  startedAt: z.number(),
  /** Why a failed or stopped measurement ended, a sentence a user can act on. */
  error: z.string().nullable(),
});
export type MeasurementView = z.infer<typeof MeasurementViewSchema>;

/** GET (and POST, which starts a measurement) /api/devices/:id/latency-table. `current` is the newest table
 * measured with the kernel build of the device's current profile (complete or not: `complete` says); tables
 * of other builds are only listed in `stale`, never served as current. */
export const LatencyTablesResponseSchema = z.object({
  device: DeviceIdSchema,
  /** The kernel build of the device's stored profile; null without a profile. */
  buildHash: z.string().nullable(),
  current: LatencyTableSchema.nullable(),
  stale: z.array(LatencyTableSummarySchema).max(1000),
  measurement: MeasurementViewSchema.nullable(),
});
export type LatencyTablesResponse = z.infer<typeof LatencyTablesResponseSchema>;
export type DevicesResponse = z.infer<typeof DevicesResponseSchema>;

export const HealthResponseSchema = z.object({ ok: z.literal(true), version: z.string() });
export type HealthResponse = z.infer<typeof HealthResponseSchema>;

/** Every error response: a sentence a user can act on, and for typed refusals a code: PackageError codes
 * (bad-magic, hash-mismatch, wrong-key, ...), deployment codes (unknown-package, unknown-device, no-devices,
 * bad-package) and the API's own (too-large, bad-content-type, bad-json, bad-request, unknown-deployment). */
export const ApiErrorSchema = z.object({ error: z.string(), code: z.string().optional() });
export type ApiError = z.infer<typeof ApiErrorSchema>;

/** The device's newest camera picture and the prediction on it; null before the first one (not a 404: a
 * page polling for it should not log failed requests). */
export const SnapshotResponseSchema = z.object({
  device: DeviceIdSchema,
  snapshot: SnapshotMessageSchema.nullable(),
});
export type SnapshotResponse = z.infer<typeof SnapshotResponseSchema>;

/** A package the manager accepted: it passed the agent's strict reader and is signed by the manager's key. */
export const PackageViewSchema = z.object({
  /** SHA-256 of the whole file (what agents download and verify). */
  sha256: Sha256Hex,
  modelId: z.string().max(128),
  modelVersion: z.string().max(64),
  name: z.string().max(256).nullable(),
  bytes: z.number().int().nonnegative(),
  /** The CPU family the package is built for (x86_64, aarch64, armv7, any). */
  cpuFamily: z.string().max(32),
  addedAt: z.number(),
});
export type PackageView = z.infer<typeof PackageViewSchema>;

/** Newest first. */
export const PackagesResponseSchema = z.object({ packages: z.array(PackageViewSchema).max(10_000) });
export type PackagesResponse = z.infer<typeof PackagesResponseSchema>;

/** A deployment to start; answered with its DeploymentView. Strict: a misspelt option is refused, not
 * ignored. */
export const DeployRequestSchema = z
  .object({
    /** sha256 of a package from GET /api/packages. */
    package: Sha256Hex,
    /** Device ids, or every known device, or every device online now. */
    devices: z.union([
      z.literal('all'),
      z.literal('online'),
      z.array(DeviceIdSchema).min(1).max(MAX_DEVICES),
    ]),
    /** Install even if older than what a device runs. */
    rollback: z.boolean().optional(),
    /** How long the device runs the new model before committing it (default 5). */
    healthSeconds: z.number().min(0).max(600).optional(),
    /** p95 frame latency allowed during the health check, ms. */
    latencyBudgetMs: z.number().positive().max(60_000).optional(),
  })
  .strict();
export type DeployRequest = z.infer<typeof DeployRequestSchema>;

/** Where a device is in a deployment: 'pending' until its first report, then the phases the agent
 * reports, or 'superseded' when a newer deployment to it started before this one finished. */
export const DeploymentPhaseSchema = z.enum(['pending', 'superseded', ...DEPLOY_PHASES]);
export type DeploymentPhase = z.infer<typeof DeploymentPhaseSchema>;

/** What one device said last in a deployment; the limits are the agent's DeployReport's. */
const deviceReport = {
  device: DeviceIdSchema,
  phase: DeploymentPhaseSchema,
  code: z.enum(DEPLOY_ERROR_CODES).nullable(),
  /** Why it was refused, failed or rolled back, as the device said it. */
  reason: z.string().max(2000).nullable(),
  /** The model the device serves after this phase: a package sha256, or "bundled". */
  serving: z.string().max(64).nullable(),
};

export const DeploymentDeviceViewSchema = z.object({
  ...deviceReport,
  updatedAt: z.number(),
  /** No further report is expected. */
  finished: z.boolean(),
});
export type DeploymentDeviceView = z.infer<typeof DeploymentDeviceViewSchema>;

export const DeploymentViewSchema = z.object({
  id: z.string().max(64),
  createdAt: z.number(),
  package: z.object({ sha256: Sha256Hex, modelId: z.string().max(128), modelVersion: z.string().max(64) }),
  devices: z.array(DeploymentDeviceViewSchema).max(MAX_DEVICES),
  /** Every device finished. */
  finished: z.boolean(),
  /** Every device committed. */
  succeeded: z.boolean(),
});
export type DeploymentView = z.infer<typeof DeploymentViewSchema>;

/** Newest first, at most 100. */
export const DeploymentsResponseSchema = z.object({ deployments: z.array(DeploymentViewSchema).max(1000) });
export type DeploymentsResponse = z.infer<typeof DeploymentsResponseSchema>;

/** One phase one device reported in a deployment (or 'superseded', set by the manager). */
export const DeploymentEventViewSchema = z.object({ ...deviceReport, at: z.number() });
export type DeploymentEventView = z.infer<typeof DeploymentEventViewSchema>;

/** Every phase of every device, oldest first. */
export const DeploymentEventsResponseSchema = z.object({
  deployment: z.string().max(64),
  events: z.array(DeploymentEventViewSchema),
});
export type DeploymentEventsResponse = z.infer<typeof DeploymentEventsResponseSchema>;

/** Server -> client on /api/live: a snapshot on connect, then one message per device change and one per
 * change of a deployment. */
export const LiveMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), devices: z.array(DeviceViewSchema).max(MAX_DEVICES) }),
  z.object({ type: z.literal('device'), device: DeviceViewSchema }),
  z.object({ type: z.literal('deployment'), deployment: DeploymentViewSchema }),
]);
export type LiveMessage = z.infer<typeof LiveMessageSchema>;

/** Every body of the contract by name: the route table names its bodies with these keys, so it needs no
 * zod at run time (the renderer imports it). */
export const CONTRACT_SCHEMAS = {
  ApiError: ApiErrorSchema,
  DeviceView: DeviceViewSchema,
  HealthResponse: HealthResponseSchema,
  DevicesResponse: DevicesResponseSchema,
  DeviceProfileResponse: DeviceProfileResponseSchema,
  MeasureRequest: MeasureRequestSchema,
  LatencyTablesResponse: LatencyTablesResponseSchema,
  MeasurePackagesRequest: MeasurePackagesRequestSchema,
  MeasurePackagesResponse: MeasurePackagesResponseSchema,
  SnapshotResponse: SnapshotResponseSchema,
  PackageView: PackageViewSchema,
  PackagesResponse: PackagesResponseSchema,
  DeployRequest: DeployRequestSchema,
  DeploymentView: DeploymentViewSchema,
  DeploymentsResponse: DeploymentsResponseSchema,
  DeploymentEventsResponse: DeploymentEventsResponseSchema,
  LiveMessage: LiveMessageSchema,
} as const;
export type ContractBodyName = keyof typeof CONTRACT_SCHEMAS;
/** The decoded value of a named body. */
export type ContractBody<N extends ContractBodyName> = z.output<(typeof CONTRACT_SCHEMAS)[N]>;
