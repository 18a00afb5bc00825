// Per-second inference statistics: frame count, latency percentiles, process CPU and memory.
import type { StatsMessage } from '../protocol/messages.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';

/** Nearest-rank percentile of an ascending array; p in [0, 100]. Empty input gives 0. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

export interface Prediction {
  classIndex: number;
  label: string;
  confidence: number;
}

export class StatsWindow {
  private latencies: number[] = [];
  private windowStart: number;
  private cpuStart: NodeJS.CpuUsage;
  private seq = 0;
  private lastPrediction: Prediction | undefined;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.windowStart = now();
    this.cpuStart = process.cpuUsage();
  }

  /** One finished frame: its latency in milliseconds and the model's answer. */
  record(latencyMs: number, prediction: Prediction): void {
    this.latencies.push(latencyMs);
    this.lastPrediction = prediction;
  }

  /** Closes the current window, returns its record and starts the next one. */
  close(wallClockMs: number = Date.now()): StatsMessage {
    const end = this.now();
    const windowMs = Math.max(1, end - this.windowStart);
    const cpu = process.cpuUsage(this.cpuStart);
    const sorted = this.latencies.sort((a, b) => a - b);
    const message: StatsMessage = {
      v: PROTOCOL_VERSION,
      seq: this.seq++,
      ts: wallClockMs,
      windowMs,
      frames: sorted.length,
      fps: (sorted.length * 1000) / windowMs,
      latencyMs: { p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted.at(-1) ?? 0 },
      cpuPercent: ((cpu.user + cpu.system) / 1000 / windowMs) * 100,
      rssBytes: process.memoryUsage.rss(),
      ...(this.lastPrediction ? { prediction: this.lastPrediction } : {}),
    };
    this.latencies = [];
    this.windowStart = end;
    this.cpuStart = process.cpuUsage();
    return message;
  }
}
