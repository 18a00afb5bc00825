// A command's HTTP client of the running manager (electron/api/contract.ts), found through the connection
// file `whittle serve` writes. Every failure is a ManagerApiError with a sentence the user can act on.
import { WebSocket } from 'ws';
import type { z } from 'zod';

import { WhittleError } from '../../native/whittle-error.js';
import {
  CONTRACT_SCHEMAS,
  type DeploymentView,
  type DeployRequest,
  type DeviceProfileResponse,
  type LatencyTablesResponse,
  LiveMessageSchema,
  type MeasurePackagesRequest,
  type MeasurePackagesResponse,
  type MeasureRequest,
  type PackageView,
} from '../api/contract.js';
import {
  LIVE_PATH,
  routeCall,
  type RouteName,
  type RouteParams,
  type RouteResponse,
  TOKEN_SUBPROTOCOL_PREFIX,
} from '../api/routes.js';
import { type ManagerConnection, readConnectionFile } from '../core/connection-file.js';

/** The manager refused a request, or cannot be reached, or answered something this version cannot read.
 * `code` is the API's error code when it gave one. */
export class ManagerApiError extends WhittleError {
  override readonly name = 'ManagerApiError';
  constructor(
    message: string,
    readonly status: number | null,
    readonly code: string,
  ) {
    super(message);
  }
}

export class ManagerClient {
  constructor(readonly connection: ManagerConnection) {}

  /** The client of the manager running for this data directory (NoManagerError when there is none). */
  static forDataDir(dataDir: string): ManagerClient {
    return new ManagerClient(readConnectionFile(dataDir));
  }

  /** Adds a package; the manager validates it (422 with the reader's code when refused). */
  uploadPackage(bytes: Uint8Array): Promise<PackageView> {
    return this.call('addPackage', {}, bytes);
  }

  startDeployment(request: DeployRequest): Promise<DeploymentView> {
    return this.call('startDeployment', {}, JSON.stringify(request));
  }

  deployment(id: string): Promise<DeploymentView> {
    return this.call('deployment', { id });
  }

  /** Asks the device for its profile now (the manager stores it). */
  refreshProfile(id: string): Promise<DeviceProfileResponse> {
    return this.call('refreshProfile', { id });
  }

  latencyTables(id: string): Promise<LatencyTablesResponse> {
    return this.call('latencyTable', { id });
  }

  /** Starts a measurement of the device's latency table; follow it with latencyTables(). */
  measure(id: string, request: MeasureRequest): Promise<LatencyTablesResponse> {
    return this.call('measureLatencyTable', { id }, JSON.stringify(request));
  }

  /** Has the device time stored packages (uploaded first); resolves with its timings once it has. */
  measurePackages(id: string, request: MeasurePackagesRequest): Promise<MeasurePackagesResponse> {
    return this.call('measurePackages', { id }, JSON.stringify(request));
  }

  /** Opens /api/live and calls `onDeployment` with every deployment change; resolves once connected. The
   * feed carries each change as it happens, so a follower sees every phase, even short ones. */
  watchDeployments(onDeployment: (view: DeploymentView) => void): Promise<{ close(): void }> {
    const { url, token } = this.connection;
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${LIVE_PATH}`, [TOKEN_SUBPROTOCOL_PREFIX + token]);
    ws.on('message', (data: Buffer) => {
      let json: unknown;
      try {
        json = JSON.parse(data.toString('utf8'));
      } catch {
        return;
      }
      // Device messages are not ours to follow; a message that fails to decode is dropped (the follower
      // also polls, so nothing is lost for good).
      const parsed = LiveMessageSchema.safeParse(json);
      if (parsed.success && parsed.data.type === 'deployment') onDeployment(parsed.data.deployment);
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve({ close: () => ws.close(1000) }));
      ws.once('error', (err) =>
        reject(
          new ManagerApiError(`cannot follow the manager's live feed: ${err.message}`, null, 'no-live-feed'),
        ),
      );
    });
  }

  /** Calls a route of the table and decodes its answer with the route's schema. */
  private async call<N extends RouteName>(
    name: N,
    params: RouteParams<N>,
    body?: string | Uint8Array,
  ): Promise<RouteResponse<N>> {
    const { url, token } = this.connection;
    const init = routeCall(name, params, body);
    const { path } = init;
    const send = (): Promise<Response> =>
      fetch(`${url}${path}`, {
        method: init.method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(init.contentType ? { 'content-type': init.contentType } : {}),
        },
        ...(init.body !== undefined ? { body: init.body } : {}),
      });
    const causeOf = (err: unknown): string =>
      (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    let res: Response;
    try {
      // A kept-alive connection the manager closed while this command was busy (its idle time-out) fails
      // the write (EPIPE): the request never arrived, so it is sent once more on a new connection.
      res = await send().catch((err: unknown) => {
        if (causeOf(err) === 'EPIPE') return send();
        throw err;
      });
    } catch (err) {
      const cause = causeOf(err);
      throw new ManagerApiError(
        `the manager at ${url} does not answer (${cause}); it stopped without removing its connection file? Start it with whittle serve`,
        null,
        'manager-unreachable',
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ManagerApiError(
        `${init.method} ${path}: HTTP ${res.status} with a body that is not JSON`,
        res.status,
        'bad-answer',
      );
    }
    if (!res.ok) {
      const refusal = CONTRACT_SCHEMAS.ApiError.safeParse(json);
      throw new ManagerApiError(
        refusal.success ? refusal.data.error : `${init.method} ${path}: HTTP ${res.status}`,
        res.status,
        (refusal.success ? refusal.data.code : undefined) ?? `http-${res.status}`,
      );
    }
    return decode(CONTRACT_SCHEMAS[init.response] as z.ZodType, path, json) as RouteResponse<N>;
  }
}

function decode(schema: z.ZodType, path: string, json: unknown): unknown {
  const parsed = schema.safeParse(json);
  if (!parsed.success)
    throw new ManagerApiError(
      `${path}: unexpected answer from the manager (${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? 'invalid'}); is it another Whittle version?`,
      null,
      'bad-answer',
    );
  return parsed.data;
}
