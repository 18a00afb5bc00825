// `whittle compress` end to end on tiny Fashion-MNIST subsets (a few hundred images, one epoch per phase):
// every method's package (output shapes, the size reduction, a bit-exact round trip, agreement between the
// retrained model's own forward pass and the runtime's), resume after an interrupted phase, a corrupted
// checkpoint refused with the earlier output kept, bad pipelines; and the projections themselves.
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { encodeHashed, hashedSlot, toFloat32 } from '../../../agent/package/encodings.js';
import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { loadPipeline, type ModelLayer } from '../../../optimize/compress/pipeline.js';
import {
  hashedKernelSlots,
  kmeansLinear,
  magnitudeMasks,
  project,
  projectGradient,
  shareWeights,
} from '../../../optimize/compress/projection.js';
import { type CompressOptions, runCompress } from '../../../optimize/compress/runner.js';
import { firstImages, loadDataset } from '../../../optimize/datasets/dataset-spec.js';
import { imageInput } from '../../../optimize/evaluate-package.js';
import { bundledSigningKey, packageContent, writePackage } from '../../../optimize/package/writer.js';
import { fileHandler } from '../../../optimize/train/file-io.js';
import { trainTinyModel } from '../../support/tiny-model.js';

const read = (bytes: Buffer) => readPackage(bytes, { allowUnsigned: true, cpuFamily: null });

describe('compression projections', () => {
  test('k-means from a linear initialisation finds separated clusters and sorts its centroids', () => {
    const values = Float32Array.from([-1.01, -0.99, -1, 0.5, 0.49, 0.51, 2, 2.02, 1.98]);
    const { centroids, assignments } = kmeansLinear(values, 3);
    assert.deepEqual([...assignments], [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    assert.ok(Math.abs(centroids[0]! + 1) < 1e-6 && Math.abs(centroids[2]! - 2) < 1e-6);
  });

  test('magnitude masks prune exactly the smallest fraction, per layer or globally', () => {
    const weights = new Map([
      ['a', Float32Array.from([0.1, -0.5, 0.3, 0.05])],
      ['b', Float32Array.from([1, 2, -3, 4])],
    ]);
    const per = magnitudeMasks(
      weights,
      new Map([
        ['a', 0.5],
        ['b', 0.5],
      ]),
      false,
    );
    assert.deepEqual([...per.get('a')!], [0, 1, 1, 0]);
    assert.deepEqual([...per.get('b')!], [0, 0, 1, 1]);
    const global = magnitudeMasks(
      weights,
      new Map([
        ['a', 0.5],
        ['b', 0.5],
      ]),
      true,
    );
    assert.deepEqual([...global.get('a')!], [0, 0, 0, 0]);
    assert.deepEqual([...global.get('b')!], [1, 1, 1, 1]);
  });

  test('a shared layer gets its cluster summed gradient; a pruned weight none', () => {
    const mask = Uint8Array.from([1, 1, 0, 1]);
    const { assignments, shared } = shareWeights(Float32Array.from([0.5, 0.52, 0, -0.4]), 3, mask);
    assert.equal(shared[2], 0);
    assert.equal(assignments[2], 0);
    assert.equal(shared[0], shared[1]);
    const g = projectGradient(Float32Array.from([1, 2, 5, 3]), { layer: 'x', mask, assignments });
    assert.deepEqual([...g], [3, 3, 0, 3]);
  });

  test('a hashed kernel is its signed buckets; each weight gets its sign times the bucket signed gradient sum', () => {
    // A Dense kernel [inputs 3][outputs 2]; weight (k, o) is package element o * 3 + k.
    const hashed = { buckets: 2, seed: 7, inputs: 3, outputs: 2 };
    const slots = hashedKernelSlots(hashed);
    for (let k = 0; k < 3; k++)
      for (let o = 0; o < 2; o++) assert.equal(slots[k * 2 + o], hashedSlot(o * 3 + k, 7, 2));
    const sign = (i: number): number => (slots[i]! < 0 ? -1 : 1);
    const bucket = (i: number): number => (slots[i]! < 0 ? ~slots[i]! : slots[i]!);
    const projected = project(Float32Array.from([0.5, -1, 2, 0.25, -0.75, 1]), { layer: 'x', hashed });
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 6; j++)
        if (bucket(i) === bucket(j)) assert.equal(projected[i]! * sign(i), projected[j]! * sign(j));
    // Bit for bit what the package stores: the runtime's expansion of the encoded buckets (transposed).
    const transposed = new Float32Array(6);
    for (let k = 0; k < 3; k++) for (let o = 0; o < 2; o++) transposed[o * 3 + k] = projected[k * 2 + o]!;
    const encoded = encodeHashed(transposed, 2, 7);
    const stored = new Float32Array(
      encoded.bytes.buffer.slice(encoded.bytes.byteOffset, encoded.bytes.byteOffset + 8),
    );
    assert.deepEqual([...toFloat32({ kind: 'hashed', buckets: stored, seed: 7 }, 6)], [...transposed]);
    const gradient = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const g = projectGradient(gradient, { layer: 'x', hashed });
    for (let i = 0; i < 6; i++) {
      let sum = 0;
      for (let j = 0; j < 6; j++) if (bucket(j) === bucket(i)) sum += sign(j) * gradient[j]!;
      assert.equal(g[i], sign(i) * sum);
    }
  });
});

describe('pipelines', () => {
  const layers: ModelLayer[] = [
    { name: 'flatten', kind: 'Flatten', weights: 0 },
    { name: 'fc1', kind: 'Dense', weights: 1000 },
  ];
  test('presets expand with their defaults', () => {
    const steps = loadPipeline('deep-compression', layers);
    assert.deepEqual(
      steps.map((s) => s.method),
      ['prune', 'kmeans', 'huffman'],
    );
    assert.equal(steps[1]!.params.bits, 5);
  });
  test('bad specs are refused naming the step, the parameter or the layer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'whittle-pipeline-'));
    const spec = (steps: unknown): string => {
      const path = join(dir, `${Math.random()}.json`);
      writeFileSync(path, JSON.stringify({ steps }));
      return path;
    };
    try {
      const cases: [unknown, RegExp][] = [
        [[{ method: 'zip' }], /unknown method "zip"; the methods are prune, kmeans/],
        [[{ method: 'prune', sparsty: 0.5 }], /unknown parameter "sparsty"; prune takes sparsity/],
        [[{ method: 'prune', sparsity: 1 }], /sparsity must be a number >= 0 and < 1/],
        [[{ method: 'kmeans', bits: 9 }], /bits must be an integer >= 1 and <= 8/],
        [
          [{ method: 'prune', layers: { flatten: 0.5 } }],
          /layer flatten \(Flatten\) cannot take prune; no per-layer method applies to it .*whole-model methods: int8, fixed16, fixed8/,
        ],
        [
          [{ method: 'prune', layers: { fc9: 0.5 } }],
          /the model has no layer "fc9"; its layers are flatten, fc1/,
        ],
        [[{ method: 'huffman' }], /huffman\): codes the cluster indices of a kmeans step/],
        [
          [{ method: 'prune' }, { method: 'int8' }],
          /int8 rewrites the whole fp32 model .* cannot follow prune/,
        ],
        [[{ method: 'kmeans' }, { method: 'prune' }], /pruning after kmeans/],
        [[{ method: 'prune' }, { method: 'hashednets' }], /hashednets runs without prune and kmeans/],
        [
          [{ method: 'hashednets', layers: { flatten: 8 } }],
          /layer flatten \(Flatten\) cannot take hashednets/,
        ],
      ];
      for (const [steps, message] of cases)
        assert.throws(() => loadPipeline(spec(steps), layers), { name: 'PipelineError', message });
      assert.throws(
        () => loadPipeline('no-such-preset', layers),
        /neither a preset \(deep-compression, int8/,
      );
      assert.throws(() => loadPipeline('deep-compression', layers, true), /prune retrains, so MODEL must be/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('whittle compress', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-compress-'));
  if (process.env.KEEP) console.error(root);
  const trained = join(root, 'mlp');
  const spec = join(root, 'dc.json');
  const key = bundledSigningKey();
  const base = (out: string): CompressOptions => ({
    model: trained,
    dataset: 'fashion-mnist',
    pipeline: spec,
    out,
    key,
    trainLimit: 300,
    testImages: 100,
    batchSize: 50,
    latencyRuns: 3,
  });
  before(async () => {
    await trainTinyModel('lenet-300-100', trained);
    writeFileSync(
      spec,
      JSON.stringify({
        steps: [
          { method: 'prune', sparsity: 0.8, minWeights: 2000, iterations: 1, epochs: 1 },
          { method: 'kmeans', bits: 4, epochs: 1 },
          { method: 'huffman' },
        ],
      }),
    );
  });
  after(() => (process.env.KEEP ? undefined : rmSync(root, { recursive: true, force: true })));

  let uninterrupted: Buffer;
  test('deep compression: smaller, round-trips bit-exact, and the runtime agrees with the retrained model', async () => {
    const out = join(root, 'dc.whittle');
    const result = await runCompress(base(out));
    assert.equal(result.interrupted, false);
    if (result.interrupted) return;
    const r = result.report;
    uninterrupted = readFileSync(out);
    assert.deepEqual(
      r.steps.map((s) => s.method),
      ['fp32', 'prune', 'kmeans', 'huffman'],
    );
    assert.ok(r.compression_ratio > 8, `ratio ${r.compression_ratio}`);
    assert.ok(r.steps[3]!.bytes < r.steps[2]!.bytes, 'Huffman coding shrinks the shared layers');
    assert.ok(r.accuracy > 0.3 && r.baseline_accuracy > 0.3);
    assert.equal(r.bytes, uninterrupted.length);
    const formats = new Map(r.layers.map((l) => [l.name, l.format]));
    // Pruned and shared: sparse-codebook (format 1.2) where it is the smallest, codebook where it is not.
    assert.ok([...formats.values()].includes('sparse-codebook'), [...formats.values()].join(', '));
    assert.ok([...formats.values()].every((f) => f === 'sparse-codebook' || f === 'codebook'));
    // Bit-exact round trip through the agent's reader and the writer.
    const pkg = read(uninterrupted);
    assert.ok(writePackage(packageContent(pkg), key).equals(uninterrupted));
    // Output shapes, and the runtime against the retrained model's own forward pass on the same images.
    const test = firstImages(loadDataset('fashion-mnist').test!, 20);
    const x = imageInput(test, 0, 20);
    const model = Model.fromPackage(pkg, { batch: 20 });
    const scores = model.run([x])[0]!;
    assert.deepEqual(scores.shape, [20, 10]);
    const modelDir = join(`${out}.run`, '02-kmeans', 'fine-tune');
    const tfModel = await tf.loadLayersModel(fileHandler(modelDir));
    const expected = tf.tidy(() =>
      (tfModel.predict(tf.tensor4d(x, [20, 28, 28, 1])) as tf.Tensor).dataSync(),
    );
    tfModel.dispose();
    let worst = 0;
    for (let i = 0; i < expected.length; i++)
      worst = Math.max(worst, Math.abs(expected[i]! - scores.data[i]!));
    assert.ok(worst < 1e-4, `runtime vs training-time model: max |difference| ${worst}`);
    // Each shared layer holds at most 2^4 values, the pruned ones 80 % zeros.
    const fc1 = readKernelValues(modelDir, 'dense_Dense1');
    assert.ok(new Set(fc1).size <= 16);
    assert.ok(Math.abs(fc1.filter((v) => v === 0).length / fc1.length - 0.8) < 0.01);
  });

  test('hashednets: 8x smaller dense layers, bit-exact round trip, the native kernel agrees with the retrained model', async () => {
    const out = join(root, 'hashed.whittle');
    const hashedSpec = join(root, 'hashed.json');
    writeFileSync(
      hashedSpec,
      JSON.stringify({ steps: [{ method: 'hashednets', compression: 8, epochs: 1, learningRate: 1e-3 }] }),
    );
    const result = await runCompress({ ...base(out), pipeline: hashedSpec });
    assert.equal(result.interrupted, false);
    if (result.interrupted) return;
    const r = result.report;
    const bytes = readFileSync(out);
    assert.equal(r.bytes, bytes.length);
    // Every dense layer hashed into ceil(weights / 8) buckets of 4 bytes, its bias raw.
    const dims = [
      [784, 300],
      [300, 100],
      [100, 10],
    ];
    assert.deepEqual(
      r.layers.map((l) => [l.format, l.bytes]),
      dims.map(([k, o]) => ['hashed', 4 * Math.ceil((k! * o!) / 8) + 4 * o!]),
    );
    assert.ok(r.compression_ratio > 7, `ratio ${r.compression_ratio}`);
    const pkg = read(bytes);
    assert.ok(writePackage(packageContent(pkg), key).equals(bytes));
    // The runtime on the native hashed kernel against the retrained model's forward pass, and batch 1
    // against batch 20 bit for bit.
    const test = firstImages(loadDataset('fashion-mnist').test!, 20);
    const x = imageInput(test, 0, 20);
    const model = Model.fromPackage(pkg, { batch: 20 });
    assert.ok(
      model.layers
        .filter((l) => l.op === 'fully_connected')
        .every((l) => l.kernel.startsWith('native:hashed_fully_connected')),
      model.layers.map((l) => l.kernel).join(', '),
    );
    const scores = model.run([x])[0]!;
    assert.deepEqual(scores.shape, [20, 10]);
    const one = Model.fromPackage(pkg, { batch: 1 }).run([x.subarray(0, 784)])[0]!;
    assert.deepEqual([...one.data], [...scores.data.subarray(0, 10)]);
    const modelDir = join(`${out}.run`, '01-hashednets', 'fine-tune');
    const tfModel = await tf.loadLayersModel(fileHandler(modelDir));
    const expected = tf.tidy(() =>
      (tfModel.predict(tf.tensor4d(x, [20, 28, 28, 1])) as tf.Tensor).dataSync(),
    );
    tfModel.dispose();
    let worst = 0;
    for (let i = 0; i < expected.length; i++)
      worst = Math.max(worst, Math.abs(expected[i]! - scores.data[i]!));
    assert.ok(worst < 1e-4, `runtime vs training-time model: max |difference| ${worst}`);
    // The retrained kernel holds at most one magnitude per bucket.
    const fc1 = readKernelValues(modelDir, 'dense_Dense1');
    assert.ok(new Set(Array.from(fc1, Math.abs)).size <= Math.ceil(fc1.length / 8));
  });

  test('int8, fixed16 and fixed8 run on the fp32 package as steps', async () => {
    const baseline = join(`${join(root, 'dc.whittle')}.run`, 'baseline.whittle');
    for (const [preset, ratio] of [
      ['int8', 3],
      ['fixed16', 1.7],
      ['fixed8', 3],
    ] as const) {
      const out = join(root, `${preset}.whittle`);
      const result = await runCompress({ ...base(out), model: baseline, pipeline: preset });
      assert.equal(result.interrupted, false);
      if (result.interrupted) return;
      assert.ok(
        result.report.compression_ratio > ratio,
        `${preset} ratio ${result.report.compression_ratio}`,
      );
      assert.ok(
        Math.abs(result.report.accuracy - result.report.baseline_accuracy) < 0.05,
        `${preset} accuracy ${result.report.accuracy} vs ${result.report.baseline_accuracy}`,
      );
      const pkg = read(readFileSync(out));
      const one = imageInput(loadDataset('fashion-mnist').test!, 0, 1);
      assert.deepEqual(Model.fromPackage(pkg).run([one])[0]!.shape, [1, 10]);
    }
  });

  test('an interrupted phase resumes to the same package; a truncated checkpoint is refused, earlier output kept', async () => {
    const out = join(root, 'resume.whittle');
    const controller = new AbortController();
    let batches = 0;
    const interrupted = await runCompress({
      ...base(out),
      signal: controller.signal,
      onProgress: (phase, p) => {
        if (phase === 'kmeans' && p.phase === 'train' && ++batches === 2) controller.abort();
      },
    });
    assert.equal(interrupted.interrupted, true);
    const run = `${out}.run`;
    const checkpoint = join(run, '02-kmeans', 'fine-tune', 'checkpoint');
    assert.ok(existsSync(join(checkpoint, 'state.json')));
    const pruneDone = join(run, '01-prune', 'done.json');
    const before = statSync(pruneDone).mtimeMs;

    // A second run without --resume does not touch it.
    await assert.rejects(runCompress(base(out)), {
      name: 'CompressRunError',
      message: /--resume continues it/,
    });

    // A truncated checkpoint: refused, and nothing of the run is lost.
    const weights = join(checkpoint, 'weights.bin');
    const whole = readFileSync(weights);
    truncateSync(weights, 100);
    await assert.rejects(runCompress({ ...base(out), resume: true }), {
      name: 'CheckpointError',
      message: /corrupted or truncated.*start the run again without --resume/,
    });
    assert.ok(existsSync(join(run, 'baseline.whittle')) && existsSync(join(run, '01-prune', 'step.whittle')));
    assert.equal(statSync(pruneDone).mtimeMs, before);
    writeFileSync(weights, whole);

    const resumed = await runCompress({ ...base(out), resume: true });
    assert.equal(resumed.interrupted, false);
    assert.equal(statSync(pruneDone).mtimeMs, before, 'the finished step is read back, not rerun');
    assert.ok(readFileSync(out).equals(uninterrupted), 'the resumed run gives the uninterrupted package');
  });
});

/** A dense layer's kernel values as saved in a model directory. */
function readKernelValues(dir: string, layer: string): Float32Array {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as {
    weightsManifest: { weights: { name: string; shape: number[] }[] }[];
  };
  const bytes = readFileSync(join(dir, 'weights.bin'));
  let offset = 0;
  for (const w of json.weightsManifest.flatMap((g) => g.weights)) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    if (w.name === `${layer}/kernel`)
      return new Float32Array(
        bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + offset + 4 * n),
      );
    offset += 4 * n;
  }
  throw new Error(`no kernel of ${layer}`);
}
