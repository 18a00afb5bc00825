// Post-training quantization of the MobileNetV3 / EfficientNet / ShuffleNet ops (issue 14): hard_swish after
// a conv, the squeeze-and-excitation block (global pool, 1x1 convs, hard_sigmoid gate, channel-broadcast mul),
// SiLU (x * sigmoid(x), one silu lookup table in int8), a sigmoid, and a ShuffleNet channel split (slice halves into a concat). The int8 package has no
// fp32 island (one quantize_linear at the input, one dequantize_linear at the output), runs every node on the
// native plan bit for bit with the reference executors, stays within a few steps of the fp32 package, and
// its QDQ export runs on ONNX Runtime with the same outputs within a few steps.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as ort from 'onnxruntime-node';

import type { Package } from '../../../agent/package/reader.js';
import { GraphError } from '../../../agent/runtime/graph-error.js';
import { Model } from '../../../agent/runtime/model.js';
import { OPS } from '../../../agent/runtime/ops/index.js';
import { lookupTable } from '../../../agent/runtime/reference-ops/elementwise.js';
import { exportOnnx } from '../../../optimize/onnx/export.js';
import { GraphBuilder } from '../../../optimize/package/graph-builder.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { read, values } from './ptq-fixtures.js';

const PER_IMAGE = 8 * 8 * 3;

function fp32Graph(): Package {
  const b = new GraphBuilder();
  const x = b.addTensor('input', { dtype: 'f32', shape: [1, 8, 8, 3] });
  const conv = (name: string, input: number, outC: number, inC: number, k: number, seed: number) => {
    const pad = (k - 1) / 2;
    const w = b.constant(`${name}.w`, 'f32', [outC, k, k, inC], values(outC * k * k * inC, seed, 0.6));
    const bias = b.constant(`${name}.b`, 'f32', [outC], values(outC, seed + 1, 0.2));
    return b.emit(name, 'conv2d', 'f32', [input, w, bias], { pads: [pad, pad, pad, pad] })[0]!;
  };
  const [stem] = b.emit('stem/hswish', 'hard_swish', 'f32', [conv('stem', x, 8, 3, 3, 1)], {});
  // Squeeze and excitation: the gate of each channel from the global pool, multiplied onto the map.
  const [pooled] = b.emit('se/pool', 'global_avgpool', 'f32', [stem!], {});
  const [squeezed] = b.emit('se/relu', 'clip', 'f32', [conv('se/reduce', pooled!, 4, 8, 1, 3)], { min: 0 });
  const [gate] = b.emit('se/gate', 'hard_sigmoid', 'f32', [conv('se/expand', squeezed!, 8, 4, 1, 5)], {
    alpha: 1 / 6,
    beta: 0.5,
  });
  const [scaled] = b.emit('se/scale', 'mul', 'f32', [stem!, gate!], {});
  // SiLU, EfficientNet's activation.
  const c2 = conv('conv2', scaled!, 8, 8, 1, 7);
  const [sig] = b.emit('silu/sigmoid', 'sigmoid', 'f32', [c2], {});
  const [silu] = b.emit('silu/mul', 'mul', 'f32', [c2, sig!], {});
  // ShuffleNet's split: one half kept, the other through a conv, concatenated.
  const [left, right] = b.emit('split', 'split', 'f32', [silu!], { axis: 3, split: [4, 4] }, [{}, {}]);
  const [kept] = b.emit('slice', 'slice', 'f32', [left!], { starts: [0], ends: [4], axes: [3] });
  const [branch] = b.emit('branch/sigmoid', 'sigmoid', 'f32', [conv('branch', right!, 4, 4, 3, 9)], {});
  const [cat] = b.emit('concat', 'concat', 'f32', [kept!, branch!], { axis: 3 });
  const [gap] = b.emit('gap', 'global_avgpool', 'f32', [cat!], {});
  const [flat] = b.emit('flatten', 'reshape', 'f32', [gap!], { shape: [0, -1] });
  const w = b.constant('dense.w', 'f32', [5, 8], values(40, 11, 1));
  const [logits] = b.emit('dense', 'fully_connected', 'f32', [flat!, w, -1], {});
  return read(
    b.finish([{ name: 'input', tensor: x, layout: 'NHWC' }], [{ name: 'logits', tensor: logits! }], {
      id: 'ptq-v3',
      version: '1.0.0',
    }),
  );
}

const int8Package = (): Package =>
  read(quantizePackage(fp32Graph(), { count: 64, data: values(64 * PER_IMAGE, 7, 1.5) }).content);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { diff, scale };
}

test('hard_swish, the SE block, SiLU and a channel split quantize with no fp32 island', (t) => {
  const fp32 = fp32Graph();
  const int8 = int8Package();
  const ops = int8.manifest.nodes.map((n) => `${n.op}/${n.format}`);
  // fp32 only at the edges: the input's quantize and the logits' dequantize.
  assert.deepEqual(
    ops.filter(
      (o) => o.endsWith('/f32') || o.startsWith('quantize_linear') || o.startsWith('dequantize_linear'),
    ),
    ['quantize_linear/int8', 'dequantize_linear/int8'],
    JSON.stringify(ops),
  );
  const byName = new Map(int8.manifest.nodes.map((n) => [n.name, n]));
  for (const [name, op] of [
    ['stem/hswish', 'hard_swish'],
    ['se/gate', 'hard_sigmoid'],
    ['se/scale', 'qmul'],
    ['branch/sigmoid', 'sigmoid'],
    ['silu/mul', 'silu'],
    ['split', 'split'],
    ['slice', 'slice'],
    ['se/pool', 'global_avgpool'],
  ] as const) {
    const node = byName.get(name);
    assert.equal(node?.op, op, name);
    assert.equal(node.format, 'int8', name);
    for (const tensor of [...node.inputs, ...node.outputs])
      assert.equal(
        int8.manifest.tensors[tensor]!.dtype,
        'i8',
        `${name}: ${int8.manifest.tensors[tensor]!.name}`,
      );
  }

  const batch = 16;
  const input = values(batch * PER_IMAGE, 99, 1.5);
  const native = Model.fromPackage(int8, { batch });
  // Every node on a native kernel, in one plan.
  assert.deepEqual(native.execution.typescriptNodes, [], JSON.stringify(native.execution));
  assert.ok(!byName.has('silu/sigmoid'), 'the SiLU sigmoid is folded into the silu table');
  for (const op of ['hard_swish', 'hard_sigmoid', 'sigmoid', 'silu', 'qmul', 'slice', 'split'])
    assert.ok(
      native.layers.some((l) => l.op === op && l.kernel.startsWith('native:')),
      `${op}: ${JSON.stringify(native.layers.map((l) => [l.op, l.kernel]))}`,
    );
  const [actual] = native.run([input]);
  const [reference] = Model.fromPackage(int8, { batch, referenceOnly: true }).run([input]);
  assert.deepEqual(Array.from(actual!.data), Array.from(reference!.data), 'native vs reference, bit for bit');

  const [expected] = Model.fromPackage(fp32, { batch }).run([input]);
  const { diff, scale } = maxDiff(actual!.data, expected!.data);
  t.diagnostic(`max |int8 - fp32| ${diff.toPrecision(3)} at output scale ${scale.toPrecision(3)}`);
  assert.ok(scale > 0.1, `the logits are not all near zero (scale ${scale})`);
  assert.ok(diff <= 0.05 * scale, `max |int8 - fp32| ${diff} at output scale ${scale}`);
});

test('the int8 graph exports as QDQ and ONNX Runtime gives its outputs', async (t) => {
  const int8 = int8Package();
  const model = Model.fromPackage(int8);
  for (const activations of ['as-stored', 'u8'] as const) {
    const session = await ort.InferenceSession.create(exportOnnx(int8, { activations }));
    let worst = { diff: 0, scale: 0 };
    for (let n = 0; n < 8; n++) {
      const input = values(PER_IMAGE, 300 + n, 1.5);
      const [ours] = model.run([input]);
      const theirs = (await session.run({ input: new ort.Tensor('float32', input, [1, 8, 8, 3]) })).logits!
        .data as Float32Array;
      const d = maxDiff(ours!.data, theirs);
      worst = { diff: Math.max(worst.diff, d.diff), scale: Math.max(worst.scale, d.scale) };
    }
    t.diagnostic(
      `${activations}: max |Whittle - ONNX Runtime| ${worst.diff.toPrecision(3)} at ${worst.scale.toPrecision(3)}`,
    );
    assert.ok(
      worst.diff <= 0.05 * worst.scale,
      `${activations}: ${worst.diff} at output scale ${worst.scale}`,
    );
  }
});

test('an int8 activation table is the function rounded to the output grid', () => {
  const x = { scale: 0.05, zeroPoint: -10 };
  const y = { scale: 1 / 255, zeroPoint: -128 };
  const f = (v: number) => 1 / (1 + Math.exp(-v));
  for (const dtype of ['i8', 'u8'] as const) {
    const zx = dtype === 'u8' ? x.zeroPoint + 128 : x.zeroPoint;
    const zy = dtype === 'u8' ? y.zeroPoint + 128 : y.zeroPoint;
    const table = lookupTable(f, { ...x, zeroPoint: zx }, { ...y, zeroPoint: zy }, dtype);
    for (let byte = 0; byte < 256; byte++) {
      const q = dtype === 'u8' ? byte : (byte << 24) >> 24;
      const want = f(x.scale * (q - zx));
      const got = y.scale * (table[byte]! - zy);
      assert.ok(Math.abs(got - want) <= y.scale / 2 + 1e-12, `${dtype} ${q}: ${got} vs ${want}`);
    }
  }
});

test('int8 activations and qmul refuse operands they cannot compute', () => {
  const node = (op: string) => ({
    name: op,
    op,
    format: 'int8' as const,
    inputs: [0, 1],
    outputs: [2],
    attrs: {},
  });
  const i8 = (shape: number[], quant?: { scale: number[]; zeroPoint: number[]; axis?: number }) => ({
    dtype: 'i8' as const,
    shape,
    ...(quant ? { quant } : {}),
  });
  const q = { scale: [0.1], zeroPoint: [0] };
  // No quantization declared for the output of an int8 activation.
  assert.throws(() => OPS.hard_swish!.infer(node('hard_swish'), [i8([4], q)], [i8([4])]), GraphError);
  // A per-channel input.
  assert.throws(
    () =>
      OPS.sigmoid!.infer(
        node('sigmoid'),
        [i8([2], { scale: [0.1, 0.2], zeroPoint: [0, 0], axis: 0 })],
        [i8([2], q)],
      ),
    /per-tensor x/,
  );
  // int32 in.
  assert.throws(
    () => OPS.hard_sigmoid!.infer(node('hard_sigmoid'), [{ dtype: 'i32', shape: [4] }], []),
    GraphError,
  );
  // qmul of an int8 and a uint8 tensor, of shapes that do not broadcast, and of an unquantized operand.
  assert.throws(
    () => OPS.qmul!.infer(node('qmul'), [i8([4], q), { dtype: 'u8', shape: [4], quant: q }], [i8([4], q)]),
    /two int8 or two uint8/,
  );
  assert.throws(() => OPS.qmul!.infer(node('qmul'), [i8([4], q), i8([3], q)], [i8([4], q)]), GraphError);
  assert.throws(() => OPS.qmul!.infer(node('qmul'), [i8([4], q), i8([4])], [i8([4], q)]), /b needs a scale/);
  // The same node with valid operands is accepted: the refusals above are about the operands.
  assert.deepEqual(
    OPS.qmul!.infer(node('qmul'), [i8([2, 4], q), i8([1, 4], q)], [i8([2, 4], q)])[0]!.shape,
    [2, 4],
  );
});
