// Camera frames through an ffmpeg child process: a V4L2 device, a video file (looped, real time), an
// RTSP or HTTP stream, or ffmpeg's built-in test pattern. ffmpeg scales, crops and converts (the filter
// of preprocess.ts), so the agent receives raw frames of exactly width*height*channels bytes on ffmpeg's
// stdout. Optionally the same decode also yields a small JPEG every N seconds on a third pipe (fd 3),
// for the UI's snapshot.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import type { Readable } from 'node:stream';

import { createFramePipe, FrameSource } from '../../native/plan.js';
import { WhittleError } from '../../native/whittle-error.js';
import { ffmpegFilter, type ImagePreprocessing, pixelFormat } from './preprocess.js';

export const TEST_SOURCE = 'testsrc';

export interface CameraOptions {
  /** "testsrc", a V4L2 device (/dev/videoN), a video file, or an rtsp://, http(s):// stream. */
  source: string;
  width: number;
  height: number;
  /** 1 = grey (pix_fmt gray), 3 = RGB (pix_fmt rgb24). */
  channels: 1 | 3;
  /** Frames per second asked of the test source. */
  fps: number;
  /** Resize mode, crop and layout from the model's manifest; width/height/channels above win. */
  preprocessing?: Partial<ImagePreprocessing>;
  /** A JPEG of the camera view every `everySeconds`, `width` pixels wide; off when absent. */
  snapshot?: { everySeconds: number; width: number };
  /** Network streams: give up on a stalled stream after this long, ms. Default 10000. */
  streamTimeoutMs?: number;
  ffmpegPath?: string;
  /** The frames go to a FrameSource (the native frame loop, `source`) on ffmpeg's stdout pipe instead of
   * JavaScript: next() then gives no frames, only the camera's failure. */
  nativeFrames?: boolean;
}

/** A frame with its position in the source: index counts every frame ffmpeg delivered since start
 * (dropped ones included), so for a looped labelled video index % frames is the video frame. */
export interface IndexedFrame {
  frame: Buffer;
  index: number;
  /** performance.now() when the frame arrived from ffmpeg. */
  receivedAt: number;
}

/** Largest JPEG accepted on the snapshot pipe; a bigger one means the stream is not what we asked. */
const MAX_SNAPSHOT_BYTES = 512 * 1024;

export class CameraError extends WhittleError {
  override name = 'CameraError';
  readonly code = 'camera-failed';
}

/** Reads frames and keeps only the newest one: when inference is slower than the camera, older frames
 * are dropped, so latency never accumulates. */
export class FfmpegCamera {
  readonly frameBytes: number;
  private child: ChildProcess | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private stderrTail = '';
  private stopped = false;
  private paused = false;
  /** Frames received from ffmpeg and frames overwritten before anyone took them. */
  framesReceived = 0;
  framesDropped = 0;
  private latest: IndexedFrame | null = null;
  private jpegPending: Buffer = Buffer.alloc(0);
  /** Called with each snapshot JPEG (SOI..EOI). */
  onSnapshot: ((jpeg: Buffer) => void) | null = null;
  private waiter: (() => void) | null = null;
  private exitError: CameraError | null = null;
  /** The native frame loop reading ffmpeg's stdout (options.nativeFrames), from start() on. */
  source: FrameSource | null = null;

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
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
    if (this.options.snapshot) stdio.push('pipe');
    let writeFd: number | undefined;
    if (this.options.nativeFrames) {
      // ffmpeg writes into a pipe of our own, read by the loop's thread; our copy of the write end is closed
      // once ffmpeg has its own, so the loop sees the end of the stream when ffmpeg exits.
      const [readFd, write] = createFramePipe();
      writeFd = write;
      try {
        this.source = new FrameSource(readFd, this.frameBytes);
      } catch (err) {
        closeSync(writeFd);
        throw err;
      }
      stdio[1] = writeFd;
    }
    let child: ChildProcess;
    try {
      child = spawn(ffmpeg, ffmpegArguments(this.options), { stdio });
    } finally {
      if (writeFd !== undefined) closeSync(writeFd);
    }
    this.child = child;
    child.stdout?.on('data', (chunk: Buffer) => this.onData(chunk));
    (child.stdio[3] as Readable | undefined)?.on('data', (chunk: Buffer) => this.onJpegData(chunk));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
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
        this.wake();
        resolve();
      });
    });
    const first = this.source ? this.firstNativeFrame(this.source, signal) : this.nextFrame(signal);
    await Promise.race([
      first,
      exited.then(() => Promise.reject(this.exitError ?? new CameraError('camera stopped'))),
    ]);
  }

  /** Resolves with the newest frame not yet taken; waits for one if none. The buffer is the caller's. */
  async nextFrame(signal?: AbortSignal): Promise<Buffer> {
    return (await this.next(signal)).frame;
  }

  /** Like nextFrame, with the frame's index in the source and its arrival time. */
  async next(signal?: AbortSignal): Promise<IndexedFrame> {
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

  /** Suspends ffmpeg (SIGSTOP): no frame arrives, and neither the camera nor the frame loop uses the CPU,
   * until resume(). A measurement on the device pauses the camera so that it has the CPU to itself. Returns
   * the paused process's id (null when there is none). */
  pause(): number | null {
    if (this.child === null) return null;
    if (!this.paused) this.paused = this.child.kill('SIGSTOP');
    return this.paused ? (this.child.pid ?? null) : null;
  }

  /** Lets a paused ffmpeg go on (SIGCONT). */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.child?.kill('SIGCONT');
  }

  stop(): void {
    this.stopped = true;
    this.child?.kill('SIGTERM');
    // A stopped process acts on SIGTERM only once it runs again.
    this.resume();
    this.child = null;
    this.source?.stop();
    this.wake();
  }

  /** Resolves once the native frame loop has read a frame (polled: this is start-up only). */
  private async firstNativeFrame(source: FrameSource, signal?: AbortSignal): Promise<void> {
    while (source.status.received === 0) {
      if (this.exitError) throw this.exitError;
      if (this.stopped) throw new CameraError('camera stopped');
      signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, 5));
    }
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
    this.latest = {
      frame: Buffer.from(all.subarray(start, start + this.frameBytes)),
      index: this.framesReceived - 1,
      receivedAt: performance.now(),
    };
    const rest = all.subarray(whole * this.frameBytes);
    this.pending = rest.length ? [Buffer.from(rest)] : [];
    this.pendingBytes = rest.length;
    this.wake();
  }

  /** Splits the MJPEG stream at end-of-image markers: inside entropy-coded data a 0xFF byte is always
   * followed by 0x00 or a restart marker, so 0xFF 0xD9 occurs only at the end of an image. */
  private onJpegData(chunk: Buffer): void {
    let buf = this.jpegPending.length ? Buffer.concat([this.jpegPending, chunk]) : chunk;
    for (;;) {
      const start = buf.indexOf(SOI);
      if (start < 0) {
        buf = Buffer.alloc(0);
        break;
      }
      const end = buf.indexOf(EOI, start + 2);
      if (end < 0) {
        buf = buf.subarray(start);
        if (buf.length > MAX_SNAPSHOT_BYTES) buf = Buffer.alloc(0);
        break;
      }
      const jpeg = Buffer.from(buf.subarray(start, end + 2));
      buf = buf.subarray(end + 2);
      this.onSnapshot?.(jpeg);
    }
    this.jpegPending = Buffer.from(buf);
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

const SOI = Buffer.from([0xff, 0xd8]);
const EOI = Buffer.from([0xff, 0xd9]);

export type SourceKind = 'testsrc' | 'v4l2' | 'file' | 'rtsp' | 'http';

/** What kind of source a camera string names; throws CameraError for a URL scheme ffmpeg is not asked
 * to read (only rtsp, rtsps, http, https). */
export function sourceKind(source: string): SourceKind {
  if (source === TEST_SOURCE) return 'testsrc';
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(source)?.[1]?.toLowerCase();
  if (scheme === undefined) return source.startsWith('/dev/video') ? 'v4l2' : 'file';
  if (scheme === 'rtsp' || scheme === 'rtsps') return 'rtsp';
  if (scheme === 'http' || scheme === 'https') return 'http';
  throw new CameraError(
    `camera source ${source}: unsupported scheme ${scheme}:// (expected rtsp://, rtsps://, http:// or https://)`,
  );
}

function isLocalPath(source: string): boolean {
  const kind = sourceKind(source);
  return kind === 'file' || kind === 'v4l2';
}

export function ffmpegArguments(o: CameraOptions): string[] {
  const kind = sourceKind(o.source);
  const timeoutUs = String((o.streamTimeoutMs ?? 10_000) * 1000);
  // Streams: no input buffering (latency), TCP for RTSP (no smeared frames from lost UDP packets), and
  // an I/O time-out so a stalled stream ends ffmpeg instead of freezing the agent.
  const lowDelay = ['-fflags', 'nobuffer', '-flags', 'low_delay'];
  const input: string[] = {
    testsrc: ['-re', '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${o.fps}`],
    v4l2: ['-f', 'v4l2', '-i', o.source],
    file: ['-re', '-stream_loop', '-1', '-i', o.source],
    rtsp: [...lowDelay, '-rtsp_transport', 'tcp', '-timeout', timeoutUs, '-i', o.source],
    http: [...lowDelay, '-rw_timeout', timeoutUs, '-i', o.source],
  }[kind];
  const pre: ImagePreprocessing = {
    mean: [0],
    std: [1],
    ...o.preprocessing,
    width: o.width,
    height: o.height,
    channels: o.channels,
  };
  const pixFmt = pixelFormat(pre);
  // Every decoded frame, none duplicated or dropped by ffmpeg: the frame index must match the source's.
  const model = ['-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', pixFmt, 'pipe:1'];
  const head = ['-hide_banner', '-loglevel', 'error', '-nostdin', ...input, '-an'];
  if (!o.snapshot) return [...head, '-vf', ffmpegFilter(pre), ...model];
  const { everySeconds, width } = o.snapshot;
  const graph =
    `[0:v]split=2[m][s];[m]${ffmpegFilter(pre)}[mo];` +
    `[s]fps=1/${everySeconds},scale=${width}:-2,format=yuvj420p[so]`;
  return [
    ...head,
    '-filter_complex',
    graph,
    '-map',
    '[mo]',
    ...model,
    '-map',
    '[so]',
    '-c:v',
    'mjpeg',
    '-q:v',
    '7',
    '-f',
    'image2pipe',
    'pipe:3',
  ];
}
