// The bounded fuzz job of the suite: 20,000 mutated, truncated, re-signed and random packages through the
// reader and the runtime loader. Every input must be accepted or refused with a typed error, none may hang.
// `npm run bench -- fuzz --iterations 200000` runs the same job longer.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runPackageFuzz } from '../../../bench/fuzz.js';

test('20,000 fuzzed packages: zero crashes, zero hangs, every rejection typed', { timeout: 180_000 }, () => {
  const report = runPackageFuzz({ iterations: 20_000, seed: 20261125, hangMs: 2000 });
  assert.equal(report.iterations, 20_000);
  assert.deepEqual(report.failures.slice(0, 5), []);
  // The budget is CPU time (< 60 s): wall time depends on what else the machine runs; hangs are caught
  // per input (hangMs) and by the test timeout.
  assert.ok(report.cpuMs < 60_000, `took ${report.cpuMs} ms of CPU (${report.elapsedMs} ms wall)`);
  // The re-signed strategies must reach past the signature into the table, manifest and weight checks.
  for (const code of [
    'bad-section-table',
    'bad-manifest',
    'bad-section',
    'GraphError',
    'bad-weights',
    'hash-mismatch',
    'truncated',
  ]) {
    assert.ok((report.refused[code] ?? 0) > 0, `no input was refused with ${code}`);
  }
});
