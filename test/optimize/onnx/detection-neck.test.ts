// A detector's backbone and neck as PyTorch exports them (Debian's python3-torch and torchvision, opsets 11
// and 13): torchvision's FrozenBatchNorm2d (the norm of its detection backbones, exported as a Mul and an Add
// of per-channel constants, shared through Identity nodes when equal) after convolutions; an FPN top-down step
// (nearest upsampling to the lateral's size, read from a Shape at run time, then an add); and a DeepLabV3-style
// image-pooling branch (global pooling, a conv, bilinear upsampling back to the feature size, a concat);
// and a per-channel scale and shift after a ReLU, which folds into nothing.
// The frozen norms fold into their convs; the outputs match PyTorch's; a package built at another batch size
// runs each image as at batch 1 (the resize sizes an exporter computes from the declared input's Shape do not
// pin the batch); and the model quantizes to int8.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { type Package, readPackage } from '../../../agent/package/reader.js';
import { inputInLayout } from '../../../agent/runtime/compile/index.js';
import { Model } from '../../../agent/runtime/model.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { bundledSigningKey, type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { pythonHas, withTorchScript } from '../../support/torch-script.js';

const OPSETS = [11, 13];
const SIZE = 16;

const SCRIPT = String.raw`
import sys, torch, torch.nn as nn, torch.nn.functional as F
from torchvision.ops.misc import FrozenBatchNorm2d
torch.manual_seed(3)
def frozen(c, random):
    bn = FrozenBatchNorm2d(c)
    if random:
        bn.weight.uniform_(0.5, 1.5); bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.5, 0.5); bn.running_var.uniform_(0.5, 2)
    return bn
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False); s.bn0 = frozen(8, True)
        s.down = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False); s.bn1 = frozen(16, False)
        s.deep = nn.Conv2d(16, 16, 3, padding=1, bias=False); s.bn2 = frozen(16, False)
        s.inner = nn.Conv2d(16, 8, 1); s.lateral = nn.Conv2d(8, 8, 1)
        s.pool_conv = nn.Conv2d(8, 8, 1); s.head = nn.Conv2d(16, 4, 3, padding=1)
        s.register_buffer('k', torch.rand(1, 8, 1, 1) + 0.5); s.register_buffer('m', torch.rand(1, 8, 1, 1))
    def forward(s, x):
        c1 = F.relu(s.bn0(s.stem(x)))
        c2 = F.relu(s.bn2(s.deep(F.relu(s.bn1(s.down(c1))))))
        top = s.inner(c2)
        p1 = s.lateral(c1) + F.interpolate(top, size=c1.shape[-2:], mode='nearest')
        p1 = F.relu(p1) * s.k + s.m
        pooled = F.relu(s.pool_conv(F.adaptive_avg_pool2d(p1, 1)))
        pooled = F.interpolate(pooled, size=p1.shape[-2:], mode='bilinear', align_corners=False)
        return s.head(torch.cat([p1, pooled], 1))
net = Net().eval()
x = torch.rand(1, 3, ${SIZE}, ${SIZE})
for opset in [int(v) for v in sys.argv[2].split(',')]:
    torch.onnx.export(net, x, f'{sys.argv[1]}/neck{opset}.onnx', opset_version=opset,
                      input_names=['image'], output_names=['out'])
with torch.no_grad():
    y = net(x)
open(sys.argv[1] + '/x.bin', 'wb').write(x.numpy().tobytes())
open(sys.argv[1] + '/y.bin', 'wb').write(y.numpy().tobytes())
`;

const hasTorch = pythonHas(['torch', 'torchvision']);

const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, bundledSigningKey()), { allowUnsigned: true });

test(
  'a detection backbone and neck: frozen batch norms fold, nearest and bilinear resizes to run-time sizes match PyTorch at any batch, int8 quantizes',
  { skip: !hasTorch && 'no python3-torch / torchvision' },
  () => {
    withTorchScript(SCRIPT, [OPSETS.join(',')], (dir, floats) => {
      const [x, expected] = [floats('x.bin'), floats('y.bin')];
      const scale = Math.max(...expected.map(Math.abs));
      for (const opset of OPSETS) {
        const fp32 = read(importOnnx(readFileSync(join(dir, `neck${opset}.onnx`))));
        const ops = fp32.manifest.nodes.map((n) => n.op);
        // Three frozen norms folded: the only Mul left is the per-channel scale after a ReLU (it has no conv
        // to fold into; the quantizer keeps it and its shift in fp32), the other add is the FPN's.
        assert.equal(ops.filter((op) => op === 'mul').length, 1, `opset ${opset}: ${ops.join(', ')}`);
        assert.equal(ops.filter((op) => op === 'add').length, 2, `opset ${opset}: ${ops.join(', ')}`);
        assert.equal(ops.filter((op) => op === 'resize').length, 2, `opset ${opset}: ${ops.join(', ')}`);
        const input = fp32.manifest.inputs[0]!;
        const model = Model.fromPackage(fp32);
        const image = inputInLayout(x, [1, 3, SIZE, SIZE], model.specs[input.tensor]!.shape, input.layout);
        const y = model.run([image])[0]!.data as Float32Array;
        const diff = Math.max(...Array.from(y, (v, i) => Math.abs(v - expected[i]!)));
        assert.ok(diff <= 1e-5 * scale, `opset ${opset}: |diff| ${diff} against PyTorch`);
        // Built for 3 images: each one's output is the batch-1 output.
        const batched = Model.fromPackage(fp32, { batch: 3 });
        const three = new Float32Array(image.length * 3);
        for (let k = 0; k < 3; k++) three.set(image, k * image.length);
        const ys = batched.run([three])[0]!.data as Float32Array;
        for (let k = 0; k < 3; k++)
          assert.deepEqual(ys.subarray(k * y.length, (k + 1) * y.length), y, `opset ${opset}: image ${k}`);
        // int8, calibrated on 4 images (a batch of 4 through the resizes).
        const calibration = new Float32Array(image.length * 4);
        for (let k = 0; k < 4; k++)
          calibration.set(
            image.map((v) => v * (0.5 + k / 4)),
            k * image.length,
          );
        const int8 = read(quantizePackage(fp32, { count: 4, data: calibration }).content);
        const q = Model.fromPackage(int8).run([image])[0]!.data as Float32Array;
        const qdiff = Math.max(...Array.from(q, (v, i) => Math.abs(v - y[i]!)));
        assert.ok(
          qdiff <= 0.1 * scale,
          `opset ${opset}: int8 |diff| ${qdiff} over an output scale of ${scale}`,
        );
      }
    });
  },
);
