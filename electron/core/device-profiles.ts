// Device profiles and latency tables on the manager's side (issue 16): asked of the device over the agent
// link (<prefix>/request, answered on <prefix>/response), checked at this edge with the agent's own
// parsers, and kept in the store. A latency table streams in entry by entry and is stored as it grows, so a
// device that drops mid-measurement leaves a table marked incomplete; the next measurement sends it back
// as `resume` and the device measures only what is missing. Tables measured with another kernel build
// than the device's current profile stay stored but are never served as current.
import { randomBytes } from 'node:crypto';

import {
  type LatencyEntry,
  LatencyEntrySchema,
  type LatencyTable,
  LatencyTableError,
  parseLatencyTable,
} from '../../agent/profile/latency-table.js';
import { type DeviceProfile, DeviceProfileError, parseDeviceProfile } from '../../agent/profile/profile.js';
import {
  deviceTopic,
  type MeasuredPackage,
  PROTOCOL_VERSION,
  type RequestMessage,
  type ResponseMessage,
} from '../../agent/protocol/messages.js';
import { WhittleError } from '../../native/whittle-error.js';
import type {
  DeviceProfileResponse,
  LatencyTablesResponse,
  MeasurementView,
  MeasurePackagesRequest,
  MeasurePackagesResponse,
  MeasureRequest,
} from '../api/contract.js';
import type { Broker } from './broker.js';
import type { DeviceRegistry } from './device-registry.js';
import type { Store } from './store.js';

export const DEVICE_REQUEST_CODES = {
  'unknown-device': 404,
  'no-profile': 404,
  'device-offline': 409,
  'device-busy': 409,
  'no-answer': 504,
  'bad-answer': 502,
  'refused-by-device': 422,
} as const;
export type DeviceRequestCode = keyof typeof DEVICE_REQUEST_CODES;

/** A request to a device that could not be made or was not answered; `status` is its HTTP status. */
export class DeviceRequestError extends WhittleError {
  override readonly name = 'DeviceRequestError';
  constructor(
    message: string,
    readonly code: DeviceRequestCode,
  ) {
    super(message);
  }
  get status(): number {
    return DEVICE_REQUEST_CODES[this.code];
  }
}

/** What agents before requests existed do: nothing. The message says so. */
function noAnswer(device: string, what: string, seconds: number): DeviceRequestError {
  return new DeviceRequestError(
    `device ${device} did not answer the ${what} request within ${seconds} s; its agent may predate ` +
      'profile requests (update it with whittle device add) or be busy',
    'no-answer',
  );
}

/** The device's stored profile; undefined when it has none (or the stored one no longer parses). */
export function storedProfile(store: Store, device: string): DeviceProfileResponse | undefined {
  const row = store.profile(device);
  if (!row) return undefined;
  try {
    return { device, receivedAt: row.receivedAt, profile: parseDeviceProfile(JSON.parse(row.json)) };
  } catch {
    return undefined;
  }
}

/** The device's stored tables: the current one (of its profile's kernel build) and the stale ones. */
export function storedLatencyTables(
  store: Store,
  device: string,
  measurement: MeasurementView | null = null,
): LatencyTablesResponse {
  const buildHash = storedProfile(store, device)?.profile.kernels.build_hash ?? null;
  let current: LatencyTable | null = null;
  const stale: LatencyTablesResponse['stale'] = [];
  for (const row of store.latencyTables(device)) {
    let table: LatencyTable;
    try {
      table = parseLatencyTable(JSON.parse(row.json));
    } catch {
      continue;
    }
    if (buildHash !== null && table.build_hash === buildHash && current === null) current = table;
    else
      stale.push({
        build_hash: table.build_hash,
        grid_id: table.grid_id,
        threads: table.threads,
        complete: table.complete,
        entries: table.entries.length,
        measured_at: table.measured_at,
      });
  }
  return { device, buildHash, current, stale, measurement };
}

interface Pending {
  device: string;
  onMessage: (message: ResponseMessage) => void;
  onOffline: () => void;
}

export interface DeviceProfilesOptions {
  store: Store;
  registry: DeviceRegistry;
  broker: Pick<Broker, 'publish'>;
  log: (line: string) => void;
  /** How long a device has to answer a profile request, and to start a measurement (default 15 s). */
  answerMs?: number;
  /** Longest silence between two entries of a measurement before it is given up (default 180 s). */
  entryMs?: number;
  /** A stored package as a measure-packages request names it for the device (Deployments.measuredPackage);
   * throws for an unknown or altered package. */
  measuredPackage?: (sha256: string, device: string) => MeasuredPackage;
}

/** Frames each package is timed on by default (POST /api/devices/:id/measure-packages). */
export const DEFAULT_PACKAGE_RUNS = 100;

export class DeviceProfiles {
  private readonly pending = new Map<string, Pending>();
  private readonly measurements = new Map<string, MeasurementView>();
  /** Devices seen online since they last went offline: a profile is asked once per connection. */
  private readonly connected = new Set<string>();
  private readonly answerMs: number;
  private readonly entryMs: number;

  constructor(private readonly options: DeviceProfilesOptions) {
    this.answerMs = options.answerMs ?? 15_000;
    this.entryMs = options.entryMs ?? 180_000;
    options.registry.on('response', (device, message) => {
      const pending = this.pending.get(message.id);
      if (pending?.device === device) pending.onMessage(message);
    });
    options.registry.on('change', (view) => {
      if (view.online) {
        // A device that comes online is asked for its profile; an old agent's silence is only logged.
        if (this.connected.has(view.id)) return;
        this.connected.add(view.id);
        this.requestProfile(view.id).catch((err: unknown) =>
          options.log(`device ${view.id}: profile: ${(err as Error).message}`),
        );
        return;
      }
      this.connected.delete(view.id);
      for (const p of [...this.pending.values()]) if (p.device === view.id) p.onOffline();
    });
  }

  profile(device: string): DeviceProfileResponse {
    const stored = storedProfile(this.options.store, device);
    if (stored) return stored;
    if (!this.options.registry.get(device))
      throw new DeviceRequestError(`unknown device ${device}`, 'unknown-device');
    throw new DeviceRequestError(
      `device ${device} has sent no profile yet; ask for one with whittle device profile ${device} --refresh`,
      'no-profile',
    );
  }

  latencyTables(device: string): LatencyTablesResponse {
    if (!this.options.registry.get(device))
      throw new DeviceRequestError(`unknown device ${device}`, 'unknown-device');
    return storedLatencyTables(this.options.store, device, this.measurements.get(device) ?? null);
  }

  private online(device: string): void {
    const view = this.options.registry.get(device);
    if (!view) throw new DeviceRequestError(`unknown device ${device}`, 'unknown-device');
    if (!view.online) throw new DeviceRequestError(`device ${device} is offline`, 'device-offline');
  }

  private send(device: string, request: RequestMessage, pending: Omit<Pending, 'device'>): void {
    this.pending.set(request.id, { device, ...pending });
    this.options.broker
      .publish(deviceTopic(device, 'request'), JSON.stringify(request), false)
      .catch((err: unknown) =>
        this.options.log(`device ${device}: cannot send a request: ${(err as Error).message}`),
      );
  }

  /** Asks the device for its profile, stores and returns it. */
  requestProfile(device: string): Promise<DeviceProfileResponse> {
    this.online(device);
    const id = randomBytes(9).toString('base64url');
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, value?: DeviceProfileResponse): void => {
        clearTimeout(timer);
        this.pending.delete(id);
        if (err) reject(err);
        else resolve(value!);
      };
      const timer = setTimeout(() => done(noAnswer(device, 'profile', this.answerMs / 1000)), this.answerMs);
      this.send(
        device,
        { v: PROTOCOL_VERSION, id, kind: 'profile' },
        {
          onOffline: () =>
            done(new DeviceRequestError(`device ${device} went offline before answering`, 'device-offline')),
          onMessage: (message) => {
            if (message.kind === 'error')
              return done(
                new DeviceRequestError(`device ${device}: ${message.message}`, 'refused-by-device'),
              );
            if (message.kind !== 'profile') return;
            try {
              done(null, this.saveProfile(device, message.profile));
            } catch (err) {
              done(err as Error);
            }
          },
        },
      );
    });
  }

  private saveProfile(device: string, value: unknown): DeviceProfileResponse {
    let profile: DeviceProfile;
    try {
      profile = parseDeviceProfile(value);
    } catch (err) {
      if (!(err instanceof DeviceProfileError)) throw err;
      throw new DeviceRequestError(
        `device ${device} sent a profile this manager refuses: ${err.message}`,
        'bad-answer',
      );
    }
    const receivedAt = Date.now();
    this.options.store.saveProfile(device, JSON.stringify(profile), profile.kernels.build_hash, receivedAt);
    return { device, receivedAt, profile };
  }

  /** Asks the device to measure its latency table (resuming the stored partial one of its current build);
   * returns at once, the measurement's progress shows in latencyTables(). The profile is asked first when
   * none is stored, since a table is stored under the profile's build. */
  async measure(device: string, request: MeasureRequest): Promise<LatencyTablesResponse> {
    this.online(device);
    const running = this.measurements.get(device);
    if (running?.state === 'running')
      throw new DeviceRequestError(
        `device ${device} is already measuring (request ${running.request})`,
        'device-busy',
      );
    const profile = storedProfile(this.options.store, device) ?? (await this.requestProfile(device));
    const buildHash = profile.profile.kernels.build_hash;
    if (buildHash === null)
      throw new DeviceRequestError(
        `device ${device} runs without the native addon (its profile has no kernel build): there are no kernels to time`,
        'refused-by-device',
      );
    const resume = this.options.store
      .latencyTables(device)
      .find(
        (t) =>
          !t.complete &&
          t.buildHash === buildHash &&
          (request.threads === undefined || t.threads === request.threads),
      );
    const id = randomBytes(9).toString('base64url');
    const view: MeasurementView = {
      request: id,
      state: 'running',
      done: 0,
      total: 0,
      startedAt: Date.now(),
      error: null,
    };
    this.measurements.set(device, view);
    let table: LatencyTable | null = null;
    let timer = setTimeout(
      () => stop('failed', noAnswer(device, 'latency-table', this.answerMs / 1000).message),
      this.answerMs,
    );
    const stop = (state: MeasurementView['state'], error: string | null): void => {
      clearTimeout(timer);
      this.pending.delete(id);
      view.state = state;
      view.error = error;
      this.options.log(`device ${device}: latency table ${state}${error ? `: ${error}` : ''}`);
    };
    const store = (t: LatencyTable): void =>
      this.options.store.saveLatencyTable(
        device,
        {
          buildHash: t.build_hash,
          gridId: t.grid_id,
          threads: t.threads,
          complete: t.complete,
          json: JSON.stringify(t),
        },
        Date.now(),
      );
    const onMessage = (message: ResponseMessage): void => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          stop(
            'failed',
            `device ${device} sent no entry for ${this.entryMs / 1000} s; the stored table stays incomplete`,
          ),
        this.entryMs,
      );
      try {
        if (message.kind === 'error') return stop('failed', `device ${device}: ${message.message}`);
        if (message.kind === 'latency-start') {
          table = parseLatencyTable(message.table, { buildHash });
          view.total = message.total;
          view.done = table.entries.length;
          store(table);
        } else if (message.kind === 'latency-entry' && table) {
          const entry: LatencyEntry = LatencyEntrySchema.parse(message.entry);
          if (!table.entries.some((e) => e.key === entry.key)) table.entries.push(entry);
          table.measured_at = Date.now();
          view.done = message.done;
          view.total = message.total;
          store(table);
        } else if (message.kind === 'latency-table') {
          table = parseLatencyTable(message.table, { buildHash });
          view.done = table.entries.length;
          store(table);
          stop(
            table.complete ? 'complete' : 'stopped',
            table.complete ? null : `device ${device} stopped the measurement`,
          );
        }
      } catch (err) {
        const why =
          err instanceof LatencyTableError ? err.message : `malformed answer: ${(err as Error).message}`;
        stop('failed', `device ${device} sent a latency table this manager refuses: ${why}`);
      }
    };
    this.send(
      device,
      {
        v: PROTOCOL_VERSION,
        id,
        kind: 'latency-table',
        grid: request.grid,
        ...(request.limit !== undefined ? { limit: request.limit } : {}),
        ...(request.threads !== undefined ? { threads: request.threads } : {}),
        ...(resume ? { resume: JSON.parse(resume.json) as unknown } : {}),
      },
      {
        onMessage,
        onOffline: () =>
          stop(
            'failed',
            `device ${device} went offline during the measurement; ${view.done} of ${view.total} entries are ` +
              'stored (incomplete); measure again once it is back to resume',
          ),
      },
    );
    return storedLatencyTables(this.options.store, device, view);
  }

  /** Asks the device to time stored packages (downloaded and verified as a deployment's, its camera loop
   * paused meanwhile) and resolves with its timings. A device that does not accept the request within
   * answerMs (an agent older than package measurements), that then sends nothing for entryMs, that goes
   * offline or refuses a package rejects with a DeviceRequestError that says which. */
  measurePackages(device: string, request: MeasurePackagesRequest): Promise<MeasurePackagesResponse> {
    this.online(device);
    const running = this.measurements.get(device);
    if (running?.state === 'running')
      throw new DeviceRequestError(
        `device ${device} is measuring its latency table (request ${running.request})`,
        'device-busy',
      );
    const { measuredPackage } = this.options;
    if (measuredPackage === undefined)
      throw new DeviceRequestError('this manager serves no packages to measure', 'refused-by-device');
    const packages = request.packages.map((sha) => measuredPackage(sha, device));
    const id = randomBytes(9).toString('base64url');
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout;
      const done = (err: Error | null, value?: MeasurePackagesResponse): void => {
        clearTimeout(timer);
        this.pending.delete(id);
        if (err) reject(err);
        else resolve(value!);
      };
      const wait = (ms: number, error: () => DeviceRequestError): void => {
        clearTimeout(timer);
        timer = setTimeout(() => done(error()), ms);
      };
      wait(this.answerMs, () => noAnswer(device, 'package measurement', this.answerMs / 1000));
      this.send(
        device,
        {
          v: PROTOCOL_VERSION,
          id,
          kind: 'measure-packages',
          packages,
          runs: request.runs ?? DEFAULT_PACKAGE_RUNS,
        },
        {
          onOffline: () =>
            done(
              new DeviceRequestError(
                `device ${device} went offline during the package measurement; nothing was measured`,
                'device-offline',
              ),
            ),
          onMessage: (message) => {
            if (message.kind === 'error')
              return done(
                new DeviceRequestError(
                  `device ${device} refused the package measurement (${message.code}): ${message.message}`,
                  message.code === 'busy' ? 'device-busy' : 'refused-by-device',
                ),
              );
            if (message.kind === 'packages-start')
              return wait(
                this.entryMs,
                () =>
                  new DeviceRequestError(
                    `device ${device} accepted the package measurement but sent no result within ${this.entryMs / 1000} s`,
                    'no-answer',
                  ),
              );
            if (message.kind !== 'packages-measured') return;
            const order = message.timings.map((t) => t.sha256).join();
            if (order !== request.packages.join())
              return done(
                new DeviceRequestError(
                  `device ${device} timed other packages than it was asked to`,
                  'bad-answer',
                ),
              );
            done(null, {
              device,
              timings: message.timings,
              isa: message.isa,
              threads: message.threads,
              build_hash: message.build_hash,
              receivedAt: Date.now(),
            });
          },
        },
      );
    });
  }

  close(): void {
    for (const p of [...this.pending.values()]) p.onOffline();
  }
}
