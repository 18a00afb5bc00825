// The manager <-> agent contract over MQTT: topic names and message schemas. The agent owns it; the
// manager imports it. Every message is JSON, decoded with these schemas at the receiving edge.
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

/** Topic prefix of one device; the broker's ACL lets a device publish only under its own prefix. */
export function deviceTopic(deviceId: string, leaf: 'status' | 'stats'): string {
  return `whittle/v1/devices/${deviceId}/${leaf}`;
}

/** Matches every device's topics: whittle/v1/devices/<id>/<leaf>. */
export const DEVICE_TOPIC_PATTERN = /^whittle\/v1\/devices\/([A-Za-z0-9._-]{1,64})\/(status|stats)$/;

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
  cpuModel: z.string().max(255),
  cpus: z.number().int().nonnegative(),
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
});
export type StatusMessage = z.infer<typeof StatusMessageSchema>;

/** Published once a second on <prefix>/stats, covering the frames finished in that window. */
export const StatsMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  /** Increases by one per record for the life of the agent process. */
  seq: z.number().int().nonnegative(),
  ts: z.number(),
  windowMs: z.number().positive(),
  frames: z.number().int().nonnegative(),
  fps: z.number().nonnegative(),
  /** Inference latency per frame (preprocessing + model), milliseconds. */
  latencyMs: z.object({
    p50: z.number().nonnegative(),
    p95: z.number().nonnegative(),
    max: z.number().nonnegative(),
  }),
  /** Agent process CPU use over the window, percent of one core (can exceed 100 on multi-core). */
  cpuPercent: z.number().nonnegative(),
  rssBytes: z.number().nonnegative(),
  /** The last frame's prediction, when at least one frame finished. */
  prediction: z
    .object({
      classIndex: z.number().int().nonnegative(),
      label: z.string().max(128),
      confidence: z.number(),
    })
    .optional(),
});
export type StatsMessage = z.infer<typeof StatsMessageSchema>;
