// torchvision CNNs beyond the conformance set (issue 14: "the CNNs people actually use"), exported with random
// weights and random batch-norm statistics (scripts/conformance/export-random-weights.py; skipped without
// Debian's python3-torch / torchvision) at small inputs: DenseNet-121 (standalone pre-activation batch norms
// after a concat, a pad of nothing before each transition's average pool) and Inception-v3 (a pad before the
// count_include_pad average pool of each branch). Each is imported with `whittle import`'s code path and
// compared with ONNX Runtime (fp32: max |diff| <= 1e-4 of the output range), quantized with `whittle
// quantize`'s, and both packages must run with no TypeScript node, the int8 one bit for bit with the
// reference executors. Random weights make no agreement figure: that is the trained set's test.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Model } from '../../../agent/runtime/model.js';
import { canExport, inPackageLayout, randomImages, randomWeightsOnnx } from '../../../bench/conformance.js';
import { read } from '../../../bench/models.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { assertMatchesOrt } from '../../support/onnx-peer.js';

/** name, opset, input size (Inception-v3's smallest input is 75). */
const MODELS = [
  ['densenet121', 13, 64],
  ['inception_v3', 13, 75],
] as const;

describe(
  'torchvision models with random weights',
  { skip: !canExport() && 'no python3-torch / torchvision' },
  () => {
    for (const [name, opset, size] of MODELS) {
      test(`${name} (opset ${opset}, ${size}x${size}): fp32 as ONNX Runtime, fp32 and int8 on the native plan`, async () => {
        const bytes = randomWeightsOnnx(name, opset, size);
        const fp32 = read(importOnnx(bytes, { source: `${name}.onnx`, modelId: name }));
        const model = Model.fromPackage(fp32);
        assert.deepEqual(model.execution.typescriptNodes, [], JSON.stringify(model.execution));
        // The batch norms and pads these models are written with are gone: convs and pools' own padding.
        assert.deepEqual(
          model.manifest.nodes.filter((n) => n.op === 'batch_norm' || n.op === 'pad').map((n) => n.name),
          [],
        );
        const images = [0, 1].map((k) => randomImages(1, size, 80 + k));
        await assertMatchesOrt(model, fp32, bytes, size, images, `${name} `);

        const calibration = randomImages(4, size, 90);
        const int8 = read(
          quantizePackage(fp32, { count: 4, data: inPackageLayout(fp32, calibration, 4, size) }).content,
        );
        // No fp32 island: the batch norms are int8 convs, the pools int8.
        assert.deepEqual(
          int8.manifest.nodes.filter((n) => n.format === 'f32').map((n) => `${n.name} (${n.op})`),
          [],
        );
        const native = Model.fromPackage(int8);
        assert.deepEqual(native.execution.typescriptNodes, [], JSON.stringify(native.execution));
        const input = inPackageLayout(fp32, randomImages(1, size, 95), 1, size);
        assert.deepEqual(
          native.run([input])[0]!.data,
          Model.fromPackage(int8, { referenceOnly: true }).run([input])[0]!.data,
        );
      });
    }
  },
);
