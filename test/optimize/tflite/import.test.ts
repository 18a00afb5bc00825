// The TFLite importer: float and fully-int8 networks built here with the TFLite schema (build-model.ts)
// import without a single layout transpose; the float ones give the outputs the same network built in ONNX
// gives through the ONNX importer; both forms agree with a real TFLite implementation, Arm NN 20.08's TfLite
// parser on its CpuRef backend (Debian's python3-pyarmnn; skipped with a message when absent), float within
// 1e-4 of the output range and int8 within one quantization step; unsupported ops are refused one line per
// op type; truncated and hostile files are refused with a TfliteImportError.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { importTflite } from '../../../optimize/tflite/import.js';
import {
  BuiltinOperator,
  readTflite,
  TensorType,
  TfliteImportError,
} from '../../../optimize/tflite/reader.js';
import { type TfliteModelSpec, writeTflite } from '../../../optimize/tflite/writer.js';
import {
  buildNetwork,
  everyActivation,
  LENET,
  MOBILENET_BLOCK,
  MOBILENET_V3_BLOCK,
  type Network,
  padsAsSame,
  quantizeNetwork,
} from './build-model.js';

const keys = generateKeyPairSync('ed25519');
const load = (content: ReturnType<typeof importTflite>): Model =>
  Model.fromPackage(readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey }));

const NETWORKS: [string, Network][] = [
  ['LeNet', LENET],
  ['MobileNet block', MOBILENET_BLOCK],
  ['MobileNetV3 block (hard-swish, logistic, mul)', MOBILENET_V3_BLOCK],
];

function inputs(net: Network, count: number, seed: number): Float32Array[] {
  const random = new SeededRandom(seed);
  const size = net.input.reduce((p, q) => p * q, 1);
  return Array.from({ length: count }, () => Float32Array.from({ length: size }, () => random.normal()));
}

function nhwcToNchw(x: Float32Array, [n, h, w, c]: readonly number[]): Float32Array {
  const y = new Float32Array(x.length);
  for (let b = 0; b < n!; b++)
    for (let i = 0; i < h! * w!; i++)
      for (let ch = 0; ch < c!; ch++) y[(b * c! + ch) * h! * w! + i] = x[(b * h! * w! + i) * c! + ch]!;
  return y;
}

const range = (values: ArrayLike<number>): number =>
  Math.max(...Array.from(values)) - Math.min(...Array.from(values));

/** The int8 form of `net`: calibrated on Whittle's own float import of it. */
function int8Spec(net: Network, seed: number): TfliteModelSpec {
  const { tflite } = buildNetwork(net, seed);
  const calibration = everyActivation(tflite);
  const model = load(importTflite(writeTflite(calibration)));
  const ranges = new Map<number, [number, number]>();
  for (const x of inputs(net, 8, seed + 100)) {
    model.run([x]).forEach((out, k) => {
      const t = calibration.outputs[k]!;
      const [lo, hi] = ranges.get(t) ?? [Infinity, -Infinity];
      ranges.set(t, [Math.min(lo, ...Array.from(out.data)), Math.max(hi, ...Array.from(out.data))]);
    });
  }
  return quantizeNetwork(tflite, ranges);
}

for (const [label, net] of NETWORKS) {
  test(`${label}: the float TFLite import runs NHWC without transposes and matches the same network built in ONNX`, () => {
    const { tflite, onnx } = buildNetwork(net, 7);
    const model = load(importTflite(writeTflite(tflite)));
    assert.ok(!model.manifest.nodes.some((n) => n.op === 'transpose'), 'no layout transpose');
    assert.equal(model.manifest.inputs[0]!.layout, 'NHWC');
    if (net === MOBILENET_V3_BLOCK) {
      // HARD_SWISH is the runtime's one hard_swish op, not an add / clip / mul chain.
      const imported = importTflite(writeTflite(tflite)).manifest.nodes.map((n) => n.op);
      assert.equal(imported.filter((op) => op === 'hard_swish').length, 1, imported.join(', '));
      assert.ok(!imported.includes('add') && !imported.includes('clip'), imported.join(', '));
    }
    const reference = load(importOnnx(onnx));
    const nhwcInput = reference.manifest.inputs[0]!.layout === 'NHWC';
    for (const x of inputs(net, 4, 11)) {
      const [y] = model.run([x]);
      const [z] = reference.run([nhwcInput ? x : nhwcToNchw(x, net.input)]);
      assert.deepEqual(y!.shape, z!.shape);
      const tolerance = 1e-4 * Math.max(1, range(z!.data));
      y!.data.forEach((v, i) =>
        assert.ok(Math.abs(v - z!.data[i]!) <= tolerance, `output ${i}: ${v} vs ${z!.data[i]}`),
      );
    }
  });

  test(`${label}: the fully-int8 TFLite import runs on the int8 kernels`, () => {
    const content = importTflite(writeTflite(int8Spec(net, 7)));
    const model = load(content);
    const ops = model.manifest.nodes.map((n) => n.op);
    assert.ok(!ops.includes('transpose'), `no layout transpose: ${ops.join(', ')}`);
    assert.ok(
      !ops.includes('conv2d') && ops.includes('qconv2d'),
      `convolutions on qconv2d: ${ops.join(', ')}`,
    );
    if (net !== MOBILENET_V3_BLOCK) assert.ok(ops.includes('qfully_connected'), ops.join(', '));
    if (net === MOBILENET_BLOCK) {
      // The residual add imports as an int8 qadd, which the runtime fuses into the conv before it at load.
      const add = content.manifest.nodes.find((n) => n.op === 'qadd');
      assert.ok(add !== undefined, content.manifest.nodes.map((n) => n.op).join(', '));
      assert.ok(
        ops.includes('qadd') || model.compileReport.fused.some((f) => f.node === add.name),
        `the residual qadd runs, or is fused: ${ops.join(', ')}`,
      );
    }
    // The int8 network still computes the float one's function, roughly: same top class on most inputs.
    const float = load(importTflite(writeTflite(buildNetwork(net, 7).tflite)));
    let same = 0;
    const xs = inputs(net, 20, 13);
    const argmax = (v: ArrayLike<number>) =>
      Array.from(v).reduce((best, x, i, all) => (x > all[best]! ? i : best), 0);
    for (const x of xs) if (argmax(model.run([x])[0]!.data) === argmax(float.run([x])[0]!.data)) same++;
    assert.ok(same >= 15, `top-1 agreement with the float network ${same}/20`);
  });
}

const armnn = fileURLToPath(new URL('../../../../test/optimize/tflite/armnn-run.py', import.meta.url));
const hasPyarmnn = spawnSync('/usr/bin/python3', ['-c', 'import pyarmnn'], { stdio: 'ignore' }).status === 0;

function runArmnn(bytes: Uint8Array, x: Float32Array): { shape: number[]; data: number[] } {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-tflite-'));
  try {
    writeFileSync(join(dir, 'model.tflite'), bytes);
    writeFileSync(join(dir, 'input.f32'), new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    const out = execFileSync('/usr/bin/python3', [armnn, join(dir, 'model.tflite'), join(dir, 'input.f32')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out.trim().split('\n').pop()!) as { shape: number[]; data: number[] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whittle's and Arm NN's outputs of `bytes` on `xs`: the largest difference in quantization steps of size
 * `step`, and how many outputs are equal. */
function againstArmnn(bytes: Uint8Array, xs: Float32Array[], step: number) {
  const model = load(importTflite(bytes));
  let exact = 0;
  let total = 0;
  let maxSteps = 0;
  let sameTop1 = 0;
  const argmax = (v: ArrayLike<number>) =>
    Array.from(v).reduce((best, x, i, all) => (x > all[best]! ? i : best), 0);
  for (const x of xs) {
    const peer = runArmnn(bytes, x);
    const [y] = model.run([x]);
    assert.deepEqual(y!.shape, peer.shape);
    if (argmax(y!.data) === argmax(peer.data)) sameTop1++;
    y!.data.forEach((v, i) => {
      const steps = Math.abs(v - peer.data[i]!) / step;
      maxSteps = Math.max(maxSteps, steps);
      total++;
      if (steps < 1e-6) exact++;
    });
  }
  return { exact, total, maxSteps, sameTop1 };
}

const outputStep = (bytes: Uint8Array): number => {
  const model = readTflite(bytes);
  return model.tensors[model.operators.at(-1)!.inputs[0]!]!.quant!.scale[0]!;
};

const noPyarmnn = hasPyarmnn
  ? false
  : 'python3-pyarmnn is not installed (apt install python3-pyarmnn libarmnn-cpuref-backend22)';

for (const [label, net] of NETWORKS) {
  test(
    `${label}: float and int8 outputs agree with Arm NN's TfLite parser on CpuRef`,
    { skip: noPyarmnn },
    () => {
      const float = writeTflite(buildNetwork(net, 7).tflite);
      const whittleFloat = load(importTflite(float));
      const xs = inputs(net, 3, 17);
      for (const x of xs) {
        const peer = runArmnn(float, x);
        const [y] = whittleFloat.run([x]);
        assert.deepEqual(y!.shape, peer.shape);
        const tolerance = 1e-4 * Math.max(1, range(peer.data));
        y!.data.forEach((v, i) =>
          assert.ok(Math.abs(v - peer.data[i]!) <= tolerance, `float ${i}: ${v} vs Arm NN ${peer.data[i]}`),
        );
      }
      // A whole int8 network: one-step differences of early layers (Arm NN's CpuRef requantizes in float,
      // Whittle in TFLite's integer arithmetic) compound through later layers, so the whole network is held to
      // the same top class; each op alone is held to one step below.
      // Arm NN 20.08 pads an int8 PAD read by a depthwise convolution with 0 rather than the zero point (its
      // int8 output then lies ~240 steps from the float network's where Whittle's lies 10): the int8 peer
      // comparison takes the same block with SAME padding instead.
      const int8 = writeTflite(int8Spec(padsAsSame(net), 7));
      const r = againstArmnn(int8, xs, outputStep(int8));
      console.log(
        `# ${label} int8: ${r.exact}/${r.total} outputs equal to Arm NN's, at most ${r.maxSteps.toFixed(1)} steps apart, top-1 ${r.sameTop1}/${xs.length}`,
      );
      assert.equal(r.sameTop1, xs.length);
    },
  );
}

/** One int8 op between QUANTIZE and DEQUANTIZE, per op the importer maps. */
const SINGLE_OPS: [string, Network][] = [
  [
    'CONV_2D (per-channel, RELU6)',
    { input: [1, 6, 6, 3], layers: [{ kind: 'conv', out: 4, k: 3, same: true, act: 'relu6' }] },
  ],
  [
    'DEPTHWISE_CONV_2D (stride 2)',
    { input: [1, 7, 7, 4], layers: [{ kind: 'dwconv', k: 3, stride: 2, same: true }] },
  ],
  [
    'RELU6 CONV_2D + PAD + CONV_2D',
    {
      input: [1, 5, 5, 2],
      layers: [
        { kind: 'conv', out: 2, k: 1, act: 'relu6' },
        { kind: 'pad', amount: 1 },
        { kind: 'conv', out: 3, k: 3 },
      ],
    },
  ],
  [
    'PAD + CONV_2D',
    {
      input: [1, 5, 5, 2],
      layers: [
        { kind: 'pad', amount: 1 },
        { kind: 'conv', out: 3, k: 3 },
      ],
    },
  ],
  ['FULLY_CONNECTED', { input: [1, 2, 2, 5], layers: [{ kind: 'fc', out: 6, act: 'relu' }] }],
  ['AVERAGE_POOL_2D', { input: [1, 6, 6, 3], layers: [{ kind: 'avgpool', k: 2, stride: 2 }] }],
  ['MAX_POOL_2D', { input: [1, 6, 6, 3], layers: [{ kind: 'maxpool', k: 3, stride: 1 }] }],
  ['MEAN', { input: [1, 5, 5, 4], layers: [{ kind: 'mean' }] }],
  ['ADD', { input: [1, 3, 3, 4], layers: [{ kind: 'residual', layers: [] }] }],
  ['CONCATENATION', { input: [1, 3, 3, 2], layers: [{ kind: 'concat', layers: [] }] }],
  [
    'ADD after CONV_2D (operands quantized apart)',
    { input: [1, 3, 3, 4], layers: [{ kind: 'residual', layers: [{ kind: 'conv', out: 4, k: 1 }] }] },
  ],
  [
    'CONCATENATION after CONV_2D (inputs quantized apart)',
    { input: [1, 3, 3, 2], layers: [{ kind: 'concat', layers: [{ kind: 'conv', out: 3, k: 1 }] }] },
  ],
  ['MUL', { input: [1, 3, 3, 4], layers: [{ kind: 'mul-const' }] }],
  ['SOFTMAX', { input: [1, 2, 2, 6], layers: [{ kind: 'softmax' }] }],
  ['LOGISTIC', { input: [1, 3, 3, 4], layers: [{ kind: 'logistic' }] }],
  ['HARD_SWISH', { input: [1, 3, 3, 4], layers: [{ kind: 'hardswish' }] }],
];

test('each int8 op alone is within one quantization step of Arm NN (CpuRef)', { skip: noPyarmnn }, () => {
  const lines: string[] = [];
  for (const [label, net] of SINGLE_OPS) {
    const bytes = writeTflite(int8Spec(net, 5));
    const r = againstArmnn(bytes, inputs(net, 2, 19), outputStep(bytes));
    lines.push(`${label}: ${r.exact}/${r.total} equal, max ${r.maxSteps.toFixed(2)} steps`);
  }
  console.log(lines.map((l) => `# ${l}`).join('\n'));
  // One step, up to the float32 rounding of the dequantized outputs compared.
  for (const line of lines) assert.ok(Number(/max ([\d.]+) steps/.exec(line)![1]) <= 1.001, line);
});

test('unsupported ops are refused one line per op type, with counts and first names', () => {
  const spec: TfliteModelSpec = {
    tensors: [
      { name: 'x', type: TensorType.FLOAT32, shape: [1, 4] },
      ...[1, 2, 3, 4, 5].map((i) => ({ name: `t${i}`, type: TensorType.FLOAT32, shape: [1, 4] })),
    ],
    inputs: [0],
    outputs: [5],
    operators: [
      { op: BuiltinOperator.TANH, inputs: [0], outputs: [1] },
      { op: BuiltinOperator.TANH, inputs: [1], outputs: [2] },
      { op: BuiltinOperator.RELU, inputs: [2], outputs: [3] },
      { op: BuiltinOperator.TANH, inputs: [3], outputs: [4] },
      { op: BuiltinOperator.EXP, inputs: [4], outputs: [5] },
    ],
  };
  assert.throws(
    () => importTflite(writeTflite(spec)),
    (error: Error) =>
      error.name === 'UnsupportedOpsError' &&
      error.message.includes(
        '2 op type(s) the importer lacks (4 node(s)):\n  TANH ×3 (t1, t2, t4)\n  EXP ×1 (t5)\n',
      ) &&
      error.message.includes('supported ops: ADD, AVERAGE_POOL_2D'),
  );
});

test('truncated files and every single-byte change of a model are refused with a typed error or imported', () => {
  const bytes = writeTflite(buildNetwork(MOBILENET_BLOCK, 3).tflite);
  const typed = (f: () => unknown) => {
    try {
      f();
    } catch (error) {
      assert.ok(
        error instanceof TfliteImportError ||
          ['UnsupportedOpsError', 'GraphError'].includes((error as Error).name),
        `untyped error: ${(error as Error).stack}`,
      );
    }
  };
  for (let n = 0; n < bytes.length; n += 7) {
    assert.throws(() => importTflite(bytes.subarray(0, n)), TfliteImportError);
  }
  const random = new SeededRandom(5);
  for (let i = 0; i < 3000; i++) {
    const copy = bytes.slice();
    copy[random.int(0, copy.length - 1)] = random.int(0, 255);
    typed(() => importTflite(copy));
  }
});

test('hostile graphs: missing, cyclic and out-of-range tensors, bad buffers, huge dims', () => {
  const base = (): TfliteModelSpec => ({
    tensors: [
      { name: 'x', type: TensorType.FLOAT32, shape: [1, 4] },
      { name: 'y', type: TensorType.FLOAT32, shape: [1, 4] },
      { name: 'z', type: TensorType.FLOAT32, shape: [1, 4] },
    ],
    inputs: [0],
    outputs: [2],
    operators: [
      { op: BuiltinOperator.RELU, inputs: [0], outputs: [1] },
      { op: BuiltinOperator.RELU, inputs: [1], outputs: [2] },
    ],
  });
  const refused = (spec: TfliteModelSpec, pattern: RegExp) =>
    assert.throws(
      () => importTflite(writeTflite(spec)),
      (e: Error) => e instanceof TfliteImportError && pattern.test(e.message),
    );
  const cyclic = base();
  cyclic.operators[0]!.inputs = [2];
  refused(cyclic, /reads tensor 2 "z" before anything writes it/);
  const outOfRange = base();
  outOfRange.operators[1]!.inputs = [9];
  refused(outOfRange, /tensor index 9 is out of range/);
  const twice = base();
  twice.operators[1]!.outputs = [1];
  refused(twice, /writes tensor 1 "y", which already has a value/);
  const huge = base();
  huge.tensors[1]!.shape = [65536, 65536, 65536];
  refused(huge, /is over 268435456 elements/);
  const negative = base();
  negative.tensors[0]!.shape = [-1, 4];
  refused(negative, /dynamic shapes are not supported/);
  const short = base();
  short.tensors.push({ name: 'w', type: TensorType.FLOAT32, shape: [4, 4], data: new Uint8Array(12) });
  refused(short, /holds 12 bytes, the shape \[4, 4\] needs 64/);
  const notTflite = new Uint8Array(64);
  assert.throws(() => importTflite(notTflite), /no "TFL3" identifier/);
});
