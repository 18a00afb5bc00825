// The demo's camera: the 10,000 Fashion-MNIST test images as a labelled video (optimize/make-labelled-video.ts),
// made once and cached under the manager's data directory (never in the repository), played looped through
// the agent's ordinary ffmpeg camera path with its per-frame labels, so the demo's model is shown answering
// something it was made for, and its live accuracy can be checked against ground truth.
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { FrameLabelsError, readFrameLabels } from '../agent/camera/frame-labels.js';
import { FASHION_MNIST_DIR } from '../optimize/datasets/fashion-mnist.js';
import { labelsFileOf, makeLabelledVideo } from '../optimize/make-labelled-video.js';

/** The --camera value of the demo's labelled video (the default). */
export const LABELLED_DEMO_CAMERA = 'labelled';

/** Every image of the Fashion-MNIST test set: a full pass measures the model's recorded test accuracy. */
export const DEMO_VIDEO_FRAMES = 10_000;

/** The rate the demo plays its video at, frames per second. */
export const DEMO_VIDEO_FPS = 30;

export interface DemoVideo {
  video: string;
  labelsFile: string;
  frames: number;
  fps: number;
  /** True when this call made it (the first demo on this data directory), false when it was cached. */
  made: boolean;
}

export interface DemoVideoOptions {
  dataDir: string;
  /** Frames per second the video plays at (default DEMO_VIDEO_FPS); each rate is cached on its own. */
  fps?: number;
  /** Where the Fashion-MNIST IDX files are (the Debian package's directory by default). */
  data?: string;
  signal?: AbortSignal;
}

/** The cached labelled video, made first if it is missing or its sidecar is not the one this version makes.
 * Made in a private directory and renamed into place, video first and sidecar last, so a demo stopped while
 * making it leaves no half-written file that a later one would take as the cache. */
export async function demoVideo(options: DemoVideoOptions): Promise<DemoVideo> {
  const fps = options.fps ?? DEMO_VIDEO_FPS;
  const dir = join(options.dataDir, 'demo-video');
  const video = join(dir, `fashion-mnist-test-${fps}fps.mp4`);
  const labelsFile = labelsFileOf(video);
  if (existsSync(video) && cachedVideoIsWhole(labelsFile, fps))
    return { video, labelsFile, frames: DEMO_VIDEO_FRAMES, fps, made: false };
  mkdirSync(dir, { recursive: true });
  const making = mkdtempSync(join(dir, '.making-'));
  try {
    const made = await makeLabelledVideo({
      out: join(making, `fashion-mnist-test-${fps}fps.mp4`),
      count: DEMO_VIDEO_FRAMES,
      fps,
      codec: 'h264',
      data: options.data ?? FASHION_MNIST_DIR,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    renameSync(made.video, video);
    renameSync(made.labelsFile, labelsFile);
  } finally {
    rmSync(making, { recursive: true, force: true });
  }
  return { video, labelsFile, frames: DEMO_VIDEO_FRAMES, fps, made: true };
}

/** The sidecar is there, decodes, and describes the video this module makes (the video is renamed into
 * place before it, so a sidecar means a whole video). */
function cachedVideoIsWhole(labelsFile: string, fps: number): boolean {
  try {
    const labels = readFrameLabels(labelsFile);
    return labels.frames === DEMO_VIDEO_FRAMES && labels.fps === fps;
  } catch (err) {
    if (err instanceof FrameLabelsError) return false;
    throw err;
  }
}
