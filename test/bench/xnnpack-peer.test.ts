// The XNNPACK peer of `bench kernels` (bench/xnnpack-peer.ts, bench/xnnpack/peer.cc): it builds from its
// sources, computes what Whittle's layers compute on small shapes (fp32 closely, int8 within 1 LSB), refuses
// what it cannot run with an XnnpackPeerError, and gives every row of the benchmark a vs_xnnpack figure.
// Skipped only when libxnnpack-dev is not installed (scripts/setup.sh installs it and builds the peer).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { packageRoot } from '../../agent/package-root.js';
import { parseShapes } from '../../bench/kernel-shapes.js';
import { formatKernelTable, runKernelBench } from '../../bench/kernels.js';
import { seededRandom } from '../../bench/onnx-layers.js';
import {
  loadXnnpackPeer,
  xnnpackAgreement,
  type XnnpackPeer,
  XnnpackPeerError,
} from '../../bench/xnnpack-peer.js';
import {
  type Conv2dShape,
  createConv2dF32,
  createConv2dInt8,
  createFullyConnectedF32,
  createFullyConnectedInt8,
} from '../../native/index.js';

const skip = existsSync('/usr/include/xnnpack.h')
  ? false
  : 'libxnnpack-dev is not installed (/usr/include/xnnpack.h is missing): `npm run setup` installs it';

function peer(): XnnpackPeer {
  const loaded = loadXnnpackPeer();
  if ('missing' in loaded) assert.fail(`libxnnpack-dev is installed but ${loaded.missing}`);
  return loaded;
}

const random = seededRandom(42);
const floats = (n: number) => Float32Array.from({ length: n }, () => random() * 2 - 1);
const int8s = (n: number) => Int8Array.from({ length: n }, () => Math.floor(random() * 256) - 128);
const quantization = (channels: number, multiplier: number, shift: number) => ({
  activations: 'int8' as const,
  inputZeroPoint: 3,
  outputZeroPoint: -5,
  multipliers: new Int32Array(channels).fill(multiplier),
  shifts: new Int32Array(channels).fill(shift),
  bias: Int32Array.from({ length: channels }, () => Math.floor(random() * 4000) - 2000),
});

interface RunnableLayer<T> {
  readonly outputLength: number;
  run(input: T, output: T): void;
}

// Whittle's layer and the peer's on one input: their outputs, in zeroed arrays of their output lengths.
function runBoth<T>(
  ours: RunnableLayer<T>,
  theirs: RunnableLayer<T>,
  input: T,
  zeros: (n: number) => T,
): [T, T] {
  const a = zeros(ours.outputLength);
  const b = zeros(theirs.outputLength);
  ours.run(input, a);
  theirs.run(input, b);
  return [a, b];
}

// A 3x3 kernel with stride 1 and one pixel of padding on every side (the output keeps the input's size).
const same3x3 = {
  batch: 1,
  kernelHeight: 3,
  kernelWidth: 3,
  paddingTop: 1,
  paddingLeft: 1,
  paddingBottom: 1,
  paddingRight: 1,
};

// A dense 3x3, a depthwise 3x3, a strided 1-input-channel stem with uneven padding, and a grouped 1x1.
const convShapes: (Conv2dShape & { name: string })[] = [
  { name: 'dense', ...same3x3, inputHeight: 7, inputWidth: 6, inputChannels: 5, outputChannels: 9 },
  {
    name: 'depthwise',
    ...same3x3,
    inputHeight: 6,
    inputWidth: 6,
    inputChannels: 24,
    outputChannels: 24,
    groups: 24,
  },
  {
    name: 'stem',
    batch: 1,
    inputHeight: 11,
    inputWidth: 9,
    inputChannels: 1,
    outputChannels: 6,
    kernelHeight: 5,
    kernelWidth: 5,
    strideHeight: 2,
    strideWidth: 2,
    paddingTop: 2,
    paddingLeft: 1,
    paddingBottom: 1,
    paddingRight: 2,
  },
  {
    name: 'grouped',
    batch: 1,
    inputHeight: 4,
    inputWidth: 4,
    inputChannels: 8,
    outputChannels: 12,
    kernelHeight: 1,
    kernelWidth: 1,
    groups: 4,
  },
];

describe('XNNPACK peer', { skip }, () => {
  test('builds from bench/xnnpack against libxnnpack-dev, apart from the product addon', () => {
    // A copy under build/ (git-ignored) so the checked-in tree and the setup's build are left alone; gyp
    // finds node-addon-api from there through the checkout's node_modules.
    const parent = join(packageRoot(), 'build');
    mkdirSync(parent, { recursive: true });
    const dir = mkdtempSync(join(parent, 'xnnpack-peer-test-'));
    try {
      cpSync(join(packageRoot(), 'bench', 'xnnpack', 'binding.gyp'), join(dir, 'binding.gyp'));
      cpSync(join(packageRoot(), 'bench', 'xnnpack', 'peer.cc'), join(dir, 'peer.cc'));
      execFileSync('npx', ['--no-install', 'node-gyp', 'rebuild', '--directory', dir], { stdio: 'pipe' });
      const addon = join(dir, 'build', 'Release', 'whittle_xnnpack_peer.node');
      assert.ok(existsSync(addon));
      assert.match(execFileSync('ldd', [addon], { encoding: 'utf8' }), /libXNNPACK/);
      // The product addon does not link XNNPACK.
      const product = join(packageRoot(), 'native', 'build', 'Release', 'whittle_native.node');
      assert.doesNotMatch(execFileSync('ldd', [product], { encoding: 'utf8' }), /XNNPACK/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // And setup built the one the benchmark loads.
    assert.match(peer().version, /^0\.0~git|^unknown$/);
  });

  for (const shape of convShapes)
    test(`convolution "${shape.name}": fp32 within 1e-4, int8 (qc8) within 1 LSB of Whittle's`, () => {
      const xnn = peer();
      const groups = shape.groups ?? 1;
      const weightCount =
        shape.outputChannels * shape.kernelHeight * shape.kernelWidth * (shape.inputChannels / groups);
      const fp32Args = { ...shape, weights: floats(weightCount), bias: floats(shape.outputChannels) };
      const ours = createConv2dF32(fp32Args);
      const theirs = xnn.conv2dF32(fp32Args);
      assert.equal(theirs.operator, 'convolution2d_nhwc_f32');
      assert.equal(theirs.inputLength, ours.inputLength);
      const [a, b] = runBoth(ours, theirs, floats(ours.inputLength), (n) => new Float32Array(n));
      const f = xnnpackAgreement(a, b);
      assert.equal(f.mismatch, null);
      assert.ok(a.some((v) => v !== 0));
      assert.ok(theirs.time(3) > 0);

      // Per-channel multipliers, as Whittle's quantizer writes them.
      const q = quantization(shape.outputChannels, 1 << 30, -7);
      q.multipliers = Int32Array.from({ length: shape.outputChannels }, (_, o) => (1 << 30) + o * 9_000_000);
      const int8Args = { ...shape, ...q, weights: int8s(weightCount) };
      const ours8 = createConv2dInt8(int8Args);
      const theirs8 = xnn.conv2dInt8(int8Args);
      assert.equal(theirs8.operator, 'convolution2d_nhwc_qc8');
      const [a8, b8] = runBoth(ours8, theirs8, int8s(ours8.inputLength), (n) => new Int8Array(n));
      const d = xnnpackAgreement(a8, b8);
      assert.equal(d.mismatch, null, d.mismatch ?? '');
      // Not saturated: the comparison means something.
      assert.ok(a8.filter((v) => v > -128 && v < 127).length > a8.length / 2);
      for (const layer of [ours, ours8, theirs, theirs8]) layer.dispose();
    });

  test('fully-connected: fp32 agrees, int8 runs on the per-tensor qs8 operator and agrees within 1 LSB', () => {
    const xnn = peer();
    const dims = { batch: 1, inChannels: 37, outChannels: 11 };
    const fp32Args = { ...dims, weights: floats(37 * 11), bias: floats(11) };
    const ours = createFullyConnectedF32(fp32Args);
    const theirs = xnn.fullyConnectedF32(fp32Args);
    const [a, b] = runBoth(ours, theirs, floats(37), (n) => new Float32Array(n));
    assert.equal(xnnpackAgreement(a, b).mismatch, null);

    const int8Args = { ...dims, ...quantization(11, 1_500_000_000, -6), weights: int8s(37 * 11) };
    const ours8 = createFullyConnectedInt8(int8Args);
    const theirs8 = xnn.fullyConnectedInt8(int8Args);
    assert.equal(theirs8.operator, 'fully_connected_nc_qs8');
    const [a8, b8] = runBoth(ours8, theirs8, int8s(37), (n) => new Int8Array(n));
    assert.equal(xnnpackAgreement(a8, b8).mismatch, null);
    for (const layer of [ours, ours8, theirs, theirs8]) layer.dispose();
  });

  test('what the peer cannot run is refused with an XnnpackPeerError saying why', () => {
    const xnn = peer();
    const fc = { batch: 1, inChannels: 4, outChannels: 3, weights: int8s(12) };
    const perChannel = { ...fc, ...quantization(3, 1 << 30, -7) };
    perChannel.multipliers[2] = 1 << 29;
    assert.throws(
      () => xnn.fullyConnectedInt8(perChannel),
      (e) => e instanceof XnnpackPeerError && /no per-channel \(qc8\) fully-connected/.test(e.message),
    );
    assert.throws(
      () => xnn.fullyConnectedInt8({ ...fc, ...quantization(3, 1 << 30, -7), activations: 'uint8' }),
      (e) => e instanceof XnnpackPeerError && /not uint8/.test(e.message),
    );
    assert.throws(
      () => xnn.fullyConnectedF32({ batch: 2, inChannels: 4, outChannels: 3, weights: floats(12) }),
      (e) => e instanceof XnnpackPeerError && /batch 1 only/.test(e.message),
    );
    // A requantization scale of 2^10: XNNPACK itself refuses it (it takes scales below 256).
    assert.throws(
      () => xnn.fullyConnectedInt8({ ...fc, ...quantization(3, 1 << 30, 11) }),
      (e) => e instanceof XnnpackPeerError && /XNNPACK create fully_connected_nc_qs8 failed/.test(e.message),
    );
    const layer = xnn.fullyConnectedF32({ batch: 1, inChannels: 4, outChannels: 3, weights: floats(12) });
    assert.throws(() => layer.run(floats(5), new Float32Array(3)), RangeError);
    assert.throws(() => layer.run(int8s(4) as unknown as Float32Array, new Float32Array(3)), TypeError);
    layer.dispose();
    assert.throws(() => layer.time(1), /after dispose/);
  });

  test('xnnpackAgreement: int8 within 1 LSB, fp32 within 1e-4 of the output scale, anything else a mismatch', () => {
    assert.equal(xnnpackAgreement(Int8Array.of(5, -7), Int8Array.of(6, -8)).mismatch, null);
    assert.match(
      xnnpackAgreement(Int8Array.of(5, -7), Int8Array.of(5, -9)).mismatch ?? '',
      /\|diff\| 2 at output 1/,
    );
    assert.equal(xnnpackAgreement(Float32Array.of(100, 1), Float32Array.of(100.005, 1)).mismatch, null);
    assert.notEqual(xnnpackAgreement(Float32Array.of(1, 1), Float32Array.of(1, 1.01)).mismatch, null);
    assert.notEqual(xnnpackAgreement(Float32Array.of(1), Float32Array.of(NaN)).mismatch, null);
    assert.match(
      xnnpackAgreement(Float32Array.of(1), Float32Array.of(1, 2)).mismatch ?? '',
      /writes 2 outputs/,
    );
  });

  test('bench kernels: every row has vs_xnnpack, fp32 and int8 measured at one thread; without the peer the column goes', async () => {
    const shapes = parseShapes(
      JSON.stringify({
        version: 1,
        shapes: [
          {
            name: 'tiny-dw',
            kind: 'conv2d',
            inputChannels: 16,
            outputChannels: 16,
            kernel: 3,
            inputSize: 6,
            padding: 1,
            groups: 16,
          },
          { name: 'tiny-fc', kind: 'fullyConnected', inChannels: 33, outChannels: 7 },
        ],
      }),
      'tiny shapes',
    );
    const report = await runKernelBench({ shapes, threads: [1, 2], rounds: 3, batchMs: 0.2, profileRuns: 0 });
    assert.equal(report.machine.xnnpack.built, true);
    for (const r of report.results) {
      assert.ok('vs_xnnpack' in r, `${r.shape} ${r.format}`);
      if ((r.format === 'fp32' || r.format === 'int8') && r.threads === 1)
        assert.ok(r.vs_xnnpack !== null && r.vs_xnnpack > 0, `${r.shape} ${r.format} ${r.vs_xnnpack}`);
      else assert.equal(r.vs_xnnpack, null, `${r.shape} ${r.format} ${r.threads}`);
    }
    assert.deepEqual(
      report.xnnpack.map((x) => `${x.shape} ${x.format} ${x.operator} ${x.error}`),
      [
        'tiny-dw fp32 convolution2d_nhwc_f32 null',
        'tiny-dw int8 convolution2d_nhwc_qc8 null',
        'tiny-fc fp32 fully_connected_nc_f32 null',
        'tiny-fc int8 fully_connected_nc_qs8 null',
      ],
    );
    for (const x of report.xnnpack)
      assert.ok(x.us !== null && x.us > 0 && x.us_js_call !== null && x.max_abs_diff !== null);
    const target = report.targets.find(
      (t) => t.target === '>= 1.0x XNNPACK' && t.shape === 'tiny-fc' && t.format === 'int8',
    );
    assert.ok(target?.measured !== null && target?.met !== null);
    const table = formatKernelTable(report);
    assert.match(table, /x ORT fp32 kern +x XNNPACK +peak %/);
    assert.match(table, /tiny-fc +XNNPACK int8 +1 .*fully_connected_nc_qs8/);

    const without = formatKernelTable({
      ...report,
      machine: { ...report.machine, xnnpack: { built: false, reason: 'libxnnpack-dev is not installed' } },
      results: report.results.map((r) => ({ ...r, vs_xnnpack: null })),
      xnnpack: [],
    });
    assert.doesNotMatch(without, /x ORT fp32 kern +x XNNPACK/);
    assert.match(without, /x ORT fp32 kern +peak %/);
    assert.match(without, /no XNNPACK column: libxnnpack-dev is not installed/);
  });
});
