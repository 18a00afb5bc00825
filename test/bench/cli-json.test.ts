// `bench fuzz --json` and `bench onnx-agreement --json`: one JSON object on stdout, the human lines on stderr.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../../agent/package-root.js';
import { assertUsageError } from './cli-usage.js';

function benchJson(args: readonly string[]): {
  status: number | null;
  json: Record<string, unknown>;
  stderr: string;
} {
  const cli = join(packageRoot(), 'dist', 'bench', 'cli.js');
  const run = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `stdout must be one JSON line:\n${run.stdout}`);
  return { status: run.status, json: JSON.parse(lines[0]!) as Record<string, unknown>, stderr: run.stderr };
}

test('bench fuzz --json: totals and one row per reader', () => {
  const { status, json, stderr } = benchJson([
    'fuzz',
    '--json',
    '--reader',
    'onnx,tflite',
    '--iterations',
    '300',
  ]);
  assert.equal(status, 0, stderr);
  assert.equal(json.iterations, 600);
  assert.equal(json.crashes, 0);
  assert.equal(json.hangs, 0);
  const results = json.results as {
    reader: string;
    iterations: number;
    accepted: number;
    refused: Record<string, number>;
  }[];
  assert.deepEqual(
    results.map((r) => [r.reader, r.iterations]),
    [
      ['onnx', 300],
      ['tflite', 300],
    ],
  );
  // The mutated inputs are mostly refused by code: the counts are the reader's own, not a constant.
  for (const r of results)
    assert.ok(r.accepted + Object.values(r.refused).reduce((a, b) => a + b, 0) === 300);
  assert.match(stderr, /fuzz: onnx reader, 300 inputs/);
});

test('bench onnx-agreement --json: fractions in [0, 1]', () => {
  const { status, json, stderr } = benchJson(['onnx-agreement', '--json', '--images', '200']);
  assert.equal(status, 0, stderr);
  assert.equal(json.images, 200);
  for (const key of ['top1_agreement', 'runtime_accuracy', 'ort_accuracy']) {
    const v = json[key] as number;
    assert.ok(v >= 0 && v <= 1, `${key} ${v}`);
  }
  assert.ok((json.top1_agreement as number) >= 0.995);
  assert.ok((json.runtime_ms_per_image as number) > 0 && (json.ort_ms_per_image as number) > 0);
});

test('bench fuzz refuses an unknown flag as a usage error', () => {
  assertUsageError(['fuzz', '--jsn'], /--jsn/);
});
