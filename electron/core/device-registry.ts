// The manager's view of every device: what it announced, whether it is online, its newest stats.
// Fed by the broker, persisted in the store, watched by the API.
import { EventEmitter } from 'node:events';

import {
  type DeployReport,
  DeployReportSchema,
  DEVICE_TOPIC_PATTERN,
  type SnapshotMessage,
  SnapshotMessageSchema,
  type StatsMessage,
  StatsMessageSchema,
  StatusMessageSchema,
} from '../../agent/protocol/messages.js';
import type { DeviceView } from '../api/contract.js';
import type { Store } from './store.js';

export class DeviceRegistry extends EventEmitter<{
  change: [DeviceView];
  snapshot: [string, SnapshotMessage];
  deploy: [string, DeployReport];
}> {
  private readonly devices = new Map<string, DeviceView>();
  /** The newest camera snapshot of each device (memory only: it is replaced every few seconds). */
  private readonly snapshots = new Map<string, SnapshotMessage>();
  /** Each device's deployment reports, newest last (memory only, the last 50 per device). */
  private readonly deployReports = new Map<string, DeployReport[]>();
  /** Invalid messages received, per device; exposed for diagnosis. */
  readonly rejected = new Map<string, number>();
  /** Stats records received again (a re-send after a lost acknowledgement), per device. */
  readonly duplicates = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly log: (line: string) => void,
  ) {
    super();
    for (const d of store.devices()) {
      this.devices.set(d.id, { id: d.id, online: false, info: d.info, lastSeen: d.lastSeen, stats: null });
    }
  }

  list(): DeviceView[] {
    return [...this.devices.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  get(id: string): DeviceView | undefined {
    return this.devices.get(id);
  }

  snapshot(id: string): SnapshotMessage | undefined {
    return this.snapshots.get(id);
  }

  deployments(id: string): readonly DeployReport[] {
    return this.deployReports.get(id) ?? [];
  }

  /** A publish on a device topic; the broker's ACL already tied the topic to the sender. */
  ingest(topic: string, payload: Buffer): void {
    const match = DEVICE_TOPIC_PATTERN.exec(topic);
    if (!match) return;
    const id = match[1] ?? '';
    const leaf = match[2];
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      this.reject(id, `${leaf} message is not JSON`);
      return;
    }
    const now = Date.now();
    if (leaf === 'status') {
      const parsed = StatusMessageSchema.safeParse(json);
      if (!parsed.success)
        return this.reject(id, `status message: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      const status = parsed.data;
      if (status.info && status.info.id !== id)
        return this.reject(id, `status names device ${status.info.id}`);
      const prev = this.devices.get(id);
      const view: DeviceView = {
        id,
        online: status.online,
        info: status.info ?? prev?.info ?? null,
        lastSeen: now,
        stats: status.online ? (prev?.stats ?? null) : null,
      };
      this.store.upsertDevice(id, status.info ?? null, now);
      this.update(view);
    } else if (leaf === 'deploy') {
      const parsed = DeployReportSchema.safeParse(json);
      if (!parsed.success)
        return this.reject(id, `deploy report: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      const list = this.deployReports.get(id) ?? [];
      list.push(parsed.data);
      if (list.length > 50) list.shift();
      this.deployReports.set(id, list);
      if (parsed.data.code)
        this.log(
          `device ${id}: deployment ${parsed.data.deploymentId} ${parsed.data.phase}: ${parsed.data.reason ?? parsed.data.code}`,
        );
      this.emit('deploy', id, parsed.data);
    } else if (leaf === 'snapshot') {
      const parsed = SnapshotMessageSchema.safeParse(json);
      if (!parsed.success)
        return this.reject(id, `snapshot message: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      this.snapshots.set(id, parsed.data);
      this.emit('snapshot', id, parsed.data);
    } else {
      const parsed = StatsMessageSchema.safeParse(json);
      if (!parsed.success)
        return this.reject(id, `stats message: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      this.applyStats(id, parsed.data, now);
    }
  }

  /** The broker saw the device's last connection close. */
  markOffline(id: string): void {
    const prev = this.devices.get(id);
    if (!prev || !prev.online) return;
    this.update({ ...prev, online: false, stats: null });
  }

  /** Stores the record once per (device, epoch, seq); a re-sent one changes nothing. The live view shows
   * the newest record: a backlog drained after a reconnection passes through it in order. */
  private applyStats(id: string, stats: StatsMessage, now: number): void {
    const epoch = stats.epoch ?? '';
    if (!this.store.insertStats(id, epoch, stats.seq, stats.ts, JSON.stringify(stats), now)) {
      this.duplicates.set(id, (this.duplicates.get(id) ?? 0) + 1);
      return;
    }
    const prev = this.devices.get(id);
    const shown = prev?.stats;
    const older = shown != null && (shown.epoch ?? '') === epoch && shown.seq > stats.seq;
    this.update({ id, online: true, info: prev?.info ?? null, lastSeen: now, stats: older ? shown : stats });
  }

  private update(view: DeviceView): void {
    this.devices.set(view.id, view);
    this.emit('change', view);
  }

  private reject(id: string, why: string): void {
    const n = (this.rejected.get(id) ?? 0) + 1;
    this.rejected.set(id, n);
    if (n <= 5 || n % 100 === 0) this.log(`device ${id}: rejected ${why} (${n} so far)`);
  }
}
