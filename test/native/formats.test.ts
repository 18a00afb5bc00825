// The compressed-format layers (native/formats.ts): on every kernel path this CPU supports, each format x
// {conv2d, fullyConnected} equals the plain C reference kernel (bit-exact for fixed16, fixed8 and xnor;
// 1e-5 of sum |w * x| for the fp32-activation formats) at 1 and 2 threads, and the C reference equals the
// TypeScript references (agent/runtime/reference-ops/fixed-point.ts, agent/runtime/format-layouts.ts). ISA detection
// happens once per process, so this file re-runs itself as a child with WHITTLE_ISA set (and
// WHITTLE_FORMATS_CHILD=1), which prints one JSON report. Then a fuzz of the argument checks: every call
// works or throws a TypeError or RangeError, and the process survives.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  encodeCsr,
  packBinaryWeights,
  packCodebookIndices,
  packTernaryWeights,
  packXnorWeights,
} from '../../agent/runtime/format-layouts.js';
import { dequantize, quantizeNearest, quantizeStochastic } from '../../agent/runtime/number/fixed-point.js';
import { requantizeGemmlowp } from '../../agent/runtime/number/requantization.js';
import {
  type Conv2dGeometry,
  fixedPointConv2dReference,
} from '../../agent/runtime/reference-ops/fixed-point.js';
import {
  createBinaryWeightsConv2d,
  createCodebookFullyConnected,
  createCodebookInt8Conv2d,
  createCodebookInt8FullyConnected,
  createFixed8FullyConnected,
  createFixed16FullyConnected,
  createHashedFullyConnected,
  createSparseFullyConnected,
  createSparseInt8Conv2d,
  createSparseInt8FullyConnected,
  createTernaryInt8Conv2d,
  createTernaryInt8FullyConnected,
  fixedPointDequantize,
  fixedPointQuantize,
  FORMAT_LAYERS,
  type FormatConv2dShape,
  type FormatLayer,
  FORMATS,
  type FormatTensor,
} from '../../native/formats.js';
import { activeIsa, cpuFeatures, setThreads, uniformPadding } from '../../native/index.js';
import { xorshift32 } from '../support/xorshift32.js';
import { denseConv2d } from './dense-conv2d.js';

const random = xorshift32(0x9e3779b9);
const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
const floats = (n: number): Float32Array => Float32Array.from({ length: n }, () => random() * 2 - 1);

/** The benchmark's format names plus the int8-activation variants of ternary, sparse and codebook. */
const ALL_FORMATS = [...FORMATS, 'ternary-int8', 'sparse-int8', 'codebook-int8'];

interface Case {
  name: string;
  fc: boolean;
  shape: Required<FormatConv2dShape>;
}

function shape(s: FormatConv2dShape): Required<FormatConv2dShape> {
  return {
    strideHeight: 1,
    strideWidth: 1,
    paddingTop: 0,
    paddingLeft: 0,
    paddingBottom: 0,
    paddingRight: 0,
    groups: 1,
    ...s,
  };
}

const fcShape = (batch: number, inChannels: number, outChannels: number): Required<FormatConv2dShape> =>
  shape({
    batch,
    inputHeight: 1,
    inputWidth: 1,
    inputChannels: inChannels,
    outputChannels: outChannels,
    kernelHeight: 1,
    kernelWidth: 1,
  });

const CASES: Case[] = [
  {
    name: '3x3 pad 1',
    fc: false,
    shape: shape({
      batch: 1,
      inputHeight: 5,
      inputWidth: 5,
      inputChannels: 3,
      outputChannels: 5,
      kernelHeight: 3,
      kernelWidth: 3,
      ...uniformPadding(1),
    }),
  },
  {
    name: '3x2 stride 2, 70 channels, uneven padding',
    fc: false,
    shape: shape({
      batch: 2,
      inputHeight: 7,
      inputWidth: 6,
      inputChannels: 70,
      outputChannels: 17,
      kernelHeight: 3,
      kernelWidth: 2,
      strideHeight: 2,
      strideWidth: 2,
      paddingTop: 1,
      paddingLeft: 0,
      paddingBottom: 1,
      paddingRight: 1,
    }),
  },
  {
    name: 'depthwise 3x3',
    fc: false,
    shape: shape({
      batch: 1,
      inputHeight: 6,
      inputWidth: 6,
      inputChannels: 9,
      outputChannels: 9,
      kernelHeight: 3,
      kernelWidth: 3,
      ...uniformPadding(1),
      groups: 9,
    }),
  },
  {
    name: 'pointwise 1x1',
    fc: false,
    shape: shape({
      batch: 1,
      inputHeight: 4,
      inputWidth: 4,
      inputChannels: 33,
      outputChannels: 40,
      kernelHeight: 1,
      kernelWidth: 1,
    }),
  },
  {
    name: 'grouped 3x3',
    fc: false,
    shape: shape({
      batch: 1,
      inputHeight: 5,
      inputWidth: 5,
      inputChannels: 8,
      outputChannels: 6,
      kernelHeight: 3,
      kernelWidth: 3,
      groups: 2,
    }),
  },
  { name: 'fc 100->13', fc: true, shape: fcShape(3, 100, 13) },
  { name: 'fc 1->1', fc: true, shape: fcShape(1, 1, 1) },
  // Few outputs: the expanded fp32 layers' dense-row kernel (f32_fc_rows), at every batch.
  { name: 'fc 300->10', fc: true, shape: fcShape(1, 300, 10) },
  { name: 'fc 65->70', fc: true, shape: fcShape(2, 65, 70) },
];

function dims(s: Required<FormatConv2dShape>): {
  taps: number;
  gic: number;
  k: number;
  oh: number;
  ow: number;
  inputLength: number;
  outputLength: number;
} {
  const gic = s.inputChannels / s.groups;
  const taps = s.kernelHeight * s.kernelWidth;
  const oh =
    Math.floor((s.inputHeight + s.paddingTop + s.paddingBottom - s.kernelHeight) / s.strideHeight) + 1;
  const ow = Math.floor((s.inputWidth + s.paddingLeft + s.paddingRight - s.kernelWidth) / s.strideWidth) + 1;
  return {
    taps,
    gic,
    k: taps * gic,
    oh,
    ow,
    inputLength: s.batch * s.inputHeight * s.inputWidth * s.inputChannels,
    outputLength: s.batch * oh * ow * s.outputChannels,
  };
}

function shapeArgs(c: Case): Record<string, number> {
  const s = c.shape;
  return c.fc ? { batch: s.batch, inChannels: s.inputChannels, outChannels: s.outputChannels } : { ...s };
}

function geometry(s: Required<FormatConv2dShape>): Conv2dGeometry {
  const d = dims(s);
  return {
    batch: s.batch,
    inputHeight: s.inputHeight,
    inputWidth: s.inputWidth,
    kernelHeight: s.kernelHeight,
    kernelWidth: s.kernelWidth,
    strideHeight: s.strideHeight,
    strideWidth: s.strideWidth,
    paddingTop: s.paddingTop,
    paddingLeft: s.paddingLeft,
    outputHeight: d.oh,
    outputWidth: d.ow,
    groups: s.groups,
    groupInputChannels: d.gic,
    groupOutputChannels: s.outputChannels / s.groups,
  };
}

/** One layer of a format on a case, with its input and an independent TypeScript expectation. */
interface Built {
  /** The valid arguments the layer was created from, and its create function (for the fuzz). */
  args: Record<string, unknown>;
  create: (args: never) => FormatLayer<FormatTensor>;
  layer: FormatLayer<FormatTensor>;
  input: FormatTensor;
  output: () => FormatTensor;
  exact: boolean;
  /** The TS reference output and, for fp32, the per-output error scale sum |w * x| + |bias|. */
  expected: { values: ArrayLike<number>; magnitude?: Float64Array } | null;
}

let last: Pick<Built, 'args' | 'create'> = { args: {}, create: createFixed8FullyConnected };

function buildLayer(format: string, c: Case, variant: number): Built {
  const built = buildLayerOnce(format, c, variant);
  return { ...built, ...last };
}

function buildLayerOnce(format: string, c: Case, variant: number): Omit<Built, 'args' | 'create'> {
  const s = c.shape;
  const d = dims(s);
  const oc = s.outputChannels;
  const base = shapeArgs(c);
  type Create = (args: never) => FormatLayer<FormatTensor>;
  const pick = (
    creators: { conv2d: Create; fullyConnected: Create },
    a: object,
  ): FormatLayer<FormatTensor> => {
    const create = c.fc ? creators.fullyConnected : creators.conv2d;
    last = { args: a as Record<string, unknown>, create };
    return create(a as never);
  };

  const floatBias = variant % 2 === 0 ? floats(oc) : null;
  const clamp = variant % 3 === 2 ? { outputMin: -0.5, outputMax: 2 } : {};
  const finish = (dense: Float32Array, input: Float32Array) => {
    const r = denseConv2d(s, input, dense, floatBias);
    const values = r.output.map((v) =>
      Math.min(Math.max(v, clamp.outputMin ?? -Infinity), clamp.outputMax ?? Infinity),
    );
    return { values, magnitude: r.magnitude };
  };
  /** An fp32-activation layer checked against the dense float reference of `dense` weights. */
  const floatCase = (layer: FormatLayer<FormatTensor>, dense: Float32Array, input: Float32Array) => ({
    layer,
    input,
    output: () => new Float32Array(d.outputLength),
    exact: false,
    expected: finish(dense, input),
  });
  switch (format) {
    case 'fixed16':
    case 'fixed8': {
      const wide = format === 'fixed16';
      const limit = wide ? 32767 : 127;
      const weights = wide ? new Int16Array(oc * d.k) : new Int8Array(oc * d.k);
      for (let i = 0; i < weights.length; i++) weights[i] = int(-limit, limit);
      const input = wide ? new Int16Array(d.inputLength) : new Int8Array(d.inputLength);
      for (let i = 0; i < input.length; i++) input[i] = int(wide ? -32768 : -128, limit);
      const bias =
        variant % 2 === 0
          ? wide
            ? BigInt64Array.from({ length: oc }, () => BigInt(int(-(2 ** 40), 2 ** 40)))
            : Int32Array.from({ length: oc }, () => int(-100000, 100000))
          : undefined;
      const fl = [
        { inputFl: 8, weightFl: 14, outputFl: 10 },
        { inputFl: 3, weightFl: 2, outputFl: 7 },
        { inputFl: 5, weightFl: 6, outputFl: 0 },
      ][variant % 3]!;
      const lo = wide ? -32768 : -128;
      const bounds =
        variant % 3 === 1 ? { outputMin: 0, outputMax: limit } : { outputMin: lo, outputMax: limit };
      const args = { ...base, ...fl, ...bounds, weights, bias: bias ?? null };
      const layer = wide ? pick(FORMAT_LAYERS.fixed16, args) : pick(FORMAT_LAYERS.fixed8, args);
      const expected = wide ? new Int16Array(d.outputLength) : new Int8Array(d.outputLength);
      fixedPointConv2dReference({
        geometry: geometry(s),
        input,
        weights,
        bias,
        ...fl,
        ...bounds,
        output: expected,
      });
      return {
        layer,
        input,
        output: () => (wide ? new Int16Array(d.outputLength) : new Int8Array(d.outputLength)),
        exact: true,
        expected: { values: expected },
      };
    }
    case 'binary-weights': {
      const w = floats(oc * d.k);
      const packed = packBinaryWeights(oc, d.k, w);
      const dense = w.map((v, i) => (v < 0 ? -1 : 1) * packed.alpha[Math.floor(i / d.k)]!);
      const input = floats(d.inputLength);
      const args = { ...base, ...clamp, ...packed, bias: floatBias };
      return floatCase(pick(FORMAT_LAYERS['binary-weights'], args), dense, input);
    }
    case 'ternary': {
      const t = Int8Array.from({ length: oc * d.k }, () => int(-1, 1));
      const alpha = Float32Array.from({ length: oc }, () => 0.1 + random());
      const dense = Float32Array.from(t, (v, i) => v * alpha[Math.floor(i / d.k)]!);
      const input = floats(d.inputLength);
      const args = { ...base, ...clamp, ...packTernaryWeights(oc, d.k, t), alpha, bias: floatBias };
      return floatCase(pick(FORMAT_LAYERS.ternary, args), dense, input);
    }
    case 'sparse': {
      const dense = floats(oc * d.k).map((v) => (random() < 0.7 ? 0 : v));
      const input = floats(d.inputLength);
      const args = { ...base, ...clamp, ...encodeCsr(oc, d.k, dense), bias: floatBias };
      return floatCase(pick(FORMAT_LAYERS.sparse, args), dense, input);
    }
    case 'codebook': {
      const indexBits = [2, 3, 5, 8][variant % 4]!;
      const size = int(1, 2 ** indexBits);
      const codebook = floats(size);
      const unpacked = Uint8Array.from({ length: oc * d.k }, () => int(0, size - 1));
      const dense = Float32Array.from(unpacked, (i) => codebook[i]!);
      const input = floats(d.inputLength);
      const indices = packCodebookIndices(oc, d.k, indexBits, unpacked);
      const args = { ...base, ...clamp, indexBits, codebook, indices, bias: floatBias };
      return floatCase(pick(FORMAT_LAYERS.codebook, args), dense, input);
    }
    case 'ternary-int8':
    case 'sparse-int8':
    case 'codebook-int8': {
      const ternary = format === 'ternary-int8';
      // codebook: a per-channel int8 table of `size` centroids and the indices into it.
      const indexBits = [2, 4, 8][variant % 3]!;
      const size = int(1, 2 ** indexBits);
      const tables = Int8Array.from({ length: oc * size }, () => int(-127, 127));
      const unpacked = Uint8Array.from({ length: oc * d.k }, () => int(0, size - 1));
      const dense =
        format === 'codebook-int8'
          ? Int8Array.from(unpacked, (c, i) => tables[Math.floor(i / d.k) * size + c]!)
          : Int8Array.from({ length: oc * d.k }, () =>
              ternary ? int(-1, 1) : random() < 0.7 ? 0 : int(-128, 127),
            );
      const input = Int8Array.from({ length: d.inputLength }, () => int(-128, 127));
      const inputZeroPoint = int(-20, 20);
      const outputZeroPoint = int(-20, 20);
      const multipliers = Int32Array.from({ length: oc }, () => int(2 ** 30, 2 ** 31 - 1));
      const shifts = Int32Array.from({ length: oc }, () => (ternary ? int(-8, -4) : int(-14, -10)));
      const codebookArgs = {
        indexBits,
        codebook: tables,
        indices: packCodebookIndices(oc, d.k, indexBits, unpacked),
        expandWeights: variant % 4 !== 3,
      };
      const bias = variant % 2 === 0 ? Int32Array.from({ length: oc }, () => int(-5000, 5000)) : null;
      const bounds = variant % 3 === 2 ? { outputMin: outputZeroPoint, outputMax: 100 } : {};
      const weights =
        format === 'codebook-int8'
          ? codebookArgs
          : ternary
            ? packTernaryWeights(oc, d.k, dense)
            : encodeCsr(oc, d.k, Float32Array.from(dense));
      const args = {
        ...base,
        ...bounds,
        ...weights,
        ...(format === 'sparse-int8'
          ? { values: Int8Array.from((weights as ReturnType<typeof encodeCsr>).values) }
          : {}),
        activations: 'int8',
        inputZeroPoint,
        outputZeroPoint,
        multipliers,
        shifts,
        bias,
      };
      const layer =
        format === 'codebook-int8'
          ? pick({ conv2d: createCodebookInt8Conv2d, fullyConnected: createCodebookInt8FullyConnected }, args)
          : ternary
            ? pick({ conv2d: createTernaryInt8Conv2d, fullyConnected: createTernaryInt8FullyConnected }, args)
            : pick({ conv2d: createSparseInt8Conv2d, fullyConnected: createSparseInt8FullyConnected }, args);
      const centered = Float64Array.from(input, (x) => x - inputZeroPoint);
      const acc = denseConv2d(s, centered, dense, bias).output;
      const values = Int8Array.from(acc, (a, i) => {
        const o = i % oc;
        const y = outputZeroPoint + requantizeGemmlowp(a, multipliers[o]!, shifts[o]!);
        return Math.min(Math.max(y, bounds.outputMin ?? -128), bounds.outputMax ?? 127);
      });
      return {
        layer,
        input,
        output: () => new Int8Array(d.outputLength),
        exact: true,
        expected: { values },
      };
    }
    case 'xnor': {
      const w = floats(oc * d.k);
      const packed = packXnorWeights(oc, d.taps, d.gic, w);
      const input = floats(d.inputLength);
      const inputScaling = variant % 2 === 1;
      const args = { ...base, ...clamp, ...packed, bias: floatBias, inputScaling };
      const layer = pick(FORMAT_LAYERS.xnor, args);
      let expected: Built['expected'] = null;
      if (!inputScaling) {
        // dot of +-1 values over the valid taps, then the kernels' epilogue in float32.
        const signs = (a: Float32Array) => a.map((v) => (v < 0 ? -1 : 1));
        const dot = denseConv2d(s, signs(input), signs(w), null).output;
        const values = Float32Array.from(dot, (v, i) => {
          const o = i % oc;
          let y = Math.fround(Math.fround(v * packed.alpha[o]!) * 1);
          y = Math.fround(y + (floatBias?.[o] ?? 0));
          return Math.min(Math.max(y, clamp.outputMin ?? -Infinity), clamp.outputMax ?? Infinity);
        });
        expected = { values };
      }
      return { layer, input, output: () => new Float32Array(d.outputLength), exact: true, expected };
    }
    default:
      throw new Error(`unknown format ${format}`);
  }
}

function compare(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  exact: boolean,
  magnitude: Float64Array | undefined,
): string | undefined {
  if (got.length !== want.length) return `length ${got.length} != ${want.length}`;
  for (let i = 0; i < got.length; i++) {
    const a = got[i]!;
    const b = want[i]!;
    if (exact || magnitude === undefined) {
      if (!Object.is(a, b) && !(a === 0 && b === 0)) return `[${i}] ${a} != ${b}`;
    } else if (Math.abs(a - b) > 1e-5 * Math.max(magnitude[i]!, 1e-30)) {
      return `[${i}] ${a} vs ${b} (scale ${magnitude[i]})`;
    }
  }
  return undefined;
}

interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}

function runChild(): void {
  const checks: Check[] = [];
  for (const format of ALL_FORMATS) {
    CASES.forEach((c, index) => {
      for (const variant of [index, index + 1]) {
        const name = `${format} ${c.name} #${variant}`;
        try {
          const built = buildLayer(format, c, variant);
          const reference = built.output();
          built.layer.runReference(built.input, reference);
          if (built.expected !== null) {
            const problem = compare(reference, built.expected.values, built.exact, built.expected.magnitude);
            checks.push({
              name: `${name}: C reference = TS reference`,
              ok: problem === undefined,
              detail: problem,
            });
          }
          for (const threads of [1, 2]) {
            setThreads(threads);
            const output = built.output();
            built.layer.run(built.input, output);
            const magnitude = built.expected?.magnitude;
            const problem = compare(output, reference, built.exact, magnitude);
            checks.push({
              name: `${name} ${built.layer.kernel} x${threads}`,
              ok: problem === undefined,
              detail: problem,
            });
          }
          built.layer.dispose();
        } catch (error) {
          checks.push({ name, ok: false, detail: error instanceof Error ? error.stack : String(error) });
        }
      }
    });
  }
  setThreads(1);
  process.stdout.write(`${JSON.stringify({ isa: activeIsa(), checks })}\n`);
}

if (process.env['WHITTLE_FORMATS_CHILD'] === '1') {
  runChild();
} else {
  const self = fileURLToPath(import.meta.url);
  const features = cpuFeatures();

  describe('compressed formats on every kernel path', () => {
    for (const isa of features.supported) {
      test(`WHITTLE_ISA=${isa}: every format x layer equals the C and TS references at 1 and 2 threads`, () => {
        const result = spawnSync(process.execPath, [self], {
          // WHITTLE_MIN_TASK_WORK=0: the test layers are small and would otherwise run on one thread only
          // even at 2 threads, leaving the split over output channels untested.
          env: { ...process.env, WHITTLE_ISA: isa, WHITTLE_FORMATS_CHILD: '1', WHITTLE_MIN_TASK_WORK: '0' },
          encoding: 'utf8',
          timeout: 300_000,
        });
        assert.equal(result.status, 0, `child exited with ${result.status}: ${result.stderr}`);
        const report = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as {
          isa: string;
          checks: Check[];
        };
        assert.equal(report.isa, isa);
        assert.ok(
          report.checks.length >= ALL_FORMATS.length * CASES.length * 2 * 2,
          `${report.checks.length} checks`,
        );
        assert.deepEqual(
          report.checks.filter((check) => !check.ok),
          [],
        );
      });
    }
  });

  describe('compressed formats: argument checks', () => {
    test('clear messages for typical mistakes', () => {
      const conv = {
        batch: 1,
        inputHeight: 4,
        inputWidth: 4,
        inputChannels: 3,
        outputChannels: 2,
        kernelHeight: 3,
        kernelWidth: 3,
      };
      const k = 27;
      const good = { ...conv, ...packBinaryWeights(2, k, floats(2 * k)) };
      assert.throws(() => createBinaryWeightsConv2d({ ...good, weightBits: new Uint32Array(3) }), {
        name: 'RangeError',
        message:
          'Expected Uint32Array of length 2 (outputChannels x ceil(kernelHeight x kernelWidth x inputChannels / groups / 32)) for weightBits but received length 3',
      });
      assert.throws(() => createBinaryWeightsConv2d({ ...good, weightBits: Uint32Array.of(0, 1 << 27) }), {
        name: 'RangeError',
        message: /bits past 27 of each row to be 0 for weightBits\[1\] but received 0x8000000/,
      });
      assert.throws(() => createBinaryWeightsConv2d({ ...good, batch: Number.NaN }), {
        name: 'TypeError',
        message: 'Expected an integer for batch but received number NaN',
      });
      assert.throws(() => createBinaryWeightsConv2d({ ...good, kernelHeight: 9 }), {
        name: 'RangeError',
        message: /kernelHeight/,
      });
      const sparse = { batch: 1, inChannels: 4, outChannels: 2, values: Float32Array.of(1, 2, 3) };
      assert.throws(
        () =>
          createSparseFullyConnected({
            ...sparse,
            rowOffsets: Uint32Array.of(0, 2, 3),
            columnIndices: Uint32Array.of(1, 1, 0),
          }),
        {
          name: 'RangeError',
          message: /strictly increasing within row 0 for columnIndices\[1\] but received 1/,
        },
      );
      assert.throws(
        () =>
          createSparseFullyConnected({
            ...sparse,
            rowOffsets: Uint32Array.of(0, 2, 3),
            columnIndices: Uint32Array.of(0, 1, 4),
          }),
        { name: 'RangeError', message: /a column < 4 .* for columnIndices\[2\] but received 4/ },
      );
      assert.throws(
        () =>
          createSparseFullyConnected({
            ...sparse,
            rowOffsets: Uint32Array.of(0, 3, 2),
            columnIndices: Uint32Array.of(0, 1, 2),
          }),
        { name: 'RangeError', message: /rowOffsets\[2\]/ },
      );
      const codebook = {
        batch: 1,
        inChannels: 4,
        outChannels: 1,
        indexBits: 2,
        codebook: Float32Array.of(1, 2, 3),
      };
      assert.throws(
        () =>
          createCodebookFullyConnected({
            ...codebook,
            indices: packCodebookIndices(1, 4, 2, Uint8Array.of(0, 1, 3, 2)),
          }),
        {
          name: 'RangeError',
          message: /Expected indices < codebook.length \(3\) for indices \(row 0, index 2\) but received 3/,
        },
      );
      assert.throws(
        () => createCodebookFullyConnected({ ...codebook, indexBits: 9, indices: new Uint8Array(5) }),
        {
          name: 'RangeError',
          message: 'Expected an integer in [2, 8] for indexBits but received 9',
        },
      );
      const fixed = {
        batch: 1,
        inChannels: 2,
        outChannels: 1,
        weights: Int8Array.of(1, 2),
        inputFl: 0,
        weightFl: 0,
      };
      assert.throws(() => createFixed8FullyConnected({ ...fixed, outputFl: -63 }), {
        name: 'RangeError',
        message: /inputFl \+ weightFl - outputFl in \[-32, 62\] for outputFl but received -63 \(shift 63\)/,
      });
      assert.throws(
        () => createFixed16FullyConnected({ ...fixed, outputFl: 0, weights: Int16Array.of(1, -32768) }),
        { name: 'RangeError', message: /weights\[1\] but received -32768/ },
      );
      const layer = createFixed8FullyConnected({ ...fixed, outputFl: 0 });
      const buffer = new Int8Array(4);
      assert.throws(() => layer.run(buffer.subarray(0, 2), buffer.subarray(1, 2)), {
        name: 'RangeError',
        message: 'Expected output not to share memory with input but received overlapping buffers',
      });
      assert.throws(() => layer.run(new Float32Array(2) as never, new Int8Array(1)), {
        name: 'TypeError',
        message: 'Expected an Int8Array for input but received Float32Array',
      });
      layer.dispose();
      assert.throws(() => layer.run(new Int8Array(2), new Int8Array(1)), /disposed/);
      // A getter that detaches an array the constructor already checked: refused, not read.
      const weights = Int8Array.of(1, 2);
      const sneaky = {
        ...fixed,
        outputFl: 0,
        weights,
        get bias() {
          structuredClone(weights.buffer, { transfer: [weights.buffer] });
          return Int32Array.of(0);
        },
      };
      assert.throws(() => createFixed8FullyConnected(sneaky), {
        name: 'RangeError',
        message: /for weights but received an array whose buffer changed/,
      });
    });

    test('fuzz: random wrong arguments throw TypeError or RangeError and the process survives', () => {
      const junk = (): unknown => {
        const pick = int(0, 17);
        switch (pick) {
          case 0:
            return undefined;
          case 1:
            return null;
          case 2:
            return Number.NaN;
          case 3:
            return -int(1, 5);
          case 4:
            return 2 ** int(20, 60);
          case 5:
            return ['x', 'int8', 'float32'][int(0, 2)];
          case 6:
            return 1.5;
          case 7:
            return new Float32Array(int(0, 40));
          case 8:
            return new Uint32Array(int(0, 40)).map(() => int(0, 2 ** 32 - 1));
          case 9:
            return new Int8Array(int(0, 40));
          case 10:
            return new BigUint64Array(int(0, 4)).map(() => BigInt(int(0, 2 ** 31)) << 33n);
          case 11:
            return new Uint8Array(int(0, 40)).map(() => int(0, 255));
          case 12:
            return {};
          case 13:
            return [1, 2];
          case 14:
            return true;
          default:
            return int(0, 9);
        }
      };
      const names = [
        'batch',
        'inputHeight',
        'inputWidth',
        'inputChannels',
        'outputChannels',
        'kernelHeight',
        'kernelWidth',
        'strideHeight',
        'paddingTop',
        'paddingBottom',
        'groups',
        'inChannels',
        'outChannels',
        'weights',
        'bias',
        'weightBits',
        'alpha',
        'weightNonzero',
        'weightSign',
        'rowOffsets',
        'columnIndices',
        'values',
        'indexBits',
        'codebook',
        'indices',
        'inputFl',
        'weightFl',
        'outputFl',
        'outputMin',
        'outputMax',
        'inputScaling',
        'activations',
        'inputZeroPoint',
        'outputZeroPoint',
        'multipliers',
        'shifts',
      ];
      let thrown = 0;
      let created = 0;
      for (let iteration = 0; iteration < 3000; iteration++) {
        // A valid layer of a random format and case; then one to three of its fields replaced by junk.
        const format = ALL_FORMATS[int(0, ALL_FORMATS.length - 1)]!;
        const c = CASES[int(0, CASES.length - 1)]!;
        const built = buildLayer(format, c, iteration);
        built.layer.dispose();
        const args: Record<string, unknown> = { ...built.args };
        for (let i = int(1, 3); i > 0; i--) args[names[int(0, names.length - 1)]!] = junk();
        try {
          const layer = built.create(args as never);
          created++;
          for (let r = 0; r < 3; r++) {
            try {
              const input = r === 0 ? built.input : junk();
              const output = r === 1 ? built.output() : junk();
              layer.run(input as never, output as never);
            } catch (error) {
              assert.ok(error instanceof TypeError || error instanceof RangeError, String(error));
            }
          }
          layer.dispose();
        } catch (error) {
          thrown++;
          assert.ok(error instanceof TypeError || error instanceof RangeError, String(error));
        }
      }
      // Both outcomes must be exercised: junk in a field the format ignores still builds a layer.
      assert.ok(thrown > 100 && created > 100, `${thrown} thrown, ${created} created`);
    });

    test('fixed8 runs on the int8 kernels where exact, on the fixed-point kernels otherwise', () => {
      // 100 full-scale inputs: a left shift of 10 can take the accumulator past 2^30, which the int8
      // kernels' requantization cannot hold exactly; a right shift of 3 rounds (ties included) within it.
      const inChannels = 100;
      const weights = Int8Array.from({ length: 4 * inChannels }, (_, i) => (i % 3 === 0 ? -127 : 127));
      const input = Int8Array.from({ length: 2 * inChannels }, (_, i) => ((i * 91) % 256) - 128);
      const dims = { batch: 2, inChannels, outChannels: 4 };
      const bias = Int32Array.of(5, -3, 100, -1000);
      const wide = createFixed8FullyConnected({ ...dims, inputFl: 0, weightFl: 0, outputFl: 10, weights });
      const rounding = createFixed8FullyConnected({
        ...dims,
        inputFl: 2,
        weightFl: 1,
        outputFl: 0,
        weights,
        bias,
      });
      assert.doesNotMatch(wide.kernel ?? '', /^qs8_/);
      assert.match(rounding.kernel ?? '', /^qs8_/);
      for (const layer of [wide, rounding]) {
        for (const threads of [1, 2]) {
          setThreads(threads);
          const got = new Int8Array(8);
          const want = new Int8Array(8);
          layer.run(input, got);
          layer.runReference(input, want);
          assert.deepEqual(got, want, `${layer.kernel} x${threads}`);
        }
        layer.dispose();
      }
      setThreads(1);
    });

    test('ternary and codebook layers expand their weights onto the fp32 / int8 operators', () => {
      const dims = { batch: 2, inChannels: 70, outChannels: 12 };
      const t = Int8Array.from({ length: 12 * 70 }, (_, i) => ((i * 7) % 3) - 1);
      const planes = packTernaryWeights(12, 70, t);
      const ternary = FORMAT_LAYERS.ternary.fullyConnected({ ...dims, ...planes, alpha: floats(12) });
      // The int8 layers' activations and requantization, the same for each.
      const int8Io = {
        activations: 'int8',
        inputZeroPoint: 3,
        outputZeroPoint: -2,
        multipliers: new Int32Array(12).fill(2 ** 30),
        shifts: new Int32Array(12).fill(-5),
      } as const;
      const ternaryInt8 = createTernaryInt8FullyConnected({
        ...dims,
        ...planes,
        ...int8Io,
      });
      const codebook = createCodebookFullyConnected({
        ...dims,
        indexBits: 3,
        codebook: floats(5),
        indices: packCodebookIndices(
          12,
          70,
          3,
          Uint8Array.from(t, (v) => v + 1),
        ),
      });
      const binary = FORMAT_LAYERS['binary-weights'].fullyConnected({
        ...dims,
        weightBits: planes.weightSign,
        alpha: floats(12),
      });
      assert.match(ternary.kernel ?? '', /^f32_/);
      assert.equal(ternary.expandedBytes, 12 * 70 * 4);
      assert.match(ternaryInt8.kernel ?? '', /^qs8_/);
      assert.equal(ternaryInt8.expandedBytes, 12 * 70);
      assert.match(codebook.kernel ?? '', /^f32_/);
      assert.equal(codebook.expandedBytes, 12 * 70 * 4);
      // A codebook layer of an int8 package: each channel's int8 centroids on the int8 operators.
      const codebookInt8 = createCodebookInt8FullyConnected({
        ...dims,
        ...int8Io,
        indexBits: 3,
        codebook: Int8Array.from({ length: 12 * 5 }, (_, i) => ((i * 37) % 255) - 127),
        indices: packCodebookIndices(
          12,
          70,
          3,
          Uint8Array.from(t, (v) => v + 1),
        ),
      });
      assert.match(codebookInt8.kernel ?? '', /^qs8_/);
      // Fewer than 16 outputs: the expanded rows, one dot product each.
      const narrow = FORMAT_LAYERS.ternary.fullyConnected({
        ...dims,
        batch: 1,
        ...planes,
        alpha: floats(12),
      });
      assert.equal(narrow.kernel, 'f32_fc_rows');
      assert.equal(narrow.expandedBytes, 12 * 70 * 4);
      narrow.dispose();
      assert.equal(codebookInt8.expandedBytes, 12 * 70);
      // Binary weights expand the same way (issue 15 item 9: fp32 speed for BinaryConnect layers).
      assert.match(binary.kernel ?? '', /^f32_/);
      assert.equal(binary.expandedBytes, 12 * 70 * 4);
      const compact = FORMAT_LAYERS.ternary.fullyConnected({
        ...dims,
        ...planes,
        alpha: floats(12),
        expandWeights: false,
      });
      assert.doesNotMatch(compact.kernel ?? '', /^f32_/);
      assert.equal(compact.expandedBytes, 0);
      assert.throws(
        () =>
          createCodebookFullyConnected({
            ...dims,
            indexBits: 3,
            codebook: floats(5),
            indices: new Uint8Array(12 * 27),
            expandWeights: 1 as never,
          }),
        (error: Error) => error instanceof TypeError && /expandWeights/.test(error.message),
      );
      for (const layer of [ternary, ternaryInt8, codebook, codebookInt8, binary, compact]) {
        layer.dispose();
        assert.equal(layer.kernel, null);
      }
    });

    test('a hashed layer expands onto the fp32 operator through the one path, its size the binding’s', () => {
      const dims = { batch: 2, inChannels: 70, outChannels: 12 };
      const hashed = { ...dims, buckets: floats(100), seed: 9, bias: floats(12) };
      const expanded = createHashedFullyConnected(hashed);
      const compact = createHashedFullyConnected({ ...hashed, expandWeights: false });
      assert.match(expanded.kernel ?? '', /^f32_/);
      assert.equal(expanded.expandedBytes, 12 * 70 * 4);
      assert.doesNotMatch(compact.kernel ?? '', /^f32_/);
      assert.equal(compact.expandedBytes, 0);
      const input = floats(2 * 70);
      const want = new Float32Array(2 * 12);
      compact.runReference(input, want);
      for (const layer of [expanded, compact]) {
        const got = new Float32Array(2 * 12);
        layer.run(input, got);
        for (let i = 0; i < want.length; i++)
          assert.ok(
            Math.abs(got[i]! - want[i]!) <= 1e-5 * Math.max(1, Math.abs(want[i]!)),
            `${layer.kernel}[${i}]`,
          );
      }
      // Past HASHED_EXPAND_MAX_BYTES (16 MiB of fp32 weights) the layer keeps its buckets only.
      const large = createHashedFullyConnected({
        batch: 1,
        inChannels: 1024,
        outChannels: 4097,
        buckets: floats(64),
        seed: 1,
      });
      assert.equal(large.expandedBytes, 0);
      assert.doesNotMatch(large.kernel ?? '', /^f32_/);
      for (const layer of [expanded, compact, large]) layer.dispose();
    });

    test('fixed-point quantizers equal the TypeScript reference bit for bit', () => {
      const input = Float32Array.from({ length: 1000 }, () => (random() * 2 - 1) * 8);
      input[0] = Number.NaN;
      input[1] = Infinity;
      input[2] = -Infinity;
      input[3] = 0.5 / 256;
      for (const bits of [16, 8] as const) {
        for (const fl of [-3, 0, 4, 12, 64]) {
          const output = bits === 16 ? new Int16Array(input.length) : new Int8Array(input.length);
          fixedPointQuantize({ input, output, fractionalLength: fl });
          assert.deepEqual(output, quantizeNearest(input, fl, bits), `nearest ${bits} ${fl}`);
          const split = bits === 16 ? new Int16Array(input.length) : new Int8Array(input.length);
          fixedPointQuantize({
            input: input.subarray(0, 300),
            output: split.subarray(0, 300),
            fractionalLength: fl,
            rounding: 'stochastic',
            seed: 77,
          });
          fixedPointQuantize({
            input: input.subarray(300),
            output: split.subarray(300),
            fractionalLength: fl,
            rounding: 'stochastic',
            seed: 77,
            firstIndex: 300,
          });
          assert.deepEqual(split, quantizeStochastic(input, fl, bits, 77), `stochastic ${bits} ${fl}`);
          const back = new Float32Array(input.length);
          fixedPointDequantize({ input: output, fractionalLength: fl, output: back });
          assert.deepEqual(back, dequantize(output, fl));
        }
      }
      assert.throws(() => fixedPointQuantize({ input, output: new Int8Array(3), fractionalLength: 0 }), {
        name: 'RangeError',
        message: 'Expected Int8Array of length 1000 (input.length) for output but received length 3',
      });
      assert.throws(
        () => fixedPointQuantize({ input, output: new Int16Array(1000), fractionalLength: 65 }),
        RangeError,
      );
      assert.throws(
        () =>
          fixedPointQuantize({
            input,
            output: new Int16Array(1000),
            fractionalLength: 0,
            rounding: 'stochastic',
          }),
        { name: 'TypeError', message: 'Expected an integer for seed but received undefined' },
      );
      assert.throws(
        () => fixedPointQuantize({ input, output: new Uint8Array(1000) as never, fractionalLength: 0 }),
        TypeError,
      );
      const shared = new Float32Array(1000);
      assert.throws(
        () =>
          fixedPointDequantize({
            input: new Int8Array(shared.buffer, 0, 1000),
            fractionalLength: 0,
            output: shared,
          }),
        { name: 'RangeError', message: /not to share memory/ },
      );
    });

    test('fuzz: valid layers with one corrupted weight array or run buffer', () => {
      for (let iteration = 0; iteration < 600; iteration++) {
        const format = ALL_FORMATS[iteration % ALL_FORMATS.length]!;
        const c = CASES[int(0, CASES.length - 1)]!;
        const built = buildLayer(format, c, iteration);
        // Run on wrong lengths, overlapping views and wrong types.
        const input = built.input;
        const attempts: [unknown, unknown][] = [
          [input.subarray(1), built.output()],
          [input, built.output().subarray(1)],
          [input, input],
          [new Float64Array(input.length), built.output()],
          [
            input,
            new (built.output().constructor as new (n: number) => FormatTensor)(built.output().length + 1),
          ],
        ];
        for (const [a, b] of attempts) {
          assert.throws(
            () => built.layer.run(a as never, b as never),
            (error: unknown) => error instanceof TypeError || error instanceof RangeError,
          );
        }
        built.layer.dispose();
      }
    });
  });
}
