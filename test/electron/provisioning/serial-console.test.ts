// Integration: a real serial console — a socat pseudo-terminal pair with a login prompt and a shell on
// the far side — driven through the serialport package.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { packageRoot } from '../../../agent/package-root.js';
import { SerialConsoleError } from '../../../electron/core/provisioning/errors.js';
import { parseIpAddr, readIdentityOverSerial } from '../../../electron/core/provisioning/serial-console.js';
import { type SerialConsole, startSerialConsole } from './serial-pty.js';

const FIXTURES = join(packageRoot(), 'test', 'electron', 'provisioning', 'fixtures');
const LOGIN_SCRIPT = join(FIXTURES, 'serial-login.sh');
const skip =
  spawnSync('sh', ['-c', 'command -v socat']).status === 0
    ? undefined
    : 'socat is missing (Debian package socat)';
if (skip) console.log(`# skipping serial console tests: ${skip}`);

describe('serial console provisioning', { skip: skip ?? false }, () => {
  const consoles: SerialConsole[] = [];
  const open = async (command: string): Promise<SerialConsole> => {
    const c = await startSerialConsole(command);
    consoles.push(c);
    return c;
  };
  after(async () => {
    for (const c of consoles) await c.stop();
  });

  test('logs in and reads the hostname and network addresses', async () => {
    const c = await open(`bash ${LOGIN_SCRIPT} pi raspberry`);
    const lines: string[] = [];
    const identity = await readIdentityOverSerial({
      path: c.path,
      baudRate: 115200,
      username: 'pi',
      password: 'raspberry',
      progress: (l) => lines.push(l),
    });
    assert.equal(identity.hostname, hostname());
    const ip = spawnSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' }).stdout;
    assert.deepEqual(identity.addresses, parseIpAddr(ip));
    assert.ok(lines.some((l) => l.includes('logging in as pi')));
  });

  test('a wrong password is refused clearly', async () => {
    const c = await open(`bash ${LOGIN_SCRIPT} pi raspberry`);
    await assert.rejects(
      readIdentityOverSerial({ path: c.path, baudRate: 115200, username: 'pi', password: 'wrong' }),
      (err: unknown) =>
        err instanceof SerialConsoleError &&
        /refused the login of user pi: wrong user name or password/.test(err.message),
    );
  });

  test('a console that says nothing times out naming the port and baud rate', async () => {
    const c = await open('sleep 60');
    const started = Date.now();
    await assert.rejects(
      readIdentityOverSerial({
        path: c.path,
        baudRate: 9600,
        username: 'pi',
        password: 'x',
        stepTimeoutMs: 2000,
      }),
      (err: unknown) => {
        assert.ok(err instanceof SerialConsoleError, String(err));
        assert.match(err.message, new RegExp(`no login prompt on ${c.path} at 9600 baud within 2 s`));
        assert.match(err.message, /received nothing: check the baud rate/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 5000);
  });

  test('unreadable bytes (a wrong baud rate) time out saying the baud rate is probably wrong', async () => {
    const c = await open(`sh ${join(FIXTURES, 'serial-noise.sh')}`);
    await assert.rejects(
      readIdentityOverSerial({
        path: c.path,
        baudRate: 57600,
        username: 'pi',
        password: 'x',
        stepTimeoutMs: 2000,
      }),
      (err: unknown) =>
        err instanceof SerialConsoleError &&
        err.message.includes(`${c.path} at 57600 baud`) &&
        /baud rate is probably wrong/.test(err.message),
    );
  });

  test('a port that does not exist is named', async () => {
    await assert.rejects(
      readIdentityOverSerial({ path: '/dev/ttyWHITTLE9', baudRate: 115200 }),
      /cannot open \/dev\/ttyWHITTLE9: no such port/,
    );
  });

  test('a console asking for a login without a user name says how to give one', async () => {
    const c = await open(`bash ${LOGIN_SCRIPT} pi raspberry`);
    await assert.rejects(
      readIdentityOverSerial({ path: c.path, baudRate: 115200 }),
      /asks for a login: name the user in the address \(serial:\/\/.*\?baud=115200&user=NAME\)/,
    );
  });
});
