// A labels sidecar against the video it labels and the model it grades: one that does not fit is refused
// with a message naming it; a class the model lacks makes its frames count as wrong.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  checkLabelsFitVideo,
  countVideoFrames,
  type FrameLabels,
  FrameLabelsError,
  truthForModel,
} from '../../../agent/camera/frame-labels.js';
import { StatsWindow } from '../../../agent/telemetry/stats-window.js';

const labels: FrameLabels = {
  format: 'whittle-frame-labels',
  version: 1,
  video: 'clip.mp4',
  fps: 30,
  frames: 4,
  classes: ['Coat', 'Bag', 'Handbag'],
  labels: [0, 1, 2, 1],
  source: 'test',
};
const refusedNaming = (pattern: RegExp) => (e: Error) =>
  e instanceof FrameLabelsError && /clip\.mp4\.labels\.json/.test(e.message) && pattern.test(e.message);

test('a sidecar for another video, or with another frame count than its video, is refused', async () => {
  const fourFrames = (): Promise<number> => Promise.resolve(4);
  await checkLabelsFitVideo(labels, 'clip.mp4.labels.json', '/v/clip.mp4', fourFrames);
  await assert.rejects(
    checkLabelsFitVideo(labels, 'clip.mp4.labels.json', '/v/other.mp4', fourFrames),
    refusedNaming(/labels the video clip\.mp4, not the camera's other\.mp4/),
  );
  await assert.rejects(
    checkLabelsFitVideo(labels, 'clip.mp4.labels.json', '/v/clip.mp4', () => Promise.resolve(5)),
    refusedNaming(/labels 4 frames but the video \/v\/clip\.mp4 has 5/),
  );
});

test('ffprobe counts the frames of a real video; a file that is no video is refused, named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-frames-'));
  try {
    const video = join(dir, 'seven.mp4');
    const made = spawnSync('ffmpeg', [
      ...['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=32x32:rate=10', '-frames:v', '7'],
      ...['-c:v', 'libx264', '-pix_fmt', 'yuv420p', video],
    ]);
    assert.equal(made.status, 0, made.stderr.toString());
    assert.equal(await countVideoFrames(video), 7);
    await assert.rejects(
      countVideoFrames(join(dir, 'none.mp4')),
      (e: Error) => e instanceof FrameLabelsError && /cannot count the frames of .*none\.mp4/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("classes map onto the model's by name; a class the model lacks is reported and its frames count wrong", () => {
  const truth = truthForModel(labels, 'clip.mp4.labels.json', ['Bag', 'Coat', 'Shirt']);
  assert.deepEqual([0, 1, 2, 3, 4].map(truth.modelClassOf), [1, 0, -1, 0, 1]);
  assert.deepEqual([0, 1, 2].map(truth.nameOf), ['Coat', 'Bag', 'Handbag']);
  assert.deepEqual(truth.foreign, [{ name: 'Handbag', frames: 1 }]);
  // The stats window counts the foreign frame as labelled and wrong, whatever the model answered.
  const window = new StatsWindow(() => 0, { classes: 3 });
  for (let i = 0; i < 4; i++) {
    const guess = i === 2 ? 0 : truth.modelClassOf(i);
    window.record(1, { classIndex: guess, label: String(guess), confidence: 1 }, truth.modelClassOf(i));
  }
  assert.deepEqual(window.close().accuracy, { frames: 4, correct: 3 });
});

test('a model without class names is matched by index; a sidecar sharing no class with the model is refused', () => {
  const unnamed = truthForModel(labels, 'clip.mp4.labels.json', ['0', '1']);
  assert.deepEqual([0, 1, 2].map(unnamed.modelClassOf), [0, 1, -1]);
  assert.throws(
    () => truthForModel(labels, 'clip.mp4.labels.json', ['Cat', 'Dog']),
    refusedNaming(/none of its classes \(Coat, Bag, Handbag\) is a class of the model \(Cat, Dog\)/),
  );
});
