// The compile pass on a model exported by PyTorch (Debian's python3-torch), the way users bring one: NCHW
// input, Conv + BatchNorm + ReLU6, a residual block (add, ReLU), and a Flatten of NCHW activations into
// Linear layers, whose weight columns the pass permutes so the activations stay NHWC. Compared with
// PyTorch's own output, with the uncompiled graph, and in int8 compiled vs uncompiled (bit-exact).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { Model } from '../../../agent/runtime/model.js';
import { pythonHas, withTorchScript } from '../../support/torch-script.js';
import { importBoth, nchwToNhwc, quantized } from './compile-fixtures.js';

const SCRIPT = String.raw`
import sys, torch, torch.nn as nn
torch.manual_seed(0)
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        s.pool = nn.MaxPool2d(2)
        s.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        s.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 10))
    def forward(s, x):
        x = s.pool(s.stem(x))
        x = torch.relu(x + s.block(x))
        return s.head(x)
net = Net().eval()
for m in net.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5)
        m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
x = torch.rand(1, 3, 16, 16)
torch.onnx.export(net, x, sys.argv[1] + '/net.onnx', opset_version=13, input_names=['image'],
                  output_names=['logits'])
with torch.no_grad():
    y = net(x)
open(sys.argv[1] + '/x.bin', 'wb').write(x.numpy().tobytes())
open(sys.argv[1] + '/y.bin', 'wb').write(y.numpy().tobytes())
`;

const hasTorch = pythonHas(['torch']);

test(
  'a PyTorch model: no transpose left, PyTorch outputs, int8 bit-exact',
  { skip: !hasTorch && 'no python3-torch' },
  () => {
    withTorchScript(SCRIPT, [], (dir, floats) => {
      const [x, expected] = [floats('x.bin'), floats('y.bin')];
      const { stored, compiled } = importBoth(readFileSync(join(dir, 'net.onnx')), 'net.onnx');
      const nhwc = nchwToNhwc(x, 1, 3, 16, 16);

      const model = Model.fromPackage(compiled);
      assert.equal(model.manifest.nodes.filter((n) => n.op === 'transpose').length, 0);
      assert.ok(
        model.manifest.nodes.some((n) => n.op === 'fully_connected'),
        'Flatten + Linear stay FC',
      );
      // x + block(x): the add (and the ReLU after it) fuse into the block's last conv.
      assert.ok(
        !model.manifest.nodes.some((n) => n.op === 'add'),
        JSON.stringify(model.compileReport.notFused),
      );
      assert.ok(model.manifest.nodes.some((n) => n.op === 'conv2d' && (n.inputs[3] ?? -1) >= 0));
      const scale = Math.max(...expected.map(Math.abs));
      for (const [what, out] of [
        ['compiled', model.run([nhwc])[0]!.data],
        ['stored, uncompiled', Model.fromPackage(stored, { compile: false }).run([x])[0]!.data],
        ['stored, compiled at load', Model.fromPackage(stored).run([x])[0]!.data],
      ] as const) {
        const diff = Math.max(...Array.from(out, (v, i) => Math.abs(v - expected[i]!)));
        assert.ok(diff <= 1e-4 * scale, `${what}: |diff| ${diff} vs scale ${scale}`);
      }

      const storedInt8 = quantized(stored);
      assert.deepEqual(
        Model.fromPackage(storedInt8).run([x])[0]!.data,
        Model.fromPackage(storedInt8, { compile: false, referenceOnly: true }).run([x])[0]!.data,
      );
      const int8 = quantized(compiled);
      assert.deepEqual(
        Model.fromPackage(int8).run([nhwc])[0]!.data,
        Model.fromPackage(int8, { compile: false, referenceOnly: true }).run([nhwc])[0]!.data,
      );
    });
  },
);
