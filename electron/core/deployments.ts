// The manager side of deployment: accept a package (the agent's strict reader decides), sign its file hash
// with the manager's key, publish a retained DeployTarget per device, and follow each device's reports into
// the store. The path end to end is in docs/architecture.md ("Deploying a model to a fleet").
//
// Invariants:
// - Nothing is published for a package the reader refuses, nor for a request naming an unknown device:
//   every check runs before the first publish.
// - The target topic is retained, so a device that is offline gets its target when it reconnects. aedes keeps
//   retained messages in memory only, so start() publishes each device's newest target again after a
//   manager restart; the agent ignores a target whose deployment it already finished.
// - A device works on one target at a time (a new one aborts the old), so starting a deployment marks the
//   device's unfinished earlier deployment 'superseded'.
import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';

import { PackageError } from '../../agent/package/errors.js';
import type { CpuFamily } from '../../agent/package/manifest.js';
import { type Package, readPackage } from '../../agent/package/reader.js';
import { sha256, signDigest } from '../../agent/package/signing.js';
import {
  DEPLOY_ERROR_CODES,
  DEPLOY_PHASES,
  type DeployErrorCode,
  type DeployReport,
  type DeployTarget,
  DeployTargetSchema,
  deviceTopic,
  type MeasuredPackage,
  MeasuredPackageSchema,
  PROTOCOL_VERSION,
} from '../../agent/protocol/messages.js';
import { WhittleError } from '../../native/whittle-error.js';
import type {
  DeploymentDeviceView,
  DeploymentEventView,
  DeploymentPhase,
  DeploymentView,
  DeployRequest,
  PackageView,
} from '../api/contract.js';
import { ROUTES } from '../api/routes.js';
import type { Broker } from './broker.js';
import type { DeviceRegistry } from './device-registry.js';
import type { PackageServer } from './package-server.js';
import type { Store, StoredDeployment, StoredDeploymentDevice, StoredPackage } from './store.js';

export type DeploymentErrorCode = 'unknown-package' | 'unknown-device' | 'no-devices' | 'bad-package';

/** A deployment request the manager refuses before publishing anything. */
export class DeploymentError extends WhittleError {
  override readonly name = 'DeploymentError';
  constructor(
    readonly code: DeploymentErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The target's `format` of a Whittle package (agent/package). */
export const PACKAGE_FORMAT = 'whittle-package';

/** Phases after which a device sends no more reports for that deployment. A rollback after an
 * interrupted health check is retried by the agent, so it is not final. */
function isFinished(phase: string, code: string | null): boolean {
  if (phase === 'rolled-back') return code !== 'interrupted';
  return ['committed', 'refused', 'failed', 'superseded'].includes(phase);
}

/** The process.arch values of a package's CPU family ('any': no requirement). */
const ARCHES: Record<CpuFamily, string[] | undefined> = {
  x86_64: ['x64'],
  aarch64: ['arm64'],
  armv7: ['arm'],
  any: undefined,
};

const PHASES = new Set<string>(['pending', 'superseded', ...DEPLOY_PHASES]);
const CODES = new Set<string>(DEPLOY_ERROR_CODES);

// The store holds only what this file wrote; an unknown phase or code would come from a newer version.
function storedPhase(phase: string): DeploymentPhase {
  return (PHASES.has(phase) ? phase : 'failed') as DeploymentPhase;
}

function storedCode(code: string | null): DeployErrorCode | null {
  return code !== null && CODES.has(code) ? (code as DeployErrorCode) : null;
}

function deviceView(row: StoredDeploymentDevice): DeploymentDeviceView {
  return {
    device: row.device,
    phase: storedPhase(row.phase),
    code: storedCode(row.code),
    reason: row.reason,
    serving: row.serving,
    updatedAt: row.updatedAt,
    finished: isFinished(row.phase, row.code),
  };
}

export function packageView(p: StoredPackage): PackageView {
  return { ...p };
}

export interface DeploymentsOptions {
  store: Store;
  registry: DeviceRegistry;
  broker: Broker;
  packages: PackageServer;
  /** The manager's package-signing key pair; devices pin its public half. */
  keys: { privateKey: KeyObject; publicKey: KeyObject };
  /** The address a device reaches the package server at. */
  packageHost: (deviceId: string) => string;
  log: (line: string) => void;
}

export class Deployments extends EventEmitter<{ change: [DeploymentView] }> {
  private readonly onReport = (device: string, report: DeployReport): void => this.apply(device, report);

  constructor(private readonly o: DeploymentsOptions) {
    super();
    o.registry.on('deploy', this.onReport);
  }

  /** Publishes each device's newest target again (retained messages do not survive a manager restart),
   * with the package URL of this launch (the package server's port may have changed). */
  async start(): Promise<void> {
    for (const row of this.o.store.latestDeploymentPerDevice()) {
      if (row.phase === 'superseded') continue;
      const parsed = DeployTargetSchema.safeParse(JSON.parse(row.targetJson));
      if (!parsed.success) {
        this.o.log(
          `deployment ${row.deploymentId}: stored target for ${row.device} is no longer valid; not republished`,
        );
        continue;
      }
      const target = parsed.data;
      target.model.url = this.o.packages.urlOf(target.model.sha256, this.o.packageHost(row.device));
      await this.o.broker.publish(deviceTopic(row.device, 'target'), JSON.stringify(target), true);
    }
  }

  close(): void {
    this.o.registry.off('deploy', this.onReport);
  }

  /** Validates a package with the agent's reader against the manager's key and keeps it. Throws the
   * reader's PackageError for a damaged, foreign or malformed package, DeploymentError('bad-package') for one
   * a device could not be given (its version is not dotted numbers). */
  addPackage(bytes: Buffer): { pkg: PackageView; added: boolean } {
    // cpuFamily null: the manager is not the device; the target's `requires.arch` carries the family.
    const read = readPackage(bytes, { publicKey: this.o.keys.publicKey, cpuFamily: null });
    const { model, target } = read.manifest;
    if (!/^\d{1,9}(\.\d{1,9}){0,3}$/.test(model.version))
      throw new DeploymentError(
        'bad-package',
        `package "${model.id}" has version "${model.version}"; deployments need dotted numbers such as 1.2.0 (agents compare them)`,
      );
    const fileSha = sha256(bytes).toString('hex');
    const known = this.o.store.package(fileSha);
    if (known && this.o.packages.pathOf(fileSha)) return { pkg: packageView(known), added: false };
    this.o.packages.add(bytes);
    const stored: StoredPackage = {
      sha256: fileSha,
      modelId: model.id,
      modelVersion: model.version,
      name: model.name ?? null,
      bytes: bytes.length,
      cpuFamily: target.cpuFamily,
      addedAt: known?.addedAt ?? Date.now(),
    };
    this.o.store.addPackage(stored);
    this.o.log(`package ${model.id} ${model.version} (${fileSha.slice(0, 12)}, ${bytes.length} bytes) added`);
    return { pkg: packageView(stored), added: !known };
  }

  packages(): PackageView[] {
    return this.o.store.packages().map(packageView);
  }

  /** A stored package as devices will download it, checked again and signed: the file on disk is read
   * again, so it must still be the package that was accepted (same hash, still signed by this manager's key);
   * the signature is over its SHA-256, by the manager's key. */
  private signedPackage(sha: string): {
    stored: StoredPackage;
    bytes: Buffer;
    read: Package;
    signature: string;
  } {
    const stored = this.o.store.package(sha);
    const path = stored ? this.o.packages.pathOf(sha) : undefined;
    if (!stored || !path)
      throw new DeploymentError(
        'unknown-package',
        `no package ${sha}; upload it first (${ROUTES.addPackage.method} ${ROUTES.addPackage.path})`,
      );
    const bytes = readFileSync(path);
    if (sha256(bytes).toString('hex') !== sha)
      throw new PackageError('hash-mismatch', `the stored file of package ${sha} was altered`);
    const read = readPackage(bytes, { publicKey: this.o.keys.publicKey, cpuFamily: null });
    const signature = signDigest(Buffer.from(sha, 'hex'), this.o.keys.privateKey).toString('base64');
    return { stored, bytes, read, signature };
  }

  /** What a measure-packages request names of a stored package for `device`: its URL as the device reaches
   * the package server, its hash, size and the manager's signature (as a deployment target's model). */
  measuredPackage(sha: string, device: string): MeasuredPackage {
    const { bytes, signature } = this.signedPackage(sha);
    return MeasuredPackageSchema.parse({
      url: this.o.packages.urlOf(sha, this.o.packageHost(device)),
      sha256: sha,
      bytes: bytes.length,
      signature,
    });
  }

  /** Starts a deployment; every check runs before the first target is published. */
  async deploy(request: DeployRequest): Promise<DeploymentView> {
    const { stored, bytes, read, signature } = this.signedPackage(request.package);
    const devices = this.resolveDevices(request.devices);
    const id = `d-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const arch = ARCHES[read.manifest.target.cpuFamily];
    const targetFor = (device: string): DeployTarget =>
      // Decoded with the protocol's own schema: a target the agent would refuse is never published.
      DeployTargetSchema.parse({
        v: PROTOCOL_VERSION,
        deploymentId: id,
        model: {
          id: stored.modelId,
          version: stored.modelVersion,
          format: PACKAGE_FORMAT,
          url: this.o.packages.urlOf(request.package, this.o.packageHost(device)),
          sha256: request.package,
          bytes: bytes.length,
          signature,
        },
        ...(arch ? { requires: { arch } } : {}),
        ...(request.rollback ? { rollback: true } : {}),
        health: {
          seconds: request.healthSeconds ?? 5,
          ...(request.latencyBudgetMs !== undefined ? { latencyBudgetMs: request.latencyBudgetMs } : {}),
        },
      });
    const targets = devices.map((device) => ({ device, targetJson: JSON.stringify(targetFor(device)) }));
    const now = Date.now();
    const superseded = this.o.store
      .latestDeploymentPerDevice()
      .filter((row) => devices.includes(row.device) && !isFinished(row.phase, row.code));
    for (const row of superseded)
      this.o.store.updateDeploymentDevice(
        row.deploymentId,
        row.device,
        'superseded',
        { reason: `superseded by deployment ${id}` },
        now,
      );
    const deployment: StoredDeployment = {
      id,
      createdAt: now,
      packageSha256: request.package,
      modelId: stored.modelId,
      modelVersion: stored.modelVersion,
      targetJson: targets[0]!.targetJson,
    };
    this.o.store.addDeployment(deployment, targets);
    for (const previous of new Set(superseded.map((r) => r.deploymentId))) this.changed(previous);
    for (const { device, targetJson } of targets)
      await this.o.broker.publish(deviceTopic(device, 'target'), targetJson, true);
    this.o.log(
      `deployment ${id}: ${stored.modelId} ${stored.modelVersion} to ${devices.length} device(s): ${devices.join(', ')}`,
    );
    const view = this.get(id)!;
    this.emit('change', view);
    return view;
  }

  list(limit = 100): DeploymentView[] {
    return this.o.store.deployments(limit).map((d) => this.view(d));
  }

  get(id: string): DeploymentView | undefined {
    const d = this.o.store.deployment(id);
    return d ? this.view(d) : undefined;
  }

  /** Every phase each device of a deployment went through, oldest first; undefined for an unknown id. */
  events(id: string): DeploymentEventView[] | undefined {
    if (!this.o.store.deployment(id)) return undefined;
    return this.o.store.deploymentEvents(id).map((e) => ({
      device: e.device,
      phase: storedPhase(e.phase),
      code: storedCode(e.code),
      reason: e.reason,
      serving: e.serving,
      at: e.at,
    }));
  }

  private resolveDevices(wanted: DeployRequest['devices']): string[] {
    const known = this.o.registry.list();
    let ids: string[];
    if (wanted === 'all') ids = known.map((d) => d.id);
    else if (wanted === 'online') ids = known.filter((d) => d.online).map((d) => d.id);
    else {
      const unknown = wanted.filter((id) => this.o.registry.get(id) === undefined);
      if (unknown.length > 0)
        throw new DeploymentError(
          'unknown-device',
          `unknown device${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')} (the manager has seen ${known.length === 0 ? 'none yet' : known.map((d) => d.id).join(', ')})`,
        );
      ids = [...new Set(wanted)];
    }
    if (ids.length === 0)
      throw new DeploymentError(
        'no-devices',
        wanted === 'online' ? 'no device is online' : 'the manager knows no device yet',
      );
    return ids.sort();
  }

  private apply(device: string, report: DeployReport): void {
    const row = this.o.store.deploymentDevices(report.deploymentId).find((r) => r.device === device);
    // Reports of deployments this manager did not start (a target file written by provisioning) or of
    // superseded ones change nothing here; the registry still keeps them.
    if (!row || row.phase === 'superseded') return;
    this.o.store.updateDeploymentDevice(
      report.deploymentId,
      device,
      report.phase,
      { code: report.code, reason: report.reason, serving: report.serving },
      Date.now(),
    );
    this.changed(report.deploymentId);
  }

  private changed(id: string): void {
    const view = this.get(id);
    if (view) this.emit('change', view);
  }

  private view(d: StoredDeployment): DeploymentView {
    const devices = this.o.store.deploymentDevices(d.id).map(deviceView);
    return {
      id: d.id,
      createdAt: d.createdAt,
      package: { sha256: d.packageSha256, modelId: d.modelId, modelVersion: d.modelVersion },
      devices,
      finished: devices.every((x) => x.finished),
      succeeded: devices.every((x) => x.phase === 'committed'),
    };
  }
}
