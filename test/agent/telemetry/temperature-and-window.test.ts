import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { StatsMessageSchema } from '../../../agent/protocol/messages.js';
import { StatsWindow } from '../../../agent/telemetry/stats-window.js';
import { temperatureReader } from '../../../agent/telemetry/temperature.js';

test('the temperature is the hottest plausible thermal zone, absent without zones', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-thermal-'));
  try {
    assert.equal(temperatureReader(join(root, 'none'))(), undefined);
    for (const [zone, milli] of [
      ['thermal_zone0', '45250'],
      ['thermal_zone1', '61800'],
      ['thermal_zone2', '-273200'],
      ['thermal_zone3', 'garbage'],
    ] as const) {
      mkdirSync(join(root, zone));
      writeFileSync(join(root, zone, 'temp'), `${milli}\n`);
    }
    mkdirSync(join(root, 'cooling_device0'));
    assert.equal(temperatureReader(root)(), 61.8);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a window reports p99, the class histogram, mean confidence and labelled accuracy', () => {
  let t = 0;
  const w = new StatsWindow(() => t, { classes: 4, temperature: () => 52.5 });
  for (let i = 1; i <= 100; i++) {
    const classIndex = i % 3;
    w.record(i, { classIndex, label: String(classIndex), confidence: 0.5 }, i <= 10 ? 0 : undefined);
  }
  t = 1000;
  const s = w.close(1);
  assert.equal(s.latencyMs.p99, 99);
  assert.deepEqual(s.classCounts, [33, 34, 33, 0]);
  assert.equal(s.meanConfidence, 0.5);
  assert.deepEqual(s.accuracy, { frames: 10, correct: 3 });
  assert.equal(s.temperatureC, 52.5);
  assert.ok(StatsMessageSchema.safeParse(s).success);
  t = 2000;
  const empty = w.close(2);
  assert.deepEqual(empty.classCounts, [0, 0, 0, 0]);
  assert.equal(empty.meanConfidence, undefined);
  assert.equal(empty.accuracy, undefined);
});

test('the stats schema refuses accuracy with more correct than labelled frames', () => {
  const base = {
    v: 1,
    seq: 0,
    ts: 0,
    windowMs: 1000,
    frames: 0,
    fps: 0,
    latencyMs: { p50: 0, p95: 0, max: 0 },
    cpuPercent: 0,
    rssBytes: 0,
  };
  assert.ok(StatsMessageSchema.safeParse(base).success, 'a record of an older agent still decodes');
  assert.ok(!StatsMessageSchema.safeParse({ ...base, accuracy: { frames: 2, correct: 3 } }).success);
  assert.ok(!StatsMessageSchema.safeParse({ ...base, epoch: 'a/b' }).success);
});
