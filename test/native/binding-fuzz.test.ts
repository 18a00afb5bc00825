// Fuzzes the argument checks of the kernel binding: every call with a randomly broken argument (wrong type,
// wrong length, negative / NaN / huge / fractional dimension, zero size, overlapping buffers, detached
// buffer, missing field) must either work or throw a TypeError or RangeError whose message follows the
// binding's format — never crash the process, never throw anything else.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';

import { packXnorWeights } from '../../agent/runtime/format-layouts.js';
import { createXnorFullyConnected } from '../../native/formats.js';
import {
  addF32,
  addInt8,
  avgPool2d,
  channelShuffle,
  clamp,
  concat,
  createConv2dF32,
  createConv2dInt8,
  createFullyConnectedF32,
  createFullyConnectedInt8,
  dequantizeLinear,
  getThreads,
  globalAvgPool,
  globalAvgPoolInt8,
  maxPool2d,
  quantizeLinear,
  resize,
  setThreads,
  softmaxF32,
  softmaxInt8,
} from '../../native/index.js';
import { xorshift32 } from '../support/xorshift32.js';

const random = xorshift32(12345);
function pick<T>(items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function detached(): Float32Array {
  const buffer = new ArrayBuffer(64);
  const view = new Float32Array(buffer);
  structuredClone(buffer, { transfer: [buffer] });
  return view;
}

// Replacement values for a field: every type and every troublesome number.
function badValue(original: unknown): unknown {
  const numbers = [-1, 0, 0.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 53, 1e300, -(2 ** 31), 65537, 3];
  const length =
    original instanceof Object && 'length' in original ? (original as { length: number }).length : 4;
  const arrays = [
    new Float32Array(length),
    new Int8Array(length),
    new Uint8Array(length),
    new Int32Array(length),
    new Float64Array(length),
    new Float32Array(Math.max(0, length - 1)),
    new Int8Array(length + 1),
    new Uint8Array(0),
    new Float32Array(0),
    detached(),
  ];
  const others = [
    undefined,
    null,
    'x',
    true,
    {},
    [],
    [1, 2],
    Symbol('s'),
    () => 1,
    10n,
    new ArrayBuffer(8),
    new DataView(new ArrayBuffer(8)),
  ];
  const kind = random();
  if (kind < 0.4) return pick(numbers);
  if (kind < 0.75) return pick(arrays);
  return pick(others);
}

type Call = { name: string; args: Record<string, unknown>; run: (args: Record<string, unknown>) => void };

function validCalls(): Call[] {
  const conv = {
    batch: 2,
    inputHeight: 5,
    inputWidth: 6,
    inputChannels: 4,
    outputChannels: 6,
    kernelHeight: 3,
    kernelWidth: 3,
    strideHeight: 1,
    strideWidth: 2,
    paddingTop: 1,
    paddingLeft: 1,
    paddingBottom: 1,
    paddingRight: 0,
    groups: 2,
  };
  const convWeights = 6 * 3 * 3 * 2;
  const q = {
    activations: 'int8',
    inputZeroPoint: 1,
    outputZeroPoint: -2,
    multipliers: new Int32Array(6).fill(1 << 30),
    shifts: new Int32Array(6).fill(-8),
  };
  const pool = {
    batch: 1,
    inputHeight: 6,
    inputWidth: 6,
    channels: 3,
    windowHeight: 2,
    windowWidth: 2,
    input: new Float32Array(108),
    output: new Float32Array(27),
  };
  const a8 = new Int8Array(10),
    b8 = new Int8Array(10),
    o8 = new Int8Array(10);
  return [
    {
      name: 'createConv2dF32',
      args: { ...conv, weights: new Float32Array(convWeights), bias: new Float32Array(6), outputMin: 0 },
      run: (a) => void createConv2dF32(a as never),
    },
    {
      name: 'createConv2dInt8',
      args: { ...conv, ...q, weights: new Int8Array(convWeights), bias: new Int32Array(6) },
      run: (a) => void createConv2dInt8(a as never),
    },
    {
      name: 'createFullyConnectedF32',
      args: { batch: 2, inChannels: 5, outChannels: 3, weights: new Float32Array(15) },
      run: (a) => void createFullyConnectedF32(a as never),
    },
    {
      name: 'createFullyConnectedInt8',
      args: { batch: 2, inChannels: 5, outChannels: 6, ...q, weights: new Int8Array(30) },
      run: (a) => void createFullyConnectedInt8(a as never),
    },
    {
      name: 'conv.run',
      args: { input: new Float32Array(2 * 5 * 6 * 4), output: new Float32Array(2 * 5 * 3 * 6) },
      run: (a) => {
        const layer = createConv2dF32({ ...conv, weights: new Float32Array(convWeights) });
        layer.run(a['input'] as never, a['output'] as never);
      },
    },
    { name: 'maxPool2d', args: { ...pool }, run: (a) => maxPool2d(a as never) },
    {
      name: 'avgPool2d',
      args: { ...pool, input: new Int8Array(108), output: new Int8Array(27), outputMin: -5 },
      run: (a) => avgPool2d(a as never),
    },
    {
      name: 'globalAvgPool',
      args: { batch: 1, pixels: 36, channels: 3, input: new Uint8Array(108), output: new Uint8Array(3) },
      run: (a) => globalAvgPool(a as never),
    },
    {
      name: 'globalAvgPoolInt8',
      args: {
        batch: 1,
        pixels: 36,
        channels: 3,
        input: new Int8Array(108),
        output: new Int8Array(3),
        inputZeroPoint: -3,
        outputZeroPoint: 4,
        multiplier: 1 << 30,
        shift: -5,
      },
      run: (a) => globalAvgPoolInt8(a as never),
    },
    {
      name: 'quantizeLinear',
      args: {
        input: new Float32Array(12),
        output: new Uint8Array(12),
        scales: Float64Array.of(0.1, 0.2, 0.3),
        zeroPoints: Int32Array.of(128, 0, 255),
        inner: 2,
      },
      run: (a) => quantizeLinear(a as never),
    },
    {
      name: 'dequantizeLinear',
      args: {
        input: new Int8Array(12),
        output: new Float32Array(12),
        scales: Float64Array.of(0.1),
        zeroPoints: Int32Array.of(-7),
      },
      run: (a) => dequantizeLinear(a as never),
    },
    {
      name: 'addF32',
      args: { a: new Float32Array(10), b: new Float32Array(10), output: new Float32Array(10) },
      run: (a) => addF32(a as never),
    },
    {
      name: 'addInt8',
      args: {
        a: a8,
        b: b8,
        output: o8,
        aZeroPoint: 0,
        aMultiplier: 1 << 30,
        aShift: -1,
        bZeroPoint: 0,
        bMultiplier: 1 << 30,
        bShift: -1,
        outputZeroPoint: 0,
        outputMultiplier: 1 << 30,
        outputShift: -19,
      },
      run: (a) => addInt8(a as never),
    },
    {
      name: 'clamp',
      args: { input: new Float32Array(10), output: new Float32Array(10), min: 0, max: 6 },
      run: (a) => clamp(a as never),
    },
    {
      name: 'softmaxF32',
      args: { rows: 2, channels: 5, input: new Float32Array(10), output: new Float32Array(10) },
      run: (a) => softmaxF32(a as never),
    },
    {
      name: 'softmaxInt8',
      args: {
        rows: 2,
        channels: 5,
        input: new Int8Array(10),
        output: new Int8Array(10),
        inputScale: 0.1,
        inputZeroPoint: 0,
        outputScale: 1 / 256,
        outputZeroPoint: -128,
      },
      run: (a) => softmaxInt8(a as never),
    },
    {
      name: 'concat',
      args: {
        rows: 2,
        channels: [2, 3],
        inputs: [new Float32Array(4), new Float32Array(6)],
        output: new Float32Array(10),
      },
      run: (a) => concat(a as never),
    },
    {
      name: 'channelShuffle',
      args: { rows: 2, groups: 2, groupChannels: 3, input: new Int8Array(12), output: new Int8Array(12) },
      run: (a) => channelShuffle(a as never),
    },
    {
      name: 'resize bilinear',
      args: {
        batch: 1,
        inputHeight: 2,
        inputWidth: 3,
        channels: 2,
        rows: Uint32Array.of(0, 1, 1, 1, 1, 1),
        columns: Uint32Array.of(0, 1, 2, 2),
        rowWeights: Float64Array.of(0.25, 0, 1),
        columnWeights: Float64Array.of(0.5, 0),
        input: new Int8Array(12),
        output: new Int8Array(12),
      },
      run: (a) => resize(a as never),
    },
    {
      name: 'resize nearest',
      args: {
        batch: 2,
        inputHeight: 2,
        inputWidth: 2,
        channels: 3,
        rows: Uint32Array.of(0, 0, 1, 1),
        columns: Uint32Array.of(1, 1, 0, 0, 1, 1),
        input: new Float32Array(24),
        output: new Float32Array(36),
      },
      run: (a) => resize(a as never),
    },
  ];
}

function expectCleanOutcome(call: Call, args: Record<string, unknown>, what: string): void {
  try {
    call.run(args);
  } catch (error) {
    assert.ok(
      error instanceof TypeError || error instanceof RangeError,
      `${call.name} with ${what} threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
    );
    assert.match(error.message, /^Expected /, `${call.name} with ${what}: ${error.message}`);
  }
}

test('every valid call works', () => {
  for (const call of validCalls()) call.run(call.args);
});

test('2000 calls with one broken argument each work or throw TypeError/RangeError', () => {
  for (let i = 0; i < 2000; i++) {
    const call = pick(validCalls());
    const field = pick(Object.keys(call.args));
    const value = badValue(call.args[field]);
    expectCleanOutcome(call, { ...call.args, [field]: value }, `${field} = ${describe(value)}`);
  }
});

test('a missing field is a TypeError naming it', () => {
  for (const call of validCalls()) {
    for (const field of Object.keys(call.args)) {
      const args = { ...call.args };
      delete args[field];
      expectCleanOutcome(call, args, `no ${field}`);
    }
  }
});

test('overlapping input and output buffers are refused', () => {
  const buffer = new Float32Array(20);
  assert.throws(
    () => clamp({ input: buffer.subarray(0, 10), output: buffer.subarray(5, 15), min: 0 }),
    (error: Error) =>
      error instanceof RangeError && /output not to share memory with input/.test(error.message),
  );
  assert.throws(
    () => addF32({ a: buffer.subarray(0, 10), b: buffer.subarray(10), output: buffer.subarray(10) }),
    RangeError,
  );
  const layer = createFullyConnectedF32({
    batch: 1,
    inChannels: 4,
    outChannels: 4,
    weights: new Float32Array(16),
  });
  assert.throws(() => layer.run(buffer.subarray(0, 4), buffer.subarray(2, 6)), RangeError);
  layer.run(buffer.subarray(0, 4), buffer.subarray(4, 8));
});

// run() checks its two arrays on a quick path (one look at each) and falls back to the full checks for any
// problem: after good calls, every bad one still gets the full message, and views at an offset in a larger
// buffer are read and written where they are.
test('a packed layer run() after good calls still refuses bad arrays by name, and reads offset views', () => {
  const weights = Float32Array.from({ length: 12 }, (_, i) => (i % 5) - 2);
  const layer = createFullyConnectedF32({ batch: 1, inChannels: 4, outChannels: 3, weights });
  const formatLayer = createXnorFullyConnected({
    batch: 1,
    inChannels: 4,
    outChannels: 3,
    ...packXnorWeights(3, 1, 4, weights),
  });
  for (const l of [layer, formatLayer] as const) {
    const buffer = new Float32Array(16);
    buffer.set([0.5, -1, 2, -3], 5);
    const input = buffer.subarray(5, 9);
    const output = buffer.subarray(10, 13);
    for (let i = 0; i < 3; i++) l.run(input, output);
    const expected = new Float32Array(3);
    l.runReference(Float32Array.from(input), expected);
    assert.deepEqual(Array.from(output), Array.from(expected));
    assert.equal(buffer[9], 0);
    assert.equal(buffer[13], 0);
    const bad: [string, () => void, RegExp][] = [
      [
        'type',
        () => l.run(new Int8Array(4) as never, output),
        /^Expected a Float32Array for input but received Int8Array$/,
      ],
      [
        'length',
        () => l.run(input, new Float32Array(4)),
        /^Expected Float32Array of length 3 .* for output but received length 4$/,
      ],
      [
        'overlap',
        () => l.run(buffer.subarray(0, 4), buffer.subarray(2, 5)),
        /^Expected output not to share memory with input/,
      ],
      [
        'missing',
        () => (l.run as (i: Float32Array) => void)(input),
        /^Expected a Float32Array for output but received undefined$/,
      ],
    ];
    for (const [what, call, message] of bad) {
      assert.throws(call, (error: Error) => message.test(error.message), what);
      l.run(input, output);
    }
    const gone = new Float32Array(4);
    structuredClone(gone.buffer, { transfer: [gone.buffer] });
    assert.throws(() => l.run(gone, output), /for input but received length 0/);
  }
});

test('a getter that detaches an array after it was checked is refused, not read', () => {
  const input = new Float32Array(16);
  const args = {
    input,
    output: new Float32Array(16),
    get min(): number {
      structuredClone(input.buffer, { transfer: [input.buffer] });
      return 0;
    },
  };
  assert.throws(() => clamp(args), /stays attached/);
  const weights = new Float32Array(4);
  const layer = {
    batch: 1,
    inChannels: 2,
    outChannels: 2,
    weights,
    get bias(): null {
      structuredClone(weights.buffer, { transfer: [weights.buffer] });
      return null;
    },
  };
  assert.throws(() => createFullyConnectedF32(layer), RangeError);
});

test('calls with no argument, or not an object, are TypeErrors', () => {
  for (const fn of [
    maxPool2d,
    avgPool2d,
    globalAvgPool,
    globalAvgPoolInt8,
    quantizeLinear,
    dequantizeLinear,
    addF32,
    clamp,
    softmaxF32,
    concat,
    channelShuffle,
    resize,
  ] as ((a: unknown) => void)[]) {
    for (const value of [undefined, null, 3, 'x', new Float32Array(3), [1]]) {
      assert.throws(() => fn(value), TypeError);
    }
  }
});

test('setThreads accepts 1..64 and refuses anything else', () => {
  for (const bad of [0, -1, 65, 1.5, NaN, Infinity, '2', null]) {
    assert.throws(
      () => setThreads(bad as number),
      (e: Error) => e instanceof TypeError || e instanceof RangeError,
    );
  }
  setThreads(3);
  assert.equal(getThreads(), 3);
  setThreads(1);
  assert.equal(getThreads(), 1);
});

test('setThreads keeps the last pool while 1 thread is set and reuses its workers', () => {
  // The kernel pool's workers are the only threads this synchronous test can start or stop.
  const tasks = (): Set<string> => new Set(readdirSync('/proc/self/task'));
  const minus = (a: Set<string>, b: Set<string>): string[] => [...a].filter((t) => !b.has(t));
  setThreads(2);
  const two = tasks();
  setThreads(1);
  assert.deepEqual(tasks(), two, 'setThreads(1) parks the pool, it does not stop its worker');
  setThreads(2);
  assert.deepEqual(tasks(), two, 'setThreads(2) again reuses the parked worker');
  setThreads(3);
  const three = tasks();
  assert.equal(minus(three, two).length, 2, 'another count starts a new pool (two workers)');
  assert.equal(minus(two, three).length, 1, "and stops the old pool's worker");
  setThreads(1);
  setThreads(3);
  assert.deepEqual(tasks(), three);
  setThreads(1);
});

function describe(value: unknown): string {
  if (typeof value === 'symbol' || typeof value === 'function' || typeof value === 'bigint')
    return typeof value;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as Float32Array).length})`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
