// Builds a labelled video from the Fashion-MNIST test set: the images as consecutive 28×28 frames, encoded
// by ffmpeg, plus a sidecar of per-frame labels (agent/camera/frame-labels.ts) so an agent playing the
// video through its ordinary camera path can report live accuracy.
//   node dist/optimize/make-labelled-video.js --out /tmp/fashion.mp4 [--count 1000] [--start 0]
//     [--fps 30] [--codec h264|ffv1] [--data /usr/share/datasets/fashion-mnist]
// Writes <out> and <out>.labels.json.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { FRAME_LABELS_FORMAT, FRAME_LABELS_VERSION, type FrameLabels } from '../agent/camera/frame-labels.js';
import { rawFramesInput } from '../agent/camera/preprocess.js';
import { WhittleError } from '../native/whittle-error.js';
import { FASHION_MNIST_DIR, FASHION_MNIST_LABELS, loadFashionMnist } from './datasets/fashion-mnist.js';

export interface LabelledVideoOptions {
  out: string;
  /** Test images used, from `start`. */
  count: number;
  start?: number;
  fps?: number;
  /** h264: lossy at high quality, what cameras and streams deliver; ffv1: lossless (.mkv). */
  codec?: 'h264' | 'ffv1';
  data?: string;
  ffmpegPath?: string;
  signal?: AbortSignal;
}

export interface LabelledVideo {
  video: string;
  labelsFile: string;
  labels: FrameLabels;
}

export class LabelledVideoError extends WhittleError {
  override name = 'LabelledVideoError';
  readonly code = 'cannot-make-labelled-video';
}

export function labelsFileOf(video: string): string {
  return `${video}.labels.json`;
}

export async function makeLabelledVideo(options: LabelledVideoOptions): Promise<LabelledVideo> {
  const { out, count, start = 0, fps = 30, codec = 'h264' } = options;
  const test = loadFashionMnist('test', options.data ?? FASHION_MNIST_DIR);
  if (!Number.isInteger(count) || count < 1)
    throw new LabelledVideoError(`Expected a positive integer for count but received ${count}`);
  if (!Number.isInteger(start) || start < 0 || start + count > test.count)
    throw new LabelledVideoError(
      `Expected start + count ≤ ${test.count} test images but received start ${start}, count ${count}`,
    );
  if (!(fps > 0 && fps <= 1000))
    throw new LabelledVideoError(`Expected fps in (0, 1000] but received ${fps}`);
  const { width, height } = test;
  const frameBytes = width * height;
  const codecArgs =
    codec === 'ffv1'
      ? ['-c:v', 'ffv1', '-pix_fmt', 'gray']
      : // Every frame a new picture: intra-heavy, near-lossless quality; yuv420p plays everywhere.
        ['-c:v', 'libx264', '-preset', 'medium', '-crf', '10', '-pix_fmt', 'yuv420p'];
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-r',
    String(fps),
    ...rawFramesInput({ width, height, channels: 1 }, 'pipe:0'),
    ...codecArgs,
    out,
  ];
  const ffmpeg = options.ffmpegPath ?? 'ffmpeg';
  const child = spawn(ffmpeg, args, { stdio: ['pipe', 'ignore', 'pipe'], signal: options.signal });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (t: string) => (stderr = (stderr + t).slice(-2000)));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        new LabelledVideoError(
          err.code === 'ENOENT' ? `ffmpeg not found (${ffmpeg}); apt-get install ffmpeg` : err.message,
        ),
      ),
    );
    child.on('exit', (code, sig) =>
      code === 0
        ? resolve()
        : reject(
            new LabelledVideoError(
              `ffmpeg failed writing ${out} (${sig ?? `code ${code}`}): ${stderr.trim()}`,
            ),
          ),
    );
  });
  child.stdin.on('error', () => undefined); // reported through 'exit'
  child.stdin.end(Buffer.from(test.pixels.subarray(start * frameBytes, (start + count) * frameBytes)));
  await done;
  const labels: FrameLabels = {
    format: FRAME_LABELS_FORMAT,
    version: FRAME_LABELS_VERSION,
    video: basename(out),
    fps,
    frames: count,
    classes: [...FASHION_MNIST_LABELS],
    labels: Array.from(test.labels.subarray(start, start + count)),
    source: `fashion-mnist t10k images ${start}..${start + count - 1}`,
  };
  const labelsFile = labelsFileOf(out);
  writeFileSync(labelsFile, `${JSON.stringify(labels)}\n`);
  return { video: out, labelsFile, labels };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      count: { type: 'string', default: '10000' },
      start: { type: 'string', default: '0' },
      fps: { type: 'string', default: '30' },
      codec: { type: 'string', default: 'h264' },
      data: { type: 'string', default: FASHION_MNIST_DIR },
    },
  });
  if (values.out === undefined)
    throw new LabelledVideoError('Expected --out <video file> but received nothing');
  if (values.codec !== 'h264' && values.codec !== 'ffv1')
    throw new LabelledVideoError(`Expected h264 or ffv1 for --codec but received ${values.codec}`);
  const made = await makeLabelledVideo({
    out: values.out,
    count: Number(values.count),
    start: Number(values.start),
    fps: Number(values.fps),
    codec: values.codec,
    data: values.data,
  });
  console.log(
    `wrote ${made.video} (${made.labels.frames} frames at ${made.labels.fps} fps) and ${made.labelsFile}`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(`make-labelled-video: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  });
}
