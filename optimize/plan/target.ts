// The device `whittle optimize` fits a model to: a profile file (agent/profile/profile.ts, as
// `whittle-agent profile --json` prints it), a device the manager knows (its profile asked for afresh
// through the manager, with its latency table when it has a complete one in its current kernel build), or
// a device class (its estimated table, scaled from this machine's measured one: optimize/latency). What its
// latencies come from is stated in its notes: a table when there is one, otherwise this machine's runtime.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import {
  defaultGrid,
  gridId,
  type LatencyTable,
  measureLatencyTable,
  parseLatencyTable,
} from '../../agent/profile/latency-table.js';
import { type DeviceProfile, DeviceProfileError, parseDeviceProfile } from '../../agent/profile/profile.js';
import { addonBuildHash } from '../../native/index.js';
import { deviceClassInfo, estimateTable } from '../latency/device-classes.js';

export interface DeviceTarget {
  name: string;
  profile?: DeviceProfile;
  /** The device's latency table (measured, or its class's estimate) and what it is; absent: measure here. */
  table?: { table: LatencyTable; source: string };
  notes: string[];
}

export type TargetSpec =
  | { profileText: string; file: string }
  /** A device class of the catalog, estimated from `reference`: this machine's measured table. */
  | { className: string; reference: LatencyTable }
  /** A device's profile as the manager has it (its refreshed profile, parsed by the API client), and its
   * current latency table when the manager has one. */
  | { device: string; profile: DeviceProfile; table?: LatencyTable | null };

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
  if ('className' in spec) {
    const info = deviceClassInfo(spec.className);
    const source = `the ${info.name} class's estimated table (scaled from this machine's, build ${spec.reference.build_hash})`;
    return {
      name: `${info.title} (class ${info.name})`,
      table: { table: estimateTable(spec.reference, info), source },
      notes: [
        `latencies from ${source}: each step is judged by the table's time; this machine's runtime, not a ${info.name}'s, measures the rest (host_ms_* in the ledger)`,
      ],
    };
  }
  const name = `${spec.device} (${spec.profile.cpu.model})`;
  if (spec.table?.complete === true) {
    const source = `${spec.device}'s measured table (build ${spec.table.build_hash})`;
    return {
      name,
      profile: spec.profile,
      table: { table: spec.table, source },
      notes: [
        `latencies from ${source}: each step is judged by the table's time; this machine's measurement is kept beside it (host_ms_* in the ledger)`,
      ],
    };
  }
  return { name, profile: spec.profile, notes: latencyNotes(spec.profile) };
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

/** This machine's latency table (the default grid), the reference a device class's estimate is scaled from:
 * read from `file` when it holds a complete table of this kernel build and grid, otherwise measured (about
 * 15 s of CPU) and written there, so a resumed run prices with the same table. */
export async function referenceTable(
  file: string,
  onEntry?: (done: number, total: number) => void,
): Promise<LatencyTable> {
  const grid = defaultGrid();
  const expect = { buildHash: addonBuildHash(), gridId: gridId(grid) };
  let partial: LatencyTable | undefined;
  if (existsSync(file)) {
    try {
      const table = parseLatencyTable(JSON.parse(readFileSync(file, 'utf8')), expect);
      if (table.complete) return table;
      partial = table;
    } catch {
      // Another build's, another grid's or a damaged table: measured again below, and replaced.
    }
  }
  const table = await measureLatencyTable({
    grid,
    ...(partial !== undefined ? { resume: partial } : {}),
    ...(onEntry !== undefined ? { onEntry: (_e, done, total) => onEntry(done, total) } : {}),
  });
  writeFileSync(file, JSON.stringify(table));
  return table;
}
