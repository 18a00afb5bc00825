// ConvNeXt-Tiny (issue 14), exported untrained with seeded random weights at 64x64 (bench/conformance.ts
// untrainedOnnx; skipped without Debian's python3-torch): its block MLP (nn.Linear on an NHWC tensor: MatMul by
// a constant matrix, Add of a bias, the layer scale's Mul) imports as fully_connected layers over the last axis,
// its GELU (Div / Erf / Add / Mul) as one gelu op, its channels-last and channels-first LayerNorms as
// layer_norm over the NHWC channels. fp32 runs with no TypeScript node and matches ONNX Runtime (max |diff| <=
// 1e-4 of the output range); int8 quantizes (GELU through a lookup table, the MLP on the int8 fully-connected
// kernels), keeps only layer_norm in fp32 (with the reshapes around it), runs with no TypeScript node and
// equals the reference executor bit for bit. Whittle's ONNX export of the fp32 package (gelu and layer_norm
// spelled with opset 13 ops) runs on ONNX Runtime to the same outputs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as ort from 'onnxruntime-node';

import { type Package, readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { canExport, inPackageLayout, randomImages, untrainedOnnx } from '../../../bench/conformance.js';
import { exportOnnx } from '../../../optimize/onnx/export.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { assertMatchesOrt } from '../../support/onnx-peer.js';

const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });

const opCounts = (pkg: Package): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const n of pkg.manifest.nodes)
    counts[`${n.op}/${n.format}`] = (counts[`${n.op}/${n.format}`] ?? 0) + 1;
  return counts;
};

let packages: { bytes: Uint8Array; size: number; fp32: Package; int8?: Package } | undefined;
function convnext() {
  if (packages !== undefined) return packages;
  const { bytes, size } = untrainedOnnx('convnext_tiny');
  packages = { bytes, size, fp32: read(importOnnx(bytes, { source: 'convnext_tiny.onnx' })) };
  return packages;
}
function convnextInt8(): Package {
  const p = convnext();
  p.int8 ??= read(
    quantizePackage(p.fp32, {
      count: 4,
      data: inPackageLayout(p.fp32, randomImages(4, p.size, 9), 4, p.size),
    }).content,
  );
  return p.int8;
}

describe('ConvNeXt-Tiny', { skip: !canExport() && 'no python3-torch / torchvision' }, () => {
  test('imports as fully_connected, gelu and layer_norm, runs natively and matches ONNX Runtime in fp32', async () => {
    const p = convnext();
    // 18 blocks: two layers each (the layer scale folded into the second), the classifier's; GELU one op;
    // a layer_norm per block, in the stem, before each of the 3 downsampling convs and in the classifier.
    assert.deepEqual(opCounts(p.fp32), {
      'conv2d/f32': 22,
      'layer_norm/f32': 23,
      'reshape/f32': 73,
      'fully_connected/f32': 37,
      'gelu/f32': 18,
      'add/f32': 18,
      'global_avgpool/f32': 1,
    });
    const model = Model.fromPackage(p.fp32);
    assert.deepEqual(model.execution.typescriptNodes, []);
    const images = [0, 1].map((k) => randomImages(1, p.size, 50 + k));
    await assertMatchesOrt(model, p.fp32, p.bytes, p.size, images);
  });

  test('quantizes to int8 with layer_norm the only fp32 op, runs natively, bit for bit with the reference', () => {
    const p = convnext();
    const int8 = convnextInt8();
    const counts = opCounts(int8);
    assert.equal(counts['qfully_connected/int8'], 37);
    assert.equal(counts['gelu/int8'], 18);
    assert.equal(counts['qadd/int8'], 18);
    const floatOps = new Set(int8.manifest.nodes.filter((n) => n.format === 'f32').map((n) => n.op));
    assert.deepEqual([...floatOps].sort(), ['layer_norm', 'reshape']);
    const model = Model.fromPackage(int8);
    assert.deepEqual(model.execution.typescriptNodes, []);
    const input = inPackageLayout(p.fp32, randomImages(1, p.size, 70), 1, p.size);
    assert.deepEqual(
      model.run([input])[0]!.data,
      Model.fromPackage(int8, { referenceOnly: true }).run([input])[0]!.data,
    );
  });

  test('the fp32 package exports to ONNX (gelu, layer_norm in opset 13 ops) and ONNX Runtime agrees', async () => {
    const p = convnext();
    const session = await ort.InferenceSession.create(exportOnnx(p.fp32));
    const shape = p.fp32.manifest.tensors[p.fp32.manifest.inputs[0]!.tensor]!.shape;
    const input = inPackageLayout(p.fp32, randomImages(1, p.size, 80), 1, p.size);
    const ours = Model.fromPackage(p.fp32).run([input])[0]!.data;
    const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', input, shape) };
    const theirs = (await session.run(feeds))[session.outputNames[0]!]!.data as Float32Array;
    const range = Math.max(...theirs) - Math.min(...theirs);
    const diff = Math.max(...Array.from(theirs, (v, i) => Math.abs(v - ours[i]!)));
    assert.ok(diff <= 1e-4 * range, `max |diff| ${diff} over an output range of ${range}`);
  });
});
