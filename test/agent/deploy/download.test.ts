// Integration: downloads from the manager's real package server (and a few misbehaving real servers).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { downloadResumable } from '../../../agent/deploy/download.js';
import { DeployError } from '../../../agent/deploy/errors.js';
import { type PackageServer, startPackageServer } from '../../../electron/core/package-server.js';

let dir: string;
let server: PackageServer;
const content = randomBytes(300_000);
let sha: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'whittle-download-'));
  server = await startPackageServer({ dir: join(dir, 'packages'), host: '127.0.0.1', port: 0 });
  sha = server.add(content);
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function listenOn(
  handler: Parameters<typeof createServer>[1],
): Promise<{ server: Server; url: string }> {
  const s = createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { server: s, url: `http://127.0.0.1:${(s.address() as { port: number }).port}/x` };
}

const fast = { backoffInitialMs: 10, backoffMaxMs: 20, log: () => undefined };

describe('resumable download', () => {
  test('a whole file arrives intact', async () => {
    const dest = join(dir, 'whole.part');
    await downloadResumable({ url: server.urlOf(sha), dest, expectedBytes: content.length, ...fast });
    assert.ok(readFileSync(dest).equals(content));
  });

  test('a partial file is resumed with a Range request, not fetched again', async () => {
    const dest = join(dir, 'resume.part');
    writeFileSync(dest, content.subarray(0, 123_456));
    let fetched = 0;
    await downloadResumable({
      url: server.urlOf(sha),
      dest,
      expectedBytes: content.length,
      onProgress: (b) => (fetched = b),
      ...fast,
    });
    assert.ok(readFileSync(dest).equals(content));
    assert.equal(fetched, content.length);
  });

  test('a connection cut mid-body is retried and completed', async () => {
    let calls = 0;
    const { server: flaky, url } = await listenOn((req, res) => {
      calls++;
      const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
      const body = content.subarray(start);
      res.writeHead(start ? 206 : 200, {
        'content-length': String(body.length),
        ...(start ? { 'content-range': `bytes ${start}-${content.length - 1}/${content.length}` } : {}),
      });
      if (calls === 1) {
        res.write(body.subarray(0, 50_000));
        setTimeout(() => res.destroy(), 20);
      } else res.end(body);
    });
    try {
      const dest = join(dir, 'flaky.part');
      await downloadResumable({ url, dest, expectedBytes: content.length, ...fast });
      assert.ok(readFileSync(dest).equals(content));
      assert.equal(calls, 2);
    } finally {
      flaky.close();
    }
  });

  test('a server that never answers times out, and the error says how far it got', async () => {
    const { server: silent, url } = await listenOn(() => undefined);
    try {
      await assert.rejects(
        downloadResumable({
          url,
          dest: join(dir, 'silent.part'),
          expectedBytes: 10,
          responseTimeoutMs: 100,
          retries: 1,
          ...fast,
        }),
        (e: Error) =>
          e instanceof DeployError &&
          e.code === 'download-failed' &&
          /no response within 100 ms/.test(e.message) &&
          /0 of 10 bytes/.test(e.message),
      );
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  test('a file that stays short is reported truncated', async () => {
    const { server: short, url } = await listenOn((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.end(Buffer.alloc(100));
    });
    try {
      await assert.rejects(
        downloadResumable({ url, dest: join(dir, 'short.part'), expectedBytes: 1000, retries: 2, ...fast }),
        (e: Error) => e instanceof DeployError && e.code === 'truncated',
      );
    } finally {
      short.close();
    }
  });

  test('a bigger file than the target says is refused at once, a 404 without retrying', async () => {
    await assert.rejects(
      downloadResumable({
        url: server.urlOf(sha),
        dest: join(dir, 'big.part'),
        expectedBytes: 1000,
        ...fast,
      }),
      (e: Error) => e instanceof DeployError && e.code === 'too-large',
    );
    const started = Date.now();
    await assert.rejects(
      downloadResumable({
        url: server.urlOf('0'.repeat(64)),
        dest: join(dir, 'none.part'),
        expectedBytes: 10,
        backoffInitialMs: 5000,
      }),
      (e: Error) => e instanceof DeployError && /HTTP 404/.test(e.message),
    );
    assert.ok(Date.now() - started < 2000, 'no retry after a 404');
  });

  test('the package server answers ranges and refuses bad ones', async () => {
    const res = await fetch(server.urlOf(sha), { headers: { range: 'bytes=10-19' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 10-19/${content.length}`);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(content.subarray(10, 20)));
    const bad = await fetch(server.urlOf(sha), { headers: { range: `bytes=${content.length}-` } });
    assert.equal(bad.status, 416);
    const traversal = await fetch(`http://127.0.0.1:${server.port}/packages/..%2f..%2fetc%2fpasswd`);
    assert.equal(traversal.status, 404);
    assert.equal(statSync(join(dir, 'packages', sha)).size, content.length);
  });
});
