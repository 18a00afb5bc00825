// Integration: the demo's labelled camera end to end through real agents, a real core and ffmpeg. A full pass
// of the labelled video measures the model's recorded test accuracy; a killed local agent is restarted with
// fresh stats; an unlabelled camera has no accuracy field; a sidecar that does not fit its video is refused
// and the agent runs without accuracy; a class the model lacks is reported once and counted wrong.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import type { FrameLabels } from '../../agent/camera/frame-labels.js';
import { defaultModelPath } from '../../agent/config.js';
import type { SnapshotMessage, StatsMessage } from '../../agent/protocol/messages.js';
import { PackageModel } from '../../agent/runtime/package-model.js';
import { DevicesResponseSchema, type DeviceView } from '../../electron/api/contract.js';
import { demoVideo } from '../../electron/demo-video.js';
import { startLocalAgent } from '../../electron/local-agent.js';
import { FASHION_MNIST_LABELS, loadFashionMnist } from '../../optimize/datasets/fashion-mnist.js';
import { makeLabelledVideo } from '../../optimize/make-labelled-video.js';
import { withCoreScratch } from '../support/core-scratch.js';
import { type Stack, startStack, waitFor } from '../support/stack.js';
import { decodeJpegGray } from '../support/test-media.js';
import { type AgentProcess, startAgentProcess } from './agent-process.js';

async function apiDevices(apiUrl: string, token: string): Promise<DeviceView[]> {
  const res = await fetch(`${apiUrl}/api/devices`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  return DevicesResponseSchema.parse(await res.json()).devices;
}

test(
  'a full pass of the labelled demo video gives the recorded test accuracy within 1 point, kept across a manager restart',
  { timeout: 240_000 },
  (t) =>
    withCoreScratch(
      'whittle-labelled-pass-',
      async ({ dir: dataDir, log, startCore, closeCore, onCleanup, fail }) => {
        const id = 'labelled-pass';
        // The demo's video, played faster than the demo's 30 fps so that one pass of the 10,000 test images
        // takes under a minute; the frames and their labels are the demo's.
        const video = await demoVideo({ dataDir, fps: 250 });
        const recorded = PackageModel.load(defaultModelPath(), { trust: 'shipped' }).manifest.accuracy;
        assert.ok(recorded && recorded.images === video.frames, 'the model records its test accuracy');
        let core = await startCore({ logPrefix: '[core] ' });
        const agent = startLocalAgent({
          store: core.store,
          deviceId: id,
          brokerPort: core.broker.port,
          camera: video.video,
          labels: video.labelsFile,
          dataDir,
          onLine: (l) => log(`[agent] ${l}`),
        });
        onCleanup(() => agent.stop());
        const live = core;
        // Frames the agent could not keep up with are dropped, not counted: a pass is 95 % of the frames.
        const pass = await waitFor('a full pass of labelled frames', 180_000, () => {
          const accuracy = live.registry.get(id)?.accuracy;
          return accuracy && accuracy.running.frames >= 0.95 * video.frames ? accuracy : undefined;
        }).catch((err: Error) => fail(err, 30));
        const measured = (pass.running.correct / pass.running.frames) * 100;
        t.diagnostic(
          `live ${measured.toFixed(2)} % over ${pass.running.frames} frames; recorded ${(recorded.top1 * 100).toFixed(2)} % over ${recorded.images} images`,
        );
        assert.ok(
          Math.abs(measured - recorded.top1 * 100) <= 1,
          `live ${measured.toFixed(2)} % vs recorded ${(recorded.top1 * 100).toFixed(2)} %`,
        );
        // The API carries both figures, each for what it is.
        const listed = (await apiDevices(`http://127.0.0.1:${core.api.port}`, core.api.token)).find(
          (d) => d.id === id,
        );
        assert.ok(listed?.accuracy, 'GET /api/devices has the accuracy');
        assert.ok(listed.accuracy.window.frames > 0 && listed.accuracy.window.seconds === 30);
        assert.ok(listed.accuracy.running.frames >= pass.running.frames);

        // The snapshot is the frame its prediction and truth are of: the test image nearest to the decoded
        // picture carries the label the snapshot names (two snapshots, 5 s apart).
        const testSet = loadFashionMnist('test');
        const shots = new Map<number, SnapshotMessage>();
        await waitFor('2 snapshots', 20_000, () => {
          const shot = live.registry.snapshot(id);
          if (shot) shots.set(shot.ts, shot);
          return shots.size >= 2 ? true : undefined;
        });
        for (const shot of shots.values()) {
          const picture = decodeJpegGray(Buffer.from(shot.jpeg, 'base64'), 28, 28);
          let nearest = 0;
          let best = Infinity;
          for (let i = 0; i < testSet.count; i++) {
            let d = 0;
            for (let p = 0; p < 784; p++) d += Math.abs(picture[p]! - testSet.pixels[i * 784 + p]!);
            if (d < best) [best, nearest] = [d, i];
          }
          assert.equal(
            shot.trueLabel,
            FASHION_MNIST_LABELS[testSet.labels[nearest]!],
            'the picture is the frame',
          );
          assert.ok(shot.prediction);
        }

        // A manager restart on the same data directory and broker port: the running count goes on.
        const brokerPort = core.broker.port;
        const before = core.registry.get(id)!.accuracy!.running;
        await closeCore();
        core = await startCore({ logPrefix: '[core 2] ', mqttPort: brokerPort });
        const restarted = core;
        const after = await waitFor('the running count to go on after the restart', 60_000, () => {
          const running = restarted.registry.get(id)?.accuracy?.running;
          return running && running.frames > before.frames ? running : undefined;
        }).catch((err: Error) => fail(err, 30));
        assert.equal(after.since, before.since, 'the same running count, not a new one');
        assert.ok(after.correct >= before.correct);
      },
    ),
);

test(
  'kill -9 of the local agent: restarted, fresh stats within 10 s; its unlabelled camera has no accuracy field',
  { timeout: 60_000 },
  async (t) => {
    let stack: Stack | null = null;
    try {
      stack = await startStack({ withAgent: true });
      const live = stack;
      const id = stack.agentId;
      await waitFor('stats from the agent', 20_000, () => live.core.registry.get(id)?.stats ?? undefined);
      // No labels, no accuracy: neither in the device view and the API nor in the agent's records.
      const listed = (await apiDevices(stack.apiUrl, stack.token)).find((d) => d.id === id);
      assert.ok(listed?.stats);
      assert.equal('accuracy' in listed, false);
      assert.equal('accuracy' in listed.stats, false);

      const seen: DeviceView[] = [];
      stack.core.registry.on('change', (d) => {
        if (d.id === id) seen.push(d);
      });
      const killedAt = Date.now();
      stack.killAgent();
      const fresh = await waitFor('fresh stats from the restarted agent', 10_000, () =>
        live.agent!.restarts === 1 && seen.some((d) => !d.online)
          ? seen.find((d, i) => i > seen.findIndex((x) => !x.online) && d.online && d.stats)
          : undefined,
      ).catch((err: Error) => assert.fail(`${err.message}\n${live.logs.slice(-20).join('\n')}`));
      const elapsed = Date.now() - killedAt;
      t.diagnostic(`fresh stats ${elapsed} ms after the kill`);
      assert.ok(fresh.stats && elapsed < 10_000);
      assert.ok(
        live.logs.some((l) => l.startsWith('[supervisor]') && /"kind":"died".*"signal":"SIGKILL"/.test(l)),
        'the supervisor saw the kill',
      );
      assert.equal('accuracy' in fresh, false);
    } finally {
      await stack?.stop();
    }
  },
);

test(
  'a sidecar that does not fit its video is refused, naming it, and the agent runs without accuracy; a class the model lacks is reported once',
  { timeout: 90_000 },
  () =>
    withCoreScratch('whittle-bad-sidecar-', async ({ dir, logs, log, startCore, onCleanup, fail }) => {
      const agents: AgentProcess[] = [];
      onCleanup(() => Promise.all(agents.map((a) => a.stop())));
      const made = await makeLabelledVideo({ out: join(dir, 'clip.mp4'), count: 90, fps: 30 });
      const good = JSON.parse(readFileSync(made.labelsFile, 'utf8')) as FrameLabels;
      const variants: Record<string, object> = {
        short: { ...good, frames: 80, labels: good.labels.slice(0, 80) },
        v2: { ...good, version: 2 },
        other: { ...good, video: 'another.mp4' },
        foreign: { ...good, classes: good.classes.map((c) => (c === 'Bag' ? 'Handbag' : c)) },
      };
      assert.ok(good.labels.includes(8), 'the clip has a Bag');
      const live = await startCore({ logPrefix: '[core] ' });
      for (const [name, sidecar] of Object.entries(variants)) {
        const file = join(dir, `${name}.labels.json`);
        writeFileSync(file, JSON.stringify(sidecar));
        agents.push(
          startAgentProcess(live, dir, name, { camera: made.video, labels: file, snapshotSeconds: 0 }, (l) =>
            log(`${name} ${l}`),
          ),
        );
      }
      const recordsOf = (name: string): number =>
        live.store.stats(name).filter((r) => (JSON.parse(r.json) as StatsMessage).frames > 0).length;
      await waitFor('3 records from every agent', 60_000, () =>
        Object.keys(variants).every((n) => recordsOf(n) >= 3) ? true : undefined,
      ).catch((err: Error) => fail(err));
      const linesOf = (name: string): string[] => logs.filter((l) => l.startsWith(`${name} `));
      for (const [name, reason] of [
        ['short', /labels 80 frames but the video .*clip\.mp4 has 90/],
        ['v2', /version 2 is not supported/],
        ['other', /labels the video another\.mp4, not the camera's clip\.mp4/],
      ] as const) {
        const refusal = linesOf(name).find((l) => /refused, running without accuracy/.test(l));
        assert.ok(refusal, `${name}: refused\n${linesOf(name).join('\n')}`);
        assert.ok(refusal.includes(join(dir, `${name}.labels.json`)), `names the file: ${refusal}`);
        assert.match(refusal, reason);
        assert.ok(live.registry.get(name)?.stats, `${name} runs`);
        assert.equal('accuracy' in live.registry.get(name)!, false, `${name} has no accuracy`);
        for (const row of live.store.stats(name)) assert.equal('accuracy' in JSON.parse(row.json), false);
      }
      const foreign = linesOf('foreign').filter((l) => /class "Handbag" .*is not a class of model/.test(l));
      assert.equal(foreign.length, 1, `reported once:\n${linesOf('foreign').join('\n')}`);
      assert.ok(live.registry.get('foreign')?.accuracy, 'the others are still graded');
    }),
);
