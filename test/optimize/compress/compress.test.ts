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
import { ManifestEncoding } from '../../../agent/package/layout.js';
import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { loadPipeline, type ModelLayer } from '../../../optimize/compress/pipeline.js';
import {
  hashedKernelSlots,
  iterationSparsity,
  kmeansLinear,
  magnitudeMasks,
  project,
  projectGradient,
  shareWeights,
  sizeScaledBuckets,
  sizeScaledSparsities,
} from '../../../optimize/compress/projection.js';
import { activationHooks, quantizedPoints } from '../../../optimize/compress/qat.js';
import { type CompressOptions, runCompress } from '../../../optimize/compress/runner.js';
import { firstImages, loadDataset } from '../../../optimize/datasets/dataset-spec.js';
import { imageInput } from '../../../optimize/evaluate-package.js';
import { bundledSigningKey, packageContent, writePackage } from '../../../optimize/package/writer.js';
import { distillationLoss } from '../../../optimize/train/trainer.js';
import { assertPipelineErrors, runtimeVsTfjs } from '../../support/compress-fixtures.js';
import { trainTinyModel } from '../../support/tiny-model.js';

const read = (bytes: Buffer) => readPackage(bytes, { allowUnsigned: true, cpuFamily: null });

describe('compression projections', () => {
  test('k-means from a linear initialisation finds separated clusters and sorts its centroids', () => {
    const values = Float32Array.from([-1.01, -0.99, -1, 0.5, 0.49, 0.51, 2, 2.02, 1.98]);
    const { centroids, assignments } = kmeansLinear(values, 3);
    assert.deepEqual([...assignments], [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    assert.ok(Math.abs(centroids[0]! + 1) < 1e-6 && Math.abs(centroids[2]! - 2) < 1e-6);
  });

  test('k-means of values that already take at most k values keeps them exactly', () => {
    const shared = Float32Array.from([0.1, 0, 10, 0.2, 0.1]);
    const { centroids, assignments } = kmeansLinear(shared, 4);
    // From a linear initialisation (0, 3.33, 6.67, 10), 0, 0.1 and 0.2 would have shared one cluster.
    assert.deepEqual([...centroids], [0, 0.1, 0.2, 10].map(Math.fround));
    assert.deepEqual([...assignments], [1, 0, 3, 2, 1]);
  });

  test('magnitude masks prune exactly the smallest fraction, per layer or globally', () => {
    const weights = new Map([
      ['a', Float32Array.from([0.1, -0.5, 0.3, 0.05])],
      ['b', Float32Array.from([1, 2, -3, 4])],
    ]);
    const halves = new Map([
      ['a', 0.5],
      ['b', 0.5],
    ]);
    const per = magnitudeMasks(weights, halves, false);
    assert.deepEqual([...per.get('a')!], [0, 1, 1, 0]);
    assert.deepEqual([...per.get('b')!], [0, 0, 1, 1]);
    const global = magnitudeMasks(weights, halves, true);
    assert.deepEqual([...global.get('a')!], [0, 0, 0, 0]);
    assert.deepEqual([...global.get('b')!], [1, 1, 1, 1]);
  });

  test('prune schedules: geometric keeps a constant fraction per round, cubic ramps from dense fast then flat', () => {
    const rounds = (schedule: 'geometric' | 'cubic'): number[] =>
      [1, 2, 3, 4].map((i) => iterationSparsity(0.9, i, 4, schedule));
    const geometric = rounds('geometric');
    // Each round keeps 0.1^(1/4) of what the last kept.
    const kept = [1, ...geometric.map((s) => 1 - s)];
    for (let i = 1; i < kept.length; i++) assert.ok(Math.abs(kept[i]! / kept[i - 1]! - 0.1 ** 0.25) < 1e-12);
    // 0.9 * (1 - (3/4)^3), 0.9 * (1 - (1/2)^3), 0.9 * (1 - (1/4)^3), 0.9.
    const cubic = rounds('cubic');
    [0.9 * (37 / 64), 0.9 * (7 / 8), 0.9 * (63 / 64), 0.9].forEach((s, i) =>
      assert.ok(Math.abs(cubic[i]! - s) < 1e-12, `${cubic[i]} against ${s}`),
    );
    // Every step smaller than the last; the default is geometric.
    for (let i = 1; i < 4; i++) assert.ok(cubic[i]! - cubic[i - 1]! < cubic[i - 1]! - (cubic[i - 2] ?? 0));
    assert.equal(iterationSparsity(0.9, 2, 4), geometric[1]);
  });

  test('size-scaled sparsities keep the target over the layers, the larger pruned harder, none past all', () => {
    const kept = (sizes: number[], sparsities: number[]): number =>
      sizes.reduce((sum, n, i) => sum + n * (1 - sparsities[i]!), 0);
    // Exponent 1: every layer at the target; 2/3: LeNet-300-100's 784x300 and 300x100.
    assert.deepEqual(
      sizeScaledSparsities([1000, 10], 0.9, 1).map((s) => s.toFixed(9)),
      ['0.900000000', '0.900000000'],
    );
    const lenet = sizeScaledSparsities([235200, 30000], 0.912, 2 / 3);
    assert.ok(Math.abs(kept([235200, 30000], lenet) - 0.088 * 265200) < 1e-6);
    assert.ok(lenet[0]! > 0.92 && lenet[0]! < 0.922 && lenet[1]! > 0.84 && lenet[1]! < 0.845, String(lenet));
    // Exponent 0 asks equal counts: the small layer keeps all it has, the large one the rest.
    assert.deepEqual(sizeScaledSparsities([100, 10], 0.5, 0), [0.55, 0]);
  });

  test('size-scaled hash buckets meet the total compression, the larger layers hashed harder, each >= 1 bucket', () => {
    const check = (sizes: number[], compression: number, exponent: number): number[] => {
      const buckets = sizeScaledBuckets(sizes, compression, exponent);
      const total = sizes.reduce((a, b) => a + b, 0);
      assert.equal(
        buckets.reduce((a, b) => a + b, 0),
        Math.floor(total / compression),
        `${sizes.join()}: ${buckets.join()}`,
      );
      buckets.forEach((b, i) =>
        assert.ok(Number.isInteger(b) && b >= 1 && b <= sizes[i]!, `${sizes.join()}: ${buckets.join()}`),
      );
      // A larger layer keeps no larger a fraction of its weights.
      const order = sizes.map((n, i) => i).sort((a, b) => sizes[a]! - sizes[b]!);
      for (let k = 1; k < order.length; k++) {
        const [small, large] = [order[k - 1]!, order[k]!];
        assert.ok(buckets[large]! / sizes[large]! <= buckets[small]! / sizes[small]! + 1 / sizes[small]!);
      }
      return buckets;
    };
    // LeNet-300-100's dense layers at 8x: fc1 hashed hardest, the output layer given all its weights.
    const lenet = check([235200, 30000, 1000], 8, 0.5);
    assert.ok(266200 / lenet.reduce((a, b) => a + b, 0) >= 8);
    assert.ok(235200 / lenet[0]! > 9.5 && 30000 / lenet[1]! > 3 && 30000 / lenet[1]! < 4, String(lenet));
    assert.equal(lenet[2], 1000);
    // In any order; LeNet-5's; exponent 1: one fraction for all; exponent 0: equal counts where they fit.
    check([1000, 235200, 30000], 8, 0.5);
    check([48000, 10080, 840], 8, 0.63);
    assert.deepEqual(check([800, 200], 4, 1), [200, 50]);
    assert.deepEqual(check([900, 300, 20], 10, 0), [51, 51, 20]);
    // A layer whose share rounds to nothing still gets a bucket, from the largest.
    assert.deepEqual(check([1000, 10, 3], 100, 0.5), [8, 1, 1]);
    // Below one bucket a layer the budget cannot be kept: one each (the step reports the target not met).
    assert.deepEqual(sizeScaledBuckets([5, 3, 2], 4, 0.5), [1, 1, 1]);
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

describe('distillation loss', () => {
  test('alpha 0 is the cross-entropy on the labels; the soft term is T² KL of the softened outputs', () => {
    const student = tf.tensor2d([[0.7, 0.2, 0.1]]);
    const teacher = tf.tensor2d([[0.5, 0.3, 0.2]]);
    const labels = tf.tensor2d([[1, 0, 0]]);
    const ce = -Math.log(0.7);
    assert.ok(Math.abs(distillationLoss(student, teacher, labels, 4, 0).loss.dataSync()[0]! - ce) < 1e-6);
    const soft = (p: number[], t: number): number[] => {
      const z = p.map((v) => Math.exp(Math.log(v) / t));
      const sum = z.reduce((a, b) => a + b, 0);
      return z.map((v) => v / sum);
    };
    const [ps, pt] = [soft([0.7, 0.2, 0.1], 4), soft([0.5, 0.3, 0.2], 4)];
    const kl = pt.reduce((s, p, i) => s + p * Math.log(p / ps[i]!), 0);
    const { loss, crossEntropy } = distillationLoss(student, teacher, labels, 4, 0.9);
    const got = loss.dataSync()[0]!;
    assert.ok(Math.abs(crossEntropy.dataSync()[0]! - ce) < 1e-6);
    assert.ok(Math.abs(got - (0.9 * 16 * kl + 0.1 * ce)) < 1e-5, `${got}`);
    // A student that matches its teacher pays only the label term.
    const same = distillationLoss(teacher, teacher, labels, 2, 0.5).loss.dataSync()[0]!;
    assert.ok(Math.abs(same - 0.5 * -Math.log(0.5)) < 1e-6);
    tf.dispose([student, teacher, labels]);
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
    // The distill preset: a half-width student, 40 epochs at T 2, α 0.5, on clean images; the geometric
    // schedule and no augmentation unless a spec asks.
    const [student] = loadPipeline('distill', layers);
    assert.deepEqual(
      [student!.params.width, student!.params.epochs, student!.params.temperature, student!.params.alpha],
      [0.5, 40, 2, 0.5],
    );
    assert.deepEqual([student!.params.cropPadding, student!.params.flip], [0, false]);
    assert.equal(steps[0]!.params.schedule, 'geometric');
  });
  test('bad specs are refused naming the step, the parameter or the layer', () => {
    assertPipelineErrors(layers, [
      [[{ method: 'zip' }], /unknown method "zip"; the methods are distill, prune, kmeans/],
      [[{ method: 'prune', sparsty: 0.5 }], /unknown parameter "sparsty"; prune takes sparsity/],
      [[{ method: 'prune', sparsity: 1 }], /sparsity must be a number >= 0 and < 1/],
      [[{ method: 'kmeans', bits: 9 }], /bits must be an integer >= 1 and <= 8/],
      [[{ method: 'kmeans', steEpochs: 1.5 }], /kmeans\): steEpochs must be an integer >= 0 and <= 1000/],
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
        [{ method: 'hashednets', sizeExponent: 1.5 }],
        /hashednets\): sizeExponent must be a number >= 0 and <= 1/,
      ],
      [
        [{ method: 'hashednets', layers: { flatten: 8 } }],
        /layer flatten \(Flatten\) cannot take hashednets/,
      ],
      [[{ method: 'prune', temperature: 2 }], /temperature apply to a distilling phase: add "distill": true/],
      [[{ method: 'distill', teacher: '/no/such' }], /teacher must be a `whittle train` directory/],
      [[{ method: 'distill', width: 0 }], /width must be a number >= 0.05/],
      [[{ method: 'distill', cropPadding: 1.5 }], /cropPadding must be an integer/],
      [[{ method: 'prune', flip: 1 }], /flip must be/],
      [[{ method: 'prune', schedule: 'linear' }], /schedule must be one of geometric, cubic/],
      [
        [{ method: 'distill' }, { method: 'prune', layers: { fc1: 0.5 } }],
        /a distill step before it replaces the model by a new student/,
      ],
    ]);
    assert.throws(() => loadPipeline('no-such-preset', layers), /neither a preset \(deep-compression, int8/);
    assert.throws(() => loadPipeline('deep-compression', layers, true), /prune retrains, so MODEL must be/);
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
  /** The run stopped (Ctrl-C) at the second training batch of `phase` (of any phase when not given). */
  const interruptedRun = (options: CompressOptions, phase?: string) => {
    const controller = new AbortController();
    let batches = 0;
    return runCompress({
      ...options,
      signal: controller.signal,
      onProgress: (label, p) => {
        if ((phase === undefined || label === phase) && p.phase === 'train' && ++batches === 2)
          controller.abort();
      },
    });
  };
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
    // The shared layers' biases in 16-bit fixed point, the sections packed (format 1.4), the manifest deflated
    // with the preset dictionary (1.5).
    assert.equal(pkg.header.minor, 5);
    assert.equal(pkg.sections[0]!.encoding, ManifestEncoding.deflateDictionary);
    assert.deepEqual(
      pkg.manifest.nodes
        .filter((n) => n.op === 'fully_connected')
        .map((n) => pkg.manifest.tensors[n.inputs[2]!]!.encoding?.kind),
      ['fixed16', 'fixed16', 'fixed16'],
    );
    // Output shapes, and the runtime against the retrained model's own forward pass on the same images.
    const modelDir = join(`${out}.run`, '02-kmeans', 'fine-tune');
    const { worst } = await runtimeVsTfjs(pkg, modelDir, 20);
    assert.ok(worst < 1e-4, `runtime vs training-time model: max |difference| ${worst}`);
    // Each shared layer holds at most 2^4 values, the pruned ones 80 % zeros.
    const fc1 = readKernelValues(modelDir, 'dense_Dense1');
    assert.ok(new Set(fc1).size <= 16);
    assert.ok(Math.abs(fc1.filter((v) => v === 0).length / fc1.length - 0.8) < 0.01);
  });

  test('k-means with trained assignments: weights change cluster, the same encoding and mask, resumable', async () => {
    const assignSpec = join(root, 'dc-assign.json');
    writeFileSync(
      assignSpec,
      JSON.stringify([
        { method: 'prune', sparsity: 0.8, minWeights: 2000, iterations: 1, epochs: 1 },
        { method: 'kmeans', bits: 4, steEpochs: 1, epochs: 1, learningRate: 1e-2 },
        { method: 'huffman' },
      ]),
    );
    const out = join(root, 'dc-assign.whittle');
    const result = await runCompress({ ...base(out), pipeline: assignSpec });
    assert.equal(result.interrupted, false);
    if (result.interrupted) return;
    assert.ok(result.report.compression_ratio > 8, `ratio ${result.report.compression_ratio}`);
    assert.ok(result.report.layers.every((l) => l.format === 'sparse-codebook' || l.format === 'codebook'));
    const run = `${out}.run`;
    const pruned = readKernelValues(join(run, '01-prune', 'iteration-1'), 'dense_Dense1');
    const mask = Uint8Array.from(pruned, (v) => (v !== 0 ? 1 : 0));
    const assigned = readKernelValues(join(run, '02-kmeans', 'assign'), 'dense_Dense1');
    const modelDir = join(run, '02-kmeans', 'fine-tune');
    const fc1 = readKernelValues(modelDir, 'dense_Dense1');
    for (const values of [assigned, fc1]) {
      // 15 shared values and the zero, the zeros exactly the pruned model's.
      assert.ok(new Set(values).size <= 16);
      assert.deepEqual(
        Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0)),
        mask,
      );
    }
    // Weights changed cluster: some cluster of the k-means the fixed-assignment step starts from is split.
    const { assignments } = shareWeights(pruned, 16, mask);
    const valuesOf = new Map<number, Set<number>>();
    assignments.forEach((c, i) => valuesOf.set(c, (valuesOf.get(c) ?? new Set()).add(assigned[i]!)));
    assert.ok(
      [...valuesOf.values()].some((v) => v.size > 1),
      'no weight left its starting cluster',
    );
    const bytes = readFileSync(out);
    const pkg = read(bytes);
    assert.ok(writePackage(packageContent(pkg), key).equals(bytes));
    const { worst } = await runtimeVsTfjs(pkg, modelDir, 20);
    assert.ok(worst < 1e-4, `runtime vs training-time model: max |difference| ${worst}`);

    // Interrupted while the assignments train: the float weights and the codebooks are restored.
    const again = join(root, 'dc-assign-resume.whittle');
    const interrupted = await interruptedRun({ ...base(again), pipeline: assignSpec }, 'kmeans assign');
    assert.equal(interrupted.interrupted, true);
    assert.ok(existsSync(join(`${again}.run`, '02-kmeans', 'assign', 'checkpoint', 'ste-fit.json')));
    const resumed = await runCompress({ ...base(again), pipeline: assignSpec, resume: true });
    assert.equal(resumed.interrupted, false);
    assert.ok(readFileSync(again).equals(bytes), 'the resumed run gives the uninterrupted package');
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
    const one = Model.fromPackage(pkg, { batch: 1 }).run([x.subarray(0, 784)])[0]!;
    assert.deepEqual([...one.data], [...scores.data.subarray(0, 10)]);
    const modelDir = join(`${out}.run`, '01-hashednets', 'fine-tune');
    const { shape, worst } = await runtimeVsTfjs(pkg, modelDir, 20);
    assert.deepEqual(shape, [20, 10]);
    assert.ok(worst < 1e-4, `runtime vs training-time model: max |difference| ${worst}`);
    // The retrained kernel holds at most one magnitude per bucket.
    const fc1 = readKernelValues(modelDir, 'dense_Dense1');
    assert.ok(new Set(Array.from(fc1, Math.abs)).size <= Math.ceil(fc1.length / 8));
  });

  test('distillation: a half-width student on augmented batches, then pruned while it still learns from the teacher', async () => {
    const out = join(root, 'distill.whittle');
    const distillSpec = join(root, 'distill.json');
    writeFileSync(
      distillSpec,
      JSON.stringify([
        { method: 'distill', width: 0.5, epochs: 3, cropPadding: 2, flip: true },
        {
          method: 'prune',
          sparsity: 0.8,
          iterations: 2,
          schedule: 'cubic',
          epochs: 1,
          learningRate: 1e-3,
          distill: true,
          temperature: 2,
        },
      ]),
    );
    const result = await runCompress({ ...base(out), pipeline: distillSpec });
    assert.equal(result.interrupted, false);
    if (result.interrupted) return;
    const r = result.report;
    assert.deepEqual(
      r.steps.map((s) => s.method),
      ['fp32', 'distill', 'prune'],
    );
    // 784-150-50-10 against 784-300-100-10: about half the weights, then 80 % of those pruned.
    assert.ok(r.steps[1]!.compression_ratio > 1.9, `student ratio ${r.steps[1]!.compression_ratio}`);
    assert.ok(r.compression_ratio > r.steps[1]!.compression_ratio);
    // Tiny data (the teacher is at about 50 %): the student learns, and pruning keeps it above chance.
    const accuracies = r.steps.map((s) => s.accuracy).join(', ');
    assert.ok(r.steps[1]!.accuracy > 0.3 && r.accuracy > 0.15, `accuracies ${accuracies}`);
    assert.deepEqual(
      r.layers.map((l) => l.parameters),
      [784 * 150 + 150, 150 * 50 + 50, 50 * 10 + 10],
    );
    const bytes = readFileSync(out);
    const pkg = read(bytes);
    assert.ok(writePackage(packageContent(pkg), key).equals(bytes));
    const { worst } = await runtimeVsTfjs(pkg, join(`${out}.run`, '02-prune', 'iteration-2'), 20);
    assert.ok(worst < 1e-4, `runtime vs the distilled student: max |difference| ${worst}`);
    // The cubic schedule's first of two rounds: 0.8 * (1 - (1/2)^3) = 0.7 (geometric would be 0.553).
    const fc1 = readKernelValues(join(`${out}.run`, '02-prune', 'iteration-1'), r.layers[0]!.name);
    assert.ok(Math.abs(fc1.filter((v) => v === 0).length / fc1.length - 0.7) < 0.005);
    // The student trained on the augmentation its step asked for; the pruning phase, which asked none, without.
    const trainedWith = (dir: string): unknown => {
      const { config } = JSON.parse(readFileSync(join(`${out}.run`, dir, 'evaluation.json'), 'utf8')) as {
        config: { cropPadding: number; flip: boolean };
      };
      return { cropPadding: config.cropPadding, flip: config.flip };
    };
    assert.deepEqual(trainedWith(join('01-distill', 'student')), { cropPadding: 2, flip: true });
    assert.deepEqual(trainedWith(join('02-prune', 'iteration-1')), { cropPadding: 0, flip: false });
  });

  test('int8 QAT and fixed-point fine-tuning: the runtime computes what the training simulated', async () => {
    for (const [method, format, ratio, tolerance, agreeing] of [
      ['int8-qat', 'int8', 3, 0.02, 99],
      ['fixed16-ft', 'fixed16', 1.7, 1e-3, 99],
      // 8-bit logits are coarse (a step of 2^-4 or so): where the float simulation and the integer
      // accumulator land on either side of a rounding boundary, a score moves by a step's worth.
      ['fixed8-ft', 'fixed8', 3, 0.05, 97],
    ] as const) {
      const out = join(root, `${method}.whittle`);
      const qatSpec = join(root, `${method}.json`);
      writeFileSync(qatSpec, JSON.stringify([{ method, epochs: 1, learningRate: 1e-3 }]));
      const result = await runCompress({ ...base(out), pipeline: qatSpec });
      assert.equal(result.interrupted, false);
      if (result.interrupted) return;
      const r = result.report;
      assert.ok(r.compression_ratio > ratio, `${method} ratio ${r.compression_ratio}`);
      assert.ok(
        r.layers.every((l) => l.format === format),
        r.layers.map((l) => l.format).join(', '),
      );
      const bytes = readFileSync(out);
      const pkg = read(bytes);
      assert.ok(writePackage(packageContent(pkg), key).equals(bytes), `${method}: bit-exact round trip`);
      // The training-time simulation: the retrained model with its activations fake-quantized at the
      // ranges it was trained with (as the phase's last checkpoint saved them).
      const phase = join(`${out}.run`, `01-${method}`, 'train');
      const { worst, same } = await runtimeVsTfjs(pkg, phase, 100, (model) => {
        const names = model.layers.filter((l) => l.countParams() > 0).map((l) => l.name);
        const hooks = activationHooks(format, quantizedPoints(format, names));
        hooks.restore!(join(phase, 'checkpoint'));
        hooks.start!(model);
      });
      console.error(`${method}: max |simulation - runtime| ${worst}, same class ${same}/100`);
      assert.ok(worst < tolerance, `${method}: max |simulation - runtime| ${worst}`);
      assert.ok(same >= agreeing, `${method}: same class on ${same} of 100 images`);
    }
  });

  test('an interrupted QAT phase resumes (float weights and activation ranges restored) to the same package', async () => {
    const out = join(root, 'qat-resume.whittle');
    const qatSpec = join(root, 'int8-qat.json');
    const interrupted = await interruptedRun({ ...base(out), pipeline: qatSpec });
    assert.equal(interrupted.interrupted, true);
    const checkpoint = join(`${out}.run`, '01-int8-qat', 'train', 'checkpoint');
    assert.ok(
      existsSync(join(checkpoint, 'qat-ranges.json')) && existsSync(join(checkpoint, 'ste-float.json')),
    );
    const resumed = await runCompress({ ...base(out), pipeline: qatSpec, resume: true });
    assert.equal(resumed.interrupted, false);
    assert.ok(
      readFileSync(out).equals(readFileSync(join(root, 'int8-qat.whittle'))),
      'the resumed run gives the uninterrupted package',
    );
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
    const interrupted = await interruptedRun(base(out), 'kmeans');
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

/** The runtime's scores of `pkg` against the tfjs model's own forward pass (after `prepare`, which may wrap
 * it as a training phase does) on the first `n` test images: the largest |difference| of a score, and the
 * images both give the same class. */
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
