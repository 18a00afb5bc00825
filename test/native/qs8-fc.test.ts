// The native int8 fully-connected kernel against its TypeScript reference: bit-exact on random and edge
// inputs, and every bad argument refused with an error naming it (the process must survive all of them).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { requantizeGemmlowp } from '../../agent/runtime/number/requantization.js';
import { fullyConnectedS8, type FullyConnectedS8Args } from '../../native/index.js';
import { fullyConnectedS8Reference } from '../../native/reference/qs8-fc.js';
import { SeededRandom } from '../../optimize/seeded-random.js';

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

interface Shape {
  batch: number;
  inChannels: number;
  outChannels: number;
}

function randomInt8(random: SeededRandom, length: number): Int8Array {
  return Int8Array.from({ length }, () => random.int(-128, 127));
}

/** Random arguments; requantization parameters drawn from realistic ranges and from the extremes. */
function randomArgs(random: SeededRandom, { batch, inChannels, outChannels }: Shape): FullyConnectedS8Args {
  const extremeMultipliers = [0, 1, -1, INT32_MIN, INT32_MAX, 1 << 30, -(1 << 30)];
  const minOut = random.int(-128, 127);
  const maxOut = random.next() < 0.3 ? 127 : random.int(minOut, 127);
  return {
    batch,
    inChannels,
    outChannels,
    input: randomInt8(random, batch * inChannels),
    inputZeroPoint: random.int(-128, 127),
    weights: randomInt8(random, outChannels * inChannels),
    bias: Int32Array.from({ length: outChannels }, () =>
      random.next() < 0.1 ? random.int(INT32_MIN, INT32_MAX) : random.int(-(1 << 20), 1 << 20),
    ),
    multipliers: Int32Array.from({ length: outChannels }, () => {
      const r = random.next();
      if (r < 0.1) return extremeMultipliers[random.int(0, extremeMultipliers.length - 1)]!;
      if (r < 0.2) return random.int(INT32_MIN, INT32_MAX);
      return random.int(1 << 30, INT32_MAX); // what quantizeMultiplier produces
    }),
    shifts: Int32Array.from({ length: outChannels }, () =>
      random.next() < 0.2 ? random.int(-31, 30) : random.int(-20, 0),
    ),
    outputZeroPoint: random.int(-128, 127),
    outputMin: minOut,
    outputMax: maxOut,
    output: new Int8Array(batch * outChannels),
  };
}

function assertMatchesReference(args: FullyConnectedS8Args, what: string): void {
  const expected = new Int8Array(args.output.length);
  fullyConnectedS8Reference({ ...args, output: expected });
  args.output.fill(0x55);
  fullyConnectedS8(args);
  for (let i = 0; i < expected.length; i++) {
    if (args.output[i] !== expected[i]) {
      assert.fail(`${what}: output[${i}] is ${args.output[i]} but the reference gives ${expected[i]}`);
    }
  }
}

test('matches the reference bit for bit on random shapes and parameters', () => {
  const random = new SeededRandom(20240601);
  for (let trial = 0; trial < 300; trial++) {
    const shape = { batch: random.int(1, 5), inChannels: random.int(1, 300), outChannels: random.int(1, 24) };
    assertMatchesReference(randomArgs(random, shape), `trial ${trial} ${JSON.stringify(shape)}`);
  }
});

test('matches the reference on sizes around SIMD widths and on the demo model shapes', () => {
  const random = new SeededRandom(7);
  const sizes = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 784];
  for (const inChannels of sizes) {
    for (const outChannels of [1, 3, 10, 16, 17]) {
      for (const batch of [1, 2, 7]) {
        const shape = { batch, inChannels, outChannels };
        assertMatchesReference(randomArgs(random, shape), JSON.stringify(shape));
      }
    }
  }
});

test('matches the reference at the largest accumulators the kernel accepts', () => {
  // inChannels = 65536 with every (input - zero point) * weight = 255 * -128: the accumulator is as far
  // from zero as the binding allows, and must not overflow.
  const inChannels = 65536;
  const args: FullyConnectedS8Args = {
    batch: 1,
    inChannels,
    outChannels: 2,
    input: new Int8Array(inChannels).fill(127),
    inputZeroPoint: -128,
    weights: Int8Array.from({ length: 2 * inChannels }, (_, i) => (i < inChannels ? -128 : 127)),
    bias: new Int32Array([0, 0]),
    multipliers: new Int32Array([1 << 30, 1 << 30]),
    shifts: new Int32Array([-24, -24]),
    outputZeroPoint: 0,
    outputMin: -128,
    outputMax: 127,
    output: new Int8Array(2),
  };
  assertMatchesReference(args, 'max accumulator');
  // 65536 * 255 * -128 * 0.5 / 2^24 = -63.75 -> -64; 65536 * 255 * 127 * 0.5 / 2^24 = 63.25 -> 63
  assert.deepEqual([...args.output], [-64, 63]);
});

/** One value through the kernel: batch 1, inChannels 1, weight 1, so the accumulator is x. */
function requantizeOne(
  x: number,
  multiplier: number,
  shift: number,
  zeroPoint = 0,
  min = -128,
  max = 127,
): number {
  const output = new Int8Array(1);
  fullyConnectedS8({
    batch: 1,
    inChannels: 1,
    outChannels: 1,
    input: new Int8Array([0]),
    inputZeroPoint: 0,
    weights: new Int8Array([1]),
    bias: new Int32Array([x]),
    multipliers: new Int32Array([multiplier]),
    shifts: new Int32Array([shift]),
    outputZeroPoint: zeroPoint,
    outputMin: min,
    outputMax: max,
    output,
  });
  return output[0]!;
}

test('rounds exactly like TFLite MultiplyByQuantizedMultiplier', () => {
  const half = 1 << 30; // 0.5 in Q31
  assert.equal(requantizeOne(3, half, 0), 2); // 1.5: high-mul ties go up
  assert.equal(requantizeOne(-3, half, 0), -1); // -1.5: high-mul ties go up
  assert.equal(requantizeOne(-6, half, -1), -2); // -3 / 2: divide-by-POT ties go away from zero
  assert.equal(requantizeOne(6, half, -1), 2); // 3 / 2
  assert.equal(requantizeOne(5, half, 1), 5); // left shift
  assert.equal(requantizeOne(100, INT32_MAX, -31), 0);
  // INT32_MIN * INT32_MIN is the one product that saturates (to INT32_MAX, so the output clamps high).
  assert.equal(requantizeGemmlowp(INT32_MIN, INT32_MIN, 0), INT32_MAX);
  assert.equal(requantizeOne(INT32_MIN, INT32_MIN, 0), 127);
  assert.equal(requantizeOne(INT32_MIN, INT32_MIN, -31), 1);
  // Left shifts wrap modulo 2^32 as TFLite's int32 multiply does: 2^30 << 1 = INT32_MIN.
  assert.equal(requantizeGemmlowp(1 << 30, INT32_MAX, 1), requantizeGemmlowp(INT32_MIN, INT32_MAX, 0));
  for (const [x, m, s] of [
    [INT32_MIN, INT32_MAX, 0],
    [INT32_MAX, INT32_MIN, 0],
    [INT32_MAX, INT32_MAX, 30],
    [INT32_MIN, 1, -31],
    [-1, 1, -31],
    [1 << 30, INT32_MAX, 1],
  ] as const) {
    const expected = Math.min(127, Math.max(-128, requantizeGemmlowp(x, m, s)));
    assert.equal(requantizeOne(x, m, s), expected, `x=${x} multiplier=${m} shift=${s}`);
  }
});

test('clamps to [outputMin, outputMax] after adding the output zero point', () => {
  const one = INT32_MAX; // ~1.0
  assert.equal(requantizeOne(-50, one, 0, 10, 10, 127), 10); // fused ReLU at zero point 10
  assert.equal(requantizeOne(50, one, 0, 10, 10, 127), 60);
  assert.equal(requantizeOne(1000, one, 0, 0, -128, 100), 100);
  assert.equal(requantizeOne(5, one, 0, 0, 7, 7), 7);
  assert.equal(requantizeOne(1 << 20, one, 10, 127), 127); // saturates high
  assert.equal(requantizeOne(INT32_MIN, one, 0, -128), -128);
});

function validArgs(): FullyConnectedS8Args {
  return {
    batch: 2,
    inChannels: 3,
    outChannels: 4,
    input: new Int8Array(6),
    inputZeroPoint: 0,
    weights: new Int8Array(12),
    bias: new Int32Array(4),
    multipliers: new Int32Array(4).fill(1 << 30),
    shifts: new Int32Array(4),
    outputZeroPoint: 0,
    outputMin: -128,
    outputMax: 127,
    output: new Int8Array(8),
  };
}

/** Calls the kernel with one field replaced; `value` may be of any type on purpose. */
function callWith(field: keyof FullyConnectedS8Args, value: unknown): void {
  fullyConnectedS8({ ...validArgs(), [field]: value });
}

test('refuses arguments of the wrong type with a TypeError naming them', () => {
  const cases: [keyof FullyConnectedS8Args, unknown, string][] = [
    ['input', new Float32Array(6), 'Expected Int8Array for input but received Float32Array'],
    ['weights', new Float32Array(12), 'Expected Int8Array for weights but received Float32Array'],
    ['weights', new Uint8Array(12), 'Expected Int8Array for weights but received Uint8Array'],
    ['weights', Buffer.alloc(12), 'Expected Int8Array for weights but received Buffer'],
    ['bias', new Int8Array(4), 'Expected Int32Array for bias but received Int8Array'],
    ['multipliers', [1, 2, 3, 4], 'Expected Int32Array for multipliers but received Array'],
    ['shifts', new Uint32Array(4), 'Expected Int32Array for shifts but received Uint32Array'],
    ['output', undefined, 'Expected Int8Array for output but received undefined'],
    ['output', null, 'Expected Int8Array for output but received null'],
    ['input', new ArrayBuffer(6), 'Expected Int8Array for input but received ArrayBuffer'],
    ['input', Object.create(null), 'Expected Int8Array for input but received object'],
    ['batch', '2', 'Expected an integer for batch but received string'],
    ['batch', 1.5, 'Expected an integer for batch but received number 1.5'],
    ['inChannels', NaN, 'Expected an integer for inChannels but received number NaN'],
    ['outChannels', 4n, 'Expected an integer for outChannels but received bigint'],
    ['inputZeroPoint', undefined, 'Expected an integer for inputZeroPoint but received undefined'],
    ['outputZeroPoint', true, 'Expected an integer for outputZeroPoint but received boolean true'],
    ['outputMin', {}, 'Expected an integer for outputMin but received Object'],
    ['outputMax', Infinity, 'Expected an integer for outputMax but received number Infinity'],
  ];
  for (const [field, value, message] of cases) {
    assert.throws(() => callWith(field, value), { name: 'TypeError', message }, `${field}: ${message}`);
  }
  assert.throws(() => fullyConnectedS8(undefined as unknown as FullyConnectedS8Args), {
    name: 'TypeError',
    message: 'Expected an object for args but received undefined',
  });
  assert.throws(() => fullyConnectedS8(new Int8Array(3) as unknown as FullyConnectedS8Args), {
    name: 'TypeError',
    message: 'Expected an object for args but received Int8Array',
  });
});

test('refuses sizes and values out of range with a RangeError naming them', () => {
  const cases: [keyof FullyConnectedS8Args, unknown, string][] = [
    ['batch', 0, 'Expected an integer in [1, 16777216] for batch but received 0'],
    ['inChannels', 0, 'Expected an integer in [1, 65536] for inChannels but received 0'],
    ['inChannels', 65537, 'Expected an integer in [1, 65536] for inChannels but received 65537'],
    ['outChannels', -1, 'Expected an integer in [1, 16777216] for outChannels but received -1'],
    ['inputZeroPoint', 128, 'Expected an integer in [-128, 127] for inputZeroPoint but received 128'],
    ['outputZeroPoint', -129, 'Expected an integer in [-128, 127] for outputZeroPoint but received -129'],
    ['outputMin', -200, 'Expected an integer in [-128, 127] for outputMin but received -200'],
    ['outputMax', 128, 'Expected an integer in [-128, 127] for outputMax but received 128'],
    [
      'input',
      new Int8Array(5),
      'Expected Int8Array of length 6 (batch 2 x inChannels 3) for input but received length 5',
    ],
    [
      'weights',
      new Int8Array(13),
      'Expected Int8Array of length 12 (outChannels 4 x inChannels 3) for weights but received length 13',
    ],
    [
      'bias',
      new Int32Array(3),
      'Expected Int32Array of length 4 (outChannels 4) for bias but received length 3',
    ],
    [
      'multipliers',
      new Int32Array(0),
      'Expected Int32Array of length 4 (outChannels 4) for multipliers but received length 0',
    ],
    [
      'shifts',
      new Int32Array(5),
      'Expected Int32Array of length 4 (outChannels 4) for shifts but received length 5',
    ],
    [
      'output',
      new Int8Array(4),
      'Expected Int8Array of length 8 (batch 2 x outChannels 4) for output but received length 4',
    ],
    [
      'shifts',
      new Int32Array([0, 31, 0, 0]),
      'Expected an integer in [-31, 30] for shifts[1] but received 31',
    ],
    [
      'shifts',
      new Int32Array([0, 0, 0, -32]),
      'Expected an integer in [-31, 30] for shifts[3] but received -32',
    ],
  ];
  for (const [field, value, message] of cases) {
    assert.throws(() => callWith(field, value), { name: 'RangeError', message }, `${field}: ${message}`);
  }
  assert.throws(() => fullyConnectedS8({ ...validArgs(), outputMin: 5, outputMax: 4 }), {
    name: 'RangeError',
    message: 'Expected outputMax >= outputMin (5) for outputMax but received 4',
  });
});

test('refuses an output buffer that shares memory with an input', () => {
  const memory = new ArrayBuffer(64);
  const args = validArgs();
  const cases: [keyof FullyConnectedS8Args, FullyConnectedS8Args][] = [
    ['input', { ...args, input: new Int8Array(memory, 0, 6), output: new Int8Array(memory, 0, 8) }],
    ['input', { ...args, input: new Int8Array(memory, 4, 6), output: new Int8Array(memory, 0, 8) }],
    ['weights', { ...args, weights: new Int8Array(memory, 10, 12), output: new Int8Array(memory, 20, 8) }],
    ['bias', { ...args, bias: new Int32Array(memory, 32, 4), output: new Int8Array(memory, 40, 8) }],
    [
      'multipliers',
      { ...args, multipliers: new Int32Array(memory, 0, 4), output: new Int8Array(memory, 15, 8) },
    ],
    ['shifts', { ...args, shifts: new Int32Array(memory, 48, 4), output: new Int8Array(memory, 56, 8) }],
  ];
  for (const [name, overlapping] of cases) {
    assert.throws(() => fullyConnectedS8(overlapping), {
      name: 'RangeError',
      message: `Expected output not to share memory with ${name} but received overlapping buffers`,
    });
  }
  // Adjacent but disjoint views of one buffer are fine.
  fullyConnectedS8({ ...args, input: new Int8Array(memory, 0, 6), output: new Int8Array(memory, 6, 8) });
  // Views of a SharedArrayBuffer are accepted and checked the same way.
  const shared = new SharedArrayBuffer(64);
  const sharedArgs = { ...args, input: new Int8Array(shared, 0, 6), output: new Int8Array(shared, 8, 8) };
  sharedArgs.bias.fill(9);
  sharedArgs.multipliers.fill(0x7fffffff);
  fullyConnectedS8(sharedArgs);
  assert.deepEqual([...sharedArgs.output], new Array<number>(8).fill(9));
  assert.throws(() => fullyConnectedS8({ ...sharedArgs, output: new Int8Array(shared, 5, 8) }), {
    name: 'RangeError',
    message: 'Expected output not to share memory with input but received overlapping buffers',
  });
});

test('propagates an exception thrown while reading an argument, and keeps working afterwards', () => {
  const args = validArgs();
  const hostile = {
    ...args,
    get weights(): Int8Array {
      throw new Error('getter exploded');
    },
  };
  assert.throws(() => fullyConnectedS8(hostile), { message: 'getter exploded' });
  const ok = validArgs();
  ok.bias.fill(42);
  ok.multipliers.fill(INT32_MAX);
  fullyConnectedS8(ok);
  assert.deepEqual([...ok.output], new Array<number>(8).fill(42));
});
