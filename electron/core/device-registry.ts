// The manager's view of every device: what it announced, whether it is online, its newest stats.
// Fed by the broker, persisted in the store, watched by the API.
import { EventEmitter } from 'node:events';

import {
  type DeployReport,
  DeployReportSchema,
  DEVICE_TOPIC_PATTERN,
  type ResponseMessage,
  ResponseMessageSchema,
  type SnapshotMessage,
  SnapshotMessageSchema,
  type StatsMessage,
  StatsMessageSchema,
  StatusMessageSchema,
} from '../../agent/protocol/messages.js';
import type { DeviceAccuracy, DeviceView } from '../api/contract.js';
import type { Store } from './store.js';

/** The windowed accuracy covers the stats records of this many seconds (agent clock), ending at the newest:
 * about 900 frames at 30 fps, enough for a figure that moves by tenths, not by whole points. */
export const ACCURACY_WINDOW_SECONDS = 30;

/** One stats record's labelled frames, at its agent time. */
interface AccuracyRecord {
  ts: number;
  frames: number;
  correct: number;
}

export class DeviceRegistry extends EventEmitter<{
  change: [DeviceView];
  snapshot: [string, SnapshotMessage];
  deploy: [string, DeployReport];
  /** A device's answer to a request of the manager's (electron/core/device-profiles.ts). */
  response: [string, ResponseMessage];
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
  /** Each device's labelled records of the accuracy window, in arrival order (memory; rebuilt from the
   * store's records after a manager restart). */
  private readonly accuracyWindows = new Map<string, AccuracyRecord[]>();

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
        ...(status.online && prev?.accuracy ? { accuracy: prev.accuracy } : {}),
        ...(status.online && status.paused ? { paused: status.paused } : {}),
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
    } else if (leaf === 'response') {
      const parsed = ResponseMessageSchema.safeParse(json);
      if (!parsed.success)
        return this.reject(id, `response: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      this.emit('response', id, parsed.data);
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
    // Accuracy is shown only while the device runs (the running count stays in the store).
    this.update({ id, online: false, info: prev.info, lastSeen: prev.lastSeen, stats: null });
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
    const accuracy = this.countAccuracy(id, prev, stats, now);
    this.update({
      id,
      online: true,
      info: prev?.info ?? null,
      lastSeen: now,
      stats: older ? shown : stats,
      ...(accuracy ? { accuracy } : {}),
      ...(prev?.paused ? { paused: prev.paused } : {}),
    });
  }

  /** Adds a new record's labelled frames to the device's window and running count; undefined when the
   * record counted none (an unlabelled camera shows no accuracy). The running count belongs to one model
   * on one camera: another one starts it afresh. */
  private countAccuracy(
    id: string,
    prev: DeviceView | undefined,
    stats: StatsMessage,
    now: number,
  ): DeviceAccuracy | undefined {
    if (!stats.accuracy || stats.accuracy.frames === 0) {
      this.accuracyWindows.delete(id);
      return undefined;
    }
    const source = prev?.info ? `${prev.info.model.id}\n${prev.info.camera}` : '';
    const running = this.store.addAccuracy(id, source, stats.accuracy.frames, stats.accuracy.correct, now);
    const horizon = ACCURACY_WINDOW_SECONDS * 1000;
    let window = this.accuracyWindows.get(id);
    if (window === undefined) {
      // First record since the manager started: the window's earlier records are in the store (this one too).
      window = [];
      for (const row of this.store.stats(id, stats.ts - horizon)) {
        const parsed = StatsMessageSchema.safeParse(JSON.parse(row.json));
        if (parsed.success && parsed.data.accuracy)
          window.push({ ts: parsed.data.ts, ...parsed.data.accuracy });
      }
      this.accuracyWindows.set(id, window);
    } else window.push({ ts: stats.ts, ...stats.accuracy });
    const newest = Math.max(...window.map((r) => r.ts));
    const kept = window.filter((r) => r.ts > newest - horizon);
    this.accuracyWindows.set(id, kept);
    return {
      window: {
        frames: kept.reduce((n, r) => n + r.frames, 0),
        correct: kept.reduce((n, r) => n + r.correct, 0),
        seconds: ACCURACY_WINDOW_SECONDS,
      },
      running: { frames: running.frames, correct: running.correct, since: running.since },
    };
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
