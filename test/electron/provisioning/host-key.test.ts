import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { HostKeyChangedError, HostKeyNotAcceptedError } from '../../../electron/core/provisioning/errors.js';
import {
  acceptFingerprint,
  type HostKey,
  hostKeyOf,
  type HostKeyPins,
  isFingerprint,
  refuseUnknownHostKey,
  verifyHostKey,
} from '../../../electron/core/provisioning/host-key.js';

const haveKeygen = spawnSync('sh', ['-c', 'command -v ssh-keygen']).status === 0;

function memoryPins(): HostKeyPins & { pins: Map<string, HostKey> } {
  const pins = new Map<string, HostKey>();
  return {
    pins,
    pinnedHostKey: (host, port) => pins.get(`${host}:${port}`),
    pinHostKey: (host, port, key) => void pins.set(`${host}:${port}`, key),
  };
}

describe('host key fingerprints and pinning', { skip: haveKeygen ? false : 'ssh-keygen is missing' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-hostkey-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const keys = new Map<string, { blob: Buffer; fingerprint: string }>();
  for (const type of ['ed25519', 'ecdsa', 'rsa']) {
    const file = join(dir, type);
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', file]);
    const blob = Buffer.from(readFileSync(`${file}.pub`, 'utf8').split(' ')[1]!, 'base64');
    const fingerprint = /(SHA256:\S+)/.exec(
      execFileSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' }),
    )![1]!;
    keys.set(type, { blob, fingerprint });
  }

  for (const [type, expectedType] of [
    ['ed25519', 'ssh-ed25519'],
    ['ecdsa', 'ecdsa-sha2-nistp256'],
    ['rsa', 'ssh-rsa'],
  ] as const) {
    test(`the ${type} fingerprint is the one ssh-keygen -lf prints`, () => {
      const k = keys.get(type)!;
      assert.deepEqual(hostKeyOf(k.blob), { keyType: expectedType, fingerprint: k.fingerprint });
      assert.ok(isFingerprint(k.fingerprint));
    });
  }

  test('an unknown key is pinned only when accepted; then it is trusted silently', async () => {
    const pins = memoryPins();
    const k = keys.get('ed25519')!;
    await assert.rejects(verifyHostKey(pins, 'h', 22, k.blob, refuseUnknownHostKey), HostKeyNotAcceptedError);
    assert.equal(pins.pins.size, 0);
    await verifyHostKey(pins, 'h', 22, k.blob, acceptFingerprint(k.fingerprint));
    assert.equal(pins.pinnedHostKey('h', 22)?.fingerprint, k.fingerprint);
    await verifyHostKey(pins, 'h', 22, k.blob, refuseUnknownHostKey);
  });

  test('a changed key is refused naming both fingerprints; the pin is per host and port', async () => {
    const pins = memoryPins();
    const a = keys.get('ed25519')!;
    const b = keys.get('rsa')!;
    await verifyHostKey(pins, 'h', 22, a.blob, acceptFingerprint(a.fingerprint));
    await assert.rejects(
      verifyHostKey(pins, 'h', 22, b.blob, acceptFingerprint(b.fingerprint)),
      (err: unknown) => {
        assert.ok(err instanceof HostKeyChangedError);
        assert.ok(
          err.message.includes(`ssh-ed25519 ${a.fingerprint}`) &&
            err.message.includes(`ssh-rsa ${b.fingerprint}`),
        );
        return true;
      },
    );
    await verifyHostKey(pins, 'h', 2222, b.blob, acceptFingerprint(b.fingerprint));
  });

  test('malformed fingerprints are recognised as such', () => {
    for (const bad of ['', 'SHA256:abc', 'MD5:' + 'a'.repeat(43), `SHA256:${'a'.repeat(42)}=`])
      assert.equal(isFingerprint(bad), false);
  });
});
