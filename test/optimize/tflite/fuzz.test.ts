// The bounded TFLite fuzz job of the suite: 5,000 damaged .tflite files through the reader and the
// importer. Every input must import or be refused with a typed error, none may hang.
// `npm run bench -- fuzz --reader tflite --iterations 200000` runs the same job longer.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runFuzz } from '../../../bench/fuzz.js';

test(
  '5,000 fuzzed TFLite files: zero crashes, zero hangs, every rejection typed',
  { timeout: 120_000 },
  () => {
    const report = runFuzz('tflite', { iterations: 5_000, seed: 20261206, hangMs: 2000 });
    assert.equal(report.iterations, 5_000);
    assert.deepEqual(report.failures.slice(0, 5), []);
    // The damage must reach past the verifier into the graph checks, and some inputs must still import.
    assert.ok((report.refused.TfliteImportError ?? 0) > 1000, JSON.stringify(report.refused));
    assert.ok(report.accepted > 0, 'no damaged file imported: the mutations never reach the importer');
  },
);
