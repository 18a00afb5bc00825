import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { CameraError, ffmpegArguments, sourceKind } from '../../../agent/camera/ffmpeg-source.js';
import { decodeFrameLabels, FrameLabelsError, readFrameLabels } from '../../../agent/camera/frame-labels.js';
import {
  checkPreprocessing,
  ffmpegFilter,
  type ImagePreprocessing,
  normalizer,
  PreprocessingError,
} from '../../../agent/camera/preprocess.js';

const grey: ImagePreprocessing = { width: 28, height: 28, channels: 1, mean: [0], std: [1] };

test('the ffmpeg filter stretches, or scales the shorter side and crops the centre', () => {
  assert.equal(ffmpegFilter(grey), 'scale=28:28,format=gray');
  assert.equal(
    ffmpegFilter({
      ...grey,
      width: 224,
      height: 224,
      channels: 3,
      resize: 'center-crop',
      cropFraction: 0.875,
    }),
    'scale=256:256:force_original_aspect_ratio=increase,crop=224:224,format=rgb24',
  );
});

test('normalization maps bytes through (p/255 - mean)/std, and NCHW splits the channel planes', () => {
  const n = normalizer({
    width: 2,
    height: 1,
    channels: 3,
    mean: [0.5, 0, 0],
    std: [0.5, 1, 2],
    layout: 'NCHW',
  });
  const out = n(Uint8Array.from([255, 255, 255, 0, 0, 0]));
  assert.deepEqual(Array.from(out), [1, -1, 1, 0, 0.5, 0]);
  const hwc = normalizer({ width: 1, height: 1, channels: 3, mean: [0], std: [1] });
  assert.deepEqual(Array.from(hwc(Uint8Array.from([0, 51, 255]))), [0, 0.2, 1].map(Math.fround));
  assert.throws(
    () => hwc(new Uint8Array(4)),
    (e: Error) => e instanceof PreprocessingError && /3 bytes/.test(e.message),
  );
});

test('a bad preprocessing description is refused naming the field', () => {
  const cases: [Partial<ImagePreprocessing>, RegExp][] = [
    [{ width: 0 }, /for width/],
    [{ channels: 2 as 1 }, /for channels/],
    [{ std: [0] }, /positive finite numbers for std/],
    [{ mean: [0, 0] }, /1 or 1 numbers for mean/],
    [{ resize: 'fill' as 'stretch' }, /for resize/],
    [{ cropFraction: 0.5 }, /center-crop/],
    [{ resize: 'center-crop', cropFraction: 1.5 }, /cropFraction/],
  ];
  for (const [change, message] of cases)
    assert.throws(
      () => checkPreprocessing({ ...grey, ...change }),
      (e: Error) => e instanceof PreprocessingError && message.test(e.message),
      JSON.stringify(change),
    );
});

test('sources are told apart; streams get TCP, no buffering and an I/O time-out', () => {
  assert.equal(sourceKind('testsrc'), 'testsrc');
  assert.equal(sourceKind('/dev/video0'), 'v4l2');
  assert.equal(sourceKind('clip.mp4'), 'file');
  assert.equal(sourceKind('rtsp://cam/stream'), 'rtsp');
  assert.equal(sourceKind('https://cam/mjpeg'), 'http');
  assert.throws(
    () => sourceKind('ftp://x/y'),
    (e: Error) => e instanceof CameraError && /unsupported scheme ftp/.test(e.message),
  );
  const base = { width: 28, height: 28, channels: 1 as const, fps: 30 };
  const rtsp = ffmpegArguments({ ...base, source: 'rtsp://cam/s', streamTimeoutMs: 5000 }).join(' ');
  assert.match(rtsp, /-rtsp_transport tcp -timeout 5000000 -i rtsp:\/\/cam\/s/);
  assert.match(rtsp, /-fflags nobuffer/);
  assert.match(
    ffmpegArguments({ ...base, source: 'http://cam/s' }).join(' '),
    /-rw_timeout 10000000 -i http/,
  );
  const snap = ffmpegArguments({
    ...base,
    source: 'testsrc',
    snapshot: { everySeconds: 5, width: 160 },
  }).join(' ');
  assert.match(snap, /fps=1\/5,scale=160:-2/);
  assert.match(snap, /image2pipe pipe:3/);
});

test('a labels sidecar is checked field by field', () => {
  const good = {
    format: 'whittle-frame-labels',
    version: 1,
    video: 'v.mp4',
    fps: 30,
    frames: 2,
    classes: ['a', 'b'],
    labels: [0, 1],
    source: 'test',
  };
  assert.equal(decodeFrameLabels(good, 'f').frames, 2);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ format: 'x' }, /format/],
    [{ version: 2 }, /version 2/],
    [{ labels: [0, 2] }, /labels\[1\] = 2 is not a class index below 2/],
    [{ frames: 3 }, /frames is 3 but there are 2 labels/],
    [{ fps: 0 }, /fps/],
  ];
  for (const [change, message] of cases)
    assert.throws(
      () => decodeFrameLabels({ ...good, ...change }, 'f.json'),
      (e: Error) => e instanceof FrameLabelsError && /f\.json/.test(e.message) && message.test(e.message),
    );
  const dir = mkdtempSync(join(tmpdir(), 'whittle-labels-'));
  try {
    writeFileSync(join(dir, 'bad.json'), '{');
    assert.throws(() => readFrameLabels(join(dir, 'bad.json')), /is not JSON/);
    assert.throws(() => readFrameLabels(join(dir, 'none.json')), /cannot read labels file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
