// Constant folding at import, on graphs as PyTorch's exporter writes them (Debian's python3-torch, opsets
// 9, 11, 13 and 17): x.view(x.size(0), -1) (Shape -> Gather -> Unsqueeze -> Concat -> Reshape), shape
// arithmetic on int64 (Mul, Div), torch.zeros of a computed size (ConstantOfShape) and torch.arange of one
// (Range, Cast). Every shape node folds away and the outputs match PyTorch's. Then the evaluator on
// hand-built graphs: Constant in its several forms, Slice with negative steps, Squeeze, Gather with negative
// indices, and a foldable op on a run-time tensor refused with a message naming it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { readPackage } from '../../../agent/package/reader.js';
import { inputInLayout } from '../../../agent/runtime/compile/index.js';
import { Model } from '../../../agent/runtime/model.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { OnnxImportError } from '../../../optimize/onnx/onnx-proto.js';
import { bundledSigningKey, writePackage } from '../../../optimize/package/writer.js';
import { pythonHas, withTorchScript } from '../../support/torch-script.js';
import { buildModel, floatTensor, intTensor } from './build-model.js';

const OPSETS = [9, 11, 13, 17];

const SCRIPT = String.raw`
import sys, torch, torch.nn as nn
torch.manual_seed(0)
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv = nn.Conv2d(3, 4, 3, padding=1)
        s.fc = nn.Linear(4 * 6 * 6, 10)
    def forward(s, x):
        x = torch.relu(s.conv(x))
        x = x.view(x.size(0), -1)
        x = x.reshape(x.shape[0] * 2 // 2, x.shape[1])
        y = s.fc(x) + torch.zeros(x.size(0), 10)
        return y + torch.arange(y.size(1)).float()
net = Net().eval()
x = torch.rand(1, 3, 6, 6)
for opset in [int(v) for v in sys.argv[2].split(',')]:
    torch.onnx.export(net, x, f'{sys.argv[1]}/net{opset}.onnx', opset_version=opset,
                      input_names=['image'], output_names=['logits'], dynamic_axes={'image': {0: 'batch'}})
with torch.no_grad():
    y = net(x)
open(sys.argv[1] + '/x.bin', 'wb').write(x.numpy().tobytes())
open(sys.argv[1] + '/y.bin', 'wb').write(y.numpy().tobytes())
`;

const hasTorch = pythonHas(['torch']);

const load = (bytes: Uint8Array): Model =>
  Model.fromPackage(
    readPackage(writePackage(importOnnx(bytes), bundledSigningKey()), { allowUnsigned: true }),
  );

test(
  'PyTorch shape subgraphs fold away at opsets 9, 11, 13 and 17 and the outputs match PyTorch',
  { skip: !hasTorch && 'no python3-torch' },
  () => {
    withTorchScript(SCRIPT, [OPSETS.join(',')], (dir, floats) => {
      const [x, expected] = [floats('x.bin'), floats('y.bin')];
      for (const opset of OPSETS) {
        const bytes = readFileSync(join(dir, `net${opset}.onnx`));
        const model = load(bytes);
        const ops = model.manifest.nodes.map((n) => n.op);
        assert.ok(
          ops.every((op) => ['conv2d', 'fully_connected', 'reshape', 'add', 'clip'].includes(op)),
          `opset ${opset}: ${ops.join(', ')}`,
        );
        const input = model.manifest.inputs[0]!;
        const y = model.run([
          inputInLayout(x, [1, 3, 6, 6], model.specs[input.tensor]!.shape, input.layout),
        ])[0]!.data as Float32Array;
        const diff = Math.max(...Array.from(y, (v, i) => Math.abs(v - expected[i]!)));
        assert.ok(diff <= 1e-5 * Math.max(...expected.map(Math.abs)), `opset ${opset}: |diff| ${diff}`);
      }
    });
  },
);

test('Constant in its value, value_int(s) and value_float forms, Slice with a negative step, Squeeze and Gather with a negative index fold', () => {
  // y = x + reshape(slice(gather(c, -1) ...)): everything but the Add is computed at import.
  const bytes = buildModel({
    nodes: [
      {
        op: 'Constant',
        name: 'c_ints',
        inputs: [],
        outputs: ['ints'],
        attrs: { value_ints: [3, 1, 4, 1, 5, 9] },
      },
      { op: 'Constant', name: 'c_int', inputs: [], outputs: ['minus1'], attrs: { value_int: -1 } },
      {
        op: 'Constant',
        name: 'c_floats',
        inputs: [],
        outputs: ['floats'],
        attrs: { value: floatTensor('f', [2], [0.5, 1.5]) },
      },
      { op: 'Constant', name: 'c_float', inputs: [], outputs: ['two'], attrs: { value_float: 2.5 } },
      // [9, 5, 1, 4, 1, 3][0:6:2] = [9, 1, 1]
      { op: 'Slice', name: 'rev', inputs: ['ints', 'start', 'end', 'axes', 'step'], outputs: ['picked'] },
      { op: 'Unsqueeze', name: 'unsq', inputs: ['picked', 'axis0'], outputs: ['row'] },
      { op: 'Squeeze', name: 'sq', inputs: ['row', 'axis0'], outputs: ['flat'] },
      // flat[-1] = 1 -> Cast to float, times floats -> [0.5, 1.5], times 2.5 -> [1.25, 3.75]
      { op: 'Gather', name: 'last', inputs: ['flat', 'minus1'], outputs: ['one'] },
      { op: 'Cast', name: 'cast', inputs: ['one'], outputs: ['onef'], attrs: { to: 1 } },
      { op: 'Mul', name: 'm1', inputs: ['floats', 'onef'], outputs: ['scaled'] },
      { op: 'Mul', name: 'm2', inputs: ['scaled', 'two'], outputs: ['bias'] },
      { op: 'Add', name: 'add', inputs: ['x', 'bias'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [1, 2] }],
    outputs: [{ name: 'y', dims: [1, 2] }],
    initializers: [
      intTensor('start', [1], [-1]),
      intTensor('end', [1], [-100]),
      intTensor('axes', [1], [0]),
      intTensor('step', [1], [-2]),
      intTensor('axis0', [1], [0]),
    ],
  });
  const model = load(bytes);
  assert.deepEqual(
    model.manifest.nodes.map((n) => n.op),
    ['add'],
  );
  assert.deepEqual(Array.from(model.run([Float32Array.from([10, 20])])[0]!.data), [11.25, 23.75]);
});

test('a foldable op on a run-time tensor is refused naming the node', () => {
  const bytes = buildModel({
    nodes: [{ op: 'ConstantOfShape', name: 'zeros', inputs: ['x'], outputs: ['y'] }],
    inputs: [{ name: 'x', dims: [2] }],
    outputs: [{ name: 'y', dims: [1, 2] }],
  });
  assert.throws(
    () => importOnnx(bytes),
    (error: unknown) =>
      error instanceof OnnxImportError &&
      error.message.startsWith(
        'node "zeros" (ConstantOfShape): the runtime has no ConstantOfShape op: it is evaluated at import only',
      ),
  );
});
