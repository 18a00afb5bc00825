// The manager's HTTP + WebSocket API, bound to loopback, and the renderer's static files.
// Every /api route needs the per-launch token (see ../api/contract.ts); the Host header must name
// this loopback address, so a web page elsewhere cannot reach the API through DNS rebinding.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

import { WebSocket, WebSocketServer } from 'ws';

import type { DevicesResponse, DeviceView, HealthResponse, LiveMessage } from '../api/contract.js';
import { LIVE_PATH, TOKEN_SUBPROTOCOL_PREFIX } from '../api/contract.js';
import type { DeviceRegistry } from './device-registry.js';
import { listen } from './ports.js';

export interface HttpApiOptions {
  host: string;
  port: number;
  registry: DeviceRegistry;
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

export async function startHttpApi(options: HttpApiOptions): Promise<HttpApi> {
  const token = options.token ?? randomBytes(24).toString('base64url');
  const tokenBytes = Buffer.from(token);
  let port = options.port;
  const tokenMatches = (candidate: string | undefined): boolean => {
    if (candidate === undefined) return false;
    const c = Buffer.from(candidate);
    return c.length === tokenBytes.length && timingSafeEqual(c, tokenBytes);
  };
  const hostAllowed = (req: IncomingMessage): boolean =>
    req.headers.host === `127.0.0.1:${port}` || req.headers.host === `localhost:${port}`;

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: `internal error: ${(err as Error).message}` });
      else res.destroy();
    });
  });

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...(status === 401 ? { 'www-authenticate': 'Bearer realm="whittle"' } : {}),
    });
    res.end(text);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!hostAllowed(req)) return send(res, 421, { error: 'unexpected Host header' });
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (url.pathname.startsWith('/api/')) {
      const auth = req.headers.authorization;
      const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
      if (!tokenMatches(bearer)) return send(res, 401, { error: 'missing or wrong API token' });
      if (req.method !== 'GET')
        return send(res, 405, { error: `${req.method ?? '?'} not allowed on ${url.pathname}` });
      if (url.pathname === '/api/health') {
        const body: HealthResponse = { ok: true, version: options.version };
        return send(res, 200, body);
      }
      if (url.pathname === '/api/devices') {
        const body: DevicesResponse = { devices: options.registry.list() };
        return send(res, 200, body);
      }
      return send(res, 404, { error: `no API route ${url.pathname}` });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' });
    await serveStatic(url.pathname, res);
  }

  async function serveStatic(pathname: string, res: ServerResponse): Promise<void> {
    const relative = pathname === '/' ? 'index.html' : decodeURIComponent(pathname).replace(/^\/+/, '');
    const file = normalize(join(options.rendererDir, relative));
    if (!file.startsWith(options.rendererDir + sep)) return send(res, 404, { error: 'not found' });
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

  // WebSocket: the token travels as a subprotocol, which the server echoes back on success.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    const tokenProtocol = offered.find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
    const reject = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (!hostAllowed(req)) return reject(421, 'Misdirected Request');
    if (url.pathname !== LIVE_PATH) return reject(404, 'Not Found');
    if (!tokenMatches(tokenProtocol?.slice(TOKEN_SUBPROTOCOL_PREFIX.length)))
      return reject(401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const snapshot: LiveMessage = { type: 'snapshot', devices: options.registry.list() };
      ws.send(JSON.stringify(snapshot));
    });
  });
  const broadcast = (device: DeviceView): void => {
    const text = JSON.stringify({ type: 'device', device } satisfies LiveMessage);
    for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.send(text);
  };
  options.registry.on('change', broadcast);

  port = await listen(server, options.host, options.port, 'HTTP API and UI', '--port');
  return {
    port,
    token,
    uiUrl: `http://127.0.0.1:${port}/#token=${token}`,
    close: () =>
      new Promise<void>((resolve) => {
        options.registry.off('change', broadcast);
        for (const client of wss.clients) client.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
