// fixed16 / fixed8 packages (format 1.1, activation fractional lengths per layer) run in fixed point: on the
// native qf16 / qf8 kernels, bit for bit what the TypeScript reference computes in the same fixed point, and
// visibly not in fp32 (every layer output lies on its Q(output_fl) grid and differs from the fp32 model).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { fixedPointActivations } from '../../../agent/package/manifest.js';
import type { Package } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { nativeAvailable } from '../../../agent/runtime/native-executors.js';
import { quantizeNearest } from '../../../agent/runtime/number/fixed-point.js';
import {
  type Conv2dGeometry,
  fixedPointConv2dReference,
} from '../../../agent/runtime/reference-ops/fixed-point.js';
import { fixedPointCnn, images, read, smallCnnContent } from './fixed-point-fixtures.js';

const BATCH = 5;
const LAYER_OUTPUTS = ['conv1', 'conv2', 'fc1', 'logits'] as const;
const PRODUCER: Record<(typeof LAYER_OUTPUTS)[number], string> = {
  conv1: 'conv1',
  conv2: 'conv2',
  fc1: 'fc1',
  logits: 'fc2',
};

/** The same float32 bit patterns (so -0 and 0, or NaN payloads, would count as different). */
function assertBitExact(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, what);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  const first = a.findIndex((bits, i) => bits !== e[i]);
  assert.equal(first, -1, `${what}[${first}]: native ${actual[first]} vs reference ${expected[first]}`);
}

/** The words of a conv2d layer of `pkg` computed directly on words with the plain kernel reference. */
function convWords(
  pkg: Package,
  name: string,
  input: Int16Array | Int8Array,
  geometry: Conv2dGeometry,
  fl: { inputFl: number; outputFl: number },
  bits: 16 | 8,
): Int16Array | Int8Array {
  const node = pkg.manifest.nodes.find((n) => n.name === name)!;
  const weights = pkg.constants[node.inputs[1]!]!;
  const bias = pkg.constants[node.inputs[2]!]!;
  assert.ok(weights.kind === 'fixed16' || weights.kind === 'fixed8');
  assert.ok(bias.kind === 'raw');
  const accumulatorUnits = Array.from(bias.values, (b) =>
    Math.floor(b * 2 ** (fl.inputFl + weights.fracBits) + 0.5),
  );
  const limit = bits === 16 ? 32767 : 127;
  const outputs =
    geometry.batch * geometry.outputHeight * geometry.outputWidth * geometry.groupOutputChannels;
  const output = bits === 16 ? new Int16Array(outputs) : new Int8Array(outputs);
  fixedPointConv2dReference({
    geometry,
    input,
    weights: weights.values,
    bias: bits === 16 ? BigInt64Array.from(accumulatorUnits, BigInt) : Int32Array.from(accumulatorUnits),
    inputFl: fl.inputFl,
    weightFl: weights.fracBits,
    outputFl: fl.outputFl,
    outputMin: 0, // both convolutions have a fused ReLU
    outputMax: limit,
    output,
  });
  return output;
}

/** 2x2 / stride 2 max pooling of NHWC words. */
function maxPoolWords(x: Int16Array | Int8Array, height: number, width: number, channels: number) {
  const y = new (x.constructor as Int16ArrayConstructor)((height / 2) * (width / 2) * channels);
  for (let oy = 0; oy < height / 2; oy++)
    for (let ox = 0; ox < width / 2; ox++)
      for (let c = 0; c < channels; c++) {
        let m = -Infinity;
        for (const [dy, dx] of [
          [0, 0],
          [0, 1],
          [1, 0],
          [1, 1],
        ] as const)
          m = Math.max(m, x[((2 * oy + dy) * width + 2 * ox + dx) * channels + c]!);
        y[(oy * (width / 2) + ox) * channels + c] = m;
      }
  return y;
}

const convGeometry = (
  size: number,
  channels: number,
  outputs: number,
  kernel: number,
  pad: number,
): Conv2dGeometry => ({
  batch: 1,
  inputHeight: size,
  inputWidth: size,
  kernelHeight: kernel,
  kernelWidth: kernel,
  strideHeight: 1,
  strideWidth: 1,
  paddingTop: pad,
  paddingLeft: pad,
  outputHeight: size + 2 * pad - kernel + 1,
  outputWidth: size + 2 * pad - kernel + 1,
  groups: 1,
  groupInputChannels: channels,
  groupOutputChannels: outputs,
});

for (const bits of [16, 8] as const) {
  const format = `fixed${bits}` as const;
  const limit = bits === 16 ? 32767 : 127;

  describe(`${format} package`, () => {
    const { content, layers } = fixedPointCnn(bits);
    const pkg = read(content);
    const x = images(BATCH, 23, true);

    test('is a format 1.1 package whose four layers carry activation fractional lengths', () => {
      assert.equal(pkg.header.minor, 1);
      assert.deepEqual(
        layers.map((l) => l.node),
        ['conv1', 'conv2', 'fc1', 'fc2'],
      );
      for (const node of pkg.manifest.nodes.filter((n) => n.op !== 'max_pool' && n.op !== 'softmax')) {
        assert.equal(node.format, format, node.name);
        assert.ok(fixedPointActivations(node), node.name);
      }
      // The same tensor's range gives the next layer's input FL: conv2 reads pool1(conv1) at conv1's FL.
      assert.equal(layers[1]!.inputFl, layers[0]!.outputFl);
    });

    test('runs on the native fixed-point kernels, bit-exact with the fixed-point reference', (t) => {
      if (!nativeAvailable()) return t.skip('native addon not built');
      for (const threads of [1, 2]) {
        const native = Model.fromPackage(pkg, { batch: BATCH, threads });
        const reference = Model.fromPackage(pkg, { batch: BATCH, referenceOnly: true });
        for (const layer of native.layers.filter((l) => l.format === format)) {
          const op = layer.op === 'conv2d' ? 'conv2d' : 'fully_connected';
          assert.match(
            layer.kernel,
            new RegExp(`^native:${format}_${op}\\b`),
            `${layer.name}: ${layer.kernel}`,
          );
        }
        for (const layer of reference.layers.filter((l) => l.format === format))
          assert.equal(layer.kernel, `reference:${layer.op}_${format}`, layer.name);
        const got = native.run([x]);
        const want = reference.run([x]);
        for (const name of LAYER_OUTPUTS) {
          const a = got.find((r) => r.name === name)!.data as Float32Array;
          const e = want.find((r) => r.name === name)!.data as Float32Array;
          assertBitExact(a, e, `${format} ${name}, ${threads} thread(s)`);
        }
      }
    });

    test('every layer output is on its Q(output_fl) grid and differs from fp32', () => {
      const fixed = Model.fromPackage(pkg, { batch: BATCH }).run([x]);
      const fp32 = Model.fromPackage(read(smallCnnContent()), { batch: BATCH }).run([x]);
      for (const name of LAYER_OUTPUTS) {
        const { outputFl } = layers.find((l) => l.node === PRODUCER[name])!;
        const data = fixed.find((r) => r.name === name)!.data as Float32Array;
        const float = fp32.find((r) => r.name === name)!.data as Float32Array;
        let changed = 0;
        let nonzero = 0;
        for (let i = 0; i < data.length; i++) {
          const word = data[i]! * 2 ** outputFl;
          assert.ok(
            Number.isInteger(word) && Math.abs(word) <= limit,
            `${name}[${i}] = ${data[i]} is no word`,
          );
          if (float[i] !== 0) nonzero++;
          if (float[i] !== 0 && data[i] !== float[i]) changed++;
        }
        // Nearly every value not cut to 0 by the ReLU moves by the rounding; an fp32 kernel over the same
        // weights would move none.
        assert.ok(changed > 0.9 * nonzero, `${name}: only ${changed} of ${nonzero} values differ from fp32`);
      }
      // Inside the calibrated range the network follows fp32 closely on the logits.
      const inRange = images(BATCH, 29);
      const logits = Model.fromPackage(pkg, { batch: BATCH }).run([inRange])[4]!.data as Float32Array;
      const reference = Model.fromPackage(read(smallCnnContent()), { batch: BATCH }).run([inRange])[4]!
        .data as Float32Array;
      const span = Math.max(...reference) - Math.min(...reference);
      const worst = Math.max(...logits.map((v, i) => Math.abs(v - reference[i]!)));
      assert.ok(worst < (bits === 16 ? 1e-3 : 0.1) * span, `${format} logits off by ${worst} of ${span}`);
    });

    test('consecutive layers compute what words kept in memory would: conv1 -> pool1 -> conv2', () => {
      const x1 = images(1, 31);
      const [conv1, conv2] = layers as [(typeof layers)[0], (typeof layers)[0]];
      const words1 = convWords(
        pkg,
        'conv1',
        quantizeNearest(x1, conv1.inputFl, bits),
        convGeometry(12, 1, 6, 5, 2),
        conv1,
        bits,
      );
      // pool1's fp32 output feeds conv2 at conv2.inputFl, the FL of the same range as conv1's output.
      assert.equal(conv2.inputFl, conv1.outputFl);
      const words2 = convWords(
        pkg,
        'conv2',
        maxPoolWords(words1, 12, 12, 6),
        convGeometry(6, 6, 8, 3, 0),
        conv2,
        bits,
      );
      const results = Model.fromPackage(pkg).run([x1]);
      const got = results.find((r) => r.name === 'conv2')!.data;
      assert.deepEqual(
        Array.from(got, (v) => v * 2 ** conv2.outputFl),
        Array.from(words2),
      );
      assert.ok(
        words2.some((w) => w !== 0),
        'conv2 is not all zero',
      );
    });

    test('inputs past the calibrated range saturate at the first layer', () => {
      // x holds outliers in [3, 4); the calibration set stayed in [0, 1). The first layer's input words
      // saturate at limit, so clipping x to limit * 2^-input_fl beforehand changes no output bit.
      const largest = limit * 2 ** -layers[0]!.inputFl;
      assert.ok(largest < 3, `input range ${largest} already holds the outliers`);
      const clipped = x.map((v) => Math.min(v, largest));
      assert.notDeepEqual(clipped, x);
      const model = Model.fromPackage(pkg, { batch: BATCH });
      const a = model.run([x])[4]!.data as Float32Array;
      const b = model.run([clipped])[4]!.data as Float32Array;
      assertBitExact(a, b, `${format} logits of clipped inputs`);
    });

    test('the stored weights and the word buffers count against the memory budget', (t) => {
      const model = Model.fromPackage(pkg);
      // 6 x 5 x 5 weights of bits / 8 bytes (section padding excluded) + 6 fp32 biases.
      assert.equal(model.layers.find((l) => l.name === 'conv1')!.weightBytes, 150 * (bits / 8) + 24);
      if (!nativeAvailable()) return t.skip('native addon not built');
      // Input and output words of each layer at batch 1: conv1 144 + 864, conv2 216 + 128, fc1 32 + 16,
      // fc2 16 + 10 words.
      assert.equal(model.scratchBytes, (144 + 864 + 216 + 128 + 32 + 16 + 16 + 10) * (bits / 8));
      const needed = model.plan.arenaBytes + model.weightBytes + model.scratchBytes;
      assert.doesNotThrow(() => Model.fromPackage(pkg, { memoryBudgetBytes: needed }));
      assert.throws(
        () => Model.fromPackage(pkg, { memoryBudgetBytes: needed - 1 }),
        (error: Error) => error.name === 'MemoryBudgetError' && /word buffers/.test(error.message),
      );
    });
  });
}

describe('format 1.0 fixed-point layers (no activation fractional lengths)', () => {
  test('still load and keep fp32 activations over their expanded weights', () => {
    const { content } = fixedPointCnn(16);
    for (const node of content.manifest.nodes) {
      delete node.attrs.input_fl;
      delete node.attrs.output_fl;
    }
    const pkg = read(content);
    assert.equal(pkg.header.minor, 0);
    const model = Model.fromPackage(pkg);
    const conv1 = model.layers.find((l) => l.name === 'conv1')!;
    assert.equal(conv1.format, 'fixed16');
    assert.match(conv1.kernel, nativeAvailable() ? /^native:conv2d_f32/ : /^reference:conv2d_fixed16$/);
    const reference = Model.fromPackage(pkg, { referenceOnly: true });
    const x = images(1, 3);
    const a = model.run([x]).find((r) => r.name === 'logits')!.data;
    const e = reference.run([x]).find((r) => r.name === 'logits')!.data;
    for (let i = 0; i < e.length; i++)
      assert.ok(Math.abs(a[i]! - e[i]!) <= 1e-5 * Math.max(1, Math.abs(e[i]!)));
  });
});
