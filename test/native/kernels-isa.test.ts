// Every kernel path this CPU supports gives the same JS-visible results as the plain C reference, for every
// exposed operator. Detection and WHITTLE_ISA are read once per process, so each path runs in a child
// process (kernels-isa-child.ts) with WHITTLE_ISA set.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { addonBuildHash, cpuFeatures, type Isa, ISAS } from '../../native/index.js';

const child = fileURLToPath(new URL('./kernels-isa-child.js', import.meta.url));

interface ChildReport {
  isa: Isa;
  checks: { name: string; ok: boolean; detail?: string }[];
}

function runChild(isa: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [child], {
    // WHITTLE_MIN_TASK_WORK=0: the test layers are small and would otherwise run on one thread only, leaving
    // the multi-threaded paths untested.
    env: { ...process.env, WHITTLE_ISA: isa, WHITTLE_MIN_TASK_WORK: '0' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const features = cpuFeatures();

test('the best kernel path is detected and in use by default', () => {
  assert.ok(features.supported.includes('scalar'));
  assert.ok(features.supported.includes(features.best));
  assert.equal(features.selected, process.env['WHITTLE_ISA'] || features.best);
});

for (const isa of features.supported) {
  test(`WHITTLE_ISA=${isa}: every operator equals the C reference (int8 bit-exact, fp32 1e-5)`, () => {
    const { status, stdout, stderr } = runChild(isa);
    assert.equal(status, 0, `child exited with ${status}: ${stderr}`);
    const report = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as ChildReport;
    assert.equal(report.isa, isa);
    assert.ok(report.checks.length > 40, `only ${report.checks.length} checks ran`);
    const failures = report.checks.filter((check) => !check.ok);
    assert.deepEqual(failures, [], `failed on ${isa}`);
  });
}

test('forcing a kernel path this CPU lacks fails loading with a message naming it', () => {
  const missing = ISAS.find((isa) => !features.supported.includes(isa));
  if (missing === undefined) return; // a CPU with every path: nothing to refuse
  const { status, stderr } = runChild(missing);
  assert.notEqual(status, 0);
  assert.match(stderr, new RegExp(`WHITTLE_ISA=${missing} is not supported by this CPU`));
});

test('an unknown kernel path name fails loading with the list of names', () => {
  const { status, stderr } = runChild('sse9');
  assert.notEqual(status, 0);
  assert.match(stderr, /WHITTLE_ISA=sse9 is not a kernel path; use one of scalar, avx2/);
});

test('the build hash names the loaded addon file by its contents', () => {
  const hash = addonBuildHash();
  assert.match(hash, /^[0-9a-f]{16}$/);
  assert.equal(addonBuildHash(), hash);
  const file = fileURLToPath(new URL('../../../native/build/Release/whittle_native.node', import.meta.url));
  assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16), hash);
});
