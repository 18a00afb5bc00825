import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpus, hostname, totalmem } from 'node:os';
import { describe, test } from 'node:test';

import {
  checkRunnable,
  type DeviceProbe,
  parseProbe,
  PROBE_SCRIPT,
} from '../../../electron/core/provisioning/device-probe.js';
import { DeviceUnsupportedError } from '../../../electron/core/provisioning/errors.js';

function output(fields: Record<string, string>): string {
  const order = [
    'machine',
    'os',
    'node',
    'cpus',
    'mem',
    'cameras',
    'hostname',
    'uid',
    'home',
    'systemd',
    'sudo',
    'build',
    'ffmpeg',
    'ssh',
  ];
  return `${order.map((k) => `@@${k}\n${fields[k] ?? ''}`).join('\n')}\n@@end\n`;
}

const PI = output({
  machine: 'armv7l',
  os: 'PRETTY_NAME="Raspbian GNU/Linux 11 (bullseye)"\nID=raspbian',
  node: 'v18.19.0',
  cpus: '4',
  mem: 'MemTotal:         948280 kB',
  cameras: '/dev/video0\n/dev/video10',
  hostname: 'raspberrypi',
  uid: '1000',
  home: '/home/pi',
  systemd: 'yes',
  sudo: 'yes',
  build: 'no',
  ffmpeg: 'yes',
  ssh: '192.168.1.20 51234 192.168.1.31 22',
});

describe('device probe', () => {
  test('a Raspberry Pi with a 32-bit userland', () => {
    const p = parseProbe(PI, '192.168.1.31');
    assert.deepEqual(p, {
      machine: 'armv7l',
      arch: 'armv7',
      os: 'Raspbian GNU/Linux 11 (bullseye)',
      osId: 'raspbian',
      nodeVersion: '18.19.0',
      cpus: 4,
      memTotalBytes: 948280 * 1024,
      cameras: ['/dev/video0', '/dev/video10'],
      hostname: 'raspberrypi',
      uid: 1000,
      home: '/home/pi',
      systemd: true,
      sudo: true,
      canBuildAddon: false,
      ffmpeg: true,
      managerAddress: '192.168.1.20',
    } satisfies DeviceProbe);
    checkRunnable(p, 'pi');
  });

  test('aarch64 maps to arm64; a CPU without an addon is refused naming it', () => {
    assert.equal(parseProbe(PI.replace('armv7l', 'aarch64'), 'jetson').arch, 'arm64');
    assert.throws(
      () => parseProbe(PI.replace('armv7l', 'mips'), 'router'),
      (err: unknown) => err instanceof DeviceUnsupportedError && /router has a mips CPU/.test(err.message),
    );
  });

  test("Node's own arch picks the addon: a 32-bit Node on a 64-bit kernel, an emulated Node", () => {
    assert.equal(
      parseProbe(PI.replace('armv7l', 'aarch64').replace('v18.19.0', 'v18.19.0 arm'), 'pi4').arch,
      'armv7',
    );
    const emulated = parseProbe(PI.replace('armv7l', 'x86_64').replace('v18.19.0', 'v18.20.4 arm64'), 'qemu');
    assert.equal(emulated.arch, 'arm64');
    assert.equal(emulated.nodeVersion, '18.20.4');
    assert.equal(emulated.machine, 'x86_64');
  });

  test('a device without Node.js, with an old one, or without ffmpeg is refused saying what to install', () => {
    const cases: [string, RegExp][] = [
      [PI.replace('v18.19.0', ''), /has no Node.js.*install Node.js 18 or newer/],
      [PI.replace('v18.19.0', 'v16.20.2'), /Node.js 16.20.2; the agent needs 18 or newer/],
      [PI.replace('@@ffmpeg\nyes', '@@ffmpeg\nno'), /no ffmpeg.*apt-get install ffmpeg/],
    ];
    for (const [text, message] of cases)
      assert.throws(
        () => checkRunnable(parseProbe(text, 'pi'), 'pi'),
        (err: unknown) => err instanceof DeviceUnsupportedError && message.test(err.message),
      );
  });

  test('a truncated probe is refused', () => {
    assert.throws(() => parseProbe(PI.replace('@@end', ''), 'pi'), /did not run to its end/);
  });

  test('the probe script, run on this machine, describes it', () => {
    const p = parseProbe(execFileSync('sh', ['-c', PROBE_SCRIPT], { encoding: 'utf8' }), 'localhost');
    assert.equal(p.nodeVersion !== null, true);
    assert.equal(p.cpus, cpus().length);
    assert.ok(Math.abs(p.memTotalBytes - totalmem()) < 2 ** 20, `${p.memTotalBytes} vs ${totalmem()}`);
    assert.equal(p.hostname, hostname());
    assert.equal(p.uid, process.getuid?.());
    if (process.arch === 'x64') assert.equal(p.arch, 'x64');
  });
});
