// Resumable HTTP(S) download of a model file into a .part file: a Range request continues where an
// earlier attempt (or an agent that was killed) stopped. Bounded time-outs (for the response and between
// chunks), a bounded size, and retries with exponential backoff; a 4xx other than 408/429 is final.
import { closeSync, fsyncSync, ftruncateSync, openSync, statSync, writeSync } from 'node:fs';
import type { ReadableStream } from 'node:stream/web';

import { WhittleError } from '../../native/whittle-error.js';
import { Backoff } from '../link/backoff.js';
import { DeployError } from './errors.js';

export interface DownloadOptions {
  url: string;
  /** The .part file; appended to, created when missing. */
  dest: string;
  /** The size the file must have; more is refused, less is retried. */
  expectedBytes: number;
  signal?: AbortSignal;
  /** Longest wait for the response headers, ms. Default 10000. */
  responseTimeoutMs?: number;
  /** Longest wait between two chunks of the body, ms. Default 15000. */
  idleTimeoutMs?: number;
  /** Attempts after the first. Default 5. */
  retries?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** fsync the .part file every this many bytes, so a resumed download does not re-fetch much. */
  syncEveryBytes?: number;
  onProgress?: (bytes: number) => void;
  log?: (line: string) => void;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function truncate(path: string, length: number): void {
  const fd = openSync(path, 'a+');
  try {
    ftruncateSync(fd, length);
  } finally {
    closeSync(fd);
  }
}

/** A failure the download retries after a backoff (a dropped connection, a refused range). */
class RetryableError extends WhittleError {
  override readonly name = 'RetryableError';
  readonly code = 'download-interrupted';
}

/** Resolves when dest holds exactly expectedBytes; rejects with DeployError otherwise. */
export async function downloadResumable(options: DownloadOptions): Promise<void> {
  const { url, dest, expectedBytes, signal } = options;
  const retries = options.retries ?? 5;
  const backoff = new Backoff({
    initialMs: options.backoffInitialMs ?? 500,
    maxMs: options.backoffMaxMs ?? 10_000,
  });
  let lastError = '';
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw new DeployError('aborted', `download of ${url} aborted`);
    let have = sizeOf(dest);
    if (have > expectedBytes) {
      truncate(dest, 0);
      have = 0;
    }
    if (have === expectedBytes) return;
    try {
      await fetchOnce(options, have);
      const got = sizeOf(dest);
      if (got === expectedBytes) return;
      throw new RetryableError(`the server closed the connection at ${got} of ${expectedBytes} bytes`);
    } catch (err) {
      if (signal?.aborted) throw new DeployError('aborted', `download of ${url} aborted`);
      if (err instanceof DeployError) throw err;
      lastError = (err as Error).message;
    }
    if (attempt >= retries) {
      const got = sizeOf(dest);
      throw new DeployError(
        got > 0 && got < expectedBytes ? 'truncated' : 'download-failed',
        `download of ${url} failed after ${attempt + 1} attempts (${got} of ${expectedBytes} bytes): ${lastError}`,
      );
    }
    const delay = backoff.next();
    options.log?.(`download of ${url}: ${lastError}; retrying in ${(delay / 1000).toFixed(1)} s`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delay);
      signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }
}

async function fetchOnce(options: DownloadOptions, have: number): Promise<void> {
  const { url, dest, expectedBytes } = options;
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let timeoutReason = '';
  let timer = setTimeout(() => {
    timeoutReason = `no response within ${options.responseTimeoutMs ?? 10_000} ms`;
    controller.abort();
  }, options.responseTimeoutMs ?? 10_000);
  const idle = options.idleTimeoutMs ?? 15_000;
  let fd: number | null = null;
  try {
    let res: Response;
    try {
      res = await fetch(url, {
        headers: have > 0 ? { range: `bytes=${have}-` } : {},
        signal: controller.signal,
      });
    } catch (err) {
      throw new RetryableError(timeoutReason || `cannot fetch: ${(err as Error).message}`);
    }
    if (res.status === 416) {
      const size = Number(/^bytes \*\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1] ?? NaN);
      if (Number.isFinite(size) && size < expectedBytes)
        throw new DeployError('truncated', `${url} has ${size} bytes; the target says ${expectedBytes}`);
      truncate(dest, 0);
      throw new RetryableError('the server refused the resume range; starting over');
    }
    if (res.status >= 400) {
      const final = res.status < 500 && res.status !== 408 && res.status !== 429;
      await res.body?.cancel();
      const message = `HTTP ${res.status} ${res.statusText} from ${url}`;
      if (final) throw new DeployError('download-failed', message);
      throw new RetryableError(message);
    }
    let offset = have;
    if (res.status === 206) {
      const start = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1];
      if (Number(start) !== have) {
        await res.body?.cancel();
        truncate(dest, 0);
        throw new RetryableError(
          `the server resumed at byte ${start ?? '?'} instead of ${have}; starting over`,
        );
      }
    } else {
      offset = 0;
      truncate(dest, 0);
    }
    const length = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(length) && offset + length > expectedBytes) {
      await res.body?.cancel();
      throw new DeployError(
        'too-large',
        `${url} is ${offset + length} bytes; the target says ${expectedBytes}`,
      );
    }
    if (!res.body) throw new RetryableError('the response has no body');
    fd = openSync(dest, 'a', 0o600);
    const syncEvery = options.syncEveryBytes ?? 1 << 20;
    let sinceSync = 0;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timeoutReason = `no data for ${idle} ms`;
        controller.abort();
      }, idle);
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw new RetryableError(timeoutReason || `connection lost: ${(err as Error).message}`);
      }
      if (chunk.done) break;
      const bytes = chunk.value;
      if (offset + bytes.length > expectedBytes) {
        await reader.cancel();
        throw new DeployError(
          'too-large',
          `${url} sends more than the ${expectedBytes} bytes the target says`,
        );
      }
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      offset += bytes.length;
      sinceSync += bytes.length;
      if (sinceSync >= syncEvery) {
        fsyncSync(fd);
        sinceSync = 0;
      }
      options.onProgress?.(offset);
    }
    fsyncSync(fd);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    if (fd !== null) closeSync(fd);
  }
}
