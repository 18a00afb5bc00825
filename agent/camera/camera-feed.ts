// The camera as the frame loop sees it: one ffmpeg camera at a time, reopened with another frame size,
// crop or colour when a deployed model wants other frames (and back again on a rollback). ffmpeg does the
// scaling, so any size the model names can be given; what a reopen cannot promise is that the source
// still opens (a V4L2 device unplugged since), which the deployment's health check sees as "no frames"
// and answers with a rollback — a reopen back to the frames of the model served before.
//
// Every frame carries the shape it was made for, so the frame loop never hands a frame made for one model
// to another: frames of the old shape still in flight during a switch are dropped there.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

import type { FrameSource } from '../../native/plan.js';
import { CameraError, type CameraOptions, FfmpegCamera, type IndexedFrame } from './ffmpeg-source.js';

/** The camera frames a model takes: size, channels and ffmpeg's side of the preprocessing (resize mode,
 * centre-crop fraction). Absent resize / cropFraction mean stretch and 1. */
export interface FrameShape {
  width: number;
  height: number;
  channels: number;
  resize?: 'stretch' | 'center-crop';
  cropFraction?: number;
  /** The frames go to the native frame loop (CameraFeed.source), not to next(). */
  nativeLoop?: boolean;
}

export function describeFrameShape(s: FrameShape): string {
  const crop = (s.resize ?? 'stretch') === 'center-crop' ? `, centre crop ${s.cropFraction ?? 1}` : '';
  return `${s.width}x${s.height}x${s.channels}${crop}`;
}

export function sameFrameShape(a: FrameShape, b: FrameShape): boolean {
  return describeFrameShape(a) === describeFrameShape(b);
}

/** The same frames, going the same way (to the native loop or to next()). */
export function sameCamera(a: FrameShape, b: FrameShape): boolean {
  return sameFrameShape(a, b) && (a.nativeLoop ?? false) === (b.nativeLoop ?? false);
}

/** A frame and the shape it was made for. */
export interface ShapedFrame extends IndexedFrame {
  shape: FrameShape;
}

/** Everything of the camera but the frame shape: source, rate, snapshots. */
export type CameraSettings = Omit<CameraOptions, 'width' | 'height' | 'channels' | 'preprocessing'>;

export function cameraOptions(settings: CameraSettings, shape: FrameShape): CameraOptions {
  if (shape.channels !== 1 && shape.channels !== 3)
    throw new CameraError(`the camera gives grey (1) or RGB (3) frames, not ${shape.channels} channels`);
  return {
    ...settings,
    width: shape.width,
    height: shape.height,
    channels: shape.channels,
    ...(shape.nativeLoop ? { nativeFrames: true } : {}),
    preprocessing:
      shape.resize === 'center-crop' ? { resize: 'center-crop', cropFraction: shape.cropFraction ?? 1 } : {},
  };
}

export class CameraFeed {
  private camera: FfmpegCamera;
  private current: FrameShape;
  /** Aborted when the camera is replaced, waking a frame loop waiting on the old one. */
  private replaced = new AbortController();
  /** The camera of the last reopen when it failed to start: the frame loop waits for the next reopen. */
  private failedCamera: FfmpegCamera | null = null;
  /** Settles when the open camera has started (or failed to). */
  private started: Promise<void> = Promise.resolve();
  /** Reopens run one after another, in the order asked. */
  private reopening: Promise<void> = Promise.resolve();
  private stopped = false;
  private paused = false;
  private pauseRecord: string | null = null;
  /** Called with each snapshot JPEG of whichever camera is open. */
  onSnapshot: ((jpeg: Buffer) => void) | null = null;
  /** Called when a camera has started giving frames (after start, and after each reopen that worked). */
  onStarted: (() => void) | null = null;
  /** Called with a native camera's frame loop right before that camera stops (replaced or stopped). */
  onSourceClosing: ((source: FrameSource) => void) | null = null;

  constructor(
    private readonly settings: CameraSettings,
    shape: FrameShape,
    private readonly log: (line: string) => void,
  ) {
    this.current = { ...shape };
    this.camera = this.make(shape);
  }

  /** The shape of the frames the open camera gives. */
  get shape(): Readonly<FrameShape> {
    return this.current;
  }

  /** Starts the first camera; rejects with a CameraError naming the source when it cannot be read.
   * A reopen asked meanwhile (a deployment resumed at start-up) waits for it. */
  start(signal?: AbortSignal): Promise<void> {
    const started = this.camera.start(signal).then(() => this.onStarted?.());
    this.reopening = started.catch(() => undefined);
    return started;
  }

  /** The open camera's native frame loop (nativeLoop shapes), null for a camera whose frames go to next()
   * or one that failed to start. */
  get source(): FrameSource | null {
    return this.camera === this.failedCamera ? null : this.camera.source;
  }

  /** Reopens the camera for frames of `shape` (nothing to do when it gives them already, unless `restart`:
   * a camera that failed on its own). Resolves when the new camera gave its first frame, or when it failed
   * to start (logged; the frame loop then waits for the next reopen rather than failing the agent). */
  reopen(shape: FrameShape, restart = false): Promise<void> {
    const want = { ...shape };
    this.reopening = this.reopening.then(() => this.replace(want, restart));
    return this.reopening;
  }

  /** The newest frame, from whichever camera is open; frames of a camera replaced meanwhile are not
   * returned. Rejects when the open camera fails on its own (not during a reopen) or when signal aborts. */
  async next(signal: AbortSignal): Promise<ShapedFrame> {
    for (;;) {
      signal.throwIfAborted();
      const camera = this.camera;
      const shape = this.current;
      const replaced = this.replaced.signal;
      // Not AbortSignal.any: on Node 20 it keeps every combined signal of a long-lived one alive.
      const wake = new AbortController();
      const onAbort = (): void => wake.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      replaced.addEventListener('abort', onAbort, { once: true });
      try {
        // A camera being started by a reopen hands its first frame to start(): wait for that first.
        await untilSettledOrAborted(this.started, wake.signal);
        if (camera !== this.camera) continue;
        if (camera === this.failedCamera) {
          // The camera of a reopen did not start: wait for the reopen that undoes it (or for the end).
          await untilSettledOrAborted(new Promise<never>(() => undefined), wake.signal);
          continue;
        }
        const frame = await camera.next(wake.signal);
        if (camera === this.camera) return { ...frame, shape };
      } catch (err) {
        if (signal.aborted) throw err;
        if (camera !== this.camera || replaced.aborted) continue;
        throw err;
      } finally {
        signal.removeEventListener('abort', onAbort);
        replaced.removeEventListener('abort', onAbort);
      }
    }
  }

  /** Pauses the open camera and any camera a reopen starts meanwhile, until resume() (FfmpegCamera.pause).
   * The paused ffmpeg's process id is written to `record` (when given) until resume(): an agent killed while
   * paused leaves it stopped, and the next agent resumes it from there (resumeLeftPaused) so it exits. */
  pause(record?: string): void {
    this.paused = true;
    this.pauseRecord = record ?? null;
    this.recordPaused(this.camera.pause());
  }

  resume(): void {
    this.paused = false;
    this.camera.resume();
    if (this.pauseRecord !== null) rmSync(this.pauseRecord, { force: true });
    this.pauseRecord = null;
  }

  private recordPaused(pid: number | null): void {
    if (pid !== null && this.pauseRecord !== null) writeFileSync(this.pauseRecord, String(pid));
  }

  stop(): void {
    this.stopped = true;
    this.closing(this.camera);
    this.camera.stop();
    this.replaced.abort();
  }

  private closing(camera: FfmpegCamera): void {
    if (camera.source) this.onSourceClosing?.(camera.source);
  }

  private make(shape: FrameShape): FfmpegCamera {
    const camera = new FfmpegCamera(cameraOptions(this.settings, shape));
    camera.onSnapshot = (jpeg) => this.onSnapshot?.(jpeg);
    return camera;
  }

  private async replace(shape: FrameShape, restart: boolean): Promise<void> {
    if (this.stopped || (!restart && sameCamera(shape, this.current) && this.failedCamera === null)) return;
    let next: FfmpegCamera;
    try {
      next = this.make(shape);
    } catch (err) {
      // A shape no camera gives (neither grey nor RGB): the open camera stays.
      this.log(`camera: cannot reopen for ${describeFrameShape(shape)} frames: ${(err as Error).message}`);
      return;
    }
    // The old ffmpeg goes first: a V4L2 device can be opened by one process at a time.
    this.closing(this.camera);
    this.camera.stop();
    this.camera = next;
    this.current = shape;
    this.failedCamera = null;
    // The failure is recorded in the same step that settles `started`, so a frame loop woken by it sees it.
    const where = `camera ${this.settings.source}`;
    const started = next.start().then(
      () => {
        this.log(`${where}: reopened for ${describeFrameShape(shape)} frames`);
        // A camera reopened during a measurement gave its first frame (start waits for it) and waits too.
        if (this.paused && this.camera === next) this.recordPaused(next.pause());
        this.onStarted?.();
      },
      (err: Error) => {
        this.log(`${where}: cannot reopen for ${describeFrameShape(shape)} frames: ${err.message}`);
        next.stop();
        this.failedCamera = next;
      },
    );
    this.started = started;
    this.replaced.abort();
    this.replaced = new AbortController();
    await started;
  }
}

/** Lets an ffmpeg that an agent killed during a measurement left paused (CameraFeed.pause's record) go on,
 * so that it sees its reader gone and exits (and frees a V4L2 device for this agent); the record goes. A
 * process id that is no longer an ffmpeg is left alone. Says what it did, when it did anything. */
export function resumeLeftPaused(record: string, log: (line: string) => void): void {
  let pid: number;
  try {
    pid = Number(readFileSync(record, 'utf8').trim());
  } catch {
    return;
  }
  rmSync(record, { force: true });
  let command = '';
  try {
    command = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return; // gone, or no /proc to tell what it is
  }
  if (!Number.isInteger(pid) || pid <= 1 || !command.startsWith('ffmpeg')) return;
  try {
    process.kill(pid, 'SIGCONT');
    log(`camera: resumed ffmpeg ${pid}, left paused by an agent stopped during a measurement`);
  } catch (err) {
    log(`camera: cannot resume ffmpeg ${pid} left paused: ${(err as Error).message}`);
  }
}

/** Resolves when p settles or signal aborts, whichever comes first. */
function untilSettledOrAborted(p: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    p.then(done, done);
  });
}
