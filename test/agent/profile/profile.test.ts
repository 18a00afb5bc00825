// The device profile: one collector reading the kernel's files (a fake tree here), one schema, and a
// parser that refuses malformed and other-version profiles by name.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';

import {
  collectDeviceProfile,
  cpuListCount,
  cpuModelFact,
  DeviceProfileError,
  formatDeviceProfile,
  kernelCpuFamily,
  parseCacheSize,
  parseDeviceProfile,
} from '../../../agent/profile/profile.js';
import { activeIsa, addonBuildHash } from '../../../native/index.js';

const X86_CPUINFO =
  'processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2\n';
const ARM_CPUINFO =
  'processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd crc32\nCPU implementer\t: 0x41\n';
const OWN_CPUINFO = process.arch === 'arm64' || process.arch === 'arm' ? ARM_CPUINFO : X86_CPUINFO;
const OTHER_CPUINFO = OWN_CPUINFO === ARM_CPUINFO ? X86_CPUINFO : ARM_CPUINFO;

test('the kernel CPU family is read from /proc/cpuinfo fields', () => {
  assert.equal(kernelCpuFamily(X86_CPUINFO), 'x86');
  assert.equal(kernelCpuFamily(ARM_CPUINFO), 'arm');
  assert.equal(kernelCpuFamily(''), 'unknown');
});

test("an ARM process on an x86 kernel (qemu-user) does not claim the host's CPU as its own", () => {
  assert.equal(cpuModelFact('arm64', 'AMD EPYC', X86_CPUINFO), 'arm64 (emulated on AMD EPYC)');
  assert.equal(cpuModelFact('arm', 'AMD EPYC', X86_CPUINFO), 'arm (emulated on AMD EPYC)');
  assert.equal(cpuModelFact('x64', ' AMD EPYC ', X86_CPUINFO), 'AMD EPYC');
  assert.equal(cpuModelFact('arm64', 'Cortex-A72', ARM_CPUINFO), 'Cortex-A72');
  assert.equal(cpuModelFact('arm64', undefined, ''), 'unknown');
});

test('sysfs cache sizes and CPU lists', () => {
  assert.equal(parseCacheSize('32K'), 32 * 1024);
  assert.equal(parseCacheSize('8M\n'), 8 * 1024 * 1024);
  assert.equal(parseCacheSize('512'), 512);
  assert.equal(parseCacheSize('lots'), null);
  assert.equal(cpuListCount('0-3,6\n'), 5);
  assert.equal(cpuListCount('2'), 1);
  assert.equal(cpuListCount('3-1'), null);
  assert.equal(cpuListCount(''), null);
});

function fakeTree(cpuinfo: string): string {
  const root = mkdtempSync(join(tmpdir(), 'whittle-profile-'));
  const put = (path: string, text: string): void => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  put('proc/cpuinfo', cpuinfo);
  put('proc/meminfo', 'MemTotal:        3884096 kB\nMemFree:  100 kB\nMemAvailable:    2000000 kB\n');
  put('etc/os-release', 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n');
  for (const cpu of [0, 1, 2, 3]) {
    put(`sys/devices/system/cpu/cpu${cpu}/cpufreq/scaling_cur_freq`, `${600000 + cpu * 100000}\n`);
    put(`sys/devices/system/cpu/cpu${cpu}/cpufreq/cpuinfo_max_freq`, '1800000\n');
  }
  const cache = (index: number, level: string, type: string, size: string, shared: string): void => {
    const dir = `sys/devices/system/cpu/cpu0/cache/index${index}`;
    put(`${dir}/level`, `${level}\n`);
    put(`${dir}/type`, `${type}\n`);
    put(`${dir}/size`, `${size}\n`);
    put(`${dir}/shared_cpu_list`, `${shared}\n`);
  };
  cache(0, '1', 'Data', '32K', '0');
  cache(1, '1', 'Instruction', '48K', '0');
  cache(2, '2', 'Unified', '1024K', '0-3');
  put('sys/class/thermal/thermal_zone0/type', 'cpu-thermal\n');
  put('sys/class/thermal/thermal_zone0/temp', '48312\n');
  put('sys/class/thermal/thermal_zone1/type', 'gpu-thermal\n');
  put('sys/class/thermal/thermal_zone1/temp', '-273200\n'); // a sleeping sensor's placeholder
  mkdirSync(join(root, 'dev'));
  writeFileSync(join(root, 'dev/video0'), ''); // a regular file is not a V4L2 device node
  return root;
}

test('a profile collected from a Raspberry-Pi-like kernel tree reads every source', () => {
  const root = fakeTree(OWN_CPUINFO);
  try {
    const p = collectDeviceProfile({ root, dataDir: root });
    assert.equal(p.profile_version, 1);
    assert.equal(p.cpu.emulated, false);
    assert.deepEqual(p.cpu.freq_khz, {
      cur: [600000, 700000, 800000, 900000],
      max: [1800000, 1800000, 1800000, 1800000],
    });
    assert.deepEqual(p.cpu.caches, [
      { level: 1, type: 'Data', size_bytes: 32768, shared_cpus: 1 },
      { level: 1, type: 'Instruction', size_bytes: 49152, shared_cpus: 1 },
      { level: 2, type: 'Unified', size_bytes: 1048576, shared_cpus: 4 },
    ]);
    assert.deepEqual(p.thermal, [
      { zone: 'thermal_zone0', type: 'cpu-thermal', temp_c: 48.3 },
      { zone: 'thermal_zone1', type: 'gpu-thermal', temp_c: null },
    ]);
    assert.equal(p.memory.free_bytes, 2000000 * 1024);
    assert.equal(p.os.name, 'Debian GNU/Linux 12 (bookworm)');
    assert.deepEqual(p.cameras, []);
    assert.equal(p.storage.path, root);
    assert.ok(p.storage.free_bytes !== null && p.storage.free_bytes > 0);
    assert.deepEqual(p.kernels, { isa: activeIsa(), build_hash: addonBuildHash() });
    assert.match(formatDeviceProfile(p), /clock {5}now 600\/700\/800\/900 MHz, max 1800 MHz/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("under user-mode emulation the host's clocks and caches are left out, never reported as the device's", () => {
  const root = fakeTree(OTHER_CPUINFO);
  try {
    const p = collectDeviceProfile({ root, dataDir: root });
    assert.equal(p.cpu.emulated, true);
    assert.match(p.cpu.model, /\(emulated on /);
    assert.deepEqual(p.cpu.freq_khz, { cur: null, max: null });
    assert.deepEqual(p.cpu.caches, []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('absent sources (an empty tree) give nulls and empty lists', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-profile-empty-'));
  try {
    const p = collectDeviceProfile({ root, dataDir: join(root, 'not-yet', 'created') });
    assert.deepEqual(p.cpu.freq_khz, { cur: null, max: null });
    assert.deepEqual(p.cpu.caches, []);
    assert.deepEqual(p.thermal, []);
    assert.deepEqual(p.cameras, []);
    assert.equal(p.os.name, null);
    // A data dir not created yet is on its nearest existing ancestor's file system.
    assert.ok(p.storage.free_bytes !== null && p.storage.free_bytes > 0);
    assert.ok(p.memory.total_bytes > 0 && p.cpu.cores >= 1);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('this machine: a profile that survives JSON and parses back', () => {
  const p = collectDeviceProfile();
  assert.equal(p.os.arch, process.arch);
  assert.equal(p.node_version, process.versions.node);
  assert.deepEqual(parseDeviceProfile(JSON.parse(JSON.stringify(p))), p);
});

test('a malformed or other-version profile is refused with a message naming what is wrong', () => {
  const good = collectDeviceProfile();
  const refuse = (value: unknown, pattern: RegExp): void =>
    assert.throws(
      () => parseDeviceProfile(value),
      (err: unknown) =>
        err instanceof DeviceProfileError && err.code === 'bad-device-profile' && pattern.test(err.message),
    );
  refuse(null, /expected a JSON object/);
  refuse({ ...good, profile_version: 2 }, /profile_version 2 is not readable by this build/);
  refuse({ cpu: good.cpu }, /no profile_version/);
  refuse({ ...good, cpu: { ...good.cpu, cores: -1 } }, /cpu\.cores/);
  refuse({ ...good, memory: { total_bytes: 'lots', free_bytes: 0 } }, /memory\.total_bytes/);
  refuse({ ...good, extra: 1 }, /extra/);
});
