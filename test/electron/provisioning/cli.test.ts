// The provisioning commands of the whittle CLI: bad input is refused with a message naming what is wrong.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';

import { packageRoot } from '../../../agent/package-root.js';

function whittle(args: string[], stdin = ''): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'whittle.js'), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code) => resolve({ code, output }));
    child.stdin.end(stdin);
  });
}

describe('whittle device / devices / serial', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'whittle-cli-prov-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));
  const d = ['--data-dir', dataDir];

  for (const [args, message] of [
    [['device', 'add', 'pi@10.0.0.7'], /expected ssh:\/\/user@host\[:port\] or serial:/],
    [['device', 'add'], /device add: expected an address/],
    [
      [
        'device',
        'add',
        'ssh://pi@10.200.250.2',
        '--accept-host-key',
        'SHA256:short',
        '--identity',
        '/nonexistent',
      ],
      /--accept-host-key: expected SHA256:/,
    ],
    [
      ['device', 'add', 'ssh://pi@10.200.250.2', '--identity', '/nonexistent', '--password-stdin'],
      /either --identity or --password-stdin/,
    ],
    [['device', 'add', 'ssh://pi@10.200.250.2', '--password-stdin'], /standard input held no password/],
    [
      ['device', 'add', 'ssh://pi@10.200.250.2', '--no-ssh', '--identity', '/x'],
      /--no-ssh applies to serial:\/\/ addresses only/,
    ],
    [['device', 'remove', 'ghost', '--identity', '/x'], /no device "ghost" was provisioned by this manager/],
    [['device', 'frobnicate'], /unknown device command "frobnicate"/],
    [['serial', 'open'], /expected "whittle serial list"/],
    [['devices', 'extra'], /devices takes no arguments/],
    [
      ['device', 'add', 'ssh://pi@10.200.250.2', '--mqtt-port', '99999', '--identity', '/x'],
      /--mqtt-port: expected 1-65535, got "99999"/,
    ],
  ] as const) {
    test(`whittle ${args.join(' ')} is refused`, async () => {
      const r = await whittle([...args, ...d]);
      assert.equal(r.code, 1, r.output);
      assert.match(r.output, message);
      assert.doesNotMatch(r.output, /unexpected failure/);
    });
  }

  test('devices on an empty store says how to add one; forget-host of an unknown host says so', async () => {
    const list = await whittle(['devices', ...d]);
    assert.equal(list.code, 0);
    assert.match(
      list.output,
      /no devices provisioned yet; add one with: whittle device add ssh:\/\/user@host/,
    );
    const forget = await whittle(['device', 'forget-host', '10.200.250.2:22', ...d]);
    assert.equal(forget.code, 1);
    assert.match(forget.output, /no host key pinned for 10\.200\.250\.2:22/);
  });

  test('serial list prints the ports udev knows', async () => {
    const r = await whittle(['serial', 'list']);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /^(\/dev\/\S+|no serial ports found)/m);
  });

  test('ssh2 runs on its pure JavaScript crypto: its optional native bindings were never built', () => {
    const require = createRequire(import.meta.url);
    assert.equal(typeof (require('ssh2') as { Client?: unknown }).Client, 'function');
    assert.throws(() => require('cpu-features') as unknown, /Cannot find module/);
    const ssh2Dir = dirname(require.resolve('ssh2/package.json'));
    assert.equal(existsSync(join(ssh2Dir, 'lib', 'protocol', 'crypto', 'build')), false);
  });

  test('--help lists the provisioning commands', async () => {
    const r = await whittle(['--help']);
    for (const c of ['device add ADDRESS', 'device remove ID', 'devices', 'serial list'])
      assert.ok(r.output.includes(`  ${c}`), c);
  });
});
