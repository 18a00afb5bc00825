// The device a command fits a model to, as `whittle optimize` and `whittle nas` name it: --profile FILE (as
// `whittle-agent profile --json` prints it), --class NAME (a board of the device-class catalog, priced from
// its estimated table, scaled from this machine's measured once per kernel build under the data directory),
// or --device ID (a device the manager knows: its profile asked for afresh, with its own latency table when
// the manager has a complete one of its current kernel build). optimize/plan/target.ts says where each
// target's latencies come from.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { addonBuildHash } from '../../native/index.js';
import type { DeviceTarget } from '../../optimize/plan/target.js';
import { defaultDataDir } from '../core/core.js';
import { CommandUsageError } from './command-error.js';
import { ManagerClient } from './manager-client.js';

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
