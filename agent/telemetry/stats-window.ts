// Per-second inference statistics: frame count, latency percentiles, process CPU and memory, the
// predicted-class histogram, mean confidence and, for labelled sources, accuracy.
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

export interface StatsWindowOptions {
  /** Number of classes the model predicts; classCounts has at least this many entries. */
  classes?: number;
  /** Reads the device temperature at the end of each window; undefined when there is none. */
  temperature?: () => number | undefined;
  /** Reads the process's resident set in bytes (default process.memoryUsage.rss); 0 means unknown. */
  residentSetBytes?: () => number;
}

export class StatsWindow {
  private latencies: number[] = [];
  private classCounts: number[];
  private confidenceSum = 0;
  private labelled = 0;
  private correct = 0;
  private windowStart: number;
  private cpuStart: NodeJS.CpuUsage;
  private seq = 0;
  private lastPrediction: Prediction | undefined;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly options: StatsWindowOptions = {},
  ) {
    this.classCounts = new Array<number>(options.classes ?? 0).fill(0);
    this.windowStart = now();
    this.cpuStart = process.cpuUsage();
  }

  /** One finished frame: its latency in milliseconds, the model's answer and, when the source is
   * labelled, the frame's true class index (-1 for a class the model does not have: counted as wrong). */
  record(latencyMs: number, prediction: Prediction, trueClass?: number): void {
    this.latencies.push(latencyMs);
    this.lastPrediction = prediction;
    const k = prediction.classIndex;
    while (this.classCounts.length <= k) this.classCounts.push(0);
    this.classCounts[k]!++;
    this.confidenceSum += prediction.confidence;
    if (trueClass !== undefined) {
      this.labelled++;
      if (trueClass === k) this.correct++;
    }
  }

  /** Closes the current window, returns its record and starts the next one. */
  close(wallClockMs: number = Date.now()): StatsMessage {
    const end = this.now();
    const windowMs = Math.max(1, end - this.windowStart);
    const cpu = process.cpuUsage(this.cpuStart);
    const sorted = this.latencies.sort((a, b) => a - b);
    const temperatureC = this.options.temperature?.();
    // 0 means unknown (qemu-user reports no resident set); a live process always has resident pages.
    const rssBytes = (this.options.residentSetBytes ?? process.memoryUsage.rss)();
    const message: StatsMessage = {
      v: PROTOCOL_VERSION,
      seq: this.seq++,
      ts: wallClockMs,
      windowMs,
      frames: sorted.length,
      fps: (sorted.length * 1000) / windowMs,
      latencyMs: {
        p50: percentile(sorted, 50),
        p95: percentile(sorted, 95),
        p99: percentile(sorted, 99),
        max: sorted.at(-1) ?? 0,
      },
      cpuPercent: ((cpu.user + cpu.system) / 1000 / windowMs) * 100,
      ...(rssBytes > 0 ? { rssBytes } : {}),
      ...(temperatureC !== undefined ? { temperatureC } : {}),
      ...(this.lastPrediction ? { prediction: this.lastPrediction } : {}),
      classCounts: this.classCounts,
      ...(sorted.length > 0
        ? { meanConfidence: Math.min(1, Math.max(0, this.confidenceSum / sorted.length)) }
        : {}),
      ...(this.labelled > 0 ? { accuracy: { frames: this.labelled, correct: this.correct } } : {}),
    };
    this.latencies = [];
    this.classCounts = new Array<number>(this.classCounts.length).fill(0);
    this.confidenceSum = 0;
    this.labelled = 0;
    this.correct = 0;
    this.windowStart = end;
    this.cpuStart = process.cpuUsage();
    return message;
  }
}
