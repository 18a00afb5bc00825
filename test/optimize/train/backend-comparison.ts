// The harness of the native training backend's tests: one case run on tfjs's own cpu backend and on
// 'whittle-native' with the same seeded inputs, outputs and gradients compared (through tf.grads, so the
// backward kernels are the ones autograd really calls).
import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { SeededRandom } from '../../../optimize/seeded-random.js';
import {
  NATIVE_BACKEND,
  nativeKernelStats,
  registerNativeBackend,
} from '../../../optimize/train/native-backend.js';

export type Case = (inputs: tf.Tensor[]) => tf.Tensor;

/** Hooks of a suite comparing the backends: the native backend registered before its tests; after them,
 * `restore` run and the backend that was active before set again. */
export function nativeBackendSuite(restore?: () => void): void {
  let initialBackend = '';
  before(() => {
    registerNativeBackend();
    initialBackend = tf.getBackend();
  });
  after(async () => {
    restore?.();
    if (initialBackend) await tf.setBackend(initialBackend);
  });
}

/** f's output and the gradients of sum(f * w) for the inputs listed in `differentiate`. */
async function evaluate(
  backend: string,
  f: Case,
  shapes: readonly number[][],
  data: readonly Float32Array[],
  differentiate: readonly number[],
  weights: Float32Array,
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const inputs = shapes.map((shape, i) => tf.tensor(data[i]!, shape));
    const y = f(inputs);
    const w = tf.tensor(weights, y.shape);
    if (differentiate.length === 0) return [y.dataSync() as Float32Array];
    const gradients = tf.grads((...xs: tf.Tensor[]) => {
      const all = [...inputs];
      differentiate.forEach((input, i) => (all[input] = xs[i]!));
      return f(all).mul(w).sum();
    })(differentiate.map((i) => inputs[i]!));
    return [y, ...gradients].map((t) => t.dataSync() as Float32Array);
  });
}

/** Within tolerance x max |reference| (at least 1e-3) for tolerance > 0; bit-identical (NaN for NaN, 0 for
 * -0) for tolerance 0. */
export function assertMatches(
  actual: Float32Array,
  expected: Float32Array,
  what: string,
  tolerance: number,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  if (tolerance > 0) {
    let maxRef = 0;
    let maxDiff = 0;
    expected.forEach((e, i) => {
      maxRef = Math.max(maxRef, Math.abs(e));
      maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - e));
    });
    assert.ok(
      maxDiff <= tolerance * Math.max(maxRef, 1e-3),
      `${what}: max difference ${maxDiff} exceeds ${tolerance} x max |reference| ${maxRef}`,
    );
    return;
  }
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Object.is(a, e) || (a === 0 && e === 0)))
      assert.fail(`${what}: element ${i} is ${a} but tfjs cpu gives ${e}`);
  }
}

/** Compares one case on both backends: the same inputs from `seed` (drawn by this test file's
 * `randomArray`, then edited by `prepare`: exact edge values, NaN), outputs and the gradients of the inputs
 * in `differentiate` (default all, [] for the forward pass only) matched with `assertMatches`. */
export type Compare = (
  name: string,
  f: Case,
  shapes: number[][],
  seed: number,
  differentiate?: readonly number[],
  prepare?: (data: Float32Array[]) => void,
  tolerance?: number,
) => Promise<void>;

/** The Compare of a test file: its seeded inputs and its default tolerance. */
export function backendComparison(
  randomArray: (random: SeededRandom, shape: readonly number[]) => Float32Array,
  defaultTolerance: number,
): Compare {
  return async (name, f, shapes, seed, differentiate = shapes.map((_, i) => i), prepare, tolerance) => {
    const random = new SeededRandom(seed);
    const data = shapes.map((shape) => randomArray(random, shape));
    prepare?.(data);
    await tf.setBackend('cpu');
    const outShape = tf.tidy(() => f(shapes.map((s, i) => tf.tensor(data[i]!, s))).shape);
    const weights = randomArray(random, outShape);
    const expected = await evaluate('cpu', f, shapes, data, differentiate, weights);
    const actual = await evaluate(NATIVE_BACKEND, f, shapes, data, differentiate, weights);
    expected.forEach((e, i) =>
      assertMatches(
        actual[i]!,
        e,
        `${name} ${i === 0 ? 'output' : `gradient ${i - 1}`}`,
        tolerance ?? defaultTolerance,
      ),
    );
  };
}

/** How many times the native kernel `kernel` ran (not its fallback) in this process. */
export function nativeRuns(kernel: string): number {
  return nativeKernelStats.get(kernel)?.native ?? 0;
}

/** `run` on tfjs's cpu backend, then on whittle-native: the values it returned on each. */
export async function onBothBackends(
  run: () => Promise<Float32Array[]> | Float32Array[],
): Promise<[cpu: Float32Array[], native: Float32Array[]]> {
  await tf.setBackend('cpu');
  const cpuValues = await run();
  await tf.setBackend(NATIVE_BACKEND);
  return [cpuValues, await run()];
}
