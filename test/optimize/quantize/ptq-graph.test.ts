// Post-training quantization of a small hand-built graph with every path of ptq.ts that the zoo models do
// not take: a residual add (an int8 qadd), a concat whose input is not a layer's output (a max pool, with its
// conv's scale, requantized to the concat's) next to the add, a depthwise convolution, and an int8 global
// average pool ahead of a dense layer. The int8 package must give the fp32 package's outputs to within a few
// quantization steps, and its QDQ ONNX export ONNX Runtime's.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as ort from 'onnxruntime-node';

import type { Package } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { exportOnnx } from '../../../optimize/onnx/export.js';
import { GraphBuilder } from '../../../optimize/package/graph-builder.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { read, values } from './ptq-fixtures.js';

function fp32Graph(): Package {
  const b = new GraphBuilder();
  const x = b.addTensor('input', { dtype: 'f32', shape: [1, 8, 8, 2] });
  const relu = { min: 0 };
  const same3x3 = { strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1] };
  const w1 = b.constant('w1', 'f32', [4, 3, 3, 2], values(72, 1, 0.5));
  const [c1] = b.emit(
    'conv1',
    'conv2d',
    'f32',
    [x, w1, b.constant('b1', 'f32', [4], values(4, 2, 0.1))],
    same3x3,
  );
  const [r1] = b.emit('conv1/relu', 'clip', 'f32', [c1!], relu);
  const [p] = b.emit('pool', 'max_pool', 'f32', [r1!], { kernel: [2, 2], strides: [2, 2] });
  const wd = b.constant('wd', 'f32', [4, 3, 3, 1], values(36, 3, 0.6));
  const [dw] = b.emit('depthwise', 'conv2d', 'f32', [p!, wd, -1], { ...same3x3, groups: 4 });
  const [r2] = b.emit('depthwise/relu', 'clip', 'f32', [dw!], { min: 0, max: 6 });
  const [sum] = b.emit('residual', 'add', 'f32', [p!, r2!], {});
  const [cat] = b.emit('concat', 'concat', 'f32', [p!, sum!], { axis: 3 });
  const [gap] = b.emit('gap', 'global_avgpool', 'f32', [cat!], {});
  const [flat] = b.emit('flatten', 'reshape', 'f32', [gap!], { shape: [0, -1] });
  const w3 = b.constant('w3', 'f32', [3, 8], values(24, 4, 1));
  const [logits] = b.emit(
    'dense',
    'fully_connected',
    'f32',
    [flat!, w3, b.constant('b3', 'f32', [3], values(3, 5, 0.1))],
    {},
  );
  return read(
    b.finish([{ name: 'input', tensor: x, layout: 'NHWC' }], [{ name: 'logits', tensor: logits! }], {
      id: 'ptq-graph',
      version: '1.0.0',
    }),
  );
}

test('a residual add, a requantized concat input, a depthwise conv and a global pool quantize and agree', (t) => {
  const fp32 = fp32Graph();
  const perImage = 8 * 8 * 2;
  const calibration = { count: 64, data: values(64 * perImage, 7, 2) };
  const int8 = read(quantizePackage(fp32, calibration).content);

  const byName = new Map(int8.manifest.nodes.map((n) => [n.name, n]));
  assert.equal(byName.get('conv1')?.op, 'qconv2d');
  assert.equal(byName.get('depthwise')?.op, 'qconv2d');
  assert.equal(byName.get('depthwise')?.attrs.groups, 4);
  assert.equal(byName.get('dense')?.op, 'qfully_connected');
  assert.equal(byName.get('pool')?.format, 'int8');
  // The residual add is a qadd from its inputs' quantizations to its own; the global pool is int8 from the
  // concat's quantization to its own.
  const residual = byName.get('residual')!;
  assert.equal(residual.op, 'qadd');
  assert.equal(residual.format, 'int8');
  for (const t of [...residual.inputs, ...residual.outputs])
    assert.equal(int8.manifest.tensors[t]!.dtype, 'i8');
  const gap = byName.get('gap')!;
  assert.equal(gap.format, 'int8');
  assert.equal(int8.manifest.tensors[gap.inputs[0]!]!.dtype, 'i8');
  assert.equal(int8.manifest.tensors[gap.outputs[0]!]!.dtype, 'i8');
  assert.notDeepEqual(
    int8.manifest.tensors[gap.outputs[0]!]!.quant,
    int8.manifest.tensors[gap.inputs[0]!]!.quant,
  );
  // The concat moves int8 bytes; both of its inputs are at its scale and zero point: the pool's output is
  // requantized to it, and the residual qadd, whose output range the plan takes from the concat, writes
  // straight into it.
  const concat = byName.get('concat')!;
  assert.equal(concat.format, 'int8');
  const outQuant = int8.manifest.tensors[concat.outputs[0]!]!.quant;
  const producers = concat.inputs.map((i) => int8.manifest.nodes.find((n) => n.outputs.includes(i))!);
  assert.deepEqual(
    producers.map((p) => p.op),
    ['quantize_linear', 'qadd'],
  );
  for (const i of concat.inputs) {
    assert.deepEqual(int8.manifest.tensors[i]!.quant, outQuant);
  }

  // Fresh inputs, not the calibration set: the outputs agree within 2 % of their scale.
  const batch = 16;
  const input = values(batch * perImage, 99, 2);
  const [expected] = Model.fromPackage(fp32, { batch }).run([input]);
  const [actual] = Model.fromPackage(int8, { batch }).run([input]);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected!.data.length; i++) {
    diff = Math.max(diff, Math.abs(actual!.data[i]! - expected!.data[i]!));
    scale = Math.max(scale, Math.abs(expected!.data[i]!));
  }
  t.diagnostic(`max |int8 - fp32| ${diff.toPrecision(3)} at output scale ${scale.toPrecision(3)}`);
  assert.ok(scale > 0.1, `the logits are not all near zero (scale ${scale})`);
  assert.ok(diff <= 0.02 * scale, `max |int8 - fp32| ${diff} at output scale ${scale}`);
});

test('the int8 graph (qadd, int8 global pool) exports as QDQ and ONNX Runtime gives its outputs', async (t) => {
  const int8 = read(quantizePackage(fp32Graph(), { count: 64, data: values(64 * 128, 7, 2) }).content);
  const model = Model.fromPackage(int8);
  const session = await ort.InferenceSession.create(exportOnnx(int8));
  let diff = 0;
  let scale = 0;
  for (let n = 0; n < 8; n++) {
    const input = values(128, 200 + n, 2);
    const [ours] = model.run([input]);
    const theirs = (await session.run({ input: new ort.Tensor('float32', input, [1, 8, 8, 2]) })).logits!
      .data as Float32Array;
    for (let i = 0; i < ours!.data.length; i++) {
      diff = Math.max(diff, Math.abs(ours!.data[i]! - theirs[i]!));
      scale = Math.max(scale, Math.abs(theirs[i]!));
    }
  }
  // QDQ rounds half to even where the int8 kernels use gemmlowp: a step here and there, not more.
  t.diagnostic(`max |Whittle - ONNX Runtime| ${diff.toPrecision(3)} at output scale ${scale.toPrecision(3)}`);
  assert.ok(diff <= 0.03 * scale, `max |Whittle - ONNX Runtime| ${diff} at output scale ${scale}`);
});
