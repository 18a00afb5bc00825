// The snapshot of a labelled video is the model's own frame as a JPEG: decoded back, it is that frame.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CameraError } from '../../../agent/camera/ffmpeg-source.js';
import { encodeFrameJpeg } from '../../../agent/camera/frame-jpeg.js';
import { loadFashionMnist } from '../../../optimize/datasets/fashion-mnist.js';
import { decodeJpegGray } from '../../support/test-media.js';

function meanAbsDifference(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

test('a frame encoded as a JPEG decodes back to itself, not to another frame', async () => {
  const images = loadFashionMnist('test');
  const shape = { width: 28, height: 28, channels: 1 };
  const frames = [0, 1].map((i) => Buffer.from(images.pixels.subarray(i * 784, (i + 1) * 784)));
  for (const [i, frame] of frames.entries()) {
    const jpeg = await encodeFrameJpeg(frame, shape, 160);
    assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8]);
    const back = decodeJpegGray(jpeg, 28, 28);
    const own = meanAbsDifference(back, frame);
    const other = meanAbsDifference(back, frames[1 - i]!);
    assert.ok(
      own < 8 && own * 4 < other,
      `image ${i}: ${own.toFixed(1)} from itself, ${other.toFixed(1)} from the other`,
    );
  }
});

test('a frame of the wrong size is refused', async () => {
  await assert.rejects(
    encodeFrameJpeg(Buffer.alloc(100), { width: 28, height: 28, channels: 1 }, 160),
    (e: Error) => e instanceof CameraError && /100 bytes is not 28x28x1/.test(e.message),
  );
});
