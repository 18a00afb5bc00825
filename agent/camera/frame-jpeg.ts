// A JPEG of one frame exactly as the model received it. A labelled video's snapshot is made from it, so the
// picture, the prediction and the true label are of the same frame: the camera's own snapshot branch
// (ffmpeg-source.ts, fd 3) reaches the agent through another pipe than the model's frames, a few frames
// apart, and consecutive frames of a labelled video are unrelated pictures.
import { spawn } from 'node:child_process';

import { CameraError } from './ffmpeg-source.js';
import { rawFramesInput } from './preprocess.js';

/** Most time one encode may take, ms: a tiny picture; a hung ffmpeg is ended. */
const ENCODE_TIMEOUT_MS = 5000;

/** Encodes a raw frame (width×height×channels bytes, grey or interleaved RGB, as the camera delivers the
 * model's frames) as a baseline JPEG `outWidth` pixels wide, scaled without smoothing so the model's pixels
 * stay visible. */
export function encodeFrameJpeg(
  frame: Buffer,
  shape: { width: number; height: number; channels: number },
  outWidth: number,
  ffmpegPath = 'ffmpeg',
): Promise<Buffer> {
  const { channels } = shape;
  if ((channels !== 1 && channels !== 3) || frame.length !== shape.width * shape.height * channels)
    return Promise.reject(
      new CameraError(
        `frame of ${frame.length} bytes is not ${shape.width}x${shape.height}x${shape.channels}`,
      ),
    );
  const args = [
    ...['-hide_banner', '-loglevel', 'error', '-nostdin'],
    ...rawFramesInput({ ...shape, channels }, 'pipe:0'),
    ...['-vf', `scale=${outWidth}:-2:flags=neighbor,format=yuvj420p`, '-frames:v', '1'],
    ...['-c:v', 'mjpeg', '-q:v', '3', '-f', 'image2pipe', 'pipe:1'],
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpegPath, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: ENCODE_TIMEOUT_MS });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (t: string) => (stderr = (stderr + t).slice(-500)));
    child.on('error', (err) =>
      reject(new CameraError(`cannot encode a snapshot with ${ffmpegPath}: ${err.message}`)),
    );
    child.on('exit', (code, signal) => {
      const jpeg = Buffer.concat(out);
      if (code === 0 && jpeg.length > 2 && jpeg[0] === 0xff && jpeg[1] === 0xd8) resolve(jpeg);
      else
        reject(
          new CameraError(`cannot encode a snapshot (${signal ?? `ffmpeg code ${code}`}): ${stderr.trim()}`),
        );
    });
    child.stdin.on('error', () => undefined); // reported through 'exit'
    child.stdin.end(frame);
  });
}
