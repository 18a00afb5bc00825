// Issue 14's detector neck and segmentation head as torchvision exports them (Debian's python3-torch, random
// weights, small inputs): a ResNet-18 FPN backbone (three nearest upsamplings) and LR-ASPP MobileNetV3 (bilinear,
// half_pixel, then the NHWC -> NCHW transpose of its spatial output). fp32 matches ONNX Runtime; every node,
// resizes and the output transpose included, runs on the native plan in fp32 and in int8 (no TypeScript step,
// the resizes int8 rather than fp32 islands); and the int8 package's native run equals the reference
// executors' bit for bit.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { type Package, readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { inPackageLayout, randomImages } from '../../../bench/conformance.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { assertMatchesOrt } from '../../support/onnx-peer.js';
import { pythonHas, withTorchScript } from '../../support/torch-script.js';

const SIZE = 64;

const SCRIPT = String.raw`
import sys, torch, torchvision
import torchvision.models.segmentation as seg
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
torch.manual_seed(5)
torch.set_num_threads(1)
class Fpn(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.b = resnet_fpn_backbone(backbone_name='resnet18', weights=None, trainable_layers=5)
    def forward(s, x):
        return torch.cat([v.mean((2, 3)) for v in s.b(x).values()], 1)
class Head(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.m = seg.lraspp_mobilenet_v3_large(num_classes=5, weights=None, weights_backbone=None)
    def forward(s, x):
        return s.m(x)['out']
size = int(sys.argv[2])
for name, net in [('fpn', Fpn()), ('lraspp', Head())]:
    with torch.no_grad():
        torch.onnx.export(net.eval(), torch.zeros(1, 3, size, size), f'{sys.argv[1]}/{name}.onnx', opset_version=13,
                          input_names=['image'], output_names=['out'])
`;

const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true, cpuFamily: null });

test(
  'an FPN neck and a segmentation head: fp32 matches ONNX Runtime, resizes and the output transpose run natively in fp32 and int8, int8 native = reference',
  { skip: !pythonHas(['torch', 'torchvision']) && 'no python3-torch / torchvision' },
  async () => {
    const files = withTorchScript(SCRIPT, [String(SIZE)], (dir) =>
      ['fpn', 'lraspp'].map((name) => ({ name, bytes: readFileSync(join(dir, `${name}.onnx`)) })),
    );
    for (const { name, bytes } of files) {
      const fp32 = read(importOnnx(bytes, { source: `${name}.onnx` }));
      const resizes = fp32.manifest.nodes.filter((n) => n.op === 'resize');
      assert.ok(resizes.length >= 2, `${name}: ${resizes.length} resizes`);
      const model = Model.fromPackage(fp32);
      assert.deepEqual(model.execution.typescriptNodes, [], `${name} fp32`);
      assert.ok(
        model.layers.filter((l) => l.op === 'resize').every((l) => l.kernel.startsWith('native:resize_')),
        JSON.stringify(model.layers.filter((l) => l.op === 'resize')),
      );
      const images = randomImages(2, SIZE, 7);
      const each = [0, 1].map((k) => images.subarray(k * 3 * SIZE * SIZE, (k + 1) * 3 * SIZE * SIZE));
      await assertMatchesOrt(model, fp32, bytes, SIZE, each, `${name} `);

      const calibration = inPackageLayout(fp32, randomImages(4, SIZE, 11), 4, SIZE);
      const int8 = read(quantizePackage(fp32, { count: 4, data: calibration }).content);
      const int8Resizes = int8.manifest.nodes.filter((n) => n.op === 'resize');
      assert.deepEqual(
        int8Resizes.map((n) => n.format),
        resizes.map(() => 'int8'),
        `${name}: the resizes are int8`,
      );
      const native = Model.fromPackage(int8);
      assert.deepEqual(native.execution.typescriptNodes, [], `${name} int8`);
      const reference = Model.fromPackage(int8, { referenceOnly: true });
      const input = inPackageLayout(fp32, images.subarray(0, 3 * SIZE * SIZE), 1, SIZE);
      const got = native.run([input])[0]!.data as Float32Array;
      const want = reference.run([input])[0]!.data as Float32Array;
      assert.deepEqual(got, want, `${name}: int8 native vs reference`);
      assert.ok(new Set(want).size > 1, `${name}: the int8 output is constant`);
    }
  },
);
