// How numbers read in the table: fixed decimals so columns do not jitter, an em dash for "no value yet".

export const NO_VALUE = '—';

/** Frames per second with one decimal: "29.8". */
export function formatFps(fps: number): string {
  return fps.toFixed(1);
}

/** Milliseconds: two decimals below 1 ms (small models on fast CPUs), one below 100 ms, whole above. */
export function formatMs(ms: number): string {
  if (ms < 1) return ms.toFixed(2);
  return ms < 100 ? ms.toFixed(1) : Math.round(ms).toString();
}

/** Percent of one core; may exceed 100 on multi-core devices. */
export function formatPercent(percent: number): string {
  return percent.toFixed(percent < 10 ? 1 : 0);
}

/** Bytes as MB (2^20 bytes, as `top` and `ps` count them). */
export function formatMegabytes(bytes: number): string {
  const mb = bytes / 1_048_576;
  return mb < 100 ? mb.toFixed(1) : Math.round(mb).toString();
}

/** A classifier's confidence, given as a probability in [0, 1]; anything else is shown as it came. */
export function formatConfidence(confidence: number): string {
  return confidence >= 0 && confidence <= 1 ? `${Math.round(confidence * 100)}%` : confidence.toFixed(2);
}

/** "3 s ago", "4 min ago", "2 h ago". Clocks of core and page may differ slightly: never negative. */
export function formatAgo(thenMs: number, nowMs: number): string {
  const seconds = Math.max(0, Math.floor((nowMs - thenMs) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}
