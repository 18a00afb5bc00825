// The device `whittle optimize` fits a model to: a profile file (agent/profile/profile.ts, as
// `whittle-agent profile --json` prints it), a device the manager knows (its profile asked for afresh
// through the manager), or a device class. What its
// latencies come from is stated in its notes: until the device has a latency table in this build, they
// are measured on this machine's runtime.
import { type DeviceProfile, DeviceProfileError, parseDeviceProfile } from '../../agent/profile/profile.js';
import { addonBuildHash } from '../../native/index.js';
import { OptimizeError } from './optimize.js';

export interface DeviceTarget {
  name: string;
  profile?: DeviceProfile;
  notes: string[];
}

export type TargetSpec =
  | { profileText: string; file: string }
  | { className: string }
  /** A device's profile as the manager has it (its refreshed profile, parsed by the API client). */
  | { device: string; profile: DeviceProfile };

export function deviceTarget(spec: TargetSpec): DeviceTarget {
  if ('profileText' in spec) {
    let json: unknown;
    try {
      json = JSON.parse(spec.profileText);
    } catch (err) {
      throw new DeviceProfileError(`${spec.file}: not a JSON device profile (${(err as Error).message})`);
    }
    let profile: DeviceProfile;
    try {
      profile = parseDeviceProfile(json);
    } catch (err) {
      if (err instanceof DeviceProfileError) throw new DeviceProfileError(`${spec.file}: ${err.message}`);
      throw err;
    }
    return { name: `${profile.cpu.model} (${spec.file})`, profile, notes: latencyNotes(profile) };
  }
  if ('className' in spec)
    throw new OptimizeError(
      `--class ${spec.className}: the device-class catalog (optimize/latency) is not in this build; use --profile FILE or --device ID`,
    );
  return {
    name: `${spec.device} (${spec.profile.cpu.model})`,
    profile: spec.profile,
    notes: latencyNotes(spec.profile),
  };
}

/** Where the latencies for `profile` come from, said plainly. */
function latencyNotes(profile: DeviceProfile): string[] {
  const here = profile.os.arch === process.arch && profile.kernels.build_hash === addonBuildHash();
  return here
    ? [
        "the device's kernels are this build's on this architecture: latencies measured on this machine's runtime",
      ]
    : [
        `no latency table for ${profile.cpu.model} (kernels ${profile.kernels.isa ?? 'none'}, build ` +
          `${profile.kernels.build_hash ?? 'none'}; this build ${addonBuildHash()}): latencies are measured ` +
          "on this machine's runtime, not the device's",
      ];
}
