// `whittle optimize`'s final check on the device (runOptimize's verifyOnTarget), when the device does not run
// what its table says: the plan is priced from a latency table measured with the native kernels (here, this
// machine's quick grid), where int8 layers pay, and the device is one whose native addon no longer loads, so
// the agent runs the reference executors (TypeScript), where LeNet-5's int8 layers run several times slower
// than fp32. Every kept step is taken back one at a time and timed on the device with and without; the steps
// that do not pay there are dropped (ledger reason slower-on-device, both figures in the entry), and the
// package written is the plan that is left.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { readPackageFile } from '../../../agent/package/reader.js';
import { defaultGrid, measureLatencyTable } from '../../../agent/profile/latency-table.js';
import { Model } from '../../../agent/runtime/model.js';
import { elements } from '../../../agent/runtime/tensor.js';
import { bundledSigningKey } from '../../../optimize/package/writer.js';
import { tableEstimator } from '../../../optimize/plan/estimator.js';
import { type DeviceMeasured, type OptimizeReport, runOptimize } from '../../../optimize/plan/optimize.js';
import { trainTinyModel } from '../../support/tiny-model.js';

const RUNS = 31;

/** Times the two packages as an agent without its native addon runs them: on the reference executors,
 * warmed up, then interleaved run by run, batch 1. */
async function referenceDevice(files: { baseline: string; final: string }): Promise<DeviceMeasured> {
  const models = [files.baseline, files.final].map((f) =>
    Model.fromPackage(readPackageFile(f, { allowUnsigned: true, cpuFamily: null }), { referenceOnly: true }),
  );
  const input = new Float32Array(
    elements(models[0]!.specs[models[0]!.manifest.inputs[0]!.tensor]!.shape),
  ).fill(0.5);
  for (const m of models) for (let r = 0; r < 3; r++) m.run([input]); // warm-up (the JIT, the first allocations)
  const times: number[][] = [[], []];
  for (let r = 0; r < RUNS; r++)
    models.forEach((m, k) => {
      const start = performance.now();
      m.run([input]);
      times[k]!.push(performance.now() - start);
    });
  const at = (k: number, q: number): number =>
    [...times[k]!].sort((a, b) => a - b)[Math.floor(q * (RUNS - 1))]!;
  await Promise.resolve();
  return {
    baseline_ms: at(0, 0.5),
    baseline_p90_ms: at(0, 0.9),
    final_ms: at(1, 0.5),
    final_p90_ms: at(1, 0.9),
    runs: RUNS,
    source: 'device test-board (no native addon, 1 thread(s))',
  };
}

test('steps the device times slower are dropped one by one, the plan left written and verified', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-optimize-device-'));
  try {
    const trained = join(dir, 'trained');
    await trainTinyModel('lenet5', trained);
    const table = await measureLatencyTable({ grid: defaultGrid(true) });
    const out = join(dir, 'out');
    const result = await runOptimize({
      model: trained,
      dataset: 'fashion-mnist',
      out,
      // Faster than fp32 can run: the plan takes every step that pays on the table.
      budgets: { latencyMs: 1e-4 },
      estimator: tableEstimator(table, "test-board's table (measured with its native kernels)"),
      target: 'test-board',
      key: bundledSigningKey(),
      images: 60,
      runs: 20,
      verifyOnTarget: referenceDevice,
    });
    assert.ok(!result.interrupted);
    const report: OptimizeReport = result.report;
    const onDevice = report.ledger.filter((l) => l.reason === 'slower-on-device');
    assert.ok(
      onDevice.length > 0,
      JSON.stringify([
        report.ledger.map((l) => [l.layer, l.to, l.reason]),
        report.device_measured,
        report.notes,
      ]),
    );
    for (const l of onDevice) {
      assert.equal(l.kept, false);
      assert.ok(l.device && l.device.ms_without < l.device.ms_with, JSON.stringify(l.device));
      assert.equal(report.plan[l.layer], undefined, `${l.layer} dropped, not in the plan`);
    }
    assert.ok(report.notes.some((n) => /runs the package faster without/.test(n)));
    assert.equal(report.steps_kept, report.ledger.filter((l) => l.kept).length);
    // The written package is the plan left: no layer of a dropped step in its format.
    const written = readPackageFile(report.out, { allowUnsigned: true, cpuFamily: null });
    for (const l of onDevice)
      assert.ok(
        written.manifest.nodes.every((n) => n.name !== l.layer || n.format === 'f32'),
        `${l.layer} is back to f32 in ${report.out}`,
      );
    // The reference executors run LeNet-5's int8 convolutions 2-4x slower than fp32: none is left. A step the
    // device timed within the tolerance either way stays (the table says it pays; the device cannot tell).
    assert.ok(
      !Object.entries(report.plan).some(([layer, k]) => layer.startsWith('conv2d') && k.startsWith('int8')),
      JSON.stringify(report.plan),
    );
    for (const l of report.ledger.filter((x) => x.kept && x.device))
      assert.ok(!(l.device!.ms_with > l.device!.ms_without * 1.05), JSON.stringify(l));
    const measured = report.device_measured;
    assert.ok(measured && !('error' in measured), JSON.stringify(measured));
    assert.equal(measured.slower, measured.final_ms > measured.baseline_ms * 1.05);
    assert.deepEqual(
      JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')),
      JSON.parse(JSON.stringify(report)),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
