// The agent's native frame loop (native/plan.ts FrameSource over native/src/frame_source.h): frames written
// into a pipe run on the addon's own thread through the served model's frame call, and give the class and
// confidence that PackageModel.infer and the node-by-node path give, bit for bit; and every way it refuses
// or ends.
import assert from 'node:assert/strict';
import { closeSync, writeSync } from 'node:fs';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { defaultModelPath } from '../../../agent/config.js';
import { readPackageFile } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { PackageModel } from '../../../agent/runtime/package-model.js';
import { createFramePipe, type FrameRecord, FrameSource } from '../../../native/plan.js';
import { loadFashionMnist } from '../../../optimize/datasets/fashion-mnist.js';

const FRAME = 784;

function lenet(): PackageModel {
  return PackageModel.load(defaultModelPath(), { trust: 'shipped' });
}

/** A source on a new pipe, and the pipe's write end. */
function open(frameBytes = FRAME, capacity?: number): { source: FrameSource; write: number } {
  const [read, write] = createFramePipe();
  return { source: new FrameSource(read, frameBytes, capacity), write };
}

/** Waits (up to 10 s) until frame number `index` has been run, or until the loop ended when index < 0. */
async function until(source: FrameSource, index: number): Promise<void> {
  const frame = new Uint8Array(FRAME);
  for (let i = 0; i < 10_000; i++) {
    if (index < 0 ? source.status.ended !== null : (source.last(frame)?.index ?? -1) >= index) return;
    await sleep(1);
  }
  assert.fail(`frame ${index} not run: ${JSON.stringify(source.status)}`);
}

describe('the native frame loop', () => {
  test('runs the bundled LeNet-5 as infer and the node-by-node path do, 100 Fashion-MNIST frames', async () => {
    const looped = lenet();
    const inferred = lenet();
    const byNode = Model.fromPackage(readPackageFile(defaultModelPath(), { allowUnsigned: true }), {
      nodeByNode: true,
    });
    const runner = looped.frameLoopRunner;
    assert.ok(runner, 'the bundled model runs in the native loop');
    const { source, write } = open();
    source.attach(runner, 7);
    const { pixels } = loadFashionMnist('test');
    const records: FrameRecord[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        writeSync(write, pixels.subarray(i * FRAME, (i + 1) * FRAME));
        await until(source, i);
      }
      source.drain((r) => records.push(r));
      assert.deepEqual(source.status, { received: 100, dropped: 0, lost: 0, warmups: 0, ended: null });
    } finally {
      closeSync(write);
      source.stop();
    }
    assert.equal(records.length, 100);
    for (let i = 0; i < 100; i++) {
      const frame = pixels.subarray(i * FRAME, (i + 1) * FRAME);
      const r = records[i]!;
      assert.equal(r.index, i);
      assert.equal(r.generation, 7);
      assert.ok(r.latencyMs > 0 && r.latencyMs < 1000, `latency ${r.latencyMs}`);
      const want = inferred.infer(frame);
      assert.equal(r.classIndex, want.classIndex, `frame ${i}`);
      assert.equal(r.confidence, want.confidence, `frame ${i}`);
      const [probabilities] = byNode.run([Float32Array.from(frame, (p) => p / 255)]);
      const scores = Array.from(probabilities!.data);
      assert.equal(r.classIndex, scores.indexOf(Math.max(...scores)), `frame ${i}`);
      assert.equal(r.confidence, scores[r.classIndex], `frame ${i}`);
    }
  });

  test('owns the plan while attached: infer refuses, and works again once detached or stopped', async () => {
    const model = lenet();
    const frame = new Uint8Array(FRAME).fill(30);
    const want = model.infer(frame).classIndex;
    const { source, write } = open();
    source.attach(model.frameLoopRunner!, 1);
    assert.throws(() => model.infer(frame), /runs in a native frame loop/);
    // One plan, one loop at a time.
    const other = open();
    assert.throws(() => other.source.attach(model.frameLoopRunner!, 2), {
      name: 'RangeError',
      message: /a plan already in a loop/,
    });
    other.source.stop();
    closeSync(other.write);
    source.attach(null, 0);
    assert.equal(model.infer(frame).classIndex, want);
    source.attach(model.frameLoopRunner!, 3);
    writeSync(write, frame);
    await until(source, 0);
    source.stop();
    closeSync(write);
    assert.equal(model.infer(frame).classIndex, want);
    const records: FrameRecord[] = [];
    assert.throws(() => source.drain((r) => records.push(r)), /stopped/);
  });

  test('warm-ups between frames leave every result as infer gives it, and make no record', async () => {
    const looped = lenet();
    const inferred = lenet();
    const { source, write } = open();
    source.attach(looped.frameLoopRunner!, 3);
    source.warmAhead(2);
    const { pixels } = loadFashionMnist('test');
    const records: FrameRecord[] = [];
    const frames = 40;
    try {
      for (let i = 0; i < frames; i++) {
        writeSync(write, pixels.subarray(i * FRAME, (i + 1) * FRAME));
        await until(source, i);
        await sleep(12); // frames 12+ ms apart: room for warm-ups 2 ms ahead of each
      }
      source.drain((r) => records.push(r));
      const { status } = source;
      assert.equal(status.received, frames);
      assert.equal(status.dropped, 0);
      assert.ok(status.warmups > 0, `warm-ups ran: ${JSON.stringify(status)}`);
    } finally {
      closeSync(write);
      source.stop();
    }
    assert.equal(records.length, frames);
    for (let i = 0; i < frames; i++) {
      const want = inferred.infer(pixels.subarray(i * FRAME, (i + 1) * FRAME));
      assert.equal(records[i]!.index, i);
      assert.equal(records[i]!.classIndex, want.classIndex, `frame ${i}`);
      assert.equal(records[i]!.confidence, want.confidence, `frame ${i}`);
    }
  });

  test('refuses bad arguments, naming them', () => {
    assert.throws(() => new FrameSource(-1, FRAME), { name: 'RangeError', message: /fd/ });
    const [read, write] = createFramePipe();
    assert.throws(() => new FrameSource(read, 0), { name: 'RangeError', message: /frameBytes/ });
    closeSync(read);
    closeSync(write);
    const { source, write: w } = open(100);
    try {
      assert.throws(() => source.attach(() => 0, 1), {
        name: 'TypeError',
        message: /a frame runner/,
      });
      assert.throws(() => source.attach(lenet().frameLoopRunner!, 1), {
        name: 'RangeError',
        message: /100-byte frames .* a runner of 784-byte frames/,
      });
      assert.throws(() => source.attach(null, -1), { name: 'RangeError', message: /generation/ });
      assert.throws(() => source.last(new Uint8Array(99)), { name: 'RangeError' });
      assert.throws(() => source.warmAhead(-1), { name: 'RangeError', message: /leadMs/ });
      assert.throws(() => source.warmAhead(Number.NaN), { name: 'RangeError', message: /leadMs/ });
      assert.throws(() => source.warmAhead(1001), { name: 'RangeError', message: /leadMs/ });
      assert.throws(() => source.warmAhead('1' as unknown as number), {
        name: 'TypeError',
        message: /leadMs/,
      });
      assert.equal(source.last(new Uint8Array(100)), undefined);
    } finally {
      source.stop();
      source.stop(); // idempotent
      closeSync(w);
    }
    assert.throws(() => source.attach(null, 0), /stopped/);
    assert.throws(() => source.warmAhead(1), /stopped/);
  });

  test('a malformed stream: a partial frame at its end ends the loop and says so', async () => {
    const model = lenet();
    const { source, write } = open();
    source.attach(model.frameLoopRunner!, 1);
    writeSync(write, new Uint8Array(FRAME + 100));
    closeSync(write);
    await until(source, -1);
    const { status } = source;
    assert.equal(status.received, 1);
    assert.match(status.ended!, /the stream ended inside a frame: 100 of 784 bytes/);
    source.stop();
    assert.equal(model.infer(new Uint8Array(FRAME)).logits.length, 10);
  });

  test('newest frame only: frames waiting behind the one read are dropped, not queued', async () => {
    const model = lenet();
    const { source, write } = open();
    // Nothing attached: every frame is read and dropped.
    writeSync(write, new Uint8Array(FRAME * 3));
    for (let i = 0; i < 1000 && source.status.received < 3; i++) await sleep(1);
    assert.equal(source.status.dropped, 3);
    source.attach(model.frameLoopRunner!, 1);
    // Five frames at once: the loop runs at most the first it read and the newest.
    writeSync(write, new Uint8Array(FRAME * 5));
    await until(source, 7);
    const records: FrameRecord[] = [];
    source.drain((r) => records.push(r));
    assert.ok(records.length >= 1 && records.length <= 5);
    assert.equal(records.at(-1)!.index, 7);
    assert.equal(source.status.received, 8);
    assert.equal(source.status.dropped + records.length, 8);
    closeSync(write);
    await until(source, -1);
    assert.equal(source.status.ended, 'the stream ended');
    source.stop();
  });

  test('runs only models whose frame is one native call ending in probabilities', () => {
    assert.ok(lenet().frameLoopRunner);
    // A package cut before its softmax gives logits: its confidence needs infer's own softmax.
    const pkg = readPackageFile(defaultModelPath(), { allowUnsigned: true });
    const softmax = pkg.manifest.nodes.findIndex((n) => n.op === 'softmax');
    pkg.manifest.outputs[0]!.tensor = pkg.manifest.nodes[softmax]!.inputs[0]!;
    pkg.manifest.nodes.splice(softmax);
    assert.equal(PackageModel.fromPackage(pkg).frameLoopRunner, undefined);
  });
});
