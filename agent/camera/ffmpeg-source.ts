// Camera frames through an ffmpeg child process: a V4L2 device, a video file (looped, real time), a
// network stream, or ffmpeg's built-in test pattern. ffmpeg scales and converts, so the agent receives
// raw frames of exactly width*height*channels bytes on ffmpeg's stdout.
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export const TEST_SOURCE = 'testsrc';

export interface CameraOptions {
  /** "testsrc", a V4L2 device (/dev/videoN), a video file, or an rtsp://, http(s):// stream. */
  source: string;
  width: number;
  height: number;
  /** 1 = grey (pix_fmt gray), 3 = RGB (pix_fmt rgb24). */
  channels: 1 | 3;
  /** Frames per second asked of the test source and of looped files. */
  fps: number;
  ffmpegPath?: string;
}

export class CameraError extends Error {
  override name = 'CameraError';
}

/** Reads frames and keeps only the newest one: when inference is slower than the camera, older frames
 * are dropped, so latency never accumulates. */
export class FfmpegCamera {
  readonly frameBytes: number;
  private child: ChildProcessByStdio<null, Readable, Readable> | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private stderrTail = '';
  private stopped = false;
  /** Frames received from ffmpeg and frames overwritten before anyone took them. */
  framesReceived = 0;
  framesDropped = 0;
  private latest: Buffer | null = null;
  private waiter: (() => void) | null = null;
  private exitError: CameraError | null = null;

  constructor(private readonly options: CameraOptions) {
    this.frameBytes = options.width * options.height * options.channels;
  }

  /** Starts ffmpeg and resolves on the first frame; rejects with a message naming the source when the
   * source does not exist or ffmpeg cannot read it. */
  async start(signal?: AbortSignal): Promise<void> {
    const { source } = this.options;
    if (isLocalPath(source)) {
      try {
        await access(source, constants.R_OK);
      } catch {
        throw new CameraError(`camera source ${source} does not exist or is not readable`);
      }
    }
    const ffmpeg = this.options.ffmpegPath ?? 'ffmpeg';
    const child = spawn(ffmpeg, ffmpegArguments(this.options), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.on('data', (chunk: Buffer) => this.onData(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-2000);
    });
    const exited = new Promise<void>((resolve) => {
      child.on('error', (err: NodeJS.ErrnoException) => {
        this.exitError = new CameraError(
          err.code === 'ENOENT'
            ? `ffmpeg not found (${ffmpeg}); install it, e.g. apt-get install ffmpeg`
            : `cannot start ffmpeg for camera source ${source}: ${err.message}`,
        );
        resolve();
      });
      child.on('exit', (code, sig) => {
        if (!this.stopped && !this.exitError) {
          const last = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
          this.exitError = new CameraError(
            `camera source ${source}: ffmpeg exited (${sig ?? `code ${code}`})${last ? `: ${last}` : ''}`,
          );
        }
        resolve();
      });
    });
    const first = this.nextFrame(signal);
    await Promise.race([
      first,
      exited.then(() => Promise.reject(this.exitError ?? new CameraError('camera stopped'))),
    ]);
  }

  /** Resolves with the newest frame not yet taken; waits for one if none. The buffer is the caller's. */
  async nextFrame(signal?: AbortSignal): Promise<Buffer> {
    for (;;) {
      if (this.exitError) throw this.exitError;
      if (this.stopped) throw new CameraError('camera stopped');
      signal?.throwIfAborted();
      const frame = this.latest;
      if (frame) {
        this.latest = null;
        return frame;
      }
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        signal?.addEventListener('abort', onAbort, { once: true });
        this.waiter = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
      });
    }
  }

  stop(): void {
    this.stopped = true;
    this.child?.kill('SIGTERM');
    this.child = null;
    this.wake();
  }

  private onData(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < this.frameBytes) return;
    const all = Buffer.concat(this.pending, this.pendingBytes);
    const whole = Math.floor(all.length / this.frameBytes);
    this.framesReceived += whole;
    this.framesDropped += whole - 1 + (this.latest ? 1 : 0);
    const start = (whole - 1) * this.frameBytes;
    this.latest = Buffer.from(all.subarray(start, start + this.frameBytes));
    const rest = all.subarray(whole * this.frameBytes);
    this.pending = rest.length ? [Buffer.from(rest)] : [];
    this.pendingBytes = rest.length;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Set once ffmpeg has exited on its own; the daemon reports it and stops. */
  get failure(): CameraError | null {
    return this.exitError;
  }
}

function isLocalPath(source: string): boolean {
  return source !== TEST_SOURCE && !/^[a-z][a-z0-9+.-]*:\/\//i.test(source);
}

export function ffmpegArguments(o: CameraOptions): string[] {
  const input: string[] =
    o.source === TEST_SOURCE
      ? ['-re', '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${o.fps}`]
      : o.source.startsWith('/dev/video')
        ? ['-f', 'v4l2', '-i', o.source]
        : isLocalPath(o.source)
          ? ['-re', '-stream_loop', '-1', '-i', o.source]
          : ['-i', o.source];
  const pixFmt = o.channels === 1 ? 'gray' : 'rgb24';
  return [
    '-hide_banner',
    '-loglevel',
    'error',
    '-nostdin',
    ...input,
    '-an',
    '-vf',
    `scale=${o.width}:${o.height},format=${pixFmt}`,
    '-f',
    'rawvideo',
    '-pix_fmt',
    pixFmt,
    'pipe:1',
  ];
}
