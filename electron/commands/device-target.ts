// The device a command fits a model to, as `whittle optimize` and `whittle nas` name it: --profile FILE (as
// `whittle-agent profile --json` prints it), --class NAME (a board of the device-class catalog, priced from
// its estimated table, scaled from this machine's measured once per kernel build under the data directory),
// or --device ID (a device the manager knows: its profile asked for afresh, with its own latency table when
// the manager has a complete one of its current kernel build). optimize/plan/target.ts says where each
// target's latencies come from. A --device target is also verified there: deviceVerifier times the fp32
// baseline and the final package on the device itself, through the manager.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { addonBuildHash } from '../../native/index.js';
import type { DeviceMeasured } from '../../optimize/plan/optimize.js';
import type { DeviceTarget } from '../../optimize/plan/target.js';
import { defaultDataDir } from '../core/core.js';
import { CommandUsageError } from './command-error.js';
import { ManagerApiError, ManagerClient } from './manager-client.js';

/** The target options, spread into a command's parseArgs options. */
export const TARGET_OPTIONS = {
  device: { type: 'string' },
  profile: { type: 'string' },
  class: { type: 'string' },
  'data-dir': { type: 'string' },
} as const;

export interface TargetOptions {
  device?: string | undefined;
  profile?: string | undefined;
  class?: string | undefined;
  'data-dir'?: string | undefined;
}

/** The target named by `values`; undefined when none is named and `required` is false. */
export async function resolveDeviceTarget(
  command: string,
  values: TargetOptions,
  required: boolean,
): Promise<DeviceTarget | undefined> {
  const named = (['device', 'profile', 'class'] as const).filter((t) => values[t] !== undefined);
  if (named.length > 1 || (required && named.length === 0))
    throw new CommandUsageError(
      `whittle ${command}: name the device once: one of --device, --profile, --class`,
    );
  if (named.length === 0) return undefined;
  const { deviceTarget, referenceTable } = await import('../../optimize/plan/target.js');
  const dataDir = values['data-dir'] ?? defaultDataDir();
  if (values.profile !== undefined) {
    let text: string;
    try {
      text = readFileSync(values.profile, 'utf8');
    } catch (err) {
      throw new CommandUsageError(`--profile ${values.profile}: ${(err as Error).message}`);
    }
    return deviceTarget({ profileText: text, file: values.profile });
  }
  if (values.class !== undefined) {
    const { deviceClassInfo } = await import('../../optimize/latency/device-classes.js');
    deviceClassInfo(values.class); // an unknown name is refused before anything is measured
    mkdirSync(join(dataDir, 'latency'), { recursive: true });
    const file = join(dataDir, 'latency', `reference-${addonBuildHash()}.json`);
    const reference = await referenceTable(file, (done, total) => {
      if (done % 50 === 0 || done === total)
        process.stderr.write(`whittle ${command}: measuring this machine's latency table ${done}/${total}\n`);
    });
    return deviceTarget({ className: values.class, reference });
  }
  const client = ManagerClient.forDataDir(dataDir);
  const { profile } = await client.refreshProfile(values.device!);
  const { current } = await client.latencyTables(values.device!);
  return deviceTarget({ device: values.device!, profile, table: current });
}

/** The final check of `whittle optimize --device ID` (OptimizeOptions.verifyOnTarget): the fp32 baseline
 * and the final package uploaded to the manager (signed by its key, as for a deployment) and timed on the
 * device, interleaved, `runs` frames each (the manager's default when undefined). Undefined for a target
 * that is not a device. A refusal or a device lost mid-measurement is a ManagerApiError that says the
 * package and its report are written. */
export function deviceVerifier(
  values: TargetOptions,
  runs: number | undefined,
): ((files: { baseline: string; final: string }) => Promise<DeviceMeasured>) | undefined {
  const device = values.device;
  if (device === undefined) return undefined;
  const client = ManagerClient.forDataDir(values['data-dir'] ?? defaultDataDir());
  return async ({ baseline, final }) => {
    try {
      const shas: string[] = [];
      for (const file of [baseline, final])
        shas.push((await client.uploadPackage(readFileSync(file))).sha256);
      const r = await client.measurePackages(device, {
        packages: shas,
        ...(runs !== undefined ? { runs } : {}),
      });
      const [b, f] = r.timings;
      return {
        baseline_ms: b!.median_ms,
        baseline_p90_ms: b!.p90_ms,
        final_ms: f!.median_ms,
        final_p90_ms: f!.p90_ms,
        runs: Math.min(b!.runs, f!.runs),
        source: `device ${device} (${r.isa ?? 'no native addon'}, ${r.threads} thread(s))`,
      };
    } catch (err) {
      if (!(err instanceof ManagerApiError)) throw err;
      throw new ManagerApiError(
        `cannot verify on device ${device}: ${err.message}; ${final} and its report are written, without the device's figures`,
        err.status,
        err.code,
      );
    }
  };
}
