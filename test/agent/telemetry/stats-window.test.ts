import assert from 'node:assert/strict';
import { test } from 'node:test';

import { percentile, StatsWindow } from '../../../agent/telemetry/stats-window.js';

test('percentile is nearest-rank', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 95), 95);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile([7], 95), 7);
  assert.equal(percentile([], 50), 0);
});

test('a window reports frames, fps and latency percentiles, then starts over', () => {
  let t = 0;
  const w = new StatsWindow(() => t);
  for (let i = 1; i <= 20; i++) w.record(i, { classIndex: 1, label: 'Trouser', confidence: 0.9 });
  t = 500;
  const s = w.close(1234);
  assert.equal(s.frames, 20);
  assert.equal(s.fps, 40);
  assert.equal(s.latencyMs.p50, 10);
  assert.equal(s.latencyMs.p95, 19);
  assert.equal(s.latencyMs.max, 20);
  assert.equal(s.seq, 0);
  assert.equal(s.ts, 1234);
  assert.equal(s.prediction?.label, 'Trouser');
  t = 1500;
  const next = w.close();
  assert.equal(next.seq, 1);
  assert.equal(next.frames, 0);
  assert.equal(next.fps, 0);
});

test('a resident set that reads 0 (qemu-user) is sent as unknown, not as 0', () => {
  const emulated = new StatsWindow(() => 0, { residentSetBytes: () => 0 }).close();
  assert.equal('rssBytes' in emulated, false);
  const native = new StatsWindow(() => 0, { residentSetBytes: () => 50e6 }).close();
  assert.equal(native.rssBytes, 50e6);
  assert.ok((new StatsWindow().close().rssBytes ?? 0) > 0, 'this process has a resident set');
});
