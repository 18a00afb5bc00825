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

/** A reason the runtime does not cover some cases, and the error the importer must give for them. */
interface Skip {
  reason: string;
  error: RegExp;
}
const skipped = (names: readonly string[], reason: string, error: RegExp): [string, Skip][] =>
  names.map((name) => [name, { reason, error }]);
const TRAINING_DROPOUT = ['', '_default', '_default_mask', '_mask'].map((s) => `test_training_dropout${s}`);
const POW_TYPES = [
  'float',
  'float32_int32',
  'float32_int64',
  'float32_uint32',
  'float32_uint64',
  'int',
  'int32_float32',
  'int32_int32',
  'int64_float32',
  'int64_int64',
].map((types) => `test_pow_types_${types}`);
const CUBIC_RESIZE = [
  'test_resize_downsample_scales_cubic',
  'test_resize_downsample_scales_cubic_A_n0p5_exclude_outside',
  'test_resize_downsample_scales_cubic_align_corners',
  'test_resize_downsample_sizes_cubic',
  'test_resize_upsample_scales_cubic',
  'test_resize_upsample_scales_cubic_A_n0p5_exclude_outside',
  'test_resize_upsample_scales_cubic_align_corners',
  'test_resize_upsample_scales_cubic_asymmetric',
  'test_resize_upsample_sizes_cubic',
];

const SKIPS: Record<string, Skip> = Object.fromEntries([
  ...skipped(
    ['test_averagepool_3d_default', 'test_maxpool_3d_default'],
    'volumetric (3-D) pooling: the runtime pools 1-D and 2-D images only',
    /3-D is not supported/,
  ),
  ...skipped(
    ['test_maxpool_with_argmax_2d_precomputed_pads', 'test_maxpool_with_argmax_2d_precomputed_strides'],
    'the Indices output of MaxPool (argmax) has no runtime operator',
    /Indices output is not supported/,
  ),
  ...skipped(
    ['test_batchnorm_epsilon_training_mode', 'test_batchnorm_example_training_mode'],
    'training-mode batch norm (batch statistics, running-mean outputs): the runtime is inference only',
    /training_mode=1 is not supported/,
  ),
  ...skipped(
    TRAINING_DROPOUT,
    'training-mode dropout draws random masks; deployed models run in eval mode',
    /training-mode dropout/,
  ),
  ...skipped(
    ['test_constant'],
    'a graph with no input (its output is the constant): a package takes at least one input',
    /no non-constant input/,
  ),
  ...skipped(
    ['test_convtranspose_1d'],
    'ConvTranspose runs on 2-D images (4-D tensors) only',
    /1-D is not supported/,
  ),
  ...skipped(
    ['test_convtranspose_3d'],
    'ConvTranspose runs on 2-D images (4-D tensors) only',
    /3-D is not supported/,
  ),
  ...skipped(
    ['test_convtranspose_autopad_same'],
    'ConvTranspose with auto_pad SAME_*: exporters write explicit pads',
    /auto_pad=SAME_UPPER is not supported/,
  ),
  ...skipped(
    ['test_convtranspose_kernel_shape', 'test_convtranspose_output_shape', 'test_convtranspose_with_kernel'],
    'ConvTranspose output_shape: exporters write pads and output_padding',
    /output_shape/,
  ),
  ...skipped(
    ['test_div_uint8', 'test_sub_uint8'],
    'sub and div compute in fp32 (the integer element-wise ops are add and mul)',
    /takes fp32/,
  ),
  ...skipped(
    POW_TYPES,
    'Pow of integer tensors (or by an integer exponent computed at run time): pow is fp32 only',
    /int64|takes fp32|element type|share a dtype/,
  ),
  ...skipped(
    CUBIC_RESIZE,
    'cubic resampling: the runtime resizes nearest and linear',
    /mode=cubic is not supported/,
  ),
  ...skipped(
    ['test_resize_tf_crop_and_resize'],
    'tf_crop_and_resize (a region of interest): not an image classifier / detector neck op',
    /tf_crop_and_resize is not supported/,
  ),
  ...skipped(
    ['test_resize_downsample_sizes_nearest_tf_half_pixel_for_nn'],
    'its sizes come from a second node at run time; the runtime needs static shapes',
    /int64/,
  ),
  ...skipped(
    ['test_identity_opt'],
    'the input is an ONNX Optional, not a tensor; the runtime has tensors only',
    /input_0\.pb/,
  ),
  ...skipped(
    ['test_identity_sequence'],
    'the input is an ONNX Sequence, not a tensor; the runtime has tensors only',
    /input_0\.pb/,
  ),
]);

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
      // Constant's only node test has no graph input (SKIPS); import.test.ts runs it inside a graph.
      // Upsample (opset <= 9) has no node test in the set; import.test.ts runs it. The com.microsoft
      // QOperator ops are ONNX Runtime's, outside the standard's tests: qdq.test.ts runs them against it.
      assert.deepEqual(
        SUPPORTED_ONNX_OPS.filter(
          (op) =>
            !passedOps.has(op) && op !== 'Constant' && op !== 'Upsample' && !op.startsWith('com.microsoft.'),
        ),
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
