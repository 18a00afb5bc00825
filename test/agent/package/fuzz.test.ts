// The bounded fuzz job of the suite: 20,000 mutated, truncated, re-signed and random packages through the
// reader and the runtime loader. Every input must be accepted or refused with a typed error, none may hang.
// `npm run bench -- fuzz --iterations 200000` runs the same job longer.
import assert from 'node:assert/strict';

import { fuzzJobTest } from '../../support/fuzz-job.js';

fuzzJobTest('20,000 fuzzed packages: zero crashes, zero hangs, every rejection typed', {
  reader: 'package',
  iterations: 20_000,
  seed: 20261125,
  timeoutMs: 180_000,
  someAccepted: false,
  // The re-signed strategies must reach past the signature into the table, manifest and weight checks.
  refusedMoreThan: {
    'bad-section-table': 0,
    'bad-manifest': 0,
    'bad-section': 0,
    GraphError: 0,
    'bad-weights': 0,
    'hash-mismatch': 0,
    truncated: 0,
  },
  // The budget is CPU time (< 60 s): wall time depends on what else the machine runs; hangs are caught
  // per input (hangMs) and by the test timeout.
  check: (report) =>
    assert.ok(report.cpuMs < 60_000, `took ${report.cpuMs} ms of CPU (${report.elapsedMs} ms wall)`),
});
