// Integration: the camera feed through the real ffmpeg — reopening for other frames, frames tagged with
// the shape they were made for, and a reopen that fails waiting for the one that undoes it.
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { CameraFeed, cameraOptions, sameFrameShape } from '../../../agent/camera/camera-feed.js';
import { CameraError } from '../../../agent/camera/ffmpeg-source.js';
import { writeTestMedia } from '../../support/test-media.js';

let dir: string;
let video: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'whittle-feed-'));
  video = join(dir, 'clip.mp4');
  writeTestMedia('testsrc=size=64x48:rate=15', ['-t', '2', '-pix_fmt', 'yuv420p'], video);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('reopening gives frames of the new shape, each tagged with the shape it was made for', async () => {
  const lines: string[] = [];
  const feed = new CameraFeed({ source: video, fps: 15 }, { width: 28, height: 28, channels: 1 }, (l) =>
    lines.push(l),
  );
  const ac = new AbortController();
  try {
    await feed.start(ac.signal);
    const first = await feed.next(ac.signal);
    assert.equal(first.frame.length, 28 * 28);
    // The frame loop keeps waiting for frames while the reopen runs.
    const rgb = { width: 32, height: 16, channels: 3, resize: 'center-crop' as const, cropFraction: 0.5 };
    const reopened = feed.reopen(rgb);
    let frame = await feed.next(ac.signal);
    while (!sameFrameShape(frame.shape, rgb)) frame = await feed.next(ac.signal);
    await reopened;
    assert.equal(frame.frame.length, 32 * 16 * 3);
    assert.deepEqual(feed.shape, rgb);
    assert.ok(
      lines.some((l) => l.includes('reopened for 32x16x3, centre crop 0.5 frames')),
      lines.join('\n'),
    );
    // Asking for the shape it gives already does not restart ffmpeg.
    const count = lines.length;
    await feed.reopen({ ...rgb });
    assert.equal(lines.length, count);
  } finally {
    ac.abort();
    feed.stop();
  }
});

test('a reopen that fails does not fail the frame loop; the next reopen brings frames back', async () => {
  const lines: string[] = [];
  const feed = new CameraFeed({ source: video, fps: 15 }, { width: 28, height: 28, channels: 1 }, (l) =>
    lines.push(l),
  );
  const ac = new AbortController();
  const hidden = `${video}.away`;
  try {
    await feed.start(ac.signal);
    await feed.next(ac.signal);
    // The source disappears (a camera unplugged): ffmpeg running on it keeps its open file, a new one fails.
    renameSync(video, hidden);
    await feed.reopen({ width: 14, height: 56, channels: 1 });
    assert.ok(
      lines.some((l) => /cannot reopen for 14x56x1 frames: .*does not exist/.test(l)),
      lines.join('\n'),
    );
    let waiting = true;
    const pending = feed.next(ac.signal).finally(() => (waiting = false));
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(waiting, 'the frame loop waits instead of failing');
    renameSync(hidden, video);
    await feed.reopen({ width: 28, height: 28, channels: 1 });
    const frame = await pending;
    assert.deepEqual(frame.shape, { width: 28, height: 28, channels: 1 });
    assert.equal(frame.frame.length, 784);
  } finally {
    ac.abort();
    feed.stop();
  }
});

test('a frame shape no camera gives is refused with a clear error', () => {
  assert.throws(
    () => cameraOptions({ source: 'testsrc', fps: 10 }, { width: 8, height: 8, channels: 4 }),
    (err: unknown) =>
      err instanceof CameraError && /grey \(1\) or RGB \(3\) frames, not 4 channels/.test(err.message),
  );
});
