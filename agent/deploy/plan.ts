// The deployment planner: a pure function from what the device has and what the manager wants to the
// steps that get it there. No I/O here, so every decision is unit-tested on plain values.
import type { DeployErrorCode, DeployTarget } from '../protocol/messages.js';
import type { ActiveState, InstalledModel } from './model-store.js';
import { compareVersions } from './version.js';

export type Step =
  | { kind: 'refuse'; code: DeployErrorCode; reason: string }
  | { kind: 'download'; url: string; sha256: string; bytes: number }
  | { kind: 'verify'; sha256: string; signature: string; staged: boolean }
  | { kind: 'stage'; sha256: string }
  | { kind: 'switch'; to: InstalledModel }
  | { kind: 'health-check'; sha256: string }
  | { kind: 'commit' };

export type StepKind = Step['kind'];

export interface DeviceState {
  active: ActiveState;
  /** A verified blob with this hash is already on disk. */
  hasBlob: (sha256: string) => boolean;
  arch: string;
  memBytes: number;
  /** A package signing key is pinned; without one nothing can be verified. */
  hasKey: boolean;
}

export function plan(current: DeviceState, target: DeployTarget): Step[] {
  const { model } = target;
  const refuse = (code: DeployErrorCode, reason: string): Step[] => [{ kind: 'refuse', code, reason }];
  if (!current.hasKey)
    return refuse(
      'no-key',
      'this agent has no pinned package-signing key (packageKey), so it cannot verify any model',
    );
  const arches = target.requires?.arch;
  if (arches && !arches.includes(current.arch))
    return refuse(
      'wrong-cpu',
      `model ${model.id} ${model.version} is built for ${arches.join(', ')}; this device is ${current.arch}`,
    );
  const mem = target.requires?.memBytes;
  if (mem !== undefined && mem > current.memBytes)
    return refuse(
      'not-enough-memory',
      `model ${model.id} ${model.version} needs ${mem} bytes of memory; this device has ${current.memBytes}`,
    );
  const installed = current.active.current;
  if (installed?.sha256 === model.sha256 && !current.active.trial) return [];
  if (installed && compareVersions(model.version, installed.version) < 0 && target.rollback !== true)
    return refuse(
      'older-version',
      `model ${model.id} ${model.version} is older than the installed ${installed.modelId} ${installed.version}; deploy it with rollback to install it anyway`,
    );
  const to: InstalledModel = { sha256: model.sha256, modelId: model.id, version: model.version };
  const tail: Step[] = [
    { kind: 'switch', to },
    { kind: 'health-check', sha256: model.sha256 },
    { kind: 'commit' },
  ];
  if (current.hasBlob(model.sha256))
    return [{ kind: 'verify', sha256: model.sha256, signature: model.signature, staged: true }, ...tail];
  return [
    { kind: 'download', url: model.url, sha256: model.sha256, bytes: model.bytes },
    { kind: 'verify', sha256: model.sha256, signature: model.signature, staged: false },
    { kind: 'stage', sha256: model.sha256 },
    ...tail,
  ];
}
