// The bounded ONNX fuzz job of the suite: mutated ONNX models (truncated, bit-flipped, huge dims and counts,
// cyclic graphs, missing inputs, edge attribute values, swapped op types, other opsets) through importOnnx.
// Every input must import or be refused with a typed error, none may hang. `npm run bench -- fuzz --reader
// onnx --iterations 200000` runs the same job longer.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runFuzz } from '../../../bench/fuzz.js';

test(
  '1,500 fuzzed ONNX models: zero crashes, zero hangs, every rejection typed',
  { timeout: 180_000 },
  () => {
    const report = runFuzz('onnx', { iterations: 1500, seed: 20261206, hangMs: 2000 });
    assert.equal(report.iterations, 1500);
    assert.deepEqual(report.failures.slice(0, 5), []);
    assert.ok(report.accepted > 0, 'some mutations still import');
    // The mutations must reach the decoder, the op check, the opset check and the handlers' own checks.
    for (const name of ['OnnxImportError', 'UnsupportedOpsError', 'UnsupportedOpsetError', 'GraphError'])
      assert.ok(
        (report.refused[name] ?? 0) > 0,
        `no input was refused with ${name}: ${JSON.stringify(report.refused)}`,
      );
  },
);
