// The device profile's schema and parser (agent/profile/profile.ts collects profiles), in a module that
// imports nothing of Node's, so the API contract (electron/api/contract.ts), which the renderer
// type-checks, can carry profiles.
import { z } from 'zod';

import { whittleError } from '../../native/whittle-error.js';

export const PROFILE_VERSION = 1;

/** A refused profile: malformed, or of a profile_version this build cannot read. */
export class DeviceProfileError extends whittleError('DeviceProfileError', 'bad-device-profile') {}

const Bytes = z.number().int().nonnegative();

export const CacheSchema = z.object({
  /** 1, 2, 3 (L1, L2, L3). */
  level: z.number().int().min(1).max(8),
  /** The kernel's type: Data, Instruction, Unified. */
  type: z.string().max(32),
  size_bytes: Bytes,
  /** How many CPUs share this cache (cpu0's view). */
  shared_cpus: z.number().int().min(1).max(4096),
});
export type CacheInfo = z.infer<typeof CacheSchema>;

export const ThermalZoneSchema = z.object({
  /** The zone's directory name, e.g. thermal_zone0. */
  zone: z.string().max(64),
  /** What the zone measures, as the kernel names it (cpu-thermal, x86_pkg_temp, ...); null when unreadable. */
  type: z.string().max(64).nullable(),
  /** Degrees Celsius; null when the sensor gives no plausible reading. */
  temp_c: z.number().min(-100).max(300).nullable(),
});
export type ThermalZone = z.infer<typeof ThermalZoneSchema>;

export const DeviceProfileSchema = z
  .object({
    profile_version: z.literal(PROFILE_VERSION),
    collected_at: z.number().int().nonnegative(),
    hostname: z.string().max(255),
    cpu: z.object({
      /** The kernel's name for the CPU; "<arch> (emulated on <host model>)" under qemu-user. */
      model: z.string().max(255),
      /** Logical CPUs the process can run on (under qemu-user the host's, which the emulated threads use). */
      cores: z.number().int().min(1).max(4096),
      /** True when the kernel describes another CPU family than this process runs (user-mode emulation). */
      emulated: z.boolean(),
      /** Features the native addon detected (its own cpuid / HWCAP reading); empty without the addon. */
      isa_features: z.array(z.string().max(32)).max(64),
      /** Per CPU, kHz (cpufreq's scaling_cur_freq / cpuinfo_max_freq); null where cpufreq is absent. */
      freq_khz: z.object({
        cur: z.array(z.number().int().nonnegative()).max(4096).nullable(),
        max: z.array(z.number().int().nonnegative()).max(4096).nullable(),
      }),
      /** cpu0's caches; empty where the kernel does not describe them. */
      caches: z.array(CacheSchema).max(16),
    }),
    memory: z.object({ total_bytes: Bytes, free_bytes: Bytes }),
    /** Free space of the agent's data directory (statfs, as an unprivileged user may use it). */
    storage: z.object({ free_bytes: Bytes.nullable(), path: z.string().max(4096) }),
    /** Every thermal zone of /sys/class/thermal; empty where the kernel exposes none. */
    thermal: z.array(ThermalZoneSchema).max(256),
    os: z.object({
      /** process.platform: linux, darwin, ... */
      platform: z.string().max(32),
      /** process.arch: x64, arm64, arm, ... */
      arch: z.string().max(32),
      /** The kernel release (os.release(): 6.1.0-18-arm64). */
      release: z.string().max(255),
      /** The kernel's build string (os.version(): #1 SMP PREEMPT Debian ...). */
      kernel: z.string().max(255),
      /** PRETTY_NAME of /etc/os-release; null without one. */
      name: z.string().max(255).nullable(),
    }),
    node_version: z.string().max(64),
    /** V4L2 capture devices: /dev/video0, ... */
    cameras: z.array(z.string().max(64)).max(64),
    /** The kernel path the addon selected and the identity of its build (native addonBuildHash()); both
     * null when the addon does not load (the agent then runs the reference operators). */
    kernels: z.object({ isa: z.string().max(32).nullable(), build_hash: z.string().max(64).nullable() }),
  })
  .strict();
export type DeviceProfile = z.infer<typeof DeviceProfileSchema>;

/** Reads a profile received from elsewhere (the link, a file, the store); throws DeviceProfileError naming
 * the version it cannot read or the first field that is wrong. */
export function parseDeviceProfile(value: unknown): DeviceProfile {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new DeviceProfileError('device profile: expected a JSON object');
  const version = (value as { profile_version?: unknown }).profile_version;
  if (version !== PROFILE_VERSION)
    throw new DeviceProfileError(
      version === undefined
        ? 'device profile: no profile_version; not a Whittle device profile'
        : `device profile: profile_version ${JSON.stringify(version)} is not readable by this build ` +
            `(it reads version ${PROFILE_VERSION}); update the older side`,
    );
  const parsed = DeviceProfileSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new DeviceProfileError(`device profile: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}
