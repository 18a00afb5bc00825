// `whittle device add ssh://…` and `whittle device remove`: connect, probe, install, record — and undo.
import { DeviceIdSchema } from '../../../agent/protocol/messages.js';
import type { Store } from '../store.js';
import { buildAgentBundle } from './agent-bundle.js';
import {
  describeLayout,
  installAgent,
  type InstallRecord,
  InstallRecordSchema,
  uninstallAgent,
} from './agent-install.js';
import { checkRunnable, type DeviceProbe, parseProbe, PROBE_SCRIPT } from './device-probe.js';
import { ProvisioningError } from './errors.js';
import type { AcceptHostKey } from './host-key.js';
import { managerSigningPublicKey } from './signing-key.js';
import { type SshAuth, SshSession } from './ssh-session.js';
import type { SshTarget } from './target-url.js';

export interface AddDeviceOptions {
  store: Store;
  /** The manager's data directory (signing key). */
  dataDir: string;
  target: SshTarget;
  auth: SshAuth;
  acceptHostKey: AcceptHostKey;
  /** Device id; by default the device's hostname. */
  deviceId?: string;
  /** The broker URL the agent connects to; by default mqtt://<manager address as the device sees it>:<mqttPort>. */
  brokerUrl?: string;
  mqttPort: number;
  /** Camera source; by default the device's first /dev/video*, else ffmpeg's test pattern. */
  camera?: string;
  buildAddonOnDevice?: boolean;
  progress: (line: string) => void;
  signal?: AbortSignal;
}

export interface AddDeviceResult {
  record: InstallRecord;
  probe: DeviceProbe;
  hostKey: { keyType: string; fingerprint: string };
}

export function sanitizeDeviceId(hostname: string): string {
  return hostname.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64) || 'device';
}

export async function probeDevice(session: SshSession): Promise<DeviceProbe> {
  const out = await session.check('probing the device', PROBE_SCRIPT);
  return parseProbe(out, session.target.host);
}

export async function addDeviceOverSsh(o: AddDeviceOptions): Promise<AddDeviceResult> {
  if (o.deviceId !== undefined && !DeviceIdSchema.safeParse(o.deviceId).success)
    throw new ProvisioningError(
      `--name: expected a device id of 1-64 of A-Z a-z 0-9 . _ -, got "${o.deviceId}"`,
    );
  o.progress(`connecting to ${o.target.username}@${o.target.host}:${o.target.port}`);
  const session = await SshSession.connect({
    target: o.target,
    auth: o.auth,
    pins: o.store,
    acceptHostKey: o.acceptHostKey,
    ...(o.signal ? { signal: o.signal } : {}),
  });
  try {
    const probe = await probeDevice(session);
    o.progress(
      `device: ${probe.hostname}, ${probe.machine} (${probe.arch}), ${probe.os}, Node.js ${probe.nodeVersion ?? 'missing'}, ` +
        `${probe.cpus} CPUs, ${(probe.memTotalBytes / 2 ** 20).toFixed(0)} MiB, cameras: ${probe.cameras.join(' ') || 'none'}`,
    );
    checkRunnable(probe, o.target.host);
    o.signal?.throwIfAborted();
    const deviceId = o.deviceId ?? sanitizeDeviceId(probe.hostname);
    // One agent per login on a device: a second id would overwrite the first one's files.
    const other = provisionedRecords(o.store).find(
      (r) =>
        r.deviceId !== deviceId &&
        r.host === o.target.host &&
        r.port === o.target.port &&
        (r.kind === 'systemd' ? probe.systemd && probe.sudo : r.username === o.target.username),
    );
    if (other)
      throw new ProvisioningError(
        `${o.target.host} already runs the agent of device ${other.deviceId}; remove it first (whittle device remove ${other.deviceId}) or add it again as --name ${other.deviceId}`,
      );
    const managerAddress = probe.managerAddress;
    if (!o.brokerUrl && !managerAddress)
      throw new ProvisioningError(
        `cannot tell the manager's address as ${o.target.host} sees it ($SSH_CONNECTION is empty); pass --broker mqtt://ADDRESS:${o.mqttPort}`,
      );
    const brokerUrl =
      o.brokerUrl ??
      `mqtt://${managerAddress!.includes(':') ? `[${managerAddress}]` : managerAddress}:${o.mqttPort}`;
    const camera = o.camera ?? probe.cameras[0] ?? 'testsrc';
    o.progress(`installing as ${describeLayout(probe)}`);
    const bundle = await buildAgentBundle(probe.arch, probe.canBuildAddon, o.progress);
    try {
      const wasProvisioned = provisionedRecord(o.store, deviceId) !== undefined;
      const password = o.store.issueCredential(deviceId);
      const record = await installAgent(session, probe, {
        deviceId,
        brokerUrl,
        brokerPassword: password,
        signingPublicKeyPem: managerSigningPublicKey(o.dataDir),
        camera,
        bundle,
        progress: o.progress,
        ...(o.buildAddonOnDevice ? { buildAddonOnDevice: true } : {}),
      }).catch((err: unknown) => {
        // A password for an agent that never ran would only widen what the broker accepts.
        if (!wasProvisioned) o.store.revokeCredential(deviceId);
        throw err;
      });
      o.store.recordProvisioned(deviceId, JSON.stringify(record));
      return { record, probe, hostKey: session.hostKey };
    } finally {
      bundle.remove();
    }
  } finally {
    session.close();
  }
}

export function provisionedRecords(store: Store): InstallRecord[] {
  const records: InstallRecord[] = [];
  for (const row of store.provisioned()) {
    const parsed = InstallRecordSchema.safeParse(JSON.parse(row.installJson));
    if (parsed.success) records.push(parsed.data);
  }
  return records;
}

export function provisionedRecord(store: Store, deviceId: string): InstallRecord | undefined {
  return provisionedRecords(store).find((r) => r.deviceId === deviceId);
}

export interface RemoveDeviceOptions {
  store: Store;
  deviceId: string;
  auth: SshAuth;
  progress: (line: string) => void;
  signal?: AbortSignal;
}

/** Uninstalls the agent from the device and revokes its broker credential. The host key stays pinned. */
export async function removeDevice(o: RemoveDeviceOptions): Promise<InstallRecord> {
  const record = provisionedRecord(o.store, o.deviceId);
  if (!record)
    throw new ProvisioningError(
      `no device "${o.deviceId}" was provisioned by this manager; \`whittle devices\` lists those that were`,
    );
  const target: SshTarget = { kind: 'ssh', host: record.host, port: record.port, username: record.username };
  o.progress(`connecting to ${record.username}@${record.host}:${record.port}`);
  const session = await SshSession.connect({
    target,
    auth: o.auth,
    pins: o.store,
    // A device being removed was pinned when it was added: an unknown key is as suspect as a changed one.
    acceptHostKey: (host, port, key) =>
      Promise.reject(
        new ProvisioningError(
          `${host}:${port} has no pinned host key (presented ${key.keyType} ${key.fingerprint}); it was forgotten — add it again first`,
        ),
      ),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  try {
    o.progress(`removing the agent (${record.kind}) from ${record.host}`);
    await uninstallAgent(session, record);
  } finally {
    session.close();
  }
  o.store.revokeCredential(record.deviceId);
  o.store.removeProvisioned(record.deviceId);
  return record;
}
