// Filter pruning (optimize/compress/filters.ts): the surgery on every block type of the zoo (VGG, MobileNet's
// depthwise separable blocks with batch norm, SqueezeNet's fire concat, ShuffleNet's split and shuffle) and
// on a residual add, checked against the masked original (the same plan zeroing what it removes: removing
// zeroed filters must change nothing); the refusals; and `whittle compress --pipeline filter-prune` end to
// end on tiny data (fewer MACs and parameters, a bit-exact round trip, the runtime against tfjs).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { readPackage } from '../../../agent/package/reader.js';
import { applyFilterPlan, planFilterPruning } from '../../../optimize/compress/filters.js';
import { loadPipeline, type ModelLayer } from '../../../optimize/compress/pipeline.js';
import { runCompress } from '../../../optimize/compress/runner.js';
import { bundledSigningKey, packageContent, writePackage } from '../../../optimize/package/writer.js';
import { buildZooModel } from '../../../optimize/zoo/index.js';
import { assertPipelineErrors, runtimeVsTfjs } from '../../support/compress-fixtures.js';
import { trainTinyModel } from '../../support/tiny-model.js';

const convNames = (model: tf.LayersModel): string[] =>
  model.layers.filter((l) => l.getClassName() === 'Conv2D').map((l) => l.name);

/** Batch norm statistics and affine parameters away from their defaults, so a channel that is not zeroed
 * through its batch norm (beta, mean) would show. */
function randomiseBatchNorms(model: tf.LayersModel, seed: number): void {
  for (const l of model.layers)
    if (l.getClassName() === 'BatchNormalization')
      l.setWeights(
        l
          .getWeights()
          .map((w, i) =>
            i === 3
              ? tf.randomUniform(w.shape, 0.5, 2, 'float32', seed + i)
              : tf.randomNormal(w.shape, 0, 0.5, 'float32', seed + i),
          ),
      );
}

/** A residual block: conv a -> bn -> relu, conv b on it, added back to a's output (the add joins a's and b's
 * filters: both must keep the same channels), then conv c and a classifier. */
function residualModel(): tf.LayersModel {
  const input = tf.input({ shape: [12, 12, 3] });
  const a = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'a' }).apply(input);
  const aOut = tf.layers.reLU().apply(tf.layers.batchNormalization().apply(a)) as tf.SymbolicTensor;
  const b = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'b' }).apply(aOut);
  const sum = tf.layers.add().apply([aOut, b as tf.SymbolicTensor]);
  const c = tf.layers
    .conv2d({ filters: 6, kernelSize: 1, activation: 'relu', name: 'c' })
    .apply(tf.layers.reLU().apply(sum));
  const out = tf.layers
    .dense({ units: 4, activation: 'softmax' })
    .apply(tf.layers.globalAveragePooling2d({}).apply(c));
  return tf.model({ inputs: input, outputs: out as tf.SymbolicTensor });
}

function maxDifference(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  return worst;
}

describe('filter pruning surgery', () => {
  const zoo = (name: string, widthMultiplier?: number): tf.LayersModel =>
    buildZooModel(name, {
      height: 28,
      width: 28,
      channels: 1,
      classes: 10,
      seed: 5,
      ...(widthMultiplier ? { widthMultiplier } : {}),
    });
  const cases: [string, () => tf.LayersModel, number[]][] = [
    ['vgg-small', () => zoo('vgg-small'), [28, 28, 1]],
    ['mobilenet (depthwise, batch norm)', () => zoo('mobilenet', 0.25), [28, 28, 1]],
    ['squeezenet (fire concat)', () => zoo('squeezenet'), [28, 28, 1]],
    ['shufflenet (split, shuffle)', () => zoo('shufflenet', 0.5), [28, 28, 1]],
    ['residual add', residualModel, [12, 12, 3]],
  ];
  for (const [name, build, shape] of cases)
    test(`${name}: the pruned model equals the masked original, with fewer filters, parameters and MACs`, async () => {
      const model = build();
      randomiseBatchNorms(model, 11);
      const plan = planFilterPruning(model, {
        layers: new Map(convNames(model).map((c) => [c, undefined])),
        fraction: 0.5,
      });
      const pruned = await applyFilterPlan(model, plan);
      const masked = await applyFilterPlan(model, plan, true);
      const x = tf.randomNormal([3, ...shape], 0, 1, 'float32', 3);
      const [p, m, o] = [pruned, masked, model].map((net) => net.predict(x) as tf.Tensor);
      assert.deepEqual(p!.shape, o!.shape);
      // Removing zeroed channels leaves the same sums (up to the order of float additions).
      assert.ok(maxDifference(p!, m!) < 1e-5, `pruned vs masked: ${maxDifference(p!, m!)}`);
      assert.ok(maxDifference(m!, o!) > 1e-3, 'the mask changes the model (the test can fail)');
      // Every conv that can lose filters keeps half of them (rounded up), in the model itself.
      for (const l of plan.layers) {
        const filters = (pruned.getLayer(l.layer).getConfig().filters as number) ?? 0;
        assert.equal(filters, l.kept);
        assert.equal(l.kept, l.fixed === undefined ? l.filters - Math.floor(l.filters / 2) : l.filters);
      }
      assert.ok(plan.layers.some((l) => l.kept < l.filters));
      assert.ok(pruned.countParams() < 0.75 * model.countParams());
      assert.ok(plan.macs < 0.6 * plan.baselineMacs, `MACs ${plan.baselineMacs} -> ${plan.macs}`);
      if (name.startsWith('shufflenet')) {
        // The convs feeding the concat + shuffle keep their filters, and the plan says why; the branch
        // convs before a depthwise lose theirs.
        const fixed = plan.layers.filter((l) => l.fixed !== undefined);
        assert.ok(
          fixed.length > 0 && fixed.every((l) => /WhittleChannel(Shuffle|Split)|coupled/.test(l.fixed!)),
        );
        assert.ok(plan.layers.filter((l) => l.fixed === undefined).length >= 8);
      }
      if (name === 'residual add') {
        // Both sides of the add keep the same channels; c takes them as its input.
        assert.equal(plan.keep.get('a')!.join(), plan.keep.get('b')!.join());
        assert.equal(pruned.getLayer('c').getWeights()[0]!.shape[2], plan.keep.get('a')!.length);
      }
      tf.dispose([x, p!, m!, o!]);
      for (const net of [model, pruned, masked]) net.dispose();
    });

  test('a MAC reduction target picks the smallest common fraction that reaches it, or says it is not met', () => {
    const model = buildZooModel('vgg-small', { height: 28, width: 28, channels: 1, classes: 10, seed: 2 });
    const layers = new Map(convNames(model).map((c) => [c, undefined]));
    const plan = planFilterPruning(model, { layers, macReduction: 0.35 });
    assert.ok(
      plan.target!.met && plan.target!.reached >= 0.35 && plan.target!.reached < 0.45,
      JSON.stringify(plan.target),
    );
    assert.ok(Math.abs(1 - plan.macs / plan.baselineMacs - plan.target!.reached) < 1e-12);
    // Only the first conv may go: its filters are a small share of the MACs.
    const first = convNames(model)[0]!;
    const small = planFilterPruning(model, { layers: new Map([[first, undefined]]), macReduction: 0.9 });
    assert.equal(small.target!.met, false);
    assert.ok(small.target!.reached > 0 && small.target!.reached < 0.9);
    model.dispose();
  });

  test('a layer whose filters cannot go, or is not a conv, is refused by name', () => {
    const shuffle = buildZooModel('shufflenet', {
      height: 28,
      width: 28,
      channels: 1,
      classes: 10,
      widthMultiplier: 0.5,
    });
    const plan = planFilterPruning(shuffle, {
      layers: new Map(convNames(shuffle).map((c) => [c, undefined])),
    });
    const coupled = plan.layers.find((l) => l.fixed !== undefined)!.layer;
    assert.throws(
      () => planFilterPruning(shuffle, { layers: new Map([[coupled, 0.5]]), named: new Set([coupled]) }),
      {
        name: 'PipelineError',
        message: new RegExp(
          `layer ${coupled} cannot lose filters: .*coupled; the methods that apply to it: prune, kmeans, [^;]*;`,
        ),
      },
    );
    shuffle.dispose();
    const layers: ModelLayer[] = [
      { name: 'conv', kind: 'Conv2D', weights: 100 },
      { name: 'dw', kind: 'DepthwiseConv2D', weights: 9 },
    ];
    assertPipelineErrors(layers, [
      [
        [{ method: 'filter-prune', layers: { dw: 0.5 } }],
        /layer dw \(DepthwiseConv2D\) cannot take filter-prune; the methods that apply to it: prune, kmeans/,
      ],
      [
        [{ method: 'prune' }, { method: 'filter-prune' }],
        /removing filters reshapes the layers .*filter-prune first/,
      ],
    ]);
    const preset = loadPipeline('filter-prune', layers);
    assert.equal(preset[0]!.params.macReduction, 0.4);
  });
});

describe('whittle compress --pipeline filter-prune', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-filter-prune-'));
  const trained = join(root, 'vgg');
  const key = bundledSigningKey();
  before(() => trainTinyModel('vgg-small', trained, { trainLimit: 300, testLimit: 50, batchSize: 50 }));
  after(() => rmSync(root, { recursive: true, force: true }));

  test('a smaller dense package: fewer channels and MACs per layer, bit-exact round trip, runtime = tfjs', async () => {
    const spec = join(root, 'fp.json');
    writeFileSync(
      spec,
      JSON.stringify({ steps: [{ method: 'filter-prune', macReduction: 0.4, epochs: 1 }] }),
    );
    const out = join(root, 'fp.whittle');
    const options = {
      model: trained,
      dataset: 'fashion-mnist',
      pipeline: spec,
      out,
      key,
      trainLimit: 200,
      testImages: 50,
      batchSize: 50,
      latencyRuns: 3,
    };
    const result = await runCompress(options);
    assert.equal(result.interrupted, false);
    if (result.interrupted) return;
    const r = result.report;
    assert.ok(r.macs <= 0.6 * r.baseline_macs, `MACs ${r.baseline_macs} -> ${r.macs}`);
    assert.ok(r.compression_ratio > 1.2, `ratio ${r.compression_ratio}`);
    const convs = r.layers.filter((l) => l.op === 'conv2d');
    assert.equal(convs.length, 4);
    assert.ok(
      convs.every((l) => l.channels < l.baseline_channels && l.macs < l.baseline_macs && l.format === 'f32'),
    );
    assert.ok(r.steps[1]!.notes!.some((n) => /MACs \d+ -> \d+ \(\d+\.\d % fewer\)/.test(n)));
    // Bit-exact round trip.
    const bytes = readFileSync(out);
    const pkg = readPackage(bytes, { allowUnsigned: true, cpuFamily: null });
    assert.ok(writePackage(packageContent(pkg), key).equals(bytes));
    // The runtime against the fine-tuned tfjs model on the same images.
    const { shape, worst } = await runtimeVsTfjs(pkg, join(`${out}.run`, '01-filter-prune', 'fine-tune'), 10);
    assert.deepEqual(shape, [10, 10]);
    assert.ok(worst < 1e-4, `runtime vs tfjs: max |difference| ${worst}`);

    // Interrupted in its fine-tuning, resumed: the surgery is read back and the same package comes out.
    const again = join(root, 'resumed.whittle');
    const controller = new AbortController();
    const interrupted = await runCompress({
      ...options,
      out: again,
      signal: controller.signal,
      onProgress: (phase, p) => {
        if (phase === 'filter-prune' && p.phase === 'train' && p.batch === 2) controller.abort();
      },
    });
    assert.equal(interrupted.interrupted, true);
    assert.ok(existsSync(join(`${again}.run`, '01-filter-prune', 'fine-tune', 'checkpoint', 'state.json')));
    const resumed = await runCompress({ ...options, out: again, resume: true });
    assert.equal(resumed.interrupted, false);
    assert.ok(readFileSync(again).equals(bytes), 'the resumed run gives the uninterrupted package');
  });
});
