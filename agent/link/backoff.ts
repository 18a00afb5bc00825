// Exponential backoff with full jitter, for reconnects and retries.
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Random source in [0, 1); injectable so tests are deterministic. */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly options: BackoffOptions) {}

  /** The delay before the next attempt: between half and all of min(max, initial * 2^attempt). */
  next(): number {
    const { initialMs, maxMs, random = Math.random } = this.options;
    const ceiling = Math.min(maxMs, initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(ceiling / 2 + (random() * ceiling) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
