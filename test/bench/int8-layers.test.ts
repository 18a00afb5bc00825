// `bench int8-layers` on LeNet-5: a row per int8 node of the package, each compared with the fp32 node it
// stands for (a ReLU fused into its conv compared through the ReLU's output), errors that grow from a
// quantization step at the first layer, the logits' figures; and bad flags refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { modelLayerErrors } from '../../bench/int8-layers.js';
import { assertUsageError } from './cli-usage.js';

test('LeNet-5: every int8 layer compared, small errors at the first conv, the logits figures', async () => {
  const report = await modelLayerErrors('lenet5', 8, 1);
  const ops = report.layers.map((l) => l.op);
  assert.ok(ops.filter((op) => op === 'qconv2d').length === 2, ops.join(' '));
  assert.ok(ops.filter((op) => op === 'qfully_connected').length === 3, ops.join(' '));
  // Compared with the pre-ReLU values, the first conv would be off by their whole negative half.
  assert.ok(
    report.layers[0]!.rel_error > 0 && report.layers[0]!.rel_error < 0.05,
    `${report.layers[0]!.rel_error}`,
  );
  for (const l of report.layers) {
    assert.ok(l.rel_error < 0.3, `${l.node}: ${l.rel_error}`);
    assert.ok(l.bias_fraction >= 0 && l.bias_fraction <= 1, `${l.node}: ${l.bias_fraction}`);
  }
  assert.ok(report.median_top2_gap > 0 && Number.isFinite(report.median_top2_gap));
  assert.ok(report.logit_error_rms > 0 && report.logit_error_rms < report.median_top2_gap);
});

test('bench int8-layers refuses a missing or unknown model', () => {
  assertUsageError(['int8-layers'], /int8-layers needs --models/);
  assertUsageError(['int8-layers', '--models', 'lenet7'], /unknown model "lenet7"/);
});
