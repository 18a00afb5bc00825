// ONNX conformance: every backend node test of the ONNX project (Debian's libonnx-testdata) whose model
// uses only supported ops is imported, packaged, signed, read back and run on the runtime, and every output
// compared with ONNX's expected one (exact for integer outputs, rtol 1e-3 / atol 1e-7 for float).
// The cases the runtime deliberately does not cover are listed below with the reason and the error the
// importer must give; a listed case that starts to pass fails the test, so the list stays true.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';

import { SUPPORTED_ONNX_OPS } from '../../../optimize/onnx/import.js';
import { applicableCases, NODE_TESTS, runCase } from './conformance-cases.js';

const SKIPS: Record<string, { reason: string; error: RegExp }> = {
  test_averagepool_3d_default: {
    reason: 'volumetric (3-D) pooling: the runtime pools 1-D and 2-D images only',
    error: /3-D is not supported/,
  },
  test_maxpool_3d_default: {
    reason: 'volumetric (3-D) pooling: the runtime pools 1-D and 2-D images only',
    error: /3-D is not supported/,
  },
  test_maxpool_with_argmax_2d_precomputed_pads: {
    reason: 'the Indices output of MaxPool (argmax) has no runtime operator',
    error: /Indices output is not supported/,
  },
  test_maxpool_with_argmax_2d_precomputed_strides: {
    reason: 'the Indices output of MaxPool (argmax) has no runtime operator',
    error: /Indices output is not supported/,
  },
  test_batchnorm_epsilon_training_mode: {
    reason:
      'training-mode batch norm (batch statistics, running-mean outputs): the runtime is inference only',
    error: /training_mode=1 is not supported/,
  },
  test_batchnorm_example_training_mode: {
    reason:
      'training-mode batch norm (batch statistics, running-mean outputs): the runtime is inference only',
    error: /training_mode=1 is not supported/,
  },
  test_training_dropout: {
    reason: 'training-mode dropout draws random masks; deployed models run in eval mode',
    error: /training-mode dropout/,
  },
  test_training_dropout_default: {
    reason: 'training-mode dropout draws random masks; deployed models run in eval mode',
    error: /training-mode dropout/,
  },
  test_training_dropout_default_mask: {
    reason: 'training-mode dropout draws random masks; deployed models run in eval mode',
    error: /training-mode dropout/,
  },
  test_training_dropout_mask: {
    reason: 'training-mode dropout draws random masks; deployed models run in eval mode',
    error: /training-mode dropout/,
  },
  test_constant: {
    reason: 'a graph with no input (its output is the constant): a package takes at least one input',
    error: /no non-constant input/,
  },
  ...Object.fromEntries(
    ['test_constant_pad', 'test_edge_pad', 'test_reflect_pad'].map((name) => [
      name,
      {
        reason:
          'a Pad on its own: the runtime has no pad op; zero padding read by a Conv folds into its pads',
        error: /no pad op/,
      },
    ]),
  ),
  test_identity_opt: {
    reason: 'the input is an ONNX Optional, not a tensor; the runtime has tensors only',
    error: /input_0\.pb/,
  },
  test_identity_sequence: {
    reason: 'the input is an ONNX Sequence, not a tensor; the runtime has tensors only',
    error: /input_0\.pb/,
  },
};

const available = existsSync(NODE_TESTS);
const cases = applicableCases();

describe(
  'ONNX backend node tests through import + package + runtime',
  { skip: available ? false : `${NODE_TESTS} missing (apt install libonnx-testdata)` },
  () => {
    const passedOps = new Set<string>();
    for (const c of cases) {
      const skip = SKIPS[c.name];
      test(skip ? `${c.name} is refused: ${skip.reason}` : c.name, () => {
        if (skip) {
          assert.throws(() => runCase(c), skip.error);
          return;
        }
        const result = runCase(c);
        for (const output of result.outputs)
          assert.ok(output.ok, `${c.name} output ${output.name}: ${output.detail}`);
        for (const op of c.opTypes) passedOps.add(op);
      });
    }

    test('every supported op passes at least one conformance case', () => {
      assert.ok(cases.length > 100, `only ${cases.length} applicable cases found`);
      // Constant's only node test has no graph input, Pad's have no Conv to fold into (SKIPS); import.test.ts
      // runs both inside a graph.
      assert.deepEqual(
        SUPPORTED_ONNX_OPS.filter((op) => !passedOps.has(op) && op !== 'Constant' && op !== 'Pad'),
        [],
      );
    });

    test('every skip names an existing applicable case', () => {
      for (const name of Object.keys(SKIPS))
        assert.ok(
          cases.some((c) => c.name === name),
          name,
        );
    });
  },
);
