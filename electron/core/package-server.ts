// Serves model packages to agents over HTTP: GET /packages/<sha256>, with Range requests so an agent
// resumes an interrupted download. Packages are content-addressed and signed, so the server needs no
// trust and no authentication: any HTTP or S3-compatible store can take its place for a fleet.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';

import { listen } from './ports.js';

export interface PackageServerOptions {
  /** Where packages are kept, one file per SHA-256. */
  dir: string;
  host: string;
  port: number;
  /** Limits the sending rate (tests use it to make a download last); unlimited when absent. */
  bytesPerSecond?: number;
}

export interface PackageServer {
  port: number;
  /** The URL agents download the package with this hash from; `host` is the address the agent reaches
   * this machine at (defaults to the listening address, which is no use when that is 0.0.0.0). */
  urlOf(sha256: string, host?: string): string;
  /** The stored file of a package, or undefined when there is none. */
  pathOf(sha256: string): string | undefined;
  /** Stores a package; returns its SHA-256 (hex). */
  add(bytes: Uint8Array): string;
  close(): Promise<void>;
}

const PATH_RE = /^\/packages\/([0-9a-f]{64})$/;

function fail(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
}

/** Passes bytes through at most `rate` bytes per second, in chunks of a tenth of a second. */
class Throttle extends Transform {
  constructor(private readonly rate: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const slice = Math.max(1, Math.floor(this.rate / 10));
    const push = (offset: number): void => {
      if (offset >= chunk.length) {
        done();
        return;
      }
      this.push(chunk.subarray(offset, offset + slice));
      setTimeout(() => push(offset + slice), 100);
    };
    push(0);
  }
}

export async function startPackageServer(options: PackageServerOptions): Promise<PackageServer> {
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const server: Server = createServer((req, res) => {
    const match = PATH_RE.exec(req.url ?? '');
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(res, 405, 'only GET and HEAD');
    if (!match) return fail(res, 404, 'expected /packages/<sha256>');
    const path = join(options.dir, match[1]!);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return fail(res, 404, `no package ${match[1]}`);
    }
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range !== undefined) {
      const r = /^bytes=(\d+)-(\d*)$/.exec(range);
      const from = Number(r?.[1]);
      const to = r?.[2] ? Number(r[2]) : size - 1;
      if (!r || from >= size || to < from) {
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
      start = from;
      end = Math.min(to, size - 1);
      status = 206;
    }
    res.writeHead(status, {
      'content-type': 'application/octet-stream',
      'content-length': String(end - start + 1),
      'accept-ranges': 'bytes',
      'cache-control': 'public, max-age=31536000, immutable',
      ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
    });
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    const file = createReadStream(path, { start, end });
    const body = options.bytesPerSecond ? file.pipe(new Throttle(options.bytesPerSecond)) : file;
    body.pipe(res);
    res.on('close', () => file.destroy());
  });
  const port = await listen(
    server,
    options.host,
    options.port,
    'package server for agents',
    '--package-port',
  );
  return {
    port,
    urlOf: (sha256, host = options.host) =>
      `http://${host.includes(':') ? `[${host}]` : host}:${port}/packages/${sha256}`,
    pathOf(sha256) {
      if (!/^[0-9a-f]{64}$/.test(sha256)) return undefined;
      const path = join(options.dir, sha256);
      return existsSync(path) ? path : undefined;
    },
    add(bytes) {
      const sha = createHash('sha256').update(bytes).digest('hex');
      const path = join(options.dir, sha);
      writeFileSync(`${path}.tmp`, bytes);
      renameSync(`${path}.tmp`, path);
      return sha;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
