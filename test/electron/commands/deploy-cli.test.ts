// `whittle serve` publishes its connection file (mode 0600) and removes it on exit; `whittle deploy` finds
// the manager through it and says clearly when there is none, or when its file is stale.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../../../agent/package-root.js';
import { readConnectionFile, writeConnectionFile } from '../../../electron/core/connection-file.js';
import { waitFor } from '../../support/stack.js';

const WHITTLE = join(packageRoot(), 'bin', 'whittle.js');

function whittle(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WHITTLE, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('whittle serve writes a private connection file, answers with its token, removes it on exit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-serve-'));
  const child = spawn(
    process.execPath,
    [
      WHITTLE,
      'serve',
      '--port',
      '0',
      '--mqtt-port',
      '0',
      '--package-port',
      '0',
      '--mqtt-host',
      '127.0.0.1',
    ].concat(['--data-dir', dir]),
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  child.stdout.on('data', (b: Buffer) => output.push(b.toString()));
  child.stderr.on('data', (b: Buffer) => output.push(b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const file = join(dir, 'manager.json');
    await waitFor('the connection file', 20_000, () => (existsSync(file) ? true : undefined)).catch(
      (err: Error) => assert.fail(`${err.message}\n${output.join('')}`),
    );
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const connection = readConnectionFile(dir);
    assert.equal(connection.pid, child.pid);
    const health = await fetch(`${connection.url}/api/health`, {
      headers: { authorization: `Bearer ${connection.token}` },
    });
    assert.equal(health.status, 200);
    // A deploy through it reaches the manager: the (non-)package is refused by the manager's reader.
    const junk = join(dir, 'junk.wpkg');
    writeFileSync(junk, 'not a package');
    const refused = await whittle(['deploy', junk, '--all', '--data-dir', dir]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^whittle deploy: .*junk\.wpkg refused \(truncated\)/m);
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0, output.join(''));
    assert.equal(existsSync(join(dir, 'manager.json')), false, 'the file is removed on exit');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('whittle deploy without a running manager, or with a stale file, says so', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-nomanager-'));
  try {
    const pkg = join(dir, 'x.wpkg');
    writeFileSync(pkg, 'x');
    const none = await whittle(['deploy', pkg, '--all', '--data-dir', dir]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no manager is running for .*start one with: whittle serve/);

    writeConnectionFile(dir, { url: `http://127.0.0.1:${await deadPort()}`, token: 'x'.repeat(32), pid: 1 });
    const stale = await whittle(['deploy', pkg, '--all', '--data-dir', dir]);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /does not answer \(ECONNREFUSED\)/);

    const usage = await whittle(['deploy', pkg, '--data-dir', dir]);
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /--device ID \(repeatable\), or --all, or --online/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
