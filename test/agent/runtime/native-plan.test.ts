// The native execution plan (agent/runtime/native-plan.ts, native/plan.ts) against the node-by-node path:
// bit for bit the same outputs on every format the native executors cover (the sample package's fp32,
// binary, ternary, xnor, sparse, codebook, fixed16 / fixed8 layers, the fixed-point 1.1 packages' word
// buffers, the bundled int8 LeNet-5 in one plan call), with 1 and 2 threads;
// and hostile plans (places out of bounds, misaligned, overlapping, of the wrong size, buffers detached
// after the build, disposed layers) refused with a clear error, never run.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';

import { defaultModelPath } from '../../../agent/config.js';
import { type Package, readPackage, readPackageFile } from '../../../agent/package/reader.js';
import { Model, type ModelOptions } from '../../../agent/runtime/model.js';
import { nativeAvailable } from '../../../agent/runtime/native-executors.js';
import { PackageModel } from '../../../agent/runtime/package-model.js';
import type { TensorData } from '../../../agent/runtime/tensor.js';
import { createFullyConnectedF32 } from '../../../native/index.js';
import { createOperator, ExecutionPlan, type PlanPlace } from '../../../native/plan.js';
import { loadFashionMnist } from '../../../optimize/datasets/fashion-mnist.js';
import { samplePackageContent } from '../../../optimize/package/sample-package.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { fixedPointCnn, images, read } from './fixed-point-fixtures.js';

const keys = generateKeyPairSync('ed25519');
const random = new SeededRandom(131);
const normal = (n: number): Float32Array => Float32Array.from({ length: n }, () => random.normal());

/** Same bytes (float bit patterns included: -0 and 0 differ). */
function assertSameBytes(actual: TensorData, expected: TensorData, what: string): void {
  assert.equal(actual.constructor, expected.constructor, what);
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
  const e = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  const first = a.findIndex((byte, i) => byte !== e[i]);
  assert.equal(a.length, e.length, what);
  assert.equal(first, -1, `${what}: byte ${first} differs`);
}

/** Runs `pkg` through the plan and node by node on the same inputs; every output must be the same bytes.
 * Returns the plan's model. */
function assertPlanMatches(pkg: Package, inputs: TensorData[], options: ModelOptions, what: string): Model {
  const planned = Model.fromPackage(pkg, options);
  const byNode = Model.fromPackage(pkg, { ...options, nodeByNode: true });
  const want = byNode.run(inputs);
  // Twice: a second run reuses the arena and the layers' scratch.
  for (const round of [1, 2]) {
    const got = planned.run(inputs);
    want.forEach((w, k) => assertSameBytes(got[k]!.data, w.data, `${what}, output ${w.name}, run ${round}`));
  }
  // Every node on a native kernel is a step of the plan; only the TypeScript executors stay outside.
  const native = planned.layers.filter((l) => l.kernel.startsWith('native:')).map((l) => l.name);
  const outside = planned.layers.filter((l) => !l.kernel.startsWith('native:')).map((l) => l.name);
  assert.deepEqual(planned.execution.typescriptNodes, outside, what);
  assert.deepEqual(planned.execution.refused, [], what);
  assert.ok(planned.execution.nativeSteps >= native.length, what);
  assert.equal(byNode.execution.nativeSteps, 0, what);
  return planned;
}

describe('native execution plan', { skip: !nativeAvailable() && 'native addon not built' }, () => {
  test('every compressed format of the sample package: bit-exact with node by node, 1 and 2 threads', () => {
    const content = samplePackageContent();
    const pkg = readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey });
    const formats = new Set(
      Model.fromPackage(pkg).layers.map((l) => `${l.format} ${l.kernel.split(' ')[0]}`),
    );
    for (const format of ['binary', 'ternary', 'xnor', 'sparse', 'codebook', 'fixed16', 'fixed8'])
      assert.ok(
        [...formats].some((f) => f.startsWith(`${format} native:`)),
        `${format}: ${[...formats].join(', ')}`,
      );
    for (const batch of [1, 3]) {
      for (const threads of [1, 2]) {
        const model = assertPlanMatches(
          pkg,
          [normal(batch * 8 * 8 * 3)],
          { batch, threads },
          `batch ${batch}, ${threads} threads`,
        );
        assert.ok(model.execution.nativeCalls >= 1, JSON.stringify(model.execution));
      }
    }
  });

  for (const bits of [16, 8] as const) {
    test(`fixed${bits} (format 1.1): quantize, kernel and dequantize as plan steps over the word buffers`, () => {
      const pkg = read(fixedPointCnn(bits).content);
      for (const threads of [1, 2]) {
        const model = assertPlanMatches(
          pkg,
          [images(5, 23, true)],
          { batch: 5, threads },
          `fixed${bits}, ${threads} threads`,
        );
        const layers = model.layers.filter((l) => l.kernel.startsWith(`native:fixed${bits}_`));
        assert.ok(layers.length >= 2, JSON.stringify(model.layers));
        // Three addon calls for each fixed-point layer.
        assert.ok(model.execution.nativeSteps >= 3 * layers.length);
      }
    });
  }

  test('the bundled int8 LeNet-5: one plan call (quantize and dequantize native), bit-exact, 1 and 2 threads', () => {
    const pkg = readPackageFile(defaultModelPath(), { allowUnsigned: true });
    const x = Float32Array.from({ length: 28 * 28 }, () => random.next());
    for (const threads of [1, 2]) {
      const model = assertPlanMatches(pkg, [x], { threads }, `lenet5 int8, ${threads} threads`);
      // quantize_linear and dequantize_linear are native plan steps too: the whole model is one call.
      assert.deepEqual(model.execution.typescriptNodes, [], JSON.stringify(model.execution));
      assert.equal(model.execution.nativeCalls, 1, JSON.stringify(model.execution));
    }
    // The in-place API runs the same plan on the arena's own input view.
    const model = Model.fromPackage(pkg);
    model.inputView(0).set(x);
    model.runInPlace();
    const want = model.run([x])[0]!.data;
    assertSameBytes(model.outputView(0), want, 'runInPlace');
    assert.throws(() => model.runInPlace(model.manifest.nodes.length + 1), /runInPlace from node/);
    // The runner the agent keeps: the same calls, looked up once; a range checked when it is made.
    const run = model.inPlaceRunner();
    for (let i = 0; i < 2; i++) {
      model.outputView(0).fill(0);
      model.inputView(0).set(x);
      run();
      assertSameBytes(model.outputView(0), want, `inPlaceRunner, run ${i}`);
    }
    model.outputView(0).fill(0);
    model.inPlaceRunner(model.manifest.nodes.length)();
    assert.ok(
      model.outputView(0).every((v) => v === 0),
      'from the last node on: nothing runs',
    );
    assert.throws(() => model.inPlaceRunner(-1), /runInPlace from node -1/);
  });

  test('the agent’s LeNet-5 frames: quantized past quantize_linear and run by the plan, the float path’s bits', () => {
    const pkg = readPackageFile(defaultModelPath(), { allowUnsigned: true });
    const agent = PackageModel.fromPackage(pkg);
    const byNode = Model.fromPackage(pkg, { nodeByNode: true });
    const quantized = Model.fromPackage(pkg).quantizedInput(0);
    assert.equal(quantized?.spec.dtype, 'i8');
    const { pixels } = loadFashionMnist('test');
    for (let i = 0; i < 100; i++) {
      const frame = pixels.subarray(i * 784, (i + 1) * 784);
      const want = byNode.run([Float32Array.from(frame, (p) => p / 255)])[0]!.data;
      assert.deepEqual(Array.from(agent.infer(frame).logits), Array.from(want), `image ${i}`);
    }
  });
});

describe('hostile plans are refused', { skip: !nativeAvailable() && 'native addon not built' }, () => {
  const arena = new Uint8Array(256);
  const f32 = (offset: number, length = 4) => new Float32Array(arena.buffer, offset, length);
  const clamp = () => createOperator('clamp', { input: f32(0), output: f32(16), min: 0, max: 1 });
  const place = (offset: number, bytes = 16): PlanPlace => ({ buffer: 0, offset, bytes });
  const refused = (build: () => unknown, message: RegExp) =>
    assert.throws(build, (error: Error) => error instanceof RangeError && message.test(error.message));

  test('a good plan runs: clamp over arena places', () => {
    f32(0).set([-1, 0.5, 2, 0.25]);
    const plan = new ExecutionPlan([arena], [{ layer: clamp(), inputs: [place(0)], outputs: [place(64)] }]);
    plan.run();
    assert.deepEqual(Array.from(f32(64)), [0, 0.5, 1, 0.25]);
    assert.equal(plan.steps, 1);
    // runner(): the same run as a function of no arguments, again and again.
    const run = plan.runner();
    for (const values of [
      [3, -2, 0.75, 0.5],
      [0.125, 9, -9, 1],
    ]) {
      f32(0).set(values);
      run();
      assert.deepEqual(
        Array.from(f32(64)),
        values.map((v) => Math.min(1, Math.max(0, v))),
      );
    }
    f32(64).fill(7);
    plan.runner(1)();
    assert.deepEqual(Array.from(f32(64)), [7, 7, 7, 7], 'runner(1) of a one-step plan runs nothing');
  });

  test('places outside the buffer, misaligned, overlapping or of the wrong size', () => {
    const layer = clamp();
    refused(
      () => new ExecutionPlan([arena], [{ layer, inputs: [place(248)], outputs: [place(64)] }]),
      /range inside buffers\[0\] \(256 bytes\) for steps\[0\]\.inputs\[0\]/,
    );
    refused(
      () => new ExecutionPlan([arena], [{ layer, inputs: [place(0)], outputs: [place(2 ** 40)] }]),
      /for steps\[0\]\.outputs\[0\]/,
    );
    refused(
      () => new ExecutionPlan([arena], [{ layer, inputs: [place(2)], outputs: [place(64)] }]),
      /aligned to 4 bytes for steps\[0\]\.inputs\[0\]\.offset/,
    );
    refused(
      () => new ExecutionPlan([arena], [{ layer, inputs: [place(0)], outputs: [place(8)] }]),
      /shares no memory with steps\[0\]\.inputs\[0\] for steps\[0\]\.outputs\[0\]/,
    );
    refused(
      () => new ExecutionPlan([arena], [{ layer, inputs: [place(0, 12)], outputs: [place(64)] }]),
      /16 bytes \(the layer's operand\) for steps\[0\]\.inputs\[0\]\.bytes/,
    );
    refused(
      () => new ExecutionPlan([arena], [{ layer, inputs: [place(0), place(32)], outputs: [place(64)] }]),
      /1 places \(the layer's operands\) for steps\[0\]\.inputs/,
    );
    refused(
      () =>
        new ExecutionPlan(
          [arena],
          [{ layer, inputs: [{ buffer: 1, offset: 0, bytes: 16 }], outputs: [place(64)] }],
        ),
      /steps\[0\]\.inputs\[0\]\.buffer/,
    );
    refused(
      () =>
        new ExecutionPlan(
          [arena],
          [{ layer, inputs: [{ buffer: 0, offset: -4, bytes: 16 }], outputs: [place(64)] }],
        ),
      /steps\[0\]\.inputs\[0\]\.offset/,
    );
  });

  test('an object that is not an addon layer is not unwrapped', () => {
    assert.throws(
      () => new ExecutionPlan([arena], [{ layer: {} as never, inputs: [], outputs: [] }]),
      (error: Error) =>
        error instanceof TypeError && /native layer .* for steps\[0\]\.layer/.test(error.message),
    );
  });

  test('a buffer detached after the build, a disposed layer, a bad step range: run() refuses', () => {
    const own = new Uint8Array(128);
    const layer = createOperator('clamp', {
      input: new Float32Array(own.buffer, 0, 4),
      output: new Float32Array(own.buffer, 64, 4),
      min: 0,
    });
    const plan = new ExecutionPlan([own], [{ layer, inputs: [place(0)], outputs: [place(64)] }]);
    assert.throws(() => plan.run(1, 0), RangeError);
    assert.throws(() => plan.run(0, 2), RangeError);
    assert.throws(() => plan.runner(1, 0), RangeError);
    assert.throws(() => plan.runner(0, 2), RangeError);
    const runner = plan.runner(0, 1);
    runner();
    structuredClone(own.buffer, { transfer: [own.buffer] });
    refused(() => plan.run(), /buffers\[0\].*detached or resized/);
    refused(runner, /buffers\[0\].*detached or resized/);

    // A DataView buffer is checked the same way.
    const bytes = new ArrayBuffer(128);
    const viewLayer = createOperator('clamp', {
      input: new Float32Array(bytes, 0, 4),
      output: new Float32Array(bytes, 64, 4),
      min: 0,
    });
    const viewPlan = new ExecutionPlan(
      [new DataView(bytes)],
      [{ layer: viewLayer, inputs: [place(0)], outputs: [place(64)] }],
    );
    const viewRunner = viewPlan.runner();
    new Float32Array(bytes, 0, 4).set([-1, 2, 0.5, -0.5]);
    viewRunner();
    assert.deepEqual(Array.from(new Float32Array(bytes, 64, 4)), [0, 2, 0.5, 0]);
    structuredClone(bytes, { transfer: [bytes] });
    refused(viewRunner, /buffers\[0\].*detached or resized/);

    const weights = normal(4 * 4);
    const conv = createFullyConnectedF32({ batch: 1, inChannels: 4, outChannels: 4, weights, bias: null });
    const buffer = new Uint8Array(64);
    const convPlan = new ExecutionPlan(
      [buffer],
      [{ layer: conv.step, inputs: [place(0)], outputs: [place(32)] }],
    );
    convPlan.run();
    conv.dispose();
    assert.throws(() => convPlan.run(), /Plan step 0 cannot run: this Conv2d was disposed/);
  });
});

describe(
  'frameRunner: a camera frame in and its scores out in one call',
  {
    skip: !nativeAvailable() && 'native addon not built',
  },
  () => {
    const place = (offset: number, bytes: number): PlanPlace => ({ buffer: 0, offset, bytes });
    /** The index of the first highest score, as PackageModel.infer takes it. */
    const argmax = (scores: ArrayLike<number>): number => {
      let best = 0;
      for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
      return best;
    };

    test('f32: the frame written through the tables (interleaved and planar), the steps run, the argmax', () => {
      const arena = new Uint8Array(256);
      const input = new Float32Array(arena.buffer, 0, 6);
      const output = new Float32Array(arena.buffer, 64, 6);
      const layer = createOperator('clamp', { input, output, min: -0.25, max: 0.5 });
      const plan = new ExecutionPlan([arena], [{ layer, inputs: [place(0, 24)], outputs: [place(64, 24)] }]);
      // Three channels, each its own table: pixel byte -> value.
      const tables = Float32Array.from({ length: 3 * 256 }, (_, i) =>
        Math.fround((i % 256) / 255 - (i >> 8) * 0.25),
      );
      for (const planar of [false, true]) {
        const run = plan.frameRunner(0, 1, {
          input: place(0, 24),
          output: place(64, 24),
          tables,
          channels: 3,
          planar,
        });
        for (const frame of [Uint8Array.of(0, 10, 200, 255, 128, 64), Uint8Array.of(7, 7, 7, 250, 1, 99)]) {
          output.fill(9);
          const classIndex = run(frame);
          // Two pixels of three channels; NCHW splits them into channel planes.
          const want = new Float32Array(6);
          for (let p = 0; p < 2; p++)
            for (let c = 0; c < 3; c++)
              want[planar ? c * 2 + p : p * 3 + c] = tables[256 * c + frame[p * 3 + c]!]!;
          assert.deepEqual(Array.from(input), Array.from(want), `planar ${planar}: the frame written`);
          const clamped = want.map((v) => Math.min(0.5, Math.max(-0.25, v)));
          assert.deepEqual(Array.from(output), Array.from(clamped), `planar ${planar}: the step ran`);
          assert.equal(classIndex, argmax(clamped), `planar ${planar}: the first highest score`);
        }
      }
    });

    test('quantized scores: dequantized into their own array as scale * (q - zeroPoint), rounded to f32', () => {
      for (const signed of [true, false]) {
        const arena = new Uint8Array(64);
        const Type = signed ? Int8Array : Uint8Array;
        const input = new Type(arena.buffer, 0, 8);
        const output = new Type(arena.buffer, 16, 8);
        const layer = createOperator('clamp', { input, output });
        const plan = new ExecutionPlan([arena], [{ layer, inputs: [place(0, 8)], outputs: [place(16, 8)] }]);
        const tables = new Type(256);
        tables.forEach((_, v) => (tables[v] = signed ? v - 128 : 255 - v));
        const scores = new Float32Array(8);
        const scale = 0.1;
        const zeroPoint = signed ? -3 : 17;
        const run = plan.frameRunner(undefined, undefined, {
          input: place(0, 8),
          output: place(16, 8),
          tables,
          channels: 1,
          planar: false,
          quantized: { signed, scale, zeroPoint, scores },
        });
        const frame = Uint8Array.of(5, 250, 128, 0, 255, 33, 250, 1);
        const classIndex = run(frame);
        const want = Array.from(frame, (v) => Math.fround(scale * (tables[v]! - zeroPoint)));
        assert.deepEqual(Array.from(scores), want, `signed ${signed}`);
        assert.equal(classIndex, argmax(want), `signed ${signed}`);
      }
    });

    test('bad frames, changed buffers and bad specs are refused with an error naming them', () => {
      const arena = new Uint8Array(128);
      const input = new Float32Array(arena.buffer, 0, 4);
      const output = new Float32Array(arena.buffer, 64, 4);
      const layer = createOperator('clamp', { input, output, min: 0 });
      const plan = new ExecutionPlan([arena], [{ layer, inputs: [place(0, 16)], outputs: [place(64, 16)] }]);
      const tables = new Float32Array(256);
      const spec = { input: place(0, 16), output: place(64, 16), tables, channels: 1, planar: false };
      const run = plan.frameRunner(0, 1, spec);
      assert.throws(() => run(new Uint8Array(5)), /Uint8Array of length 4 \(pixels x channels\) for frame/);
      assert.throws(
        () => run(new Int8Array(4) as never),
        /Expected a Uint8Array for frame but received Int8Array/,
      );
      assert.throws(() => (run as () => number)(), /Expected a Uint8Array for frame but received undefined/);
      assert.throws(() => run(new Uint8Array(arena.buffer, 4, 4)), /sharing no memory with the plan's input/);
      const refusedSpec = (change: object, message: RegExp) =>
        assert.throws(() => plan.frameRunner(0, 1, { ...spec, ...change }), message);
      refusedSpec({ tables: new Float32Array(255) }, /length 256 \(256 x frame.channels\) for tables/);
      refusedSpec({ tables: new Int32Array(256) }, /Float32Array, Int8Array or Uint8Array for tables/);
      refusedSpec({ channels: 5 }, /\[1, 4\] for frame.channels/);
      refusedSpec(
        { channels: 3, tables: new Float32Array(768) },
        /whole number of pixels .* for frame.input.bytes/,
      );
      refusedSpec({ planar: 1 }, /boolean for frame.planar/);
      refusedSpec({ input: place(124, 16) }, /range inside buffers\[0\] .* for frame.input/);
      refusedSpec({ output: place(66, 16) }, /aligned to 4 bytes for frame.output.offset/);
      refusedSpec({ output: place(64, 0) }, /whole number of f32 scores for frame.output.bytes/);
      refusedSpec(
        { quantized: { signed: true, scale: 1, zeroPoint: 0, scores: new Float32Array(3) } },
        /scores/,
      );
      refusedSpec(
        {
          output: place(64, 4),
          quantized: { signed: true, scale: 1, zeroPoint: 0, scores: new Float32Array(arena.buffer, 96, 4) },
        },
        /sharing no memory with the plan's buffers for frame.quantized.scores/,
      );
      refusedSpec(
        {
          output: place(64, 4),
          quantized: { signed: true, scale: 0, zeroPoint: 0, scores: new Float32Array(4) },
        },
        /positive finite number for frame.quantized.scale/,
      );
      refusedSpec(
        {
          output: place(64, 4),
          quantized: { signed: true, scale: 1, zeroPoint: 128, scores: new Float32Array(4) },
        },
        /zeroPoint/,
      );
      assert.throws(() => plan.frameRunner(0, 2, spec), RangeError);

      // The scores array and the arena are checked at every call, as run() checks the plan's buffers.
      const scores = new Float32Array(4);
      const bytes = new Uint8Array(32);
      const i8 = createOperator('clamp', {
        input: new Int8Array(bytes.buffer, 0, 4),
        output: new Int8Array(bytes.buffer, 8, 4),
      });
      const quantizedPlan = new ExecutionPlan(
        [bytes],
        [{ layer: i8, inputs: [place(0, 4)], outputs: [place(8, 4)] }],
      );
      const quantizedRun = quantizedPlan.frameRunner(0, 1, {
        input: place(0, 4),
        output: place(8, 4),
        tables: new Int8Array(256),
        channels: 1,
        planar: false,
        quantized: { signed: true, scale: 1, zeroPoint: 0, scores },
      });
      assert.equal(quantizedRun(new Uint8Array(4)), 0);
      structuredClone(scores.buffer, { transfer: [scores.buffer] });
      assert.throws(() => quantizedRun(new Uint8Array(4)), /frame.quantized.scores.*detached or resized/);
      structuredClone(arena.buffer, { transfer: [arena.buffer] });
      assert.throws(() => run(new Uint8Array(4)), /buffers\[0\].*detached or resized/);
    });
  },
);
