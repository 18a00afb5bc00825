// The NAS search space: sampling and mutation stay in SEARCH_SPACE, keys identify architectures, and every
// architecture's package (mixed formats) runs on the runtime and computes what the projected tfjs model
// computes (its int8 layers within int8 rounding).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { Model } from '../../../agent/runtime/model.js';
import {
  archKey,
  archLayers,
  archPackage,
  type ArchSpec,
  ArchSpecError,
  buildArchModel,
  mutateArch,
  parseArch,
  parseFormatChoices,
  sampleArch,
  shrinkArch,
} from '../../../optimize/nas/space.js';
import { extremeArch, recalibrateBatchNorm, Supernet } from '../../../optimize/nas/supernet.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { selectTrainingBackend } from '../../../optimize/train/backend-select.js';
import { randomizeWeights } from '../../../optimize/zoo/random-weights.js';

const SHAPE = [28, 28, 1] as const;

describe('NAS search space', () => {
  before(async () => {
    await selectTrainingBackend('whittle-native');
  });

  test('sampling and mutation stay in the space; keys tell architectures apart', () => {
    const rng = new SeededRandom(7);
    const keys = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const arch = sampleArch(rng);
      assert.deepEqual(parseArch(JSON.parse(JSON.stringify(arch))), arch);
      const child = mutateArch(arch, rng);
      assert.notEqual(archKey(child), archKey(arch));
      assert.deepEqual(parseArch(child), child);
      keys.add(archKey(arch));
    }
    assert.ok(keys.size > 190, `200 samples give ${keys.size} distinct keys`);
    assert.deepEqual(sampleArch(new SeededRandom(3)), sampleArch(new SeededRandom(3)));
    // Both stem strides are drawn; stride 1 keeps the keys of the space before the choice.
    assert.ok(
      [...keys].some((k) => /^stem\d+s2/.test(k)) &&
        [...keys].some((k) => /^stem\d+(fp32|int8|ternary|binary)-/.test(k)),
    );
    const one = { ...sampleArch(new SeededRandom(5)) };
    one.stem = { width: 8, format: 'fp32' };
    assert.match(archKey(one), /^stem8fp32-/);
    assert.deepEqual(parseArch({ ...one, stem: { ...one.stem, stride: 1 } }), one);
  });

  test('shrinking gives up kernels, then depth, then widths, the first stage first, down to the smallest', () => {
    const layer = { block: 'conv', width: 0, depth: 0, kernel: 0, format: 'int8', prune: 0 } as const;
    let arch: ArchSpec | undefined = extremeArch(
      { stem: { width: 0, format: 'int8' }, stages: [layer, layer, layer], head: { format: 'int8' } },
      'largest',
    );
    const keys = [archKey(arch)];
    for (arch = shrinkArch(arch); arch; arch = shrinkArch(arch)) keys.push(archKey(arch));
    assert.deepEqual(keys.slice(0, 7), [
      'stem24int8-conv32x3k5int8-conv64x3k5int8-conv96x3k5int8-headint8',
      'stem24int8-conv32x3k3int8-conv64x3k5int8-conv96x3k5int8-headint8',
      'stem24int8-conv32x3k3int8-conv64x3k3int8-conv96x3k5int8-headint8',
      'stem24int8-conv32x3k3int8-conv64x3k3int8-conv96x3k3int8-headint8',
      'stem24int8-conv32x2k3int8-conv64x3k3int8-conv96x3k3int8-headint8',
      'stem24int8-conv32x2k3int8-conv64x2k3int8-conv96x3k3int8-headint8',
      'stem24int8-conv32x2k3int8-conv64x2k3int8-conv96x2k3int8-headint8',
    ]);
    // 3 kernels + 6 depths + 6 widths + 2 stem widths: 17 steps to the smallest, which does not shrink.
    assert.equal(keys.length, 18);
    assert.equal(keys.at(-1), 'stem8int8-conv16x1k3int8-conv32x1k3int8-conv48x1k3int8-headint8');
    assert.equal(new Set(keys).size, keys.length);
  });

  test('a search drawing from some formats and pruning ratios stays within them', () => {
    const rng = new SeededRandom(9);
    const choices = parseFormatChoices({ formats: ['fp32', 'int8'], prunes: [0] });
    for (let i = 0; i < 100; i++) {
      const arch = mutateArch(sampleArch(rng, choices), rng, choices);
      for (const f of [arch.stem.format, arch.head.format, ...arch.stages.map((s) => s.format)])
        assert.ok(f === 'fp32' || f === 'int8', archKey(arch));
      assert.ok(
        arch.stages.every((s) => s.prune === 0),
        archKey(arch),
      );
    }
    assert.throws(
      () => parseFormatChoices({ formats: ['fp16' as never], prunes: [0] }),
      (e: unknown) => e instanceof ArchSpecError && /search formats/.test(e.message),
    );
    assert.throws(() => parseFormatChoices({ formats: ['int8'], prunes: [] }), /search prunes/);
  });

  test('a bad architecture is refused naming the field', () => {
    const arch = sampleArch(new SeededRandom(1));
    assert.throws(
      () => parseArch({ ...arch, stages: arch.stages.map((s) => ({ ...s, width: 7 })) }),
      (e: unknown) => e instanceof ArchSpecError && /stages\[0\]\.width/.test(e.message),
    );
    assert.throws(() => parseArch({ ...arch, stem: { width: 16, format: 'fp64' } }), /stem\.format/);
    assert.throws(
      () => parseArch({ ...arch, stem: { width: 16, format: 'fp32', stride: 3 } }),
      /stem\.stride/,
    );
    assert.throws(() => parseArch(null), ArchSpecError);
  });

  test("batch norms recalibrate to their input's statistics, also in a model with one (all fire stages)", () => {
    const fire = (width: number): ArchSpec['stages'][number] => ({
      block: 'fire',
      width,
      depth: 1,
      kernel: 3,
      format: 'fp32',
      prune: 0,
    });
    const rng = new SeededRandom(5);
    const images = Float32Array.from({ length: 8 * 28 * 28 }, () => rng.next());
    for (const arch of [
      {
        stem: { width: 8, format: 'fp32' },
        stages: [fire(24), fire(32), fire(48)],
        head: { format: 'fp32' },
      },
      sampleArch(rng),
    ] as ArchSpec[]) {
      const model = buildArchModel(arch, { inputShape: SHAPE, classes: 10, seed: 2 });
      const norms = model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
      assert.ok(norms.length >= 1, `${archKey(arch)} has a batch norm`);
      recalibrateBatchNorm(model, images);
      // The stem's batch norm sees the stem conv's output: its moving mean is now that output's mean per channel.
      const stem = norms[0]!;
      const want = tf.tidy(() => {
        const conv = tf.model({ inputs: model.inputs, outputs: stem.input });
        const out = conv.predict(tf.tensor4d(images, [8, 28, 28, 1])) as tf.Tensor;
        return Array.from(out.mean([0, 1, 2]).dataSync());
      });
      const mean = stem.weights
        .find((v) => v.originalName.endsWith('/moving_mean'))!
        .read()
        .dataSync();
      want.forEach((m, c) => assert.ok(Math.abs(mean[c]! - m) < 1e-4, `${archKey(arch)} channel ${c}`));
      model.dispose();
    }
  });

  test("one Adam state spans the supernet's paths; a candidate adapts without changing it", async () => {
    const rng = new SeededRandom(3);
    const count = 64;
    const set = {
      source: 'random',
      count,
      height: 28,
      width: 28,
      channels: 1,
      classes: ['a', 'b', 'c'],
      pixels: Uint8Array.from({ length: count * 28 * 28 }, () => rng.int(0, 255)),
      labels: Uint8Array.from({ length: count }, () => rng.int(0, 2)),
    };
    const net = Supernet.create({ inputShape: SHAPE, classes: 3, seed: 4 });
    const options = { set, indices: Uint32Array.from({ length: count }, (_, i) => i), batchSize: 8 };
    await net.train({ ...options, epochs: 1, pathBatches: 2, learningRate: 1e-3, seed: 5 });
    // 8 batches in 4 paths: a fresh Adam per path would have counted 2.
    assert.equal(net.adamSteps, 8);
    await net.train({ ...options, epochs: 2, pathBatches: 3, learningRate: 1e-3, seed: 5 });
    assert.equal(net.adamSteps, 16);

    // A candidate adapted for a few batches before scoring: its own weights move, the supernet's do not.
    const arch = sampleArch(rng, { formats: ['fp32'], prunes: [0] });
    const shared = [...net.shared.values()].map((w) => w.values.slice());
    const x = tf.tensor4d(
      Float32Array.from(set.pixels.subarray(0, 8 * 784), (p) => p / 255),
      [8, 28, 28, 1],
    );
    const calibration = x.dataSync() as Float32Array;
    const outputs = async (batches: number, freshOptimizer = false, from = net): Promise<Float32Array> => {
      const model = await from.adaptedSubnet(arch, calibration, {
        ...options,
        batches,
        learningRate: 1e-2,
        seed: 6,
        freshOptimizer,
      });
      const y = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
      model.dispose();
      return y;
    };
    const plain = net.subnet(arch, calibration);
    const want = tf.tidy(() => (plain.predict(x) as tf.Tensor).dataSync() as Float32Array);
    plain.dispose();
    assert.deepEqual(await outputs(0), want, '0 batches: the subnet as the supernet holds it');
    const adapted = await outputs(4);
    assert.ok(
      adapted.some((v, i) => Math.abs(v - want[i]!) > 1e-4),
      '4 batches of training change the candidate',
    );
    // A finalist's fresh optimizer: as a supernet loaded from disk (no moments) adapts, not as this one does.
    const dir = mkdtempSync(join(tmpdir(), 'whittle-supernet-'));
    try {
      net.save(dir);
      const loaded = Supernet.load(dir, { inputShape: SHAPE, classes: 3, seed: 4 });
      const fresh = await outputs(4, true);
      assert.deepEqual(fresh, await outputs(4, false, loaded));
      assert.ok(
        fresh.some((v, i) => Math.abs(v - adapted[i]!) > 1e-6),
        'the shared moments differ',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    [...net.shared.values()].forEach((w, i) =>
      assert.deepEqual(w.values, shared[i], 'the supernet is unchanged'),
    );
    assert.equal(net.adamSteps, 16);
    x.dispose();
  });

  test('every block type and format packages and runs as the tfjs model computes', async () => {
    const rng = new SeededRandom(11);
    const x = Float32Array.from({ length: 4 * 28 * 28 }, () => rng.next());
    const calibration = { count: 4, data: x };
    const archs: ArchSpec[] = (['conv', 'dwsep', 'fire', 'shuffle'] as const).map((block, i) => {
      const a = sampleArch(rng);
      a.stages[i % 3]!.block = block;
      return a;
    });
    // One all-int8 and one fp32 pruned, so each path is taken; a stride-2 stem.
    const base = sampleArch(rng);
    archs.push({ ...base, stem: { width: 16, format: 'int8', stride: 2 } });
    archs.push({
      stem: { ...base.stem, format: 'int8' },
      stages: base.stages.map((s) => ({ ...s, format: 'int8', prune: 0 })),
      head: { format: 'int8' },
    });
    archs.push({
      stem: { ...base.stem, format: 'fp32' },
      stages: base.stages.map((s) => ({ ...s, format: 'fp32', prune: 0.5 })),
      head: { format: 'fp32' },
    });
    for (const arch of archs) {
      const model = buildArchModel(arch, { inputShape: SHAPE, classes: 10, seed: 2 });
      randomizeWeights(model, 5);
      const pkg = await archPackage(arch, model, { calibration });
      const expected = tf.tidy(() => (model.predict(tf.tensor4d(x, [4, 28, 28, 1])) as tf.Tensor).dataSync());
      const runtime = Model.fromPackage(pkg, { batch: 4 });
      const got = runtime.run([x])[0]!.data;
      const formats = new Set(pkg.manifest.nodes.map((n) => n.format));
      for (const l of archLayers(arch, model)) {
        const node = pkg.manifest.nodes.find((n) => n.name === l.name);
        assert.ok(node, `${archKey(arch)}: node ${l.name} in the package`);
        const want = l.prune > 0 ? 'sparse' : l.format === 'fp32' ? 'f32' : l.format;
        assert.equal(node.format, want, `${archKey(arch)}: ${l.name} is ${want}`);
      }
      const int8 = formats.has('int8');
      let diff = 0;
      for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i]! - expected[i]!));
      assert.ok(diff < (int8 ? 0.2 : 1e-3), `${archKey(arch)}: runtime vs tfjs differ by ${diff}`);
      model.dispose();
    }
  });
});
