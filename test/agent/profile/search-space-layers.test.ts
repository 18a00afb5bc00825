import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Package } from '../../../agent/package/reader.js';
import {
  defaultGrid,
  latencyKey,
  type LatencyPoint,
  weightDensity,
} from '../../../agent/profile/latency-table.js';
import { searchSpaceConvPoints } from '../../../agent/profile/search-space-layers.js';
import { Model } from '../../../agent/runtime/model.js';
import { elements } from '../../../agent/runtime/tensor.js';
import { archPackage, buildArchModel, sampleArch } from '../../../optimize/nas/space.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

/** The grid point of a package's conv node: its format, kernel, stride, input side and channels, output
 * channels or depthwise, groups, and a sparse layer's pruned fraction. */
function convPoint(model: Model, constants: Package['constants'], index: number): LatencyPoint {
  const node = model.manifest.nodes[index]!;
  const x = model.specs[node.inputs[0]!]!.shape;
  const w = model.specs[node.inputs[1]!]!.shape;
  const depthwise = w[3] === 1 && x[3]! > 1;
  const groups = Number(node.attrs.groups ?? 1);
  const strides = node.attrs.strides;
  const point: LatencyPoint = {
    op: 'conv2d',
    format: node.format,
    kernel: w[1]!,
    stride: Array.isArray(strides) ? Number(strides[0]) : 1,
    size: x[1]!,
    inC: x[3]!,
  };
  if (depthwise) point.depthwise = true;
  else point.outC = model.specs[node.outputs[0]!]!.shape[3]!;
  if (!depthwise && groups > 1) point.groups = groups;
  if (node.format === 'sparse')
    point.sparsity = Math.round((1 - weightDensity(constants[node.inputs[1]!], elements(w))) * 100) / 100;
  return point;
}

test('the default grid holds every conv layer of the search space’s packages at its exact shape', async () => {
  const grid = new Set(defaultGrid().points.map(latencyKey));
  const space = searchSpaceConvPoints();
  for (const p of space) assert.ok(grid.has(latencyKey(p)), latencyKey(p));
  // Random architectures (a seed the latency bench does not use), packaged as the bench and the search do.
  const rng = new SeededRandom(977);
  const calibration = { count: 2, data: Float32Array.from({ length: 2 * 28 * 28 }, () => rng.next()) };
  let convs = 0;
  for (let i = 0; i < 12; i++) {
    const arch = sampleArch(rng);
    const model = buildArchModel(arch, { inputShape: [28, 28, 1], classes: 10, seed: i });
    const pkg = await archPackage(arch, model, { calibration });
    model.dispose();
    const runtime = Model.fromPackage(pkg, { batch: 1 });
    runtime.manifest.nodes.forEach((node, index) => {
      if (node.op !== 'conv2d' && node.op !== 'qconv2d') return;
      convs++;
      const key = latencyKey(convPoint(runtime, pkg.constants, index));
      assert.ok(grid.has(key), `architecture ${i}: ${node.name} is ${key}, not in the grid`);
    });
  }
  assert.ok(convs > 100, `${convs} conv layers`);
});
