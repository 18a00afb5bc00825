// The torchvision conformance set (bench/conformance.ts): real architectures exported by PyTorch, trained on a
// synthetic 10-class task until they have learnt it (600 steps, fp32 accuracy 0.999-1.000), imported with
// `whittle import`'s code path and compared with ONNX Runtime on the same images (fp32: max |diff| <= 1e-4 of
// the output range), then quantized with `whittle quantize`'s code path and compared with Whittle's own fp32 on
// the task's 1,000 held-out images (top-1 agreement >= 99 %, the figure; the fp32 model must have learnt
// the task, accuracy >= 0.9 with no class over 30 % of its answers, or agreement would say nothing). CI runs a
// fast subset (ShuffleNetV2 x0.5 for split / concat / channel shuffle, RegNetX-400MF for grouped convolutions,
// MobileNetV3-Small for hard-swish / hard-sigmoid and the SE block, SqueezeNet 1.1 for a network without batch
// norm); WHITTLE_CONFORMANCE=all runs every model (the full 1,000-image figure is `npm run bench -- models`),
// and the residual-add fusion check on ResNet-18 and MobileNetV2 (WHITTLE_CONFORMANCE=residual runs that alone).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Model } from '../../../agent/runtime/model.js';
import {
  agreement,
  canExport,
  CONFORMANCE_MODELS,
  type ConformanceModel,
  conformancePackages,
  inPackageLayout,
  majorityFraction,
  randomImages,
  top1Agreement,
  top1Classes,
} from '../../../bench/conformance.js';
import { assertMatchesOrt } from '../../support/onnx-peer.js';

const FAST: ConformanceModel[] = [
  'shufflenet_v2_x0_5',
  'regnet_x_400mf',
  'mobilenet_v3_small',
  'squeezenet1_1',
];
const MODELS =
  process.env.WHITTLE_CONFORMANCE === 'all'
    ? [...CONFORMANCE_MODELS]
    : process.env.WHITTLE_CONFORMANCE === 'residual'
      ? []
      : FAST;
const RESIDUAL: ConformanceModel[] = ['resnet18', 'mobilenet_v2'];
const RESIDUAL_MODELS = ['all', 'residual'].includes(process.env.WHITTLE_CONFORMANCE ?? '') ? RESIDUAL : [];
/** int8 top-1 agreement with Whittle's fp32 on AGREEMENT_IMAGES held-out images: the figure. */
const AGREEMENT_IMAGES = 1000;
const AGREEMENT_MIN = 0.99;
/** The fp32 model's answers on the same images: it has learnt the task (chance is 0.1), no class over 30 %. */
const FP32_ACCURACY_MIN = 0.9;
const FP32_MAJORITY_MAX = 0.3;

describe('torchvision conformance', { skip: !canExport() && 'no python3-torch / torchvision' }, () => {
  for (const name of MODELS) {
    test(`${name}: imports, matches ONNX Runtime in fp32, no transpose left`, async () => {
      const p = conformancePackages(name, 7);
      const model = Model.fromPackage(p.fp32);
      assert.equal(model.manifest.nodes.filter((n) => n.op === 'transpose').length, 0);
      const images = [0, 1, 2].map((k) => randomImages(1, p.size, 50 + k));
      await assertMatchesOrt(model, p.fp32, p.bytes, p.size, images);
    });
    test(`${name}: fp32 learnt the task, not collapsed onto one class`, () => {
      const p = conformancePackages(name, 7);
      const fp32 = top1Classes(Model.fromPackage(p.fp32, { batch: 50 }), p.inputs, AGREEMENT_IMAGES, 50, 0);
      const accuracy = agreement(fp32, p.labels(AGREEMENT_IMAGES, 0));
      const majority = majorityFraction(fp32);
      assert.ok(accuracy >= FP32_ACCURACY_MIN, `fp32 accuracy on the task ${accuracy}`);
      assert.ok(majority <= FP32_MAJORITY_MAX, `fp32's most frequent class: ${majority} of the images`);
    });
    test(`${name}: int8 top-1 agreement with Whittle's fp32 >= ${AGREEMENT_MIN} on ${AGREEMENT_IMAGES} images`, () => {
      const p = conformancePackages(name, 7);
      const batch = 50;
      const agreed = top1Agreement(
        Model.fromPackage(p.fp32, { batch }),
        Model.fromPackage(p.int8, { batch }),
        p.inputs,
        AGREEMENT_IMAGES,
        batch,
        0,
      );
      assert.ok(agreed >= AGREEMENT_MIN, `top-1 agreement ${agreed}`);
    });
  }

  for (const name of MODELS) {
    test(`${name}: the int8 package has no fp32 node and runs on the native plan, bit for bit with the reference`, () => {
      const p = conformancePackages(name, 7);
      // hard_swish, hard_sigmoid, sigmoid, SiLU, the SE mul, slice / split: int8 (lookup tables, qmul), no fp32
      // island between a dequantize and a quantize.
      assert.deepEqual(
        p.int8.manifest.nodes.filter((n) => n.format === 'f32').map((n) => `${n.name} (${n.op})`),
        [],
      );
      const model = Model.fromPackage(p.int8);
      assert.deepEqual(model.execution.typescriptNodes, [], JSON.stringify(model.execution));
      const input = p.inputs(1, 70);
      assert.deepEqual(
        model.run([input])[0]!.data,
        Model.fromPackage(p.int8, { referenceOnly: true }).run([input])[0]!.data,
      );
    });
  }

  for (const name of RESIDUAL_MODELS) {
    test(`${name}: every residual add fuses into its conv; fp32 and int8 match the unfused reference`, () => {
      const p = conformancePackages(name, 7);
      const input = inPackageLayout(p.fp32, randomImages(1, p.size, 60), 1, p.size);
      for (const [format, pkg] of [
        ['fp32', p.fp32],
        ['int8', p.int8],
      ] as const) {
        const fused = Model.fromPackage(pkg);
        const adds = pkg.manifest.nodes.filter((n) => n.op === 'add' || n.op === 'qadd').length;
        assert.ok(adds > 0, `${format}: the package has residual adds`);
        const into = new Set(fused.compileReport.fused.map((f) => f.node));
        assert.deepEqual(
          pkg.manifest.nodes.filter((n) => (n.op === 'add' || n.op === 'qadd') && !into.has(n.name)),
          [],
          `${format}: adds left ${JSON.stringify(fused.compileReport.notFused)}`,
        );
        const ours = fused.run([input])[0]!.data;
        // The same kernels then the same add: bit-exact with the unfused native run in both formats.
        assert.deepEqual(ours, Model.fromPackage(pkg, { fuseResidual: false }).run([input])[0]!.data);
        const unfused = Model.fromPackage(pkg, { compile: false, referenceOnly: true }).run([input])[0]!.data;
        if (format === 'int8') {
          assert.deepEqual(ours, unfused);
        } else {
          const diff = Math.max(...Array.from(unfused, (v, i) => Math.abs(v - ours[i]!)));
          assert.ok(diff <= 1e-5, `max |diff| ${diff} against the unfused reference`);
        }
      }
    });
  }
});
