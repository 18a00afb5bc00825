import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { LatencyTable } from '../../../agent/profile/latency-table.js';
import { ISAS } from '../../../native/index.js';
import {
  CORES,
  DEVICE_CLASS_CATALOG,
  DEVICE_CLASS_NAMES,
  DeviceClassError,
  deviceClassInfo,
  estimateMeasurementSeconds,
  estimateTable,
  latencyTableFor,
} from '../../../optimize/latency/device-classes.js';
import { DEVICE_CLASSES } from '../../support/device-classes.js';

const entry = (op: 'conv2d' | 'call', format: 'f32' | 'int8', ms: number) => ({
  key: op === 'call' ? 'call/f32' : `conv2d/${format}/k3s1/r8/c8-8`,
  op,
  format,
  kernel: 'k',
  shape: op === 'call' ? { op, format } : { op, format, kernel: 3, stride: 1, size: 8, inC: 8, outC: 8 },
  macs: op === 'call' ? 0 : 36864,
  in_elements: 512,
  out_elements: 512,
  density: 1,
  weight_bytes: 0,
  calls: 1,
  ms,
  runs: 10,
});

const reference: LatencyTable = {
  table_version: 3,
  build_hash: '0123456789abcdef',
  isa: 'avx2',
  threads: 1,
  grid_id: 'g',
  complete: true,
  measured_at: 0,
  conditions: { before: { temps_c: [], freq_khz: [3000000] }, after: { temps_c: [], freq_khz: [3000000] } },
  entries: [entry('conv2d', 'f32', 0.01), entry('conv2d', 'int8', 0.005), entry('call', 'f32', 0.0001)],
};

test('the catalog names every class the issue asks for, with consistent facts', () => {
  for (const name of [
    'raspberry-pi-3b',
    'raspberry-pi-4b',
    'raspberry-pi-5',
    'jetson-tk1',
    'jetson-nano',
    'jetson-orin-nano',
    'android-termux',
    'x86-mini-pc',
  ])
    assert.ok(DEVICE_CLASS_NAMES.includes(name as never), name);
  for (const info of Object.values(DEVICE_CLASS_CATALOG)) {
    assert.ok(info.cores >= 1 && info.clockMhz >= 500 && info.memoryBytes >= 2 ** 29, info.name);
    assert.ok((ISAS as readonly string[]).includes(info.isa), info.name);
    assert.ok(info.core in CORES, info.name);
    assert.equal(info.isa.startsWith('avx'), info.cpuFamily === 'x86_64', info.name);
    assert.equal(info.cpuFamily === 'armv7', info.name === 'jetson-tk1', info.name);
  }
  // The emulated classes' facts are the catalog's.
  assert.equal(DEVICE_CLASSES.rpi4.isa, DEVICE_CLASS_CATALOG['raspberry-pi-4b'].isa);
  assert.equal(DEVICE_CLASSES.armv7.cpuFamily, DEVICE_CLASS_CATALOG['jetson-tk1'].cpuFamily);
  assert.throws(() => deviceClassInfo('pi-zero'), DeviceClassError);
});

test('estimated tables are slower on slower boards, and a measured table replaces the estimate', () => {
  const pi3 = estimateTable(reference, deviceClassInfo('raspberry-pi-3b'));
  const pi4 = estimateTable(reference, deviceClassInfo('raspberry-pi-4b'));
  const pi5 = estimateTable(reference, deviceClassInfo('raspberry-pi-5'));
  for (let i = 0; i < reference.entries.length; i++) {
    assert.ok(pi3.entries[i]!.ms > pi4.entries[i]!.ms, reference.entries[i]!.key);
    assert.ok(pi4.entries[i]!.ms > pi5.entries[i]!.ms, reference.entries[i]!.key);
    assert.ok(pi5.entries[i]!.ms > reference.entries[i]!.ms, reference.entries[i]!.key);
  }
  // Pi 4: 3000 / 1500 MHz x 16 / 4 f32 MACs a cycle.
  assert.ok(Math.abs(pi4.entries[0]!.ms - 0.01 * 2 * 4) < 1e-12);
  assert.equal(pi4.isa, 'neon');
  assert.match(pi4.build_hash, /^estimate:0123456789abcdef$/);
  assert.ok(estimateMeasurementSeconds(reference, deviceClassInfo('raspberry-pi-4b'), 10) > 10);
  assert.equal(latencyTableFor({ deviceClass: 'raspberry-pi-4b', reference }).source, 'estimated');
  const measured = { ...reference, build_hash: 'ffff' };
  assert.deepEqual(latencyTableFor({ deviceClass: 'raspberry-pi-4b', reference, measured }), {
    table: measured,
    source: 'measured',
  });
  const partial = { ...measured, complete: false };
  assert.equal(
    latencyTableFor({ deviceClass: 'raspberry-pi-4b', reference, measured: partial }).source,
    'estimated',
  );
});
