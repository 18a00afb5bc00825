// A miniature search end to end (issue 16's CI run): a tiny supernet on a Fashion-MNIST subset, a few
// evolution cycles, the best architecture fine-tuned, packaged and measured on the runtime; interrupted and
// resumed; an impossible budget reports the closest candidates and their misses; a corrupt checkpoint is
// refused.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { readPackageFile } from '../../../agent/package/reader.js';
import { defaultGrid, measureLatencyTable } from '../../../agent/profile/latency-table.js';
import { firstImages, loadDataset } from '../../../optimize/datasets/dataset-spec.js';
import { evaluatePackage } from '../../../optimize/evaluate-package.js';
import { predictLatency } from '../../../optimize/latency/predictor.js';
import {
  DEFAULT_NAS_SETTINGS,
  NAS_PACKAGE_FILE,
  NasCheckpointError,
  type NasSettings,
  pickFinalists,
  runNas,
} from '../../../optimize/nas/search.js';
import {
  archKey,
  type ArchSpec,
  type BlockType,
  floatArch,
  type LayerFormat,
} from '../../../optimize/nas/space.js';
import { deviceTarget } from '../../../optimize/plan/target.js';
import { selectTrainingBackend } from '../../../optimize/train/backend-select.js';

const TINY: NasSettings = {
  ...DEFAULT_NAS_SETTINGS,
  dataset: 'fashion-mnist',
  budgets: { latencyMs: 50, sizeBytes: 400_000 },
  supernetEpochs: 1,
  batchSize: 32,
  pathBatches: 4,
  adaptBatches: 2,
  trainLimit: 400,
  validationImages: 100,
  calibrationImages: 32,
  testLimit: 100,
  populationSize: 3,
  sampleSize: 2,
  cycles: 2,
  finetuneEpochs: 1,
  latencyRuns: 5,
};

describe('whittle nas search (miniature)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-nas-search-'));
  before(async () => {
    await selectTrainingBackend('whittle-native');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('interrupted in the supernet, resumed, ends with a packaged model within the budgets', async () => {
    const out = join(dir, 'run');
    const controller = new AbortController();
    const phases = new Set<string>();
    const first = await runNas({
      settings: TINY,
      outDir: out,
      signal: controller.signal,
      onProgress: (p) => {
        phases.add(p.phase);
        if (p.phase === 'supernet') controller.abort();
      },
    });
    assert.equal(first.interrupted, true);
    assert.ok(existsSync(join(out, 'supernet.json')), 'the interrupted supernet is checkpointed');
    const second = await runNas({ settings: TINY, outDir: out, onProgress: (p) => phases.add(p.phase) });
    assert.equal(second.interrupted, false);
    if (second.interrupted) return;
    const { report } = second;
    assert.deepEqual([...phases], ['supernet', 'evolution', 'finetune', 'package']);
    assert.equal(report.feasible, true);
    assert.equal(report.generations, 2);
    assert.ok(report.candidates_evaluated >= 3 && report.candidates_evaluated <= 5);
    assert.ok(report.pareto_front.length >= 1);
    // The budget seeds fit the budgets and started the population; the finalists are ranked by their longer
    // score and their latency timed again (the accuracy within the budget, below 0 over it), and the first
    // of them is the model fine-tuned.
    assert.ok(report.budget_seeds.length >= 1);
    const { state } = JSON.parse(readFileSync(join(out, 'search.json'), 'utf8')) as {
      state: { history: { key: string; cycle: number; misses: object }[] };
    };
    for (const key of report.budget_seeds) {
      const seed = state.history.find((c) => c.key === key);
      assert.ok(seed?.cycle === -1 && Object.keys(seed.misses).length === 0, `seed ${key}`);
    }
    assert.ok(report.finalists.length >= 2 && report.finalists.length <= 3);
    const floats = report.finalists.map((f) => archKey(floatArch(f.arch)));
    assert.equal(new Set(floats).size, floats.length, 'one finalist per float architecture');
    report.finalists.forEach((f, i) => {
      assert.ok(f.misses === undefined, `${f.key} within the budgets`);
      assert.ok(f.finalist_latency_ms > 0, `${f.key} timed again`);
      if (f.finalist_latency_ms <= 50) assert.equal(f.finalist_fitness, f.finalist_accuracy);
      else assert.ok(f.finalist_fitness < 0);
      if (i > 0) assert.ok(f.finalist_fitness <= report.finalists[i - 1]!.finalist_fitness);
    });
    assert.equal(report.best?.key, report.finalists[0]!.key);
    // Each finalist's trained epoch is kept, and the one fine-tuned started from it, not from the supernet.
    for (const f of report.finalists)
      assert.ok(existsSync(join(out, 'finalists', f.key, 'model.json')), f.key);
    assert.ok(!existsSync(join(out, 'subnet')), 'no start taken from the supernet');
    const best = report.best;
    assert.equal(best.test_images, 100);
    assert.ok(best.measured_latency_ms > 0 && best.measured_package_bytes <= 400_000);
    // The report describes the package written: its size, its formats, its accuracy on the same images.
    const pkg = readPackageFile(join(out, NAS_PACKAGE_FILE), { allowUnsigned: true, cpuFamily: null });
    assert.equal(pkg.fileBytes, best.measured_package_bytes);
    const { test: testSet } = loadDataset('fashion-mnist');
    assert.equal(evaluatePackage(pkg, firstImages(testSet!, 100)).top1, best.accuracy);
    for (const stage of best.arch.stages.filter((s) => s.format === 'int8'))
      assert.ok(
        pkg.manifest.nodes.some(
          (n) => n.name.startsWith(`s${best.arch.stages.indexOf(stage)}b0_`) && n.format === 'int8',
        ),
        `stage ${best.arch.stages.indexOf(stage)} runs in int8`,
      );
    // A finished search run again reuses its checkpoints: nothing is trained or scored twice.
    const again = await runNas({
      settings: TINY,
      outDir: out,
      onProgress: (p) => assert.notEqual(p.phase, 'supernet'),
    });
    assert.equal(again.interrupted, false);
    // A checkpoint whose finalists are not a list is refused, naming the file; the run's outputs are kept.
    const file = join(out, 'search.json');
    const saved = readFileSync(file, 'utf8');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(saved), finalists: 'best' }));
    await assert.rejects(
      runNas({ settings: TINY, outDir: out }),
      (e: unknown) =>
        e instanceof NasCheckpointError && /search\.json: malformed search checkpoint/.test(e.message),
    );
    assert.ok(existsSync(join(out, NAS_PACKAGE_FILE)));
  });

  test('finalists: the fittest of each family first, one per float architecture, fittest first', () => {
    const candidate = (accuracy: number, blocks: BlockType[], kernel = 3, head: LayerFormat = 'int8') => {
      const arch: ArchSpec = {
        stem: { width: 24, format: 'int8' },
        stages: blocks.map((block, i) => ({
          block,
          width: [32, 64, 96][i]!,
          depth: 3,
          kernel,
          format: 'int8' as const,
          prune: 0,
        })),
        head: { format: head },
      };
      return {
        arch,
        key: archKey(arch),
        accuracy,
        latencyMs: 1,
        ramBytes: 1,
        packageBytes: 1,
        misses: {},
        cycle: 0,
      };
    };
    const dwsep = candidate(0.75, ['dwsep', 'dwsep', 'dwsep']);
    const dwsepK5 = candidate(0.749, ['dwsep', 'dwsep', 'dwsep'], 5);
    const dwsepFp32Head = candidate(0.7498, ['dwsep', 'dwsep', 'dwsep'], 3, 'fp32');
    const mixed = candidate(0.7495, ['dwsep', 'dwsep', 'conv']);
    const conv = candidate(0.7455, ['conv', 'conv', 'conv']);
    const shuffle = candidate(0.65, ['shuffle', 'shuffle', 'shuffle']);
    const all = [shuffle, conv, dwsepK5, dwsepFp32Head, mixed, dwsep];
    const keys = (cs: { key: string }[]) => cs.map((c) => c.key);
    assert.deepEqual(keys(pickFinalists(all, { latencyMs: 2 }, 3)), keys([dwsep, mixed, conv]));
    // More finalists than families: the next fittest other float architecture, in fitness order.
    assert.deepEqual(
      keys(pickFinalists(all, { latencyMs: 2 }, 5)),
      keys([dwsep, mixed, dwsepK5, conv, shuffle]),
    );
    assert.deepEqual(pickFinalists([dwsep, dwsepFp32Head], { latencyMs: 2 }, 3), []);
  });

  test('an impossible budget reports the closest candidates and by how much each misses', async () => {
    const out = join(dir, 'impossible');
    const result = await runNas({ settings: { ...TINY, budgets: { sizeBytes: 1000 } }, outDir: out });
    assert.equal(result.interrupted, false);
    if (result.interrupted) return;
    assert.equal(result.report.feasible, false);
    assert.equal(result.report.best, undefined);
    const closest = result.report.closest!;
    assert.ok(closest.length >= 1);
    for (const c of closest) assert.equal(c.misses!.package_bytes, c.package_bytes - 1000);
    assert.deepEqual(
      closest.map((c) => c.package_bytes),
      [...closest.map((c) => c.package_bytes)].sort((a, b) => a - b),
    );
    // A corrupt checkpoint is refused, naming the file.
    writeFileSync(join(out, 'supernet.bin'), Buffer.alloc(12));
    await assert.rejects(
      runNas({ settings: { ...TINY, budgets: { sizeBytes: 1000 } }, outDir: out }),
      (e: unknown) => e instanceof NasCheckpointError && /supernet\.bin/.test(e.message),
    );
  });

  test("a search for a device class is priced from the class's estimated table; a resume for another is refused", async () => {
    const reference = await measureLatencyTable({ grid: defaultGrid(true), rounds: 5, sampleMs: 0.05 });
    const pi3 = deviceTarget({ className: 'raspberry-pi-3b', reference }).table!;
    const settings = { ...TINY, budgets: { sizeBytes: 400_000 }, latencySource: pi3.source };
    const out = join(dir, 'pi3');
    const result = await runNas({
      settings,
      outDir: out,
      latencyOf: (_arch, pkg) => predictLatency(pkg, pi3.table).ms,
    });
    assert.equal(result.interrupted, false);
    if (result.interrupted) return;
    const { report } = result;
    assert.equal(report.latency_source, pi3.source);
    const best = report.best!;
    const pkg = readPackageFile(best.package, { allowUnsigned: true, cpuFamily: null });
    // The best is judged by the Pi 3's time for the fine-tuned package, not by this machine's.
    assert.equal(best.latency_ms, predictLatency(pkg, pi3.table).ms);
    assert.ok(best.latency_ms > best.measured_latency_ms, JSON.stringify(best));
    await assert.rejects(
      runNas({ settings: { ...settings, latencySource: 'another device' }, outDir: out }),
      (e: unknown) => e instanceof NasCheckpointError && /other settings/.test(e.message),
    );
  });
});
