// Synthetic pictures and videos for the camera and CLI tests, from ffmpeg's built-in test sources (lavfi):
// no media file is checked in, and the pictures are the same on every machine.
import { execFileSync } from 'node:child_process';

/** Writes `path` from the lavfi source `source` (e.g. 'testsrc=size=64x48:rate=15'), with `outputArgs`
 * (duration, frame count, codec, container) before the file name; ffmpeg prints only errors. */
export function writeTestMedia(source: string, outputArgs: readonly string[], path: string): void {
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', source, ...outputArgs, path]);
}

/** A JPEG decoded by ffmpeg and scaled to width×height grey bytes (area averaging). */
export function decodeJpegGray(jpeg: Buffer, width: number, height: number): Buffer {
  return execFileSync(
    'ffmpeg',
    [
      ...['-v', 'error', '-f', 'image2pipe', '-c:v', 'mjpeg', '-i', 'pipe:0'],
      ...['-vf', `scale=${width}:${height}:flags=area`, '-pix_fmt', 'gray', '-f', 'rawvideo', 'pipe:1'],
    ],
    { input: jpeg },
  );
}
