// Child process of kernels-isa.test.ts: with WHITTLE_ISA set by the parent (detection and selection happen
// once per process), runs every exposed operator through the optimized path and through the plain C
// reference on fixed-seed random data, at 1 and 2 threads, and prints one JSON line:
//   { isa, checks: [{ name, ok, detail? }] }
// int8 results must be bit-exact; fp32 within 1e-5 relative.
import { requantizeGemmlowp } from '../../agent/runtime/number/requantization.js';
import { fullyConnected } from '../../agent/runtime/reference-ops/matmul.js';
import {
  activeIsa,
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
  globalAvgPool,
  globalAvgPoolInt8,
  maxPool2d,
  type PackedLayer,
  quantizeLinear,
  setThreads,
  softmaxF32,
  softmaxInt8,
  type Tensor,
  uniformPadding,
} from '../../native/index.js';
import { xorshift32 } from '../support/xorshift32.js';

interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}
const checks: Check[] = [];

const random = xorshift32(0x2545f491);
function floats(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => random() * 2 - 1);
}
function bytes<T extends Int8Array | Uint8Array>(make: new (n: number) => T, n: number): T {
  const array = new make(n);
  for (let i = 0; i < n; i++) array[i] = Math.floor(random() * 256) - (array instanceof Int8Array ? 128 : 0);
  return array;
}

function compare(name: string, got: Tensor, want: Tensor): void {
  if (got instanceof Float32Array) {
    let mean = 0;
    for (const v of want) mean += Math.abs(v);
    mean /= want.length;
    for (let i = 0; i < got.length; i++) {
      const tolerance = 1e-5 * (Math.abs(want[i]!) + mean);
      if (!(Math.abs(got[i]! - want[i]!) <= tolerance)) {
        checks.push({ name, ok: false, detail: `at ${i}: got ${got[i]} want ${want[i]}` });
        return;
      }
    }
  } else {
    for (let i = 0; i < got.length; i++) {
      if (got[i] !== want[i]) {
        checks.push({ name, ok: false, detail: `at ${i}: got ${got[i]} want ${want[i]}` });
        return;
      }
    }
  }
  checks.push({ name, ok: true });
}

function like<T extends Tensor>(t: T): T {
  return new (t.constructor as new (n: number) => T)(t.length);
}

function checkLayer<T extends Tensor>(name: string, layer: PackedLayer<T>, input: T): void {
  const got = like(input).constructor === Float32Array ? new Float32Array(layer.outputLength) : null;
  const out = (got ?? new (input.constructor as new (n: number) => T)(layer.outputLength)) as T;
  const want = new (input.constructor as new (n: number) => T)(layer.outputLength);
  layer.run(input, out);
  layer.runReference(input, want);
  compare(`${name} ${layer.kernel}`, out, want);
  layer.dispose();
}

const convShapes = [
  {
    name: 'odd 3x3 pad',
    batch: 1,
    inputHeight: 5,
    inputWidth: 7,
    inputChannels: 3,
    outputChannels: 5,
    kernelHeight: 3,
    kernelWidth: 3,
    ...uniformPadding(1),
  },
  {
    name: 'stride 2 batch 2',
    batch: 2,
    inputHeight: 8,
    inputWidth: 9,
    inputChannels: 17,
    outputChannels: 33,
    kernelHeight: 3,
    kernelWidth: 3,
    strideHeight: 2,
    strideWidth: 2,
    paddingTop: 1,
  },
  {
    name: 'pointwise',
    batch: 1,
    inputHeight: 6,
    inputWidth: 6,
    inputChannels: 40,
    outputChannels: 36,
    kernelHeight: 1,
    kernelWidth: 1,
  },
  {
    name: 'depthwise',
    batch: 1,
    inputHeight: 7,
    inputWidth: 7,
    inputChannels: 37,
    outputChannels: 37,
    kernelHeight: 3,
    kernelWidth: 3,
    groups: 37,
    ...uniformPadding(1),
  },
  {
    name: 'groups dilation',
    batch: 1,
    inputHeight: 9,
    inputWidth: 9,
    inputChannels: 12,
    outputChannels: 24,
    kernelHeight: 3,
    kernelWidth: 3,
    dilationHeight: 2,
    dilationWidth: 2,
    groups: 4,
  },
];

function runAll(threads: number): void {
  setThreads(threads);
  const t = `threads=${threads}`;
  for (const shape of convShapes) {
    const perGroup = shape.inputChannels / (shape.groups ?? 1);
    const weightCount = shape.outputChannels * shape.kernelHeight * shape.kernelWidth * perGroup;
    const inputCount = shape.batch * shape.inputHeight * shape.inputWidth * shape.inputChannels;
    checkLayer(
      `conv2d f32 ${shape.name} ${t}`,
      createConv2dF32({
        ...shape,
        weights: floats(weightCount),
        bias: floats(shape.outputChannels),
        outputMin: -0.5,
      }),
      floats(inputCount),
    );
    for (const activations of ['int8', 'uint8'] as const) {
      const multipliers = Int32Array.from(
        { length: shape.outputChannels },
        () => 0x40000000 + Math.floor(random() * 0x3fffffff),
      );
      const shifts = Int32Array.from({ length: shape.outputChannels }, () => -7 - Math.floor(random() * 4));
      const bias = Int32Array.from(
        { length: shape.outputChannels },
        () => Math.floor(random() * 2000) - 1000,
      );
      const zero = activations === 'int8' ? -3 : 130;
      const args = {
        ...shape,
        activations,
        inputZeroPoint: zero,
        outputZeroPoint: zero + 1,
        multipliers,
        shifts,
        bias,
        weights: bytes(Int8Array, weightCount),
      };
      const input = activations === 'int8' ? bytes(Int8Array, inputCount) : bytes(Uint8Array, inputCount);
      checkLayer(`conv2d ${activations} ${shape.name} ${t}`, createConv2dInt8(args), input);
    }
  }
  for (const [batch, inChannels, outChannels] of [
    [1, 400, 120],
    [1, 2048, 10],
    [3, 17, 35],
  ] as const) {
    checkLayer(
      `fullyConnected f32 ${inChannels}->${outChannels} ${t}`,
      createFullyConnectedF32({
        batch,
        inChannels,
        outChannels,
        weights: floats(inChannels * outChannels),
        bias: floats(outChannels),
      }),
      floats(batch * inChannels),
    );
    const weights = bytes(Int8Array, inChannels * outChannels);
    const multipliers = new Int32Array(outChannels).fill(0x5a000000);
    const shifts = new Int32Array(outChannels).fill(-9);
    const bias = Int32Array.from({ length: outChannels }, (_, i) => i * 37 - 500);
    const input = bytes(Int8Array, batch * inChannels);
    const layer = createFullyConnectedInt8({
      batch,
      inChannels,
      outChannels,
      activations: 'int8',
      inputZeroPoint: 5,
      outputZeroPoint: -7,
      multipliers,
      shifts,
      bias,
      weights,
    });
    const got = new Int8Array(batch * outChannels);
    layer.run(input, got);
    // The runtime's TypeScript reference (the int8 fully-connected of the reference executor) is an
    // independent check of the C reference and of the packed path.
    const want = new Int8Array(batch * outChannels);
    fullyConnected(
      batch,
      inChannels,
      outChannels,
      input,
      5,
      weights,
      () => 0,
      (index, o, sum) => {
        const accumulator = (sum + bias[o]!) | 0; // int32 add, wrapping like the C kernels
        const value = -7 + requantizeGemmlowp(accumulator, multipliers[o]!, shifts[o]!);
        want[index] = Math.min(127, Math.max(-128, value));
      },
    );
    compare(`fullyConnected int8 ${inChannels}->${outChannels} vs TS reference ${t}`, got, want);
    layer.dispose();
  }
}

function runStateless(): void {
  const pool = {
    batch: 2,
    inputHeight: 7,
    inputWidth: 9,
    channels: 19,
    windowHeight: 3,
    windowWidth: 3,
    strideHeight: 2,
    strideWidth: 2,
    ...uniformPadding(1),
  };
  const outCount = 2 * 4 * 5 * 19;
  const inCount = 2 * 7 * 9 * 19;
  const tensors: [string, () => Tensor][] = [
    ['f32', () => floats(inCount)],
    ['int8', () => bytes(Int8Array, inCount)],
    ['uint8', () => bytes(Uint8Array, inCount)],
  ];
  for (const [format, make] of tensors) {
    const input = make();
    for (const [name, op] of [
      ['maxPool2d', maxPool2d],
      ['avgPool2d', avgPool2d],
    ] as const) {
      const output = new (input.constructor as new (n: number) => Tensor)(outCount);
      const want = new (input.constructor as new (n: number) => Tensor)(outCount);
      op({ ...pool, input, output });
      op({ ...pool, input, output: want, reference: true });
      compare(`${name} ${format}`, output, want);
    }
    const gapOut = new (input.constructor as new (n: number) => Tensor)(2 * 19);
    const gapWant = new (input.constructor as new (n: number) => Tensor)(2 * 19);
    globalAvgPool({ batch: 2, pixels: 63, channels: 19, input, output: gapOut });
    globalAvgPool({ batch: 2, pixels: 63, channels: 19, input, output: gapWant, reference: true });
    compare(`globalAvgPool ${format}`, gapOut, gapWant);
    if (
      !(input instanceof Float32Array) &&
      !(gapOut instanceof Float32Array) &&
      !(gapWant instanceof Float32Array)
    ) {
      // From one quantization to another, requantized in the kernel, with a fused ReLU.
      const zp = format === 'int8' ? -5 : 120;
      const requant = { inputZeroPoint: zp, outputZeroPoint: zp + 3, multiplier: 1518500250, shift: -5 };
      const gap = { batch: 2, pixels: 63, channels: 19, input, outputMin: zp + 3, ...requant };
      globalAvgPoolInt8({ ...gap, output: gapOut });
      globalAvgPoolInt8({ ...gap, output: gapWant, reference: true });
      compare(`globalAvgPool requantized ${format}`, gapOut, gapWant);
      // quantize / dequantize per tensor and per channel (19 channels last, and 7 runs of 9 * 19).
      const x = floats(inCount).map((v, i) => (i % 11 === 0 ? Math.round(v * 40) / 8 : v * 3));
      const layouts = [
        { scales: Float64Array.of(0.0125), zeroPoints: Int32Array.of(zp) },
        {
          scales: Float64Array.from({ length: 19 }, (_, c) => 0.01 * (c + 1)),
          zeroPoints: Int32Array.from({ length: 19 }, (_, c) => zp + (c % 3)),
        },
        { scales: Float64Array.of(0.02, 0.125), zeroPoints: Int32Array.of(zp, zp + 1), inner: 7 * 9 * 19 },
      ];
      for (const [l, layout] of layouts.entries()) {
        const qOut = like(input);
        const qWant = like(input);
        quantizeLinear({ ...layout, input: x, output: qOut });
        quantizeLinear({ ...layout, input: x, output: qWant, reference: true });
        compare(`quantizeLinear ${format} layout ${l}`, qOut, qWant);
        const dOut = new Float32Array(inCount);
        const dWant = new Float32Array(inCount);
        dequantizeLinear({ ...layout, input, output: dOut });
        dequantizeLinear({ ...layout, input, output: dWant, reference: true });
        const same = dOut.every((v, i) => Object.is(v, dWant[i]));
        checks.push({ name: `dequantizeLinear ${format} layout ${l}`, ok: same });
      }
    }
    const clampOut = like(input);
    const clampWant = like(input);
    const bounds =
      format === 'f32'
        ? { min: 0, max: 0.5 }
        : { min: format === 'int8' ? -10 : 120, max: format === 'int8' ? 60 : 200 };
    clamp({ input, output: clampOut, ...bounds });
    clamp({ input, output: clampWant, ...bounds, reference: true });
    compare(`clamp ${format}`, clampOut, clampWant);
    const b = make();
    const addOut = like(input);
    const addWant = like(input);
    if (input instanceof Float32Array && b instanceof Float32Array) {
      addF32({ a: input, b, output: addOut as Float32Array, outputMin: -1 });
      addF32({ a: input, b, output: addWant as Float32Array, outputMin: -1, reference: true });
      const softOut = new Float32Array(inCount);
      const softWant = new Float32Array(inCount);
      softmaxF32({ rows: 2 * 7 * 9, channels: 19, input, output: softOut });
      softmaxF32({ rows: 2 * 7 * 9, channels: 19, input, output: softWant, reference: true });
      compare('softmax f32', softOut, softWant);
    } else if (!(input instanceof Float32Array) && !(b instanceof Float32Array)) {
      const zp = format === 'int8' ? 3 : 128;
      const q = {
        aZeroPoint: zp,
        aMultiplier: 1518500250,
        aShift: -1,
        bZeroPoint: zp - 2,
        bMultiplier: 1073741824,
        bShift: 0,
        outputZeroPoint: zp + 1,
        outputMultiplier: 1431655765,
        outputShift: -19,
      };
      addInt8({ a: input, b, output: addOut as typeof input, ...q });
      addInt8({ a: input, b, output: addWant as typeof input, ...q, reference: true });
      const softOut = like(input);
      const softWant = like(input);
      const sq = {
        inputScale: 0.05,
        inputZeroPoint: zp,
        outputScale: 1 / 256,
        outputZeroPoint: format === 'int8' ? -128 : 0,
      };
      softmaxInt8({ rows: 2 * 7 * 9, channels: 19, input, output: softOut, ...sq });
      softmaxInt8({ rows: 2 * 7 * 9, channels: 19, input, output: softWant, ...sq, reference: true });
      compare(`softmax ${format}`, softOut, softWant);
    }
    compare(`add ${format}`, addOut, addWant);
    // concat and shuffle move data: checked against the index formulas.
    const rows = 2 * 7 * 9;
    const joined = new (input.constructor as new (n: number) => Tensor)(rows * 38);
    concat({ rows, channels: [19, 19], inputs: [input, b], output: joined });
    let concatOk = true;
    for (let r = 0; r < rows && concatOk; r++) {
      for (let c = 0; c < 19; c++) {
        concatOk =
          concatOk && joined[r * 38 + c] === input[r * 19 + c] && joined[r * 38 + 19 + c] === b[r * 19 + c];
      }
    }
    checks.push({ name: `concat ${format}`, ok: concatOk });
    const shuffled = like(joined);
    channelShuffle({ rows, groups: 2, groupChannels: 19, input: joined, output: shuffled });
    let shuffleOk = true;
    for (let r = 0; r < rows && shuffleOk; r++) {
      for (let g = 0; g < 2; g++) {
        for (let j = 0; j < 19; j++)
          shuffleOk = shuffleOk && shuffled[r * 38 + j * 2 + g] === joined[r * 38 + g * 19 + j];
      }
    }
    checks.push({ name: `channelShuffle ${format}`, ok: shuffleOk });
  }
}

runAll(1);
runAll(2);
runStateless();
process.stdout.write(JSON.stringify({ isa: activeIsa(), checks }) + '\n');
