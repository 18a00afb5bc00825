// The manager's HTTP + WebSocket API, bound to loopback, and the renderer's static files.
// Every /api route needs the per-launch token (see ../api/contract.ts); the Host header must name
// this loopback address, so a web page elsewhere cannot reach the API through DNS rebinding.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

import { WebSocket, WebSocketServer } from 'ws';

import { PackageError } from '../../agent/package/errors.js';
import { WhittleError } from '../../native/whittle-error.js';
import {
  type ApiError,
  CONTRACT_SCHEMAS,
  type DeploymentView,
  type DeviceView,
  type LiveMessage,
} from '../api/contract.js';
import {
  API_PREFIX,
  LIVE_PATH,
  matchRoute,
  type RequestSpec,
  type RouteName,
  type RouteParams,
  type RouteRequest,
  type RouteResponse,
  ROUTES,
  TOKEN_SUBPROTOCOL_PREFIX,
} from '../api/routes.js';
import { DeploymentError, type Deployments } from './deployments.js';
import { type DeviceProfiles, DeviceRequestError } from './device-profiles.js';
import type { DeviceRegistry } from './device-registry.js';
import { listen } from './ports.js';

export interface HttpApiOptions {
  host: string;
  port: number;
  registry: DeviceRegistry;
  deployments: Deployments;
  profiles: DeviceProfiles;
  /** Directory of the built renderer (index.html, app.js, styles.css). */
  rendererDir: string;
  version: string;
  /** A fixed token (tests); by default a new random one per launch. */
  token?: string;
}

export interface HttpApi {
  port: number;
  token: string;
  /** http://127.0.0.1:PORT/#token=... — the address to open the UI at. */
  uiUrl: string;
  close(): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** A request the API refuses with this status, message and code. */
class HttpError extends WhittleError {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** The request body, refused with 413 past `limit` bytes (before reading it when Content-Length says so). */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit)
    throw new HttpError(413, `the body is ${declared} bytes; at most ${limit} are accepted`, 'too-large');
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > limit) {
      throw new HttpError(413, `the body exceeds ${limit} bytes`, 'too-large');
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

function requireContentType(req: IncomingMessage, type: string): void {
  const got = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (got !== type)
    throw new HttpError(415, `expected Content-Type ${type}, got "${got || 'none'}"`, 'bad-content-type');
}

/** A route's request body, decoded at this edge as the route table says: 415 for another content type,
 * 413 past the route's limit, 400 for JSON that does not parse or does not fit its schema. */
async function readRequest(req: IncomingMessage, spec: RequestSpec): Promise<unknown> {
  if (spec.kind === 'none') return undefined;
  if (spec.kind === 'bytes') {
    requireContentType(req, spec.contentType);
    return readBody(req, spec.maxBytes);
  }
  requireContentType(req, 'application/json');
  const text = (await readBody(req, spec.maxBytes)).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `the body is not JSON: ${(err as Error).message}`, 'bad-json');
  }
  const parsed = CONTRACT_SCHEMAS[spec.body].safeParse(json);
  if (!parsed.success)
    throw new HttpError(
      400,
      `invalid ${spec.what}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`,
      'bad-request',
    );
  return parsed.data;
}

/** A success answer: its status (200, or 201 for something created) and body. */
interface Answer<N extends RouteName> {
  status: number;
  body: RouteResponse<N>;
}

/** One handler per route of the table; a route without one does not compile. Handlers refuse by
 * throwing a WhittleError (see `refusalStatus`). */
type RouteHandlers = {
  [N in RouteName]: (params: RouteParams<N>, body: RouteRequest<N>) => Answer<N> | Promise<Answer<N>>;
};

function ok<N extends RouteName>(body: RouteResponse<N>): Answer<N> {
  return { status: 200, body };
}

function routeHandlers({ registry, deployments, profiles, version }: HttpApiOptions): RouteHandlers {
  return {
    health: () => ok({ ok: true, version }),
    devices: () => ok({ devices: registry.list() }),
    snapshot: ({ id }) => {
      if (!registry.get(id)) throw new HttpError(404, `unknown device ${id}`, 'unknown-device');
      return ok({ device: id, snapshot: registry.snapshot(id) ?? null });
    },
    deviceProfile: ({ id }) => ok(profiles.profile(id)),
    refreshProfile: async ({ id }) => ok(await profiles.requestProfile(id)),
    latencyTable: ({ id }) => ok(profiles.latencyTables(id)),
    measureLatencyTable: async ({ id }, request) => ({
      status: 202,
      body: await profiles.measure(id, request),
    }),
    measurePackages: async ({ id }, request) => ok(await profiles.measurePackages(id, request)),
    packages: () => ok({ packages: deployments.packages() }),
    addPackage: (_, bytes) => {
      const { pkg, added } = deployments.addPackage(
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      );
      return { status: added ? 201 : 200, body: pkg };
    },
    deployments: () => ok({ deployments: deployments.list() }),
    startDeployment: async (_, request) => ({ status: 201, body: await deployments.deploy(request) }),
    deployment: ({ id }) => {
      const view = deployments.get(id);
      if (!view) throw new HttpError(404, `no deployment ${id}`, 'unknown-deployment');
      return ok(view);
    },
    deploymentEvents: ({ id }) => {
      const events = deployments.events(id);
      if (!events) throw new HttpError(404, `no deployment ${id}`, 'unknown-deployment');
      return ok({ deployment: id, events });
    },
  };
}

/** The status of a typed refusal: HttpError carries its own, a package the reader refuses is 422, and so
 * is a refused deployment, but for a package the manager does not know (404). Null for anything else,
 * which is a bug of ours (500). */
function refusalStatus(err: unknown): number | null {
  if (err instanceof HttpError || err instanceof DeviceRequestError) return err.status;
  if (err instanceof PackageError) return 422;
  if (err instanceof DeploymentError) return err.code === 'unknown-package' ? 404 : 422;
  return null;
}

export function contentSecurityPolicy(port: number): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(status === 401 ? { 'www-authenticate': 'Bearer realm="whittle"' } : {}),
  });
  res.end(text);
}

/** A file of the built renderer, under the page's Content-Security-Policy. */
async function serveStatic(
  rendererDir: string,
  port: number,
  pathname: string,
  res: ServerResponse,
): Promise<void> {
  const relative = pathname === '/' ? 'index.html' : decodeURIComponent(pathname).replace(/^\/+/, '');
  const file = normalize(join(rendererDir, relative));
  if (!file.startsWith(rendererDir + sep)) return send(res, 404, { error: 'not found' });
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch {
    if (relative === 'index.html') {
      return send(res, 503, { error: `the UI is not built (${file} missing); run npm run build` });
    }
    return send(res, 404, { error: 'not found' });
  }
  res.writeHead(200, {
    'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
    'content-security-policy': contentSecurityPolicy(port),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache',
  });
  res.end(body);
}

/** Who may talk to the API: the Host header must name our loopback address, the token must match. */
interface Gate {
  hostAllowed(req: IncomingMessage): boolean;
  tokenMatches(candidate: string | undefined): boolean;
}

/** The /api/live WebSocket: a snapshot on connect, then every device and deployment change. The token
 * travels as a subprotocol, which the server echoes back on success. Returns what stops it. */
function attachLiveFeed(server: Server, gate: Gate, options: HttpApiOptions): () => void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    const tokenProtocol = offered.find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
    const reject = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (!gate.hostAllowed(req)) return reject(421, 'Misdirected Request');
    if (url.pathname !== LIVE_PATH) return reject(404, 'Not Found');
    if (!gate.tokenMatches(tokenProtocol?.slice(TOKEN_SUBPROTOCOL_PREFIX.length)))
      return reject(401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const snapshot: LiveMessage = { type: 'snapshot', devices: options.registry.list() };
      ws.send(JSON.stringify(snapshot));
    });
  });
  const broadcast = (message: LiveMessage): void => {
    const text = JSON.stringify(message);
    for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send(text);
  };
  const onDevice = (device: DeviceView): void => broadcast({ type: 'device', device });
  const onDeployment = (deployment: DeploymentView): void => broadcast({ type: 'deployment', deployment });
  options.registry.on('change', onDevice);
  options.deployments.on('change', onDeployment);
  return () => {
    options.registry.off('change', onDevice);
    options.deployments.off('change', onDeployment);
    for (const client of wss.clients) client.terminate();
    wss.close();
  };
}

export async function startHttpApi(options: HttpApiOptions): Promise<HttpApi> {
  const token = options.token ?? randomBytes(24).toString('base64url');
  const tokenBytes = Buffer.from(token);
  let port = options.port;
  const gate: Gate = {
    tokenMatches: (candidate) => {
      if (candidate === undefined) return false;
      const c = Buffer.from(candidate);
      return c.length === tokenBytes.length && timingSafeEqual(c, tokenBytes);
    },
    hostAllowed: (req) =>
      req.headers.host === `127.0.0.1:${port}` || req.headers.host === `localhost:${port}`,
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) return res.destroy();
      const status = refusalStatus(err);
      if (status === null || !(err instanceof WhittleError))
        return send(res, 500, { error: `internal error: ${(err as Error).message}` });
      // A body that is too large is not read to its end: close the connection after answering.
      if (status === 413) res.setHeader('connection', 'close');
      send(res, status, { error: err.message, code: err.code } satisfies ApiError);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!gate.hostAllowed(req)) return send(res, 421, { error: 'unexpected Host header' } satisfies ApiError);
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (url.pathname.startsWith(API_PREFIX)) {
      const auth = req.headers.authorization;
      const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
      if (!gate.tokenMatches(bearer)) {
        res.setHeader('connection', 'close');
        return send(res, 401, { error: 'missing or wrong API token' } satisfies ApiError);
      }
      return route(req, res, url.pathname);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' });
    await serveStatic(options.rendererDir, port, url.pathname, res);
  }

  /** The /api routes (the token was checked): the route table finds the handler and decodes the body. */
  const handlers = routeHandlers(options);
  async function route(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? '?';
    const match = matchRoute(method, path);
    if (match.kind === 'no-route') throw new HttpError(404, `no API route ${path}`, 'no-route');
    if (match.kind === 'wrong-method')
      throw new HttpError(405, `${method} not allowed on ${path}`, 'method-not-allowed');
    const body = await readRequest(req, ROUTES[match.name].request);
    // The table, not the compiler, pairs a match with its handler's parameter types.
    const handler = handlers[match.name] as (params: unknown, body: unknown) => Promise<Answer<RouteName>>;
    const answer = await handler(match.params, body);
    send(res, answer.status, answer.body);
  }

  const closeLiveFeed = attachLiveFeed(server, gate, options);
  port = await listen(server, options.host, options.port, 'HTTP API and UI', '--port');
  return {
    port,
    token,
    uiUrl: `http://127.0.0.1:${port}/#token=${token}`,
    close: () =>
      new Promise<void>((resolve) => {
        closeLiveFeed();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
