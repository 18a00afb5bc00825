// How an accuracy count reads, the same in the terminal and the UI: "90.4 % over 1,000 frames". Plain
// functions without zod, so the renderer bundles them.
import type { DeviceAccuracy } from './contract.js';

type AccuracyCount = DeviceAccuracy['window'];

/** Percent of labelled frames classified right; null without labelled frames (no figure, not 0 %). */
export function accuracyPercent(count: Pick<AccuracyCount, 'frames' | 'correct'>): number | null {
  return count.frames > 0 ? (count.correct / count.frames) * 100 : null;
}

/** Thousands separated by commas, whatever the locale: "12,345". */
export function formatCount(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** "90.4 %" with one decimal; an em dash without labelled frames. */
export function formatAccuracyPercent(count: Pick<AccuracyCount, 'frames' | 'correct'>): string {
  const percent = accuracyPercent(count);
  return percent === null ? '—' : `${percent.toFixed(1)} %`;
}

/** "90.4 % over 1,000 frames". */
export function formatAccuracy(count: Pick<AccuracyCount, 'frames' | 'correct'>): string {
  return `${formatAccuracyPercent(count)} over ${formatCount(count.frames)} frames`;
}
