import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { DeviceView } from '../../electron/api/contract.js';
import { formatDeviceLine } from '../../electron/terminal-stats.js';

const at = new Date(2026, 10, 25, 14, 3, 2);

// An online device whose last stats cover 30 frames in a 1 s window at 30 fps and 5% CPU, but for `stats`.
function onlineDevice(id: string, stats: Partial<NonNullable<DeviceView['stats']>>): DeviceView {
  return {
    id,
    online: true,
    info: null,
    lastSeen: 0,
    stats: {
      v: 1,
      seq: 0,
      ts: 0,
      windowMs: 1000,
      frames: 30,
      fps: 30,
      cpuPercent: 5,
      latencyMs: { p50: 0, p95: 0, max: 0 },
      ...stats,
    },
  };
}

test('an online device with stats prints fps, latency, cpu, rss and the prediction', () => {
  const d = onlineDevice('pi-1', {
    seq: 3,
    fps: 29.96,
    latencyMs: { p50: 0.0651, p95: 0.13, max: 0.2 },
    cpuPercent: 2.4,
    rssBytes: 86 * 2 ** 20,
    prediction: { classIndex: 8, label: 'Bag', confidence: 0.994 },
  });
  assert.equal(
    formatDeviceLine(d, at),
    '14:03:02  pi-1   30.0 fps  latency p50 0.065 ms p95 0.130 ms  cpu   2%  rss 86 MB  -> Bag (99%)',
  );
});

test('a device whose memory is unknown (emulated) says so instead of printing 0', () => {
  const d = onlineDevice('emu-rpi4', { latencyMs: { p50: 3.2, p95: 4, max: 9 } });
  assert.match(formatDeviceLine(d, at), /cpu {3}5% {2}rss unknown$/);
});

test('offline and stat-less devices say so', () => {
  const base = { id: 'pi-2', info: null, lastSeen: null, stats: null };
  assert.equal(formatDeviceLine({ ...base, online: false }, at), '14:03:02  pi-2  offline');
  assert.equal(formatDeviceLine({ ...base, online: true }, at), '14:03:02  pi-2  online, waiting for stats');
});

test('a labelled device prints its windowed and running accuracy, each labelled; an unlabelled one none', () => {
  const d: DeviceView = {
    ...onlineDevice('pi-3', { seq: 9, latencyMs: { p50: 0.1, p95: 0.2, max: 0.3 }, rssBytes: 80 * 2 ** 20 }),
    accuracy: {
      window: { frames: 1000, correct: 904, seconds: 30 },
      running: { frames: 12_345, correct: 11_138, since: 0 },
    },
  };
  assert.match(
    formatDeviceLine(d, at),
    /rss 80 MB {2}acc 90\.4 % over 1,000 frames \(last 30 s\), running 90\.2 % over 12,345 frames$/,
  );
  const unlabelled: DeviceView = { id: d.id, online: true, info: null, lastSeen: 0, stats: d.stats };
  assert.doesNotMatch(formatDeviceLine(unlabelled, at), / acc /);
});
