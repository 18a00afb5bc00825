// One line per device per second in the terminal: the same numbers the UI shows.
import { formatAccuracy } from './api/accuracy-figures.js';
import type { DeviceView } from './api/contract.js';

export function formatDeviceLine(d: DeviceView, now: Date = new Date()): string {
  const time = now.toTimeString().slice(0, 8);
  if (!d.online) return `${time}  ${d.id}  offline`;
  const s = d.stats;
  if (!s) return `${time}  ${d.id}  online, waiting for stats`;
  const prediction = s.prediction
    ? `  -> ${s.prediction.label} (${Math.round(s.prediction.confidence * 100)}%)`
    : '';
  // Only a labelled camera has ground truth: without it the line has no accuracy at all.
  const accuracy = d.accuracy
    ? `  acc ${formatAccuracy(d.accuracy.window)} (last ${d.accuracy.window.seconds} s),` +
      ` running ${formatAccuracy(d.accuracy.running)}`
    : '';
  return (
    `${time}  ${d.id}  ${s.fps.toFixed(1).padStart(5)} fps` +
    `  latency p50 ${s.latencyMs.p50.toFixed(3)} ms p95 ${s.latencyMs.p95.toFixed(3)} ms` +
    `  cpu ${s.cpuPercent.toFixed(0).padStart(3)}%  rss ${s.rssBytes === undefined ? 'unknown' : `${(s.rssBytes / 2 ** 20).toFixed(0)} MB`}${prediction}${accuracy}`
  );
}
