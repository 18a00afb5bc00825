// A command's HTTP client of the running manager (electron/api/contract.ts), found through the connection
// file `whittle serve` writes. Every failure is a ManagerApiError with a sentence the user can act on.
import { WebSocket } from 'ws';
import { z } from 'zod';

import { DEPLOY_ERROR_CODES, DEPLOY_PHASES } from '../../agent/protocol/messages.js';
import type { DeploymentView, DeployRequest, PackageView } from '../api/contract.js';
import { LIVE_PATH, TOKEN_SUBPROTOCOL_PREFIX } from '../api/contract.js';
import { type ManagerConnection, readConnectionFile } from '../core/connection-file.js';

// The answers a command relies on, decoded at this edge (a manager of another version may differ).
const PackageViewSchema = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  modelId: z.string(),
  modelVersion: z.string(),
  name: z.string().nullable(),
  bytes: z.number().int().nonnegative(),
  cpuFamily: z.string(),
  addedAt: z.number(),
}) satisfies z.ZodType<PackageView>;

const DeploymentViewSchema = z.object({
  id: z.string(),
  createdAt: z.number(),
  package: z.object({ sha256: z.string(), modelId: z.string(), modelVersion: z.string() }),
  devices: z.array(
    z.object({
      device: z.string(),
      phase: z.enum(['pending', 'superseded', ...DEPLOY_PHASES]),
      code: z.enum(DEPLOY_ERROR_CODES).nullable(),
      reason: z.string().nullable(),
      serving: z.string().nullable(),
      updatedAt: z.number(),
      finished: z.boolean(),
    }),
  ),
  finished: z.boolean(),
  succeeded: z.boolean(),
}) satisfies z.ZodType<DeploymentView>;

/** The manager refused a request, or cannot be reached. `code` is the API's error code when it gave one. */
export class ManagerApiError extends Error {
  override readonly name = 'ManagerApiError';
  constructor(
    message: string,
    readonly status: number | null = null,
    readonly code?: string,
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

  /** POST /api/packages: the manager validates the package (422 with the reader's code when refused). */
  async uploadPackage(bytes: Uint8Array): Promise<PackageView> {
    const path = '/api/packages';
    return decode(
      PackageViewSchema,
      path,
      await this.request('POST', path, bytes, 'application/octet-stream'),
    );
  }

  async startDeployment(request: DeployRequest): Promise<DeploymentView> {
    const path = '/api/deployments';
    const json = await this.request('POST', path, JSON.stringify(request), 'application/json');
    return decode(DeploymentViewSchema, path, json);
  }

  async deployment(id: string): Promise<DeploymentView> {
    const path = `/api/deployments/${encodeURIComponent(id)}`;
    return decode(DeploymentViewSchema, path, await this.request('GET', path));
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
      // Device messages are not ours to follow; a deployment message that fails to decode is dropped (the
      // follower also polls, so nothing is lost for good).
      if ((json as { type?: unknown }).type !== 'deployment') return;
      const parsed = DeploymentViewSchema.safeParse((json as { deployment?: unknown }).deployment);
      if (parsed.success) onDeployment(parsed.data);
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve({ close: () => ws.close(1000) }));
      ws.once('error', (err) =>
        reject(new ManagerApiError(`cannot follow the manager's live feed: ${err.message}`)),
      );
    });
  }

  private async request(
    method: string,
    path: string,
    body?: string | Uint8Array,
    contentType?: string,
  ): Promise<unknown> {
    const { url, token } = this.connection;
    let res: Response;
    try {
      res = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(contentType ? { 'content-type': contentType } : {}),
        },
        ...(body !== undefined ? { body } : {}),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new ManagerApiError(
        `the manager at ${url} does not answer (${cause}); it stopped without removing its connection file? Start it with whittle serve`,
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ManagerApiError(
        `${method} ${path}: HTTP ${res.status} with a body that is not JSON`,
        res.status,
      );
    }
    if (!res.ok) {
      const e = json as { error?: unknown; code?: unknown };
      throw new ManagerApiError(
        typeof e.error === 'string' ? e.error : `${method} ${path}: HTTP ${res.status}`,
        res.status,
        typeof e.code === 'string' ? e.code : undefined,
      );
    }
    return json;
  }
}

function decode<T>(schema: z.ZodType<T>, path: string, json: unknown): T {
  const parsed = schema.safeParse(json);
  if (!parsed.success)
    throw new ManagerApiError(
      `${path}: unexpected answer from the manager (${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? 'invalid'}); is it another Whittle version?`,
    );
  return parsed.data;
}
