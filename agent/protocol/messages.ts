// The manager <-> agent contract over MQTT: topic names and message schemas. The agent owns it; the
// manager imports it. Every message is JSON, decoded with these schemas at the receiving edge.
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

/** Leaves of a device's topics the device publishes on. */
export const DEVICE_LEAVES = ['status', 'stats', 'snapshot', 'deploy', 'response'] as const;
export type DeviceLeaf = (typeof DEVICE_LEAVES)[number];

/** Leaves only the manager publishes on (`target` retained, `request` not); a device subscribes to them
 * and may not publish. */
export const MANAGER_LEAVES = ['target', 'request'] as const;
export type ManagerLeaf = (typeof MANAGER_LEAVES)[number];

/** Topic prefix of one device; the broker's ACL lets a device publish only under its own prefix. */
export function deviceTopic(deviceId: string, leaf: DeviceLeaf | ManagerLeaf): string {
  return `whittle/v1/devices/${deviceId}/${leaf}`;
}

/** Matches every device's topics: whittle/v1/devices/<id>/<leaf>. */
export const DEVICE_TOPIC_PATTERN = new RegExp(
  `^whittle/v1/devices/([A-Za-z0-9._-]{1,64})/(${DEVICE_LEAVES.join('|')})$`,
);

/** Device ids double as MQTT usernames and topic levels, so they are restricted to a safe alphabet. */
export const DeviceIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,64}$/, 'device id: 1-64 of A-Z a-z 0-9 . _ -');

export const DeviceInfoSchema = z.object({
  id: DeviceIdSchema,
  hostname: z.string().max(255),
  /** process.arch of the agent: x64, arm64, arm, ... */
  arch: z.string().max(32),
  platform: z.string().max(32),
  /** The kernel's name for the CPU; under user-mode emulation (qemu-user), where the kernel describes
   * the host's CPU, "<arch> (emulated on <host model>)" (agent/profile/profile.ts). */
  cpuModel: z.string().max(255),
  cpus: z.number().int().nonnegative(),
  /** The native addon's kernel path in use (native/index.ts ISAS: neon, neondot, avx2, ...); absent
   * when the addon did not load. Optional: agents before it did not send it. */
  isa: z.string().max(32).optional(),
  /** The CPU features the addon detected (its own cpuid / HWCAP reading), e.g. ["neon", "neondot"]. */
  cpuFeatures: z.array(z.string().max(32)).max(32).optional(),
  memTotalBytes: z.number().nonnegative(),
  agentVersion: z.string().max(64),
  nodeVersion: z.string().max(64),
  /** The camera source as the user named it: a V4L2 device, a file, or "testsrc". */
  camera: z.string().max(1024),
  model: z.object({ id: z.string().max(128), name: z.string().max(255) }),
});
export type DeviceInfo = z.infer<typeof DeviceInfoSchema>;

/** Retained on <prefix>/status. The broker publishes the agent's last will ({online:false}) when the
 * connection drops without a clean disconnect. */
export const StatusMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  online: z.boolean(),
  /** Milliseconds since the Unix epoch, agent clock. */
  ts: z.number(),
  info: DeviceInfoSchema.optional(),
  /** Present while the camera loop is paused so that a measurement the manager asked for (a latency table,
   * packages timed) has the CPU to itself: which request, since when (agent clock). Optional: older agents
   * never pause, older managers ignore it. */
  paused: z
    .object({
      reason: z.literal('measurement'),
      request: z.string().max(64),
      since: z.number(),
    })
    .optional(),
});
export type StatusMessage = z.infer<typeof StatusMessageSchema>;

/** Published once a second on <prefix>/stats (MQTT QoS 1), covering the frames finished in that window.
 * Fields added after the first release are optional, so a manager reads records of older agents. */
/** One frame's prediction: the class index and label the model chose, with its confidence. */
const PredictionSchema = z.object({
  classIndex: z.number().int().nonnegative(),
  label: z.string().max(128),
  confidence: z.number(),
});

export const StatsMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  /** Increases by one per record. Agents with a telemetry outbox persist it, so it keeps increasing
   * across restarts within one `epoch`; the manager stores each (device, epoch, seq) once. */
  seq: z.number().int().nonnegative(),
  /** Random id of the agent's telemetry outbox; a new one (seq from 0) only when its state is wiped. */
  epoch: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}$/, 'epoch: 1-32 of A-Z a-z 0-9 _ -')
    .optional(),
  ts: z.number(),
  windowMs: z.number().positive(),
  frames: z.number().int().nonnegative(),
  fps: z.number().nonnegative(),
  /** Inference latency per frame (preprocessing + model), milliseconds. */
  latencyMs: z.object({
    p50: z.number().nonnegative(),
    p95: z.number().nonnegative(),
    p99: z.number().nonnegative().optional(),
    max: z.number().nonnegative(),
  }),
  /** Agent process CPU use over the window, percent of one core (can exceed 100 on multi-core). */
  cpuPercent: z.number().nonnegative(),
  /** Resident memory of the agent process at the end of the window. Absent when it is unknown: under
   * qemu-user the kernel figure reads 0, which would be a wrong number, not a small one. */
  rssBytes: z.number().nonnegative().optional(),
  /** Hottest thermal zone of /sys/class/thermal at the end of the window, degrees Celsius; absent
   * where the kernel exposes none (containers, most VMs). */
  temperatureC: z.number().min(-100).max(300).optional(),
  /** The last frame's prediction, when at least one frame finished. */
  prediction: PredictionSchema.optional(),
  /** Frames of the window per predicted class: classCounts[i] frames were classified as label i. */
  classCounts: z.array(z.number().int().nonnegative()).max(1000).optional(),
  /** Mean softmax confidence of the window's predictions, in [0, 1]; absent without frames. */
  meanConfidence: z.number().min(0).max(1).optional(),
  /** Frames of the window whose true label was known (a labelled video), and how many of them the
   * model classified correctly. Absent when the source carries no labels. */
  accuracy: z
    .object({ frames: z.number().int().nonnegative(), correct: z.number().int().nonnegative() })
    .refine((a) => a.correct <= a.frames, 'accuracy: correct exceeds frames')
    .optional(),
  /** Records the agent's outbox has dropped (oldest first, when full while disconnected) in this epoch. */
  dropped: z.number().int().nonnegative().optional(),
});
export type StatsMessage = z.infer<typeof StatsMessageSchema>;

/** Most bytes of a snapshot JPEG; the agent sends a small picture (160 pixels wide by default). */
export const MAX_SNAPSHOT_JPEG_BYTES = 256 * 1024;

/** Published every few seconds on <prefix>/snapshot (QoS 0: a lost one is replaced by the next): a small
 * JPEG of the camera view with the prediction the model made on the newest frame at that moment. */
export const SnapshotMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  ts: z.number(),
  /** Base64 of a baseline JPEG. */
  jpeg: z
    .string()
    .max(Math.ceil(MAX_SNAPSHOT_JPEG_BYTES / 3) * 4)
    .regex(/^\/9j\/[A-Za-z0-9+/]*={0,2}$/, 'jpeg: expected base64 of a JPEG (starting FF D8 FF)'),
  prediction: PredictionSchema.optional(),
  /** The true class of that frame, when the source is labelled. */
  trueLabel: z.string().max(128).optional(),
});
export type SnapshotMessage = z.infer<typeof SnapshotMessageSchema>;

/** Lower-case hex of a SHA-256. */
const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'sha256: expected 64 lower-case hex digits');

/** Retained on <prefix>/target by the manager: the model this device should run (the desired state).
 * The agent also reads it from <stateDir>/deploy/target.json (provisioning writes it there). */
export const DeployTargetSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  /** Names this deployment in reports; a target with an id already finished is not run again. */
  deploymentId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'deploymentId: 1-64 of A-Z a-z 0-9 . _ -'),
  model: z.object({
    id: z.string().min(1).max(128),
    /** Dotted numbers (1, 1.2, 2.0.3); compared numerically, field by field. */
    version: z.string().regex(/^\d{1,9}(\.\d{1,9}){0,3}$/, 'version: expected dotted numbers such as 1.2.0'),
    /** A signed Whittle package (docs/format.md). The agent verifies both this target's signature over
     * the file's SHA-256 and the package's own embedded signature, against the same pinned key. */
    format: z.enum(['whittle-package']),
    /** http(s) URL of the file, served by the manager's package server or any HTTP store. */
    url: z.string().regex(/^https?:\/\/[^\s]+$/, 'url: expected http:// or https://'),
    sha256: Sha256Hex,
    bytes: z
      .number()
      .int()
      .positive()
      .max(2 ** 40),
    /** Base64 Ed25519 signature over the 32-byte SHA-256 of the file, by the manager's package key. */
    signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'signature: expected base64 of 64 bytes'),
  }),
  /** Refused unless the device matches: process.arch values, and memory the model needs. */
  requires: z
    .object({
      arch: z.array(z.string().max(32)).min(1).max(16).optional(),
      memBytes: z.number().int().positive().optional(),
    })
    .optional(),
  /** Install even if older than the installed version. */
  rollback: z.boolean().optional(),
  health: z
    .object({
      /** How long the frame loop must run the new model within the budget. */
      seconds: z.number().min(0).max(600),
      /** p95 frame latency allowed during the health check, ms. */
      latencyBudgetMs: z.number().positive().optional(),
      /** A known input (base64 bytes of one frame) and the class the model must give it. */
      probe: z
        .object({ input: z.string().max(16 * 1024 * 1024), expectedClass: z.number().int().nonnegative() })
        .optional(),
    })
    .optional(),
});
export type DeployTarget = z.infer<typeof DeployTargetSchema>;

export const DEPLOY_PHASES = [
  'downloading',
  'verified',
  'staged',
  'switched',
  'committed',
  'refused',
  'failed',
  'rolled-back',
] as const;
export type DeployPhase = (typeof DEPLOY_PHASES)[number];

/** Why a deployment did not complete; lets the manager react without parsing text. */
export const DEPLOY_ERROR_CODES = [
  'no-key',
  'bad-target',
  'older-version',
  'wrong-cpu',
  'not-enough-memory',
  'download-failed',
  'truncated',
  'too-large',
  'hash-mismatch',
  'bad-signature',
  'bad-model',
  'probe-mismatch',
  'over-latency-budget',
  'no-frames',
  'interrupted',
  'aborted',
  'io',
] as const;
export type DeployErrorCode = (typeof DEPLOY_ERROR_CODES)[number];

/** Published on <prefix>/deploy (QoS 1) at each phase of a deployment. */
export const DeployReportSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  ts: z.number(),
  deploymentId: z.string().max(64),
  modelId: z.string().max(128),
  version: z.string().max(64),
  phase: z.enum(DEPLOY_PHASES),
  code: z.enum(DEPLOY_ERROR_CODES).optional(),
  /** A sentence a user can act on, for refusals, failures and rollbacks. */
  reason: z.string().max(2000).optional(),
  /** The model the device serves after this phase: sha256, or "bundled". */
  serving: z.string().max(64),
});
export type DeployReport = z.infer<typeof DeployReportSchema>;

/** The latency-table grids an agent measures on request: the full one, a quick one, each optionally cut
 * to its first `limit` points (a tiny table, for tests and a first look). */
export const LATENCY_GRIDS = ['default', 'quick'] as const;

const RequestId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'request id: 1-64 of A-Z a-z 0-9 _ -');

/** Most packages one measure-packages request names, and the most bytes each may have (a deployment's
 * package limit, MAX_PACKAGE_BYTES of the manager's API). */
export const MAX_MEASURED_PACKAGES = 8;
export const MAX_MEASURED_PACKAGE_BYTES = 64 * 1024 * 1024;

/** A package the device is asked to time: downloaded and verified as a deployment's (the manager's signature
 * over the file's SHA-256, then the package's embedded signature, both against the pinned key). */
export const MeasuredPackageSchema = z.object({
  url: z.string().regex(/^https?:\/\/[^\s]+$/, 'url: expected http:// or https://'),
  sha256: Sha256Hex,
  bytes: z.number().int().positive().max(MAX_MEASURED_PACKAGE_BYTES, 'bytes: over the package limit'),
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'signature: expected base64 of 64 bytes'),
});
export type MeasuredPackage = z.infer<typeof MeasuredPackageSchema>;

/** One package's timing on the device: frames run at batch 1 through the served-model path (infer of a
 * camera frame), all packages interleaved round by round. Milliseconds per frame. */
export const PackageTimingSchema = z.object({
  sha256: Sha256Hex,
  median_ms: z.number().nonnegative(),
  p90_ms: z.number().nonnegative(),
  runs: z.number().int().positive(),
});
export type PackageTiming = z.infer<typeof PackageTimingSchema>;

/** Published by the manager on <prefix>/request (QoS 1, not retained): asks the device for its profile
 * (agent/profile/profile.ts), to measure its latency table, or to time packages (measure-packages). The device answers on <prefix>/response with
 * the same id. Agents before requests existed do not subscribe, so they never answer: the manager times
 * out and says so. */
export const RequestMessageSchema = z.discriminatedUnion('kind', [
  z.object({ v: z.literal(PROTOCOL_VERSION), id: RequestId, kind: z.literal('profile') }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id: RequestId,
    kind: z.literal('latency-table'),
    grid: z.enum(LATENCY_GRIDS),
    /** Measure only the grid's first `limit` points. */
    limit: z.number().int().min(1).max(100_000).optional(),
    threads: z.number().int().min(1).max(64).optional(),
    /** A partial table of the same build and grid (as stored by the manager): its entries are kept. */
    resume: z.unknown().optional(),
  }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id: RequestId,
    kind: z.literal('measure-packages'),
    packages: z.array(MeasuredPackageSchema).min(1).max(MAX_MEASURED_PACKAGES),
    /** Timed frames per package (one per round, the packages interleaved). */
    runs: z.number().int().min(1).max(10_000),
  }),
]);
export type RequestMessage = z.infer<typeof RequestMessageSchema>;

/** Published by the device on <prefix>/response (QoS 1) for a request. Profiles and tables travel as
 * plain JSON here and are decoded by their own parsers (parseDeviceProfile, parseLatencyTable) at the
 * receiving edge, which name the field or version they refuse. */
export const ResponseMessageSchema = z.discriminatedUnion('kind', [
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id: RequestId,
    ts: z.number(),
    kind: z.literal('profile'),
    profile: z.unknown(),
  }),
  /** The measurement started: the table's identity, and the entries a resumed table already holds. */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id: RequestId,
    ts: z.number(),
    kind: z.literal('latency-start'),
    /** A table with no new entries yet (complete: false): build_hash, isa, threads, grid_id, conditions. */
    table: z.unknown(),
    total: z.number().int().nonnegative(),
  }),
  /** One more entry measured; `done` counts the resumed ones too. */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id: RequestId,
    ts: z.number(),
    kind: z.literal('latency-entry'),
    entry: z.unknown(),
    done: z.number().int().nonnegative(),
    total: z.number().int().nonnegative(),
  }),
  /** The measurement ended: the whole table (complete unless it was stopped). */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id: RequestId,
    ts: z.number(),
    kind: z.literal('latency-table'),
    table: z.unknown(),
  }),
  /** A measure-packages request was accepted: the device downloads, verifies and times the packages now. */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id: RequestId,
    ts: z.number(),
    kind: z.literal('packages-start'),
    total: z.number().int().nonnegative(),
  }),
  /** The packages of a measure-packages request, timed (in the request's order). */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id: RequestId,
    ts: z.number(),
    kind: z.literal('packages-measured'),
    timings: z.array(PackageTimingSchema).max(MAX_MEASURED_PACKAGES),
    isa: z.string().max(32).nullable(),
    threads: z.number().int().positive(),
    build_hash: z.string().max(64).nullable(),
  }),
  /** The request was refused or failed: a sentence a user can act on, and the error's code. */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    id: RequestId,
    ts: z.number(),
    kind: z.literal('error'),
    code: z.string().max(64),
    message: z.string().max(2000),
  }),
]);
export type ResponseMessage = z.infer<typeof ResponseMessageSchema>;
