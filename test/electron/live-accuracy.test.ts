// Integration: a labelled Fashion-MNIST video through the agent's real ffmpeg camera path; the live
// accuracy the agent reports must match the model's offline accuracy on the same images.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { defaultModelPath } from '../../agent/config.js';
import type { StatsMessage } from '../../agent/protocol/messages.js';
import { PackageModel } from '../../agent/runtime/package-model.js';
import { loadFashionMnist } from '../../optimize/datasets/fashion-mnist.js';
import { makeLabelledVideo } from '../../optimize/make-labelled-video.js';
import { withCoreScratch } from '../support/core-scratch.js';
import { waitFor } from '../support/stack.js';
import { startAgentProcess } from './agent-process.js';

const IMAGES = 1000;
const DEVICE = 'labelled-camera';

test('live accuracy on a labelled video matches offline accuracy within 3 points', { timeout: 60_000 }, (t) =>
  withCoreScratch('whittle-accuracy-', async ({ dir, log, startCore, onCleanup, fail }) => {
    const { video, labelsFile } = await makeLabelledVideo({
      out: join(dir, 'fashion.mp4'),
      count: IMAGES,
      fps: 100,
    });
    const model = PackageModel.load(defaultModelPath(), { trust: 'shipped' });
    const testSet = loadFashionMnist('test');
    let correct = 0;
    for (let i = 0; i < IMAGES; i++)
      if (model.infer(testSet.pixels.subarray(i * 784, (i + 1) * 784)).classIndex === testSet.labels[i])
        correct++;
    const offline = correct / IMAGES;

    const live = await startCore();
    const agent = startAgentProcess(
      live,
      dir,
      DEVICE,
      { camera: video, labels: labelsFile, snapshotSeconds: 1 },
      log,
    );
    onCleanup(() => agent.stop());
    const totals = (): { frames: number; correct: number } => {
      let frames = 0;
      let right = 0;
      for (const row of live.store.stats(DEVICE)) {
        const s = JSON.parse(row.json) as StatsMessage;
        frames += s.accuracy?.frames ?? 0;
        right += s.accuracy?.correct ?? 0;
      }
      return { frames, correct: right };
    };
    const measured = await waitFor('1500 labelled frames', 40_000, () => {
      const t = totals();
      return t.frames >= 1500 ? t : undefined;
    }).catch((err: Error) => fail(err, Infinity));
    const liveAccuracy = measured.correct / measured.frames;
    t.diagnostic(
      `live ${(liveAccuracy * 100).toFixed(1)}% over ${measured.frames} frames, offline ${(offline * 100).toFixed(1)}%`,
    );
    assert.ok(
      Math.abs(liveAccuracy - offline) <= 0.03,
      `live ${(liveAccuracy * 100).toFixed(1)}% over ${measured.frames} frames vs offline ${(offline * 100).toFixed(1)}%`,
    );
    const snapshot = live.registry.snapshot(DEVICE);
    assert.ok(snapshot, 'a snapshot reached the manager');
    assert.ok(
      Buffer.from(snapshot.jpeg, 'base64')
        .subarray(0, 2)
        .equals(Buffer.from([0xff, 0xd8])),
    );
    assert.ok(
      snapshot.prediction && snapshot.trueLabel,
      'the snapshot names the prediction and the true label',
    );
  }),
);

test(
  'an agent given a labels file that does not exist refuses to start, naming it',
  { timeout: 20_000 },
  () =>
    withCoreScratch('whittle-accuracy-bad-', async ({ dir, logs, log, startCore }) => {
      const agent = startAgentProcess(
        await startCore(),
        dir,
        'nolabels',
        { labels: join(dir, 'missing.json') },
        log,
      );
      assert.equal(await agent.exited, 1);
      assert.match(logs.join('\n'), /cannot read labels file .*missing\.json/);
    }),
);
