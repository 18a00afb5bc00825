// `whittle optimize` as a user runs it, on a tiny trained LeNet-300-100 and this machine's device profile:
// the package written within the size budget, the report's ledger (each kept step paying when measured),
// resume, and the bad inputs refused clearly (a malformed profile, one of another version, a missing budget).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { readPackageFile } from '../../../agent/package/reader.js';
import { collectDeviceProfile } from '../../../agent/profile/profile.js';
import { cliSandbox } from '../../support/cli.js';
import { trainTinyModel } from '../../support/tiny-model.js';

// A --class run measures this machine's whole reference table first (3,755 points): 40 s quiet, over 120 s
// at load 11 on 2 cores (a CI run failed so).
const sandbox = cliSandbox('whittle-optimize-', 360_000);
after(() => sandbox.cleanup());
const { dir, whittle } = sandbox;
const trained = join(dir, 'trained');
const profile = join(dir, 'profile.json');

describe('whittle optimize', () => {
  before(async () => {
    await trainTinyModel('lenet-300-100', trained);
    writeFileSync(profile, JSON.stringify(collectDeviceProfile()));
  });

  const optimize = (...args: string[]) => whittle('optimize', '--profile', profile, ...common, ...args);
  const common = [
    '--dataset',
    'fashion-mnist',
    '--model',
    trained,
    '--images',
    '60',
    '--runs',
    '20',
    '--bundled-key',
  ];

  test('fits a size budget on this machine’s profile, verified end to end', () => {
    const out = join(dir, 'fit');
    const r = optimize('--size-kb', '500', '--out', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as {
      met: boolean;
      final: { bytes: number; accuracy: number };
      baseline: { bytes: number };
      ledger: { kept: boolean; reason: string; measured: Record<string, number> }[];
      steps_kept: number;
      plan: Record<string, string>;
    };
    assert.equal(report.met, true);
    assert.ok(report.final.bytes <= 500 * 1024 && report.baseline.bytes > 1000 * 1024);
    assert.ok(report.steps_kept >= 1 && Object.keys(report.plan).length === report.steps_kept);
    for (const l of report.ledger.filter((x) => x.kept)) {
      const m = l.measured;
      assert.ok(m.ms_after! <= m.ms_before! * 1.05, JSON.stringify(l));
      assert.ok(
        m.ms_after! < m.ms_before! || m.ram_after! < m.ram_before! || m.bytes_after! < m.bytes_before!,
      );
    }
    const pkg = readPackageFile(join(out, 'model.whittle'), { allowUnsigned: true, cpuFamily: null });
    assert.equal(pkg.fileBytes, report.final.bytes);
    assert.equal(pkg.manifest.accuracy?.top1, report.final.accuracy);
    // The terminal report from the same run, resumed (the sensitivity is read back, not measured again).
    const again = optimize('--size-kb', '500', '--out', out, '--resume');
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /sensitivity 1\/3/);
    assert.match(again.stdout, /budgets met/);
    const refused = optimize('--size-kb', '500', '--out', out);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /earlier run: --resume continues it/);
  });

  test('an impossible budget names the closest plans and how far each misses', () => {
    // The same run resumed with another budget: planned again on the saved sensitivity.
    const out = join(dir, 'fit');
    const r = optimize('--size-kb', '1', '--out', out, '--resume');
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stdout, /closest: .*package_bytes \d+(\.\d+)? > 1024 \(\+\d/);
    assert.match(r.stdout, /budgets NOT met/);
    assert.ok(existsSync(join(out, 'report.json')));
  });

  test('--max-accuracy-drop is a hard limit: the plan and every closest plan stay within it', () => {
    const out = join(dir, 'fit');
    const r = optimize('--size-kb', '1', '--max-accuracy-drop', '1', '--out', out, '--resume', '--json');
    assert.equal(r.status, 3, r.stderr);
    const report = JSON.parse(r.stdout) as {
      budgets: { accuracy_drop: number | null };
      baseline: { accuracy: number };
      final: { accuracy: number };
      closest: { estimated: { accuracy_drop: number } }[];
      ledger: { kept: boolean; reason: string; measured: { accuracy_after?: number } }[];
    };
    assert.equal(report.budgets.accuracy_drop, 0.01);
    assert.ok(report.baseline.accuracy - report.final.accuracy <= 0.01 + 1e-9, JSON.stringify(report.final));
    for (const c of report.closest) assert.ok(c.estimated.accuracy_drop <= 0.01 + 1e-9, JSON.stringify(c));
    for (const l of report.ledger.filter((x) => x.kept))
      assert.ok(report.baseline.accuracy - l.measured.accuracy_after! <= 0.01 + 1e-9, JSON.stringify(l));
    const bad = optimize('--size-kb', '1', '--max-accuracy-drop', '150', '--out', out, '--resume');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--max-accuracy-drop is in points of top-1 \(0-100\), got 150/);
  });

  test('bad input is refused clearly', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"profile_version": 1, "cpu": 3');
    const out = join(dir, 'bad');
    let r = whittle('optimize', '--profile', bad, ...common, '--size-kb', '100', '--out', out);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /bad\.json: not a JSON device profile/);
    writeFileSync(bad, JSON.stringify({ ...JSON.parse(readFileSync(profile, 'utf8')), profile_version: 2 }));
    r = whittle('optimize', '--profile', bad, ...common, '--size-kb', '100', '--out', out);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /profile_version 2 is not readable by this build/);
    r = optimize('--out', out);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /give at least one budget/);
    r = optimize('--size-kb', '100', '--out', out, '--force', 'dense_Dense1=int4');
    assert.match(r.stderr, /unknown layer choice "int4"/);
    const nas = (...args: string[]) =>
      whittle('nas', '--dataset', 'fashion-mnist', '--out', out, '--latency-ms', '1', ...args);
    // The accuracy limit is the compression's: whittle nas (the search alone) refuses it.
    r = nas('--max-accuracy-drop', '1');
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /--max-accuracy-drop limits the compression of a model: whittle optimize --search takes it/,
    );
    // A candidate's adaptation batches: a count, 0 allowed.
    for (const bad of ['-1', '1.5', 'many']) {
      r = nas(`--adapt-batches=${bad}`);
      assert.equal(r.status, 1, bad);
      assert.match(r.stderr, /--adapt-batches: expected an integer >= 0/, bad);
    }
  });

  test('a device class is priced from its estimated table, scaled from this machine’s measured once', () => {
    const data = join(dir, 'class-data');
    const run = (cls: string, out: string) =>
      whittle(
        'optimize',
        '--class',
        cls,
        ...common,
        '--size-kb',
        '500',
        '--out',
        join(dir, out),
        '--data-dir',
        data,
        '--json',
      );
    const pi3 = run('raspberry-pi-3b', 'pi3');
    assert.equal(pi3.status, 0, pi3.stderr);
    const tables = readdirSync(join(data, 'latency'));
    assert.equal(tables.length, 1);
    const stamp = statSync(join(data, 'latency', tables[0]!)).mtimeMs;
    const pi5 = run('raspberry-pi-5', 'pi5');
    assert.equal(pi5.status, 0, pi5.stderr);
    // The reference table is measured once per kernel build and reused.
    assert.equal(statSync(join(data, 'latency', tables[0]!)).mtimeMs, stamp);
    type Report = {
      latency_source: string;
      met: boolean;
      baseline: { ms: number };
      notes: string[];
      ledger: { kept: boolean; measured: Record<string, number> }[];
    };
    const [a, b] = [pi3, pi5].map((r) => JSON.parse(r.stdout) as Report);
    assert.match(a!.latency_source, /raspberry-pi-3b/);
    assert.match(b!.latency_source, /raspberry-pi-5/);
    // Each step is judged by the class's table (this machine's time beside it, not deciding): a step faster
    // on a Pi is kept even when it measures slower here.
    for (const r of [a!, b!]) {
      assert.equal(r.met, true);
      for (const l of r.ledger) {
        assert.ok(l.measured.host_ms_before! > 0 && l.measured.host_ms_after! > 0, JSON.stringify(l));
        if (l.kept) assert.ok(l.measured.ms_after! <= l.measured.ms_before! * 1.05, JSON.stringify(l));
      }
    }
    // The same fp32 model is priced slower on the Pi 3 than on the Pi 5.
    assert.ok(a!.baseline.ms > b!.baseline.ms, `Pi 3 ${a!.baseline.ms} ms, Pi 5 ${b!.baseline.ms} ms`);
    assert.ok(a!.notes.some((n) => n.includes('measured on this machine')));
    const unknown = run('pdp-11', 'pdp');
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /pdp-11/);
  });
});
